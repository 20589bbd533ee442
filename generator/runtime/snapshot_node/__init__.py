"""ryla-gen's memory-snapshot helper, loaded by ComfyUI as a custom node.

Before a CPU memory snapshot the container has no GPU, so ComfyUI starts on the CPU device
(see ``prestartup_script.py``). After the restore, ``POST /ryla/snapshot/gpu`` moves ComfyUI's
device selection to the GPU that is now attached; the runtime calls it from
``@modal.enter(snap=False)`` before the warm-up. Never imported by ryla-gen itself.
"""

import logging

from aiohttp import web
from server import PromptServer

NODE_CLASS_MAPPINGS: dict = {}
log = logging.getLogger("ryla.snapshot")


@PromptServer.instance.routes.post("/ryla/snapshot/gpu")
async def use_gpu(_request: web.Request) -> web.Response:
    import comfy.model_management as mm
    import torch

    if not torch.cuda.is_available():
        return web.json_response({"device": "cpu", "error": "no CUDA device visible"}, status=503)
    torch.cuda.init()
    mm.cpu_state = mm.CPUState.GPU
    device = mm.get_torch_device()
    mm.total_vram = mm.get_total_memory(device) / (1024 * 1024)
    log.info("ComfyUI now uses %s", device)
    return web.json_response({"device": str(device)})
