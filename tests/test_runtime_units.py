"""Runtime pieces without ComfyUI: request -> workflow, media decoding and safety, models."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.server
import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from generator.runtime.apply import apply_request, resolve_values
from generator.runtime.config import PRIVATE_INPUT, Endpoint, ModelFile, Param, Target
from generator.runtime.media import MediaError, load_media
from generator.runtime.models import ModelFetchError, fetch_models, link_models


def png_bytes(width: int = 4, height: int = 3, color=(255, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "color": 0}},
    "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "x.safetensors", "strength": 0.0}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "workflow text"}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ryla/x"}},
}


def endpoint(*params: Param) -> Endpoint:
    return Endpoint(
        path="/x",
        request_model=object,  # type: ignore[arg-type]
        workflow="x.json",
        params=params,
        outputs=("4",),
        timeout=10,
        prefix_nodes=("4",),
    )


def test_values_are_bound_to_every_target_and_the_workflow_is_not_mutated() -> None:
    ep = endpoint(Param("size", targets=(Target("1", "width"), Target("1", "height"))))
    applied = apply_request(ep, WORKFLOW, {"size": 128}, {})
    assert applied.prompt["1"]["inputs"]["width"] == 128
    assert applied.prompt["1"]["inputs"]["height"] == 128
    assert WORKFLOW["1"]["inputs"]["width"] == 64


def test_omitted_optional_value_keeps_the_workflow_value() -> None:
    ep = endpoint(Param("negative", targets=(Target("3", "text"),)))
    assert apply_request(ep, WORKFLOW, {"negative": None}, {}).prompt["3"]["inputs"]["text"] == (
        "workflow text"
    )


def test_lora_file_name_from_pattern_and_trigger_word_prepended() -> None:
    ep = endpoint(
        Param("prompt", targets=(Target("3", "text"),)),
        Param(
            "lora_id",
            targets=(Target("2", "lora_name"),),
            format="flux-character-{lora_id}.safetensors",
            header="X-LoRA-Used",
        ),
        Param("trigger_word", prepend_to="prompt"),
    )
    applied = apply_request(
        ep, WORKFLOW, {"prompt": "a cat", "lora_id": "c42", "trigger_word": "ryla"}, {}
    )
    assert applied.prompt["2"]["inputs"]["lora_name"] == "flux-character-c42.safetensors"
    assert applied.prompt["3"]["inputs"]["text"] == "ryla, a cat"
    assert applied.headers["X-LoRA-Used"] == "c42"


def test_aspect_ratio_sets_width_and_height_and_map_converts_a_bool() -> None:
    ep = endpoint(
        Param("width", targets=(Target("1", "width"),)),
        Param("height", targets=(Target("1", "height"),)),
        Param("aspect_ratio", sets={"16:9": {"width": 1664, "height": 928}}),
        Param("fast", targets=(Target("2", "strength"),), map={"true": 1.0, "false": 0.0}),
    )
    applied = apply_request(
        ep, WORKFLOW, {"width": 1328, "height": 1328, "aspect_ratio": "16:9", "fast": True}, {}
    )
    assert (applied.prompt["1"]["inputs"]["width"], applied.prompt["1"]["inputs"]["height"]) == (
        1664,
        928,
    )
    assert applied.prompt["2"]["inputs"]["strength"] == 1.0


def test_random_seed_when_omitted_is_reported() -> None:
    ep = endpoint(Param("seed", kind="seed", targets=(Target("1", "color"),), header="X-Seed"))
    seeds = {apply_request(ep, WORKFLOW, {"seed": None}, {}).headers["X-Seed"] for _ in range(5)}
    assert len(seeds) > 1
    applied = apply_request(ep, WORKFLOW, {"seed": 7}, {})
    assert applied.prompt["1"]["inputs"]["color"] == 7 and applied.headers["X-Seed"] == "7"


def test_a_private_endpoints_loaders_get_an_input_of_their_own() -> None:
    # ComfyUI keys cached outputs by every input a node is given: the endpoint's own input keeps
    # a model its graph changes in place (x-flux's IP-Adapter) away from the other endpoints.
    loader = {"class_type": "UNETLoader", "inputs": {"unet_name": "f.safetensors"}}
    graph = {**WORKFLOW, "5": loader}
    private = dataclasses.replace(endpoint(), path="/ip", private_nodes=("5",))
    shared = endpoint()
    mine = apply_request(private, graph, {}, {}).prompt["5"]["inputs"]
    theirs = apply_request(shared, graph, {}, {}).prompt["5"]["inputs"]
    assert mine == {"unet_name": "f.safetensors", PRIVATE_INPUT: "/ip"}
    assert theirs == loader["inputs"]  # other endpoints: the workflow's inputs, unchanged
    assert graph["5"] is loader and PRIVATE_INPUT not in loader["inputs"]


def test_each_request_gets_its_own_filename_prefix() -> None:
    ep = endpoint()
    first = apply_request(ep, WORKFLOW, {}, {}).prompt["4"]["inputs"]["filename_prefix"]
    second = apply_request(ep, WORKFLOW, {}, {}).prompt["4"]["inputs"]["filename_prefix"]
    assert first != second and first.startswith("ryla/")


def test_uploaded_names_replace_media_inputs_one_per_target() -> None:
    ep = endpoint(
        Param(
            "refs", kind="video", targets=(Target("3", "text"), Target("2", "lora_name")), many=True
        )
    )
    applied = apply_request(ep, WORKFLOW, {"refs": ["a", "b"]}, {"refs": ["up1.mp4", "up2.mp4"]})
    assert applied.prompt["3"]["inputs"]["text"] == "up1.mp4"
    assert applied.prompt["2"]["inputs"]["lora_name"] == "up2.mp4"


def test_resolve_values_keeps_explicit_values() -> None:
    ep = endpoint(Param("seed", kind="seed"))
    assert resolve_values(ep, {"seed": 0})["seed"] == 0


# --- media -----------------------------------------------------------------------------------

LIMITS = {"max_bytes": 1 << 20, "max_pixels": 10_000, "allow_private": False}


async def test_data_url_and_bare_base64_decode_to_the_same_image() -> None:
    data = png_bytes()
    encoded = base64.b64encode(data).decode()
    from_url = await load_media(f"data:image/png;base64,{encoded}", "image", **LIMITS)
    bare = await load_media(encoded, "image", **LIMITS)
    assert from_url.data == bare.data == data
    assert from_url.media_type == "image/png"
    name = from_url.upload_name("../../etc/passwd")
    assert "/" not in name and name.endswith(".png") and ".." not in name


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        ("not base64 at all!", "image", "not valid base64"),
        (base64.b64encode(b"hello world").decode(), "image", "not a supported image"),
        (base64.b64encode(png_bytes()).decode(), "video", "not a supported video"),
        (base64.b64encode(png_bytes(200, 200)).decode(), "image", "pixel limit"),
        ("ftp://example.com/a.png", "image", "only http"),
    ],
)
async def test_bad_media_is_refused_with_a_reason(value: str, kind: str, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        await load_media(value, kind, **LIMITS)


async def test_oversized_media_is_refused_before_decoding() -> None:
    big = base64.b64encode(b"\0" * 4096).decode()
    with pytest.raises(MediaError, match="byte limit"):
        await load_media(big, "image", max_bytes=1024, max_pixels=10, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/a.png",
        "http://localhost/a.png",
        "http://10.0.0.8/a.png",
        "http://192.168.1.1/a.png",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/a.png",
    ],
)
async def test_private_loopback_and_link_local_urls_are_refused(url: str) -> None:
    with pytest.raises(MediaError, match="private, loopback or link-local"):
        await load_media(url, "image", **LIMITS)


@pytest.fixture()
def file_server(tmp_path: Path):
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_url_input_is_fetched_when_private_hosts_are_allowed(file_server) -> None:
    root, base = file_server
    (root / "a.png").write_bytes(png_bytes())
    media = await load_media(
        f"{base}/a.png", "image", max_bytes=1 << 20, max_pixels=100, allow_private=True
    )
    assert media.data == png_bytes()


# --- models ----------------------------------------------------------------------------------


def test_models_are_linked_into_comfyui_folders(tmp_path: Path) -> None:
    volume, comfy = tmp_path / "volume", tmp_path / "comfy" / "models"
    model = ModelFile(
        folder="checkpoints", filename="a.safetensors", repo="o/r", file="a.safetensors"
    )
    (volume / "checkpoints").mkdir(parents=True)
    (volume / "checkpoints" / "a.safetensors").write_bytes(b"weights")
    links = link_models([model], volume, comfy)
    assert links == [comfy / "checkpoints" / "a.safetensors"]
    assert links[0].read_bytes() == b"weights"
    assert link_models([model], volume, comfy) == links  # idempotent across restarts


def test_present_models_are_not_fetched_again(tmp_path: Path) -> None:
    model = ModelFile(folder="vae", filename="ae.safetensors", repo="o/r", file="ae.safetensors")
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "ae.safetensors").write_bytes(b"x")
    assert fetch_models([model], tmp_path) == []


def test_url_models_are_fetched_and_checked_against_sha256(file_server, tmp_path: Path) -> None:
    root, base = file_server
    (root / "m.bin").write_bytes(b"model bytes")
    good = hashlib.sha256(b"model bytes").hexdigest()
    volume = tmp_path / "volume"
    ok = ModelFile(folder="upscale_models", filename="m.pth", url=f"{base}/m.bin", sha256=good)
    assert fetch_models([ok], volume) == [volume / "upscale_models" / "m.pth"]
    bad = ModelFile(folder="upscale_models", filename="n.pth", url=f"{base}/m.bin", sha256="0" * 64)
    with pytest.raises(ModelFetchError, match="sha256"):
        fetch_models([bad], volume)
    assert not (volume / "upscale_models" / "n.pth").exists()
    assert not list((volume / "upscale_models").glob("*.partial"))
