"""ryla-gen's helper inside ComfyUI, loaded as a custom node; never imported by ryla-gen itself.

- Residency (``RYLA_PIN_MODELS``): the output cache keeps the plan's models loaded
  (``residency.py``); ``GET /ryla/residency`` says what is pinned.
- Memory snapshot (``RYLA_SNAPSHOT=1``): before the snapshot the container has no GPU, so
  ComfyUI starts on the CPU device (``prestartup_script.py``). After the restore,
  ``POST /ryla/snapshot/gpu`` proves CUDA computes on the device now attached, then moves
  ComfyUI's device selection there; 503 with the reason when it cannot.

ComfyUI imports this after it has imported torch itself; nothing here imports torch earlier.
"""

import logging

from .residency import install, pinned_names

try:
    from aiohttp import web
    from server import PromptServer
except ImportError:  # imported outside ComfyUI (ryla-gen's own tests): nothing to register
    PromptServer = None

NODE_CLASS_MAPPINGS: dict = {}
log = logging.getLogger("ryla.helper")


def _pin() -> object:
    names = pinned_names()
    if not names:
        return None
    from comfy_execution.caching import LRUCache

    pins = install(LRUCache, names)
    if pins is None:
        log.warning("ryla: this ComfyUI's LRU cache is not as expected; models are not pinned")
    else:
        log.info("ryla: keeping loaded: %s", ", ".join(sorted(names)))
    return pins


async def residency_state(_request: "web.Request") -> "web.Response":
    names = sorted(_PINS.names) if _PINS is not None else []
    return web.json_response({"pinned": _PINS is not None, "names": names})


async def use_gpu(_request: "web.Request") -> "web.Response":
    import comfy.model_management as mm
    import torch

    try:
        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA device is visible (torch.cuda.is_available() is False)")
        torch.cuda.init()
        probe = torch.arange(1024, dtype=torch.float32, device="cuda")
        total = float((probe * 2).sum().item())
        torch.cuda.synchronize()
        if total != 1023 * 1024:
            raise RuntimeError(f"CUDA computed {total} instead of {1023 * 1024}")
    except Exception as exc:  # noqa: BLE001 - the reason goes back to the runtime
        log.error("ryla: CUDA is not usable after the restore: %r", exc)
        return web.json_response(
            {"device": "cpu", "error": f"{type(exc).__name__}: {exc}"}, status=503
        )
    mm.cpu_state = mm.CPUState.GPU
    device = mm.get_torch_device()
    mm.total_vram = mm.get_total_memory(device) / (1024 * 1024)
    log.info("ryla: ComfyUI now uses %s", device)
    return web.json_response(
        {
            "device": str(device),
            "name": torch.cuda.get_device_name(device),
            "vram_mb": mm.total_vram,
        }
    )


if PromptServer is not None:
    _PINS = _pin()
    PromptServer.instance.routes.get("/ryla/residency")(residency_state)
    PromptServer.instance.routes.post("/ryla/snapshot/gpu")(use_gpu)
