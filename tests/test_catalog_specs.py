"""The shipped catalog: every RYLA endpoint as a spec, its examples, and today's client bodies."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from helpers import REPO, import_generated

from generator.cli import main
from generator.comfy.catalog import Catalog
from generator.comfy.checks import check_workflow
from generator.comfy.workflow import load_workflow
from generator.resolve.project import Project, load_project
from generator.runtime.apply import apply_request
from generator.runtime.config import choice_key

APPS, _ = load_project(Project.at(REPO))
MODULES = {app.name: import_generated(REPO / "generated" / f"{app.module}.py") for app in APPS}
RUNTIME = {e.path: e for module in MODULES.values() for e in module.ENDPOINTS}
RUNTIME_BY_APP = {
    (ep.source, ep.path): next(e for e in MODULES[app.name].ENDPOINTS if e.path == ep.path)
    for app in APPS
    for ep in app.endpoints
}
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGM8UaHBwMDAxMDAwMDAAAARqgFsecZ2JgAAAABJRU5ErkJggg=="
# A structurally whole MP4 (ftyp, moov with a 1 s movie header and a track, mdat): the runtime
# probes videos before queueing them, so a bare ftyp box is refused as truncated.
MP4 = (
    "data:video/mp4;base64,AAAAEGZ0eXBpc29tAAAAAAAAAHxtb292AAAAbG12aGQAAAAAAAAAAAAAAAAAAAPoAAAD"
    "6AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAACHRyYWsAAAAYbWRhdAAAAAAAAAAAAAAAAAAAAAA="
)
WEBP = "data:image/webp;base64,UklGRogAAABXRUJQVlA4WAoAAAACAAAADwAADwAAQU5JTQYAAAAAAAAAAABBTk1GKgAAAAAAAAAAAA8AAA8AAH0AAAJWUDhMEQAAAC8PwAMAB1CUIhel/4GI6H8AAEFOTUYqAAAAAAAAAAAADwAADwAAfQAAAFZQOEwRAAAALw/AAwAHUJSiFLn/gYjofwAA"  # 2 frames

# Every route of shared/reference/existing-endpoints.md, and the planned additions.
TODAY = {
    "/flux", "/flux-dev", "/flux-dev-lora",
    "/sdxl-instantid", "/flux-pulid", "/flux-ipadapter-faceid", "/sdxl-turbo", "/sdxl-lightning",
    "/qwen-image-2512", "/qwen-image-2512-fast", "/qwen-image-2512-lora", "/qwen-image-edit-2511",
    "/qwen-image-inpaint-2511", "/video-faceswap", "/image-faceswap",
    "/z-image-simple", "/z-image-danrisi", "/z-image-lora",
    "/wan2.6", "/wan2.6-r2v", "/wan2.6-lora", "/wan2.6-i2v", "/seedvr2",
}  # fmt: skip
PLANNED = {
    "/svd",
    "/upscale",
    "/hunyuan15-t2v",
    "/hunyuan15-i2v",
    "/flux-klein-edit",
    "/liveportrait",
}


def test_every_endpoint_has_a_spec_and_is_listed() -> None:
    rows = json.loads(CliRunner().invoke(main, ["list", "--json"], catch_exceptions=False).stdout)
    listed = {row["path"] for row in rows}
    assert TODAY | PLANNED <= listed
    assert len({row["app"] for row in rows}) <= 10


EXAMPLES = [
    pytest.param(app.name, ep, i, example, id=f"{app.name}{ep.path}#{i + 1}")
    for app in APPS
    for ep in app.endpoints
    for i, example in enumerate(ep.examples)
    if not ep.client_workflow_max_nodes
]


def test_client_workflow_examples_validate_against_the_recorded_catalog(object_info_path) -> None:
    from generator.runtime.client_workflow import check_client_workflow

    catalog = Catalog.load([str(object_info_path)])
    routes = [ep for app in APPS for ep in app.endpoints if ep.client_workflow_max_nodes]
    assert routes
    for ep in routes:
        for example in ep.examples:
            request = RUNTIME_BY_APP[(ep.source, ep.path)].request_model.model_validate(example)
            _, problems = check_client_workflow(
                request.workflow, max_nodes=ep.client_workflow_max_nodes, catalog=catalog
            )
            assert problems == []


def test_every_endpoint_has_an_example() -> None:
    assert all(ep.examples for app in APPS for ep in app.endpoints)


@pytest.mark.parametrize(("app_name", "spec", "index", "example"), EXAMPLES)
def test_example_renders_to_a_workflow_holding_the_expected_values(
    app_name, spec, index, example
) -> None:
    runtime = next(e for e in MODULES[app_name].ENDPOINTS if e.path == spec.path)
    request = runtime.request_model.model_validate(example).model_dump()
    uploads = {
        p.name: [f"upload_{p.name}_{i}" for i in range(len(request[p.name]) if p.many else 1)]
        for p in runtime.params
        if p.kind in ("image", "video", "mask") and request.get(p.name) is not None
    }
    workflow = json.loads((REPO / "comfy_workflows" / runtime.workflow).read_text())
    applied = apply_request(runtime, workflow, request, uploads)
    for param in runtime.params:
        if not param.targets or param.name not in example and request.get(param.name) is None:
            continue
        value = applied.values[param.name]
        for i, target in enumerate(param.targets):
            actual = applied.prompt[target.node]["inputs"][target.input]
            if param.name in uploads:
                expected = uploads[param.name][min(i, len(uploads[param.name]) - 1)]
            elif value is None:
                continue  # optional and omitted: the workflow keeps its own value
            elif param.format:
                expected = param.format.format_map(applied.values)
            elif param.map:
                expected = param.map[choice_key(value)]
            else:
                expected = value
            assert actual == expected, f"{param.name} -> node {target.node}.{target.input}"
    if example.get("trigger_word"):
        prompt = next(p for p in runtime.params if p.name == "trigger_word").prepend_to
        assert applied.values[prompt].startswith(example["trigger_word"])


def test_core_only_workflows_validate_against_the_recorded_catalog(object_info_path) -> None:
    catalog = Catalog.load([str(object_info_path)])
    checked = 0
    for app in APPS:
        for ep in app.endpoints:
            if ep.client_workflow_max_nodes:
                continue
            workflow = load_workflow(REPO / "comfy_workflows" / ep.workflow_file)
            if not all(workflow.class_type(n) in catalog for n in workflow.nodes):
                continue  # custom nodes or nodes newer than the recording
            problems: list[str] = []
            bound = {t for p in ep.params for t in p.targets}
            files = {name.split("/", 1)[1] for name in ep.model_names}
            check_workflow(
                workflow,
                catalog,
                bound=bound,
                custom_classes=set(),
                model_files=files,
                report=lambda node, message, found=problems: found.append(f"{node}: {message}"),
            )
            assert problems == [], f"{ep.workflow_file}: {problems}"
            checked += 1
    assert checked >= 15


# Bodies shaped like the TypeScript client's (shared/reference/existing-endpoints.md), drifted
# names included; each must validate, and the drifted name must land on the server's field.
FLUX = {
    "prompt": "a cat",
    "negative_prompt": "blur",
    "width": 1024,
    "height": 1024,
    "steps": 4,
    "cfg": 1.0,
    "seed": 1,
}
LORA = {**FLUX, "lora_id": "c1", "lora_strength": 0.8, "trigger_word": "ryla"}
FACE = {**FLUX, "reference_image": PNG, "face_provider": "CPU"}
CLIENT_BODIES = [
    ("/flux", FLUX, {}),
    ("/flux-dev", FLUX, {}),
    ("/flux-dev-lora", LORA, {}),
    ("/flux-ipadapter-faceid", {**FACE, "ipadapter_strength": 0.7}, {}),
    ("/sdxl-instantid", {**FACE, "instantid_strength": 0.7, "controlnet_strength": 0.5}, {}),
    ("/sdxl-turbo", {**FACE, "instantid_strength": 0.7, "controlnet_strength": 0.5}, {}),
    ("/sdxl-lightning", {**FACE, "instantid_strength": 0.7, "controlnet_strength": 0.5}, {}),
    ("/flux-pulid", {**FACE, "pulid_strength": 0.7, "pulid_start": 0.1, "pulid_end": 0.9},
     {"pulid_weight": 0.7, "start_at": 0.1, "end_at": 0.9}),
    ("/qwen-image-2512", FLUX, {}),
    ("/qwen-image-2512-fast", FLUX, {}),
    ("/qwen-image-2512-lora", {**FLUX, "lora_id": "c1", "lora_strength": 1.0, "trigger_word": "t"}, {}),
    ("/qwen-image-edit-2511", {"source_image": PNG, "instruction": "make it blue", "steps": 20, "cfg": 4.0, "seed": 1, "denoise": 0.8}, {}),
    ("/qwen-image-inpaint-2511", {"source_image": PNG, "mask_image": PNG, "prompt": "a hat", "steps": 20, "cfg": 4.0, "seed": 1}, {}),
    ("/wan2.6", {"prompt": "waves", "negative_prompt": "", "width": 832, "height": 480, "num_frames": 33, "fps": 16, "steps": 30, "cfg": 6.0, "seed": 1},
     {"length": 33}),
    ("/wan2.6-lora", {"prompt": "waves", "num_frames": 17, "lora_id": "c1", "lora_strength": 1.0, "trigger_word": "t"},
     {"length": 17}),
    ("/wan2.6-r2v", {"prompt": "waves", "reference_video": MP4}, {"reference_videos": [MP4]}),
    ("/video-faceswap", {"source_video": MP4, "reference_image": PNG, "fps": 30, "restore_face": True, "face_restore_visibility": 1.0, "codeformer_weight": 0.5}, {}),
    ("/seedvr2", {"image": PNG, "resolution": 1080, "seed": 1, "max_resolution": 4000, "max_resolution_2": 4000}, {}),
    ("/z-image-simple", FLUX, {}),
    ("/z-image-danrisi", FLUX, {}),
    ("/z-image-lora", {**FLUX, "lora_id": "c1", "lora_strength": 1.0, "trigger_word": "t", "nsfw": False}, {}),
    # shared/reference/more-endpoints.md
    ("/wan2.6-i2v", {"prompt": "she smiles", "reference_image": PNG, "width": 832, "height": 480, "length": 33, "steps": 30, "cfg": 6.0, "fps": 16, "seed": 1, "negative_prompt": ""},
     {"image": PNG}),
    ("/wan22-i2v", {"source_image": PNG, "prompt": "", "negative_prompt": "blur", "width": 512, "height": 768, "num_frames": 33, "fps": 16, "steps": 20, "cfg": 3.5, "seed": 1}, {}),
    ("/batch-video-faceswap", {"source_video": WEBP, "reference_image": PNG, "fps": 16, "restore_face": True}, {}),
    ("/flux-dev-realism", {**FLUX, "realism_strength": 0.85}, {}),
    ("/z-image-realism", {**FLUX, "style": "cinematic"}, {}),
    ("/z-image-nsfw", FLUX, {}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "lands"), CLIENT_BODIES, ids=[c[0] for c in CLIENT_BODIES]
)
def test_todays_client_bodies_are_accepted(path: str, body: dict, lands: dict) -> None:
    request = RUNTIME[path].request_model.model_validate(body).model_dump()
    for field, value in lands.items():
        assert request[field] == value


@pytest.mark.parametrize(
    ("prompt", "trigger", "expected"),
    [
        ("walking through a market", "ryla_abc123", "ryla_abc123, walking through a market"),
        ("ryla_abc123, walking through a market", "ryla_abc123", "ryla_abc123, walking through a market"),
        ("ryla_abc123 walking", "ryla_abc123", "ryla_abc123 walking"),
        ("  RYLA_abc123: walking", "ryla_abc123", "  RYLA_abc123: walking"),
        ("ryla_abc1234 walking", "ryla_abc123", "ryla_abc123, ryla_abc1234 walking"),
        ("ryla_abc123", "ryla_abc123", "ryla_abc123"),
    ],
)  # fmt: skip
def test_wan_lora_trigger_word_is_prepended_only_when_absent(prompt, trigger, expected) -> None:
    runtime = RUNTIME["/wan2.6-lora"]
    body = {"prompt": prompt, "lora_id": "c1", "trigger_word": trigger}
    request = runtime.request_model.model_validate(body).model_dump()
    workflow = json.loads((REPO / "comfy_workflows" / runtime.workflow).read_text())
    applied = apply_request(runtime, workflow, request, {})
    positive = next(n for n in applied.prompt.values() if n["_meta"]["title"] == "Positive Prompt")
    assert positive["inputs"]["text"] == expected


# Paths named in the reference files that are not routes of any app.
NOT_ROUTES = {
    "/cache": "the hf-hub-cache volume's mount path",
    "/history": "ComfyUI's own API",
    "/pulid-flux-lora": "a route named by /z-image-pulid-lora's 501 message; it never existed",
}


def _reference_paths(shared_dir) -> set[str]:
    paths: set[str] = set()
    for name in ("existing-endpoints.md", "more-endpoints.md"):
        text = (shared_dir / "reference" / name).read_text(encoding="utf-8")
        paths |= set(re.findall(r"`(/[A-Za-z0-9._-]+)`", text))
    return paths


def _listed_paths() -> set[str]:
    rows = json.loads(CliRunner().invoke(main, ["list", "--json"], catch_exceptions=False).stdout)
    return {row["path"] for row in rows}


def test_every_reference_path_is_listed(shared_dir) -> None:
    referenced = _reference_paths(shared_dir)
    assert "/wan22-i2v" in referenced and "/flux" in referenced  # the files were parsed
    missing = referenced - _listed_paths() - set(NOT_ROUTES)
    assert not missing, f"reference paths missing from `ryla-gen list --json`: {sorted(missing)}"


def _diffusion_files(workflow: dict) -> set[str]:
    loaders = ("UNETLoader", "UnetLoaderGGUF", "CheckpointLoaderSimple")
    return {
        node["inputs"].get("unet_name") or node["inputs"].get("ckpt_name")
        for node in workflow.values()
        if node["class_type"] in loaders
    }


def test_image_to_video_routes_load_image_to_video_checkpoints() -> None:
    """A text-to-video Wan checkpoint (16 input channels) drops WanImageToVideo's start image."""
    checked = 0
    for app in APPS:
        for ep in app.endpoints:
            if ep.client_workflow_max_nodes:
                continue
            workflow = json.loads((REPO / "comfy_workflows" / ep.workflow_file).read_text())
            if any(n["class_type"] == "WanImageToVideo" for n in workflow.values()):
                files = _diffusion_files(workflow)
                assert files and all("i2v" in f.lower() for f in files), (ep.path, files)
                checked += 1
    assert checked >= 2  # /wan2.6-i2v, /wan22-i2v


def test_wan22_runs_the_high_noise_expert_then_the_low_noise_expert() -> None:
    workflow = json.loads((REPO / "comfy_workflows" / RUNTIME["/wan22-i2v"].workflow).read_text())

    def source(link: list, *through: str) -> dict:
        node = workflow[link[0]]
        while node["class_type"] in through:
            node = workflow[node["inputs"]["model"][0]]
        return node

    samplers = [n for n in workflow.values() if n["class_type"] == "SamplerCustomAdvanced"]
    assert len(samplers) == 2
    by_expert = {}
    for sampler in samplers:
        guider = source(sampler["inputs"]["guider"])
        loader = source(guider["inputs"]["model"], "ModelSamplingSD3")
        by_expert[loader["inputs"]["unet_name"]] = sampler
    high = by_expert["wan22_i2v_high_noise.gguf"]
    low = by_expert["wan22_i2v_low_noise.gguf"]
    split_high, split_low = high["inputs"]["sigmas"], low["inputs"]["sigmas"]
    assert split_high[0] == split_low[0]
    assert workflow[split_high[0]]["class_type"] == "SplitSigmasDenoise"
    assert (split_high[1], split_low[1]) == (0, 1)  # high sigmas first, then the low ones
    assert workflow[low["inputs"]["latent_image"][0]] is high  # low continues high's latent
    assert workflow[low["inputs"]["noise"][0]]["class_type"] == "DisableNoise"


@pytest.mark.parametrize("prompt", ["", "   ", None])
def test_wan22_blank_prompt_gets_todays_default_text(prompt) -> None:
    runtime = RUNTIME["/wan22-i2v"]
    body = {"source_image": PNG} | ({} if prompt is None else {"prompt": prompt})
    request = runtime.request_model.model_validate(body).model_dump()
    workflow = json.loads((REPO / "comfy_workflows" / runtime.workflow).read_text())
    applied = apply_request(runtime, workflow, request, {"source_image": ["up.png"]})
    positive = next(n for n in applied.prompt.values() if n["_meta"]["title"] == "Positive Prompt")
    assert positive["inputs"]["text"] == "high quality, smooth motion, detailed, professional"
