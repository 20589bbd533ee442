"""The helper node's pinning and the server's GPU hand-over / late-file paths, without ComfyUI.

The pins are checked here against an LRU shaped like ComfyUI 0.8.0's (same attribute names and
eviction rule) and keys shaped like its input signatures; tests/test_real_comfyui.py proves the
same against a real ComfyUI when one is available.
"""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from generator.runtime import config
from generator.runtime.backends import ComfyServer
from generator.runtime.errors import GpuUnavailable
from generator.runtime.snapshot_node import residency
from generator.runtime.snapshot_node.residency import install, own_inputs, pinned_names


def own_input_values(key) -> set:
    return {value for _, value in own_inputs(key) if isinstance(value, str)}


def hashable(obj):
    """ComfyUI's signature hashing: sequences and mappings become frozensets of pairs."""
    if isinstance(obj, dict):
        return frozenset((hashable(k), hashable(v)) for k, v in sorted(obj.items()))
    if isinstance(obj, (list, tuple)):
        return frozenset(zip(itertools.count(), [hashable(i) for i in obj], strict=False))
    return obj


def key(class_type: str, inputs: dict, *ancestors: list) -> frozenset:
    own = [class_type, None, *sorted(inputs.items())]
    return hashable([own, *ancestors])


class FakeLRU:
    """ComfyUI's LRUCache bookkeeping: generations, a max size, oldest generations go first."""

    def __init__(self, max_size: int) -> None:
        self.max_size, self.cache, self.used_generation, self.children = max_size, {}, {}, {}
        self.generation = self.min_generation = 0

    def run(self, *keys: frozenset) -> None:  # one prompt: its nodes' outputs, then a clean-up
        self.generation += 1
        for k in keys:
            self.cache[k] = "output"
            self.used_generation[k] = self.generation
        self.clean_unused()

    def clean_unused(self) -> None:
        raise AssertionError("replaced by install()")

    def _clean_subcaches(self) -> None:
        pass


def test_own_inputs_are_read_from_the_node_itself_not_its_ancestors() -> None:
    loader = ["CheckpointLoaderSimple", None, ("ckpt_name", "a.safetensors")]
    sampler = key("KSampler", {"seed": 1, "model": ("ANCESTOR", 0, 0)}, loader)
    assert "a.safetensors" not in set(own_input_values(sampler))
    assert set(own_input_values(key("CheckpointLoaderSimple", {"ckpt_name": "a.safetensors"}))) >= {
        "a.safetensors"
    }  # noqa: E501


def test_pinned_loader_outputs_survive_any_number_of_other_outputs() -> None:
    lru = FakeLRU(max_size=4)
    pins = install(FakeLRU, frozenset({"a.safetensors", "sub/b.safetensors"}))
    assert pins is not None
    a = key("CheckpointLoaderSimple", {"ckpt_name": "a.safetensors"})
    b = key("UNETLoader", {"unet_name": "b.safetensors", "weight_dtype": "default"})
    lora = key("LoraLoader", {"lora_name": "character.safetensors"})
    lru.run(a, b, lora)
    for seed in range(200):  # every request leaves new sampler and decoder outputs
        lru.run(key("KSampler", {"seed": seed}), key("VAEDecode", {"seed": seed}))
    assert a in lru.cache and b in lru.cache  # by name, also without its sub-folder
    assert lora not in lru.cache  # not declared: evicted like any output
    assert len(lru.cache) - 2 <= 4  # the rest still bounded by the LRU size


def test_a_private_endpoints_copy_of_a_pinned_model_is_not_pinned() -> None:
    # private_models: the endpoint's loader carries the runtime's private input; its copy is
    # bounded like any output, while the shared copy of the same file stays.
    assert residency.PRIVATE_INPUT == config.PRIVATE_INPUT  # the helper imports no ryla-gen
    lru = FakeLRU(max_size=2)
    install(FakeLRU, frozenset({"f.safetensors"}))
    shared = key("UNETLoader", {"unet_name": "f.safetensors", "weight_dtype": "default"})
    private = key(
        "UNETLoader",
        {"unet_name": "f.safetensors", "weight_dtype": "default", config.PRIVATE_INPUT: "/ip"},
    )
    lru.run(shared, private)
    for seed in range(20):
        lru.run(key("KSampler", {"seed": seed}))
    assert shared in lru.cache and private not in lru.cache


def test_nothing_is_pinned_without_names_or_on_an_unknown_cache() -> None:
    assert install(FakeLRU, frozenset()) is None
    assert install(type("Other", (), {}), frozenset({"a"})) is None
    assert pinned_names({"RYLA_PIN_MODELS": "a.safetensors:b.safetensors"}) == {
        "a.safetensors",
        "b.safetensors",
    }  # noqa: E501


class _Helper(http.server.BaseHTTPRequestHandler):
    status, body = 503, b""

    def do_POST(self) -> None:  # noqa: N802
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def helper_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Helper)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            503,
            {"device": "cpu", "error": "RuntimeError: no CUDA device is visible"},
            "CUDA is not usable after the restore: RuntimeError: no CUDA device is visible",
        ),  # noqa: E501
        (404, {}, "helper node is not loaded"),
    ],
    ids=["no-cuda", "no-helper"],
)
def test_gpu_hand_over_failures_say_why(
    helper_server, tmp_path: Path, status, body, message
) -> None:  # noqa: E501
    _Helper.status, _Helper.body = status, json.dumps(body).encode()
    comfy = ComfyServer([], str(tmp_path), comfy_dir=tmp_path, port=helper_server)
    with pytest.raises(GpuUnavailable, match=message):
        asyncio.run(comfy.after_restore())


class FakeVolume:
    """Modal's Volume as the runtime uses it: reload refused (files open), file API works."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

        async def reload() -> None:
            raise RuntimeError("there are open files preventing the operation")

        async def listdir(folder: str) -> list:
            return [SimpleNamespace(path=p) for p in self.files if p.rpartition("/")[0] == folder]

        async def read_file(path: str):
            data = self.files[path]
            for i in range(0, len(data), 3):
                yield data[i : i + 3]

        self.reload = SimpleNamespace(aio=reload)
        self.listdir = SimpleNamespace(aio=listdir)
        self.read_file = SimpleNamespace(aio=read_file)


def test_a_file_committed_after_start_is_found_although_reload_is_refused(tmp_path: Path) -> None:
    volume = FakeVolume({"loras/new.safetensors": b"lora weights"})
    comfy = ComfyServer(
        [], str(tmp_path / "mounted"), comfy_dir=tmp_path, models_volume=volume,
        volume_folders=("loras",), fresh_dir=tmp_path / "fresh",
    )  # fmt: skip
    assert asyncio.run(comfy.reload_models("loras/new.safetensors")) is True
    assert (tmp_path / "fresh" / "loras" / "new.safetensors").read_bytes() == b"lora weights"
    assert asyncio.run(comfy.reload_models("loras/missing.safetensors")) is False
    asyncio.run(_start_without_comfyui(comfy))
    paths = Path("/tmp/ryla_extra_model_paths.yaml").read_text()
    assert f"base_path: {tmp_path / 'fresh'}" in paths  # ComfyUI lists the copies too


async def _start_without_comfyui(comfy: ComfyServer) -> None:
    """``start`` up to launching ComfyUI: links, helper, model paths file."""
    comfy.process.start = lambda: None  # type: ignore[method-assign]

    async def ready(timeout: float) -> float:
        return 0.0

    comfy.process.wait_ready = ready  # type: ignore[method-assign]
    await comfy.start()
