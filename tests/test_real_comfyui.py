"""Opt-in: the runtime against a real ComfyUI (CI has none: skipped there, with the reason).

- ``RYLA_COMFY_URL``: a running ComfyUI (``http://127.0.0.1:8188``) for the client tests;
- ``RYLA_COMFY_DIR``: a ComfyUI checkout the tests start themselves (copied to a temporary
  folder, so its own tree is never touched), run by ``RYLA_COMFY_PYTHON`` (its venv's python;
  default: this one). /tmp/comfy/README.txt on the team's machine says how one was set up.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from generator.runtime.backends import ComfyServer
from generator.runtime.comfy_client import ComfyClient
from generator.runtime.comfy_process import comfy_launch_command
from generator.runtime.errors import ComfyStartFailed, GpuUnavailable

REPO = Path(__file__).resolve().parents[1]
URL = os.environ.get("RYLA_COMFY_URL")
DIR = os.environ.get("RYLA_COMFY_DIR")
PYTHON = os.environ.get("RYLA_COMFY_PYTHON", sys.executable)
needs_url = pytest.mark.skipif(not URL, reason="set RYLA_COMFY_URL to a running ComfyUI")
needs_dir = pytest.mark.skipif(not DIR, reason="set RYLA_COMFY_DIR to a ComfyUI checkout")


def verified(archs: list[str], packs: str | None = None, timeout: int = 300) -> dict[str, str]:
    """``synth.py --verify`` for ``archs`` in ComfyUI's Python: arch -> what it detected."""
    script = REPO / "generator" / "smoke" / "synth.py"
    command = [PYTHON, str(script), "--comfy-dir", DIR, "--verify"]
    command += ["--custom-nodes", packs] if packs else []
    for arch in archs:
        command += ["--arch", arch]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, lines or done.stderr[-2000:]
    return {line["arch"]: line["detected"] for line in lines}


def invert(color: int, size: int = 64) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}},  # noqa: E501
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": f"ryla_test/{uuid.uuid4().hex}"}},  # noqa: E501
    }  # fmt: skip


@needs_url
def test_concurrent_runs_report_execution_without_their_queue_wait() -> None:
    """16 prompts at once on one ComfyUI: each one's execution excludes the wait behind the
    others, so together they cannot exceed the batch's wall time (ComfyUI runs one at a time);
    every run finishes although ComfyUI often leaves WebSocket close frames unanswered."""

    async def main() -> tuple[list, float]:
        async with ComfyClient(URL) as client:
            started = asyncio.get_running_loop().time()
            results = await asyncio.gather(
                *(client.run(invert(i * 4099 + 17, 256), timeout=120) for i in range(16))
            )
            return results, asyncio.get_running_loop().time() - started

    results, wall = asyncio.run(main())
    assert all(r.outputs["3"] for r in results)
    assert sum(r.execution for r in results) <= wall
    assert max(r.queue for r in results) > 0  # some waited behind others, reported apart
    assert all(r.execution + r.queue <= r.elapsed + 0.01 for r in results)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def comfy_dir(tmp_path: Path) -> Path:
    """A private copy of the ComfyUI tree (the helper node gets linked into it)."""
    assert DIR is not None
    top = {"models", "output", "input", "temp", "user", ".git"}  # its data, not its code

    def ignore(folder: str, names: list[str]) -> list[str]:
        here = Path(folder) == Path(DIR)
        return [n for n in names if n == "__pycache__" or (here and n in top)]

    target = tmp_path / "ComfyUI"
    shutil.copytree(DIR, target, ignore=ignore, symlinks=True)
    return target


def server(comfy_dir: Path, models: Path, args: tuple[str, ...] = (), **kwargs) -> ComfyServer:
    port = free_port()
    extra = ("--cpu", "--extra-model-paths-config", str(_paths(comfy_dir, models)), *args)
    command = comfy_launch_command(comfy_dir, port, extra, python=PYTHON)
    return ComfyServer(
        [], str(models), comfy_dir=comfy_dir, port=port, command=command,
        log_path=comfy_dir / "comfyui.log", start_timeout=120, **kwargs,
    )  # fmt: skip


def _paths(comfy_dir: Path, models: Path) -> Path:
    path = comfy_dir / "ryla_test_paths.yaml"
    path.write_text(f"ryla_test:\n  base_path: {models}\n  vae: vae\n")
    return path


@needs_dir
def test_a_taken_port_fails_fast_and_says_so(comfy_dir: Path, tmp_path: Path) -> None:
    comfy = server(comfy_dir, tmp_path)
    with socket.socket() as other:
        other.bind(("127.0.0.1", int(comfy.url.rsplit(":", 1)[1])))
        other.listen()
        with pytest.raises(ComfyStartFailed, match="already taken by another process"):
            asyncio.run(comfy.start())


@needs_dir
def test_snapshot_start_without_cuda_fails_with_the_reason(comfy_dir: Path, tmp_path: Path) -> None:
    """Started as for a memory snapshot; after the "restore" there is still no GPU here."""
    comfy = server(comfy_dir, tmp_path, snapshot=True)

    async def main() -> None:
        try:
            await comfy.start()
            await comfy.after_restore()
        finally:
            await comfy.stop()

    try:
        import torch  # noqa: F401 - only to know whether this machine has CUDA
    except ImportError:
        has_cuda = False
    else:
        has_cuda = torch.cuda.is_available()
    if has_cuda:
        pytest.skip("this machine has CUDA: the hand-over succeeds (the GPU bench covers it)")
    with pytest.raises(GpuUnavailable, match="no CUDA device is visible"):
        asyncio.run(main())
    log = (comfy_dir / "comfyui.log").read_text(errors="replace")
    assert "Torch already imported" not in log  # the helper imports no torch before ComfyUI


def make_vae(path: Path, seed: int) -> None:
    script = REPO / "bench" / "make_sd15_checkpoint.py"
    command = [PYTHON, str(script), "--comfy-dir", DIR, "--out", str(path), "--vae-only"]
    subprocess.run([*command, "--seed", str(seed)], check=True, capture_output=True)


def roundtrip(vae: str, color: int) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color}},  # noqa: E501
        "2": {"class_type": "VAELoader", "inputs": {"vae_name": vae}},
        "3": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["2", 0]}},
        "4": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["2", 0]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "ryla_test/vae"}},  # noqa: E501
    }  # fmt: skip


async def loader_reloads(comfy: ComfyServer, rounds: int) -> int:
    """Alternate the two VAEs with 12 other prompts between uses: how often a loader ran."""
    reloads = 0
    color = 1
    for _ in range(rounds):
        for vae in ("vae_a.safetensors", "vae_b.safetensors"):
            for _ in range(12):  # unrelated prompts push older outputs out of the LRU
                color += 1
                await comfy.client.run(invert(color), timeout=120)
            cached: set[str] = set()

            def seen(kind: str, data: dict, cached: set[str] = cached) -> None:
                if kind == "execution_cached":
                    cached.update(str(n) for n in data.get("nodes", []))

            color += 1
            await comfy.client.run(roundtrip(vae, color), timeout=120, on_event=seen)
            reloads += "2" not in cached
    return reloads


@needs_dir
@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "lru-only"])
def test_pinned_models_stay_loaded_under_any_mix(
    comfy_dir: Path, tmp_path: Path, pinned: bool
) -> None:  # noqa: E501
    """With an LRU of 8 outputs, 12 other prompts between uses evict an unpinned loader's
    output (a reload from disk every time after the first); the helper's pins keep both."""
    models = tmp_path / "models"
    make_vae(models / "vae" / "vae_a.safetensors", 1)
    make_vae(models / "vae" / "vae_b.safetensors", 2)
    pins = ("vae_a.safetensors", "vae_b.safetensors") if pinned else ()
    comfy = server(comfy_dir, models, ("--cache-lru", "8"), pin_models=pins)

    async def main() -> tuple[int, dict]:
        try:
            await comfy.start()
            async with httpx.AsyncClient(base_url=comfy.url, trust_env=False) as http:
                helper = (await http.get("/ryla/residency")).json() if pinned else {}
            return await loader_reloads(comfy, rounds=3), helper
        finally:
            await comfy.stop()

    reloads, helper = asyncio.run(main())
    first_loads = 2  # each VAE's first use loads it
    if pinned:
        assert helper == {"pinned": True, "names": sorted(pins)}
        assert reloads == first_loads
    else:
        assert reloads == 6  # every use reloaded: what pinning prevents


@needs_dir
def test_upscale_and_controlnet_synthetics_load_in_comfyui_own_nodes() -> None:
    """``synth.py --verify`` for /upscale's two files: the ESRGAN .pth is written and loaded by
    UpscaleModelLoader (weights_only torch.load, spandrel) and upscales 8x8 to 32x32; the
    diffusers-layout SDXL ControlNet passes load_controlnet_state_dict's conversion whole."""
    found = verified(["esrgan-4x", "sdxl-controlnet"])
    assert found["esrgan-4x"].startswith("spandrel ESRGAN 4x (64nf, 23nb)")
    assert found["esrgan-4x"].endswith("8x8 -> 32x32")
    assert found["sdxl-controlnet"].startswith("ControlNet (diffusers path), all 844 tensors load")


def _has_insightface() -> bool:
    probe = [PYTHON, "-c", "import insightface.model_zoo"]
    return subprocess.run(probe, capture_output=True, check=False, timeout=120).returncode == 0


@needs_dir
def test_instantid_synthetics_fit_sdxl_and_insightface_routes_each_onnx_file() -> None:
    """``synth.py --verify`` for /sdxl-instantid's own files: every ``ip_adapter`` pair fits the
    SDXL cross-attention ComfyUI_InstantID patches with it; InsightFace's router gives each
    ONNX file the task it stands in for, and the detector finds faces in noise, none in grey."""
    if not _has_insightface():
        pytest.skip(
            "insightface is not installed in RYLA_COMFY_PYTHON (ComfyUI_InstantID needs it)"
        )
    faces = {
        "insightface-scrfd": "InsightFace task detection, ",
        "insightface-landmark-3d68": "InsightFace task landmark_3d_68, ",
        "insightface-landmark-2d106": "InsightFace task landmark_2d_106, ",
        "insightface-genderage": "InsightFace task genderage, ",
        "insightface-arcface": "InsightFace task recognition, ",
    }
    found = verified(["instantid-ip-adapter", *faces])
    assert found["instantid-ip-adapter"] == "70 SDXL cross-attentions take the ip_adapter pairs"
    for arch, said in faces.items():
        assert found[arch].startswith(said), found[arch]
    assert found["insightface-scrfd"].endswith(", 0 in a flat image")


LOGGING_NODE = '''
import logging


class RylaTestLogsALine:
    """Passes its image on; logs ``line`` as a warning first (as PuLID logs "no face")."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "line": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "ryla/test"

    def run(self, image, line):
        if line:
            logging.warning(line)
        return (image,)


NODE_CLASS_MAPPINGS = {"RylaTestLogsALine": RylaTestLogsALine}
'''


@needs_dir
def test_each_run_notices_only_the_lines_its_own_prompt_logged(
    comfy_dir: Path, tmp_path: Path
) -> None:
    """Eight prompts at once on a real ComfyUI, half of them logging a warning through a
    custom node: each run is told of the watched phrase exactly when its own prompt logged it
    (``logs`` events carry no prompt id; ComfyUI runs one prompt at a time)."""
    (comfy_dir / "custom_nodes" / "ryla_test_logs.py").write_text(LOGGING_NODE)
    comfy = server(comfy_dir, tmp_path)

    def prompt(i: int) -> dict:
        graph = invert(i * 997 + 3, 96)
        line = f"ryla test {i}: No faces detected in any of the given images" if i % 2 else ""
        graph["4"] = {
            "class_type": "RylaTestLogsALine",
            "inputs": {"image": ["2", 0], "line": line},
        }  # noqa: E501
        graph["3"]["inputs"]["images"] = ["4", 0]
        return graph

    async def main() -> list:
        await comfy.start()
        try:
            watch = ("no faces detected in any",)
            return await asyncio.gather(
                *(comfy.client.run(prompt(i), timeout=120, watch=watch) for i in range(8))
            )
        finally:
            await comfy.stop()

    results = asyncio.run(main())
    assert [bool(r.noticed) for r in results] == [bool(i % 2) for i in range(8)]


@needs_dir
def test_liveportrait_synthetics_load_into_the_packs_own_classes() -> None:
    """``synth.py --verify`` for /liveportrait's files: each loads strictly into the class of
    the ComfyUI-LivePortraitKJ checkout in ``RYLA_CUSTOM_NODES``, as the pack's loader loads it;
    the landmark ONNX gives 203 points inside the crop."""
    packs = os.environ.get("RYLA_CUSTOM_NODES")
    if not packs or not (Path(packs) / "ComfyUI-LivePortraitKJ").is_dir():
        pytest.skip("set RYLA_CUSTOM_NODES to a folder holding a ComfyUI-LivePortraitKJ checkout")
    parts = ["appearance", "motion", "warping", "spade", "stitching", "landmark"]
    found = {
        arch.removeprefix("liveportrait-"): said
        for arch, said in verified([f"liveportrait-{p}" for p in parts], packs).items()
    }
    assert found["motion"].startswith("MotionExtractor loads strictly (212 tensors, 28.1M")
    assert found["stitching"] == "3 stitching networks load strictly (28 tensors)"
    assert found["landmark"] == "203 points from output 2, within the 224-pixel crop"
    assert all("loads strictly" in found[p] for p in ("appearance", "warping", "spade"))


def test_reactor_synthetics_load_as_the_pack_loads_them() -> None:
    """``synth.py --verify`` for the face-swap files: facexlib's RetinaFace and ParseNet and
    GFPGAN load strictly into the classes of the ComfyUI-ReActor checkout in
    ``RYLA_CUSTOM_NODES`` (GFPGAN picked by the pack's own loader), RetinaFace reports a face
    with five key points; InsightFace routes the swapper; transformers' pipeline reads the NSFW
    filter's three files and calls a picture safe."""
    packs = os.environ.get("RYLA_CUSTOM_NODES")
    if not packs or not (Path(packs) / "ComfyUI-ReActor").is_dir():
        pytest.skip("set RYLA_CUSTOM_NODES to a folder holding a ComfyUI-ReActor checkout")
    if not _has_insightface():
        pytest.skip("insightface is not installed in RYLA_COMFY_PYTHON (its router checks it)")
    archs = ["retinaface-resnet50", "parsenet", "gfpgan-v1.4", "inswapper-128"]
    archs += ["vit-nsfw-detector", "vit-nsfw-detector-config"]
    found = verified(archs, packs, timeout=600)
    assert found["retinaface-resnet50"].startswith("RetinaFace loads strictly; ")
    assert found["retinaface-resnet50"].endswith(", 5 key points")
    assert found["parsenet"].startswith("ParseNet loads strictly")
    assert found["gfpgan-v1.4"].startswith("r_chainner loads it as GFPGANv1Clean")
    assert found["inswapper-128"].startswith("InsightFace routes it to INSwapper")
    assert found["vit-nsfw-detector"].startswith("transformers' pipeline loads it: sfw")


@needs_dir
def test_a_private_loader_is_its_own_cache_entry_and_never_pinned(
    comfy_dir: Path, tmp_path: Path
) -> None:
    """What ``private_models`` relies on, on the real ComfyUI: a loader given the runtime's
    private input runs (ComfyUI passes it no such argument) and is cached apart from the same
    loader without it, so a graph that changes its model in place changes only its own copy;
    the helper keeps the shared copy pinned and lets the private one go like any output."""
    from generator.runtime.config import PRIVATE_INPUT

    models = tmp_path / "models"
    make_vae(models / "vae" / "vae_a.safetensors", 1)
    comfy = server(comfy_dir, models, ("--cache-lru", "8"), pin_models=("vae_a.safetensors",))

    def private(color: int) -> dict:
        graph = roundtrip("vae_a.safetensors", color)
        graph["2"]["inputs"][PRIVATE_INPUT] = "/ip"
        return graph

    async def loaded(graph: dict) -> bool:
        """Run it; whether the loader ran (False: ComfyUI answered from its cache)."""
        cached: set[str] = set()

        def seen(kind: str, data: dict) -> None:
            if kind == "execution_cached":
                cached.update(str(n) for n in data.get("nodes", []))

        result = await comfy.client.run(graph, timeout=120, on_event=seen)
        assert result.outputs["5"]
        return "2" not in cached

    async def main() -> list[bool]:
        try:
            await comfy.start()
            said = [await loaded(roundtrip("vae_a.safetensors", 1))]  # the shared copy
            said.append(await loaded(private(2)))  # not the shared entry: loads its own
            said.append(await loaded(roundtrip("vae_a.safetensors", 3)))  # shared: still there
            said.append(await loaded(private(4)))  # its own: still there
            for color in range(5, 17):  # other outputs push unpinned entries out of the LRU
                await comfy.client.run(invert(color), timeout=120)
            said.append(await loaded(private(17)))  # not pinned: evicted, loads again
            said.append(await loaded(roundtrip("vae_a.safetensors", 18)))  # pinned: kept
            return said
        finally:
            await comfy.stop()

    assert asyncio.run(main()) == [True, True, False, False, True, False]
