"""``ryla-gen smoke`` without a GPU: architecture inference, what an app needs, the resumable
result store, output checks, and the whole command against the stand-in (model-free ryla-demo).
"""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from generator.cli import main
from generator.resolve.arch import ARCHITECTURES, ArchFinding, infer_arch
from generator.resolve.model import AppModel, ModelFileModel
from generator.resolve.project import Project, load_project
from generator.smoke.checks import check_response
from generator.smoke.run import SmokeError, _link_models, expose_packs
from generator.smoke.store import ResultStore, StoreError
from generator.smoke.synth import ARCHES, SCALED_FP8, fp8_keys
from generator.smoke.targets import (
    EndpointTarget,
    SyntheticFile,
    builds,
    class_packs,
    disk_groups,
    group_gb,
    plan_app,
)

REPO = Path(__file__).resolve().parents[1]


def model(folder: str, repo: str, file: str, arch: str | None = None) -> ModelFileModel:
    return ModelFileModel(
        folder, file.rsplit("/", 1)[-1], repo, file, "main", None, None, None, arch=arch
    )


@pytest.fixture(scope="module")
def apps() -> dict[str, AppModel]:
    found, _ = load_project(Project.at(REPO, None), None)
    return {a.name: a for a in found}


# --- architectures


@pytest.mark.parametrize(
    ("folder", "repo", "file", "arch"),
    [
        (
            "checkpoints",
            "stabilityai/sdxl-turbo",
            "sd_xl_turbo_1.0_fp16.safetensors",
            "sdxl-checkpoint",
        ),
        (
            "checkpoints",
            "ByteDance/SDXL-Lightning",
            "sdxl_lightning_4step.safetensors",
            "sdxl-checkpoint",
        ),
        (
            "checkpoints",
            "Comfy-Org/flux1-schnell",
            "flux1-schnell-fp8.safetensors",
            "flux-schnell-checkpoint",
        ),
        ("diffusion_models", "black-forest-labs/FLUX.1-dev", "flux1-dev.safetensors", "flux-dev"),
        ("vae", "black-forest-labs/FLUX.1-dev", "ae.safetensors", "flux-vae"),
        ("vae", "Comfy-Org/z_image_turbo", "split_files/vae/ae.safetensors", "flux-vae"),
        ("text_encoders", "comfyanonymous/flux_text_encoders", "t5xxl_fp16.safetensors", "t5-xxl"),
        (
            "text_encoders",
            "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
            "split_files/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
            "umt5-xxl",
        ),
        (
            "diffusion_models",
            "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
            "split_files/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors",
            "wan21-t2v-1.3b",
        ),
        (
            "checkpoints",
            "stabilityai/stable-video-diffusion-img2vid-xt",
            "svd_xt.safetensors",
            "svd-checkpoint",
        ),
        (
            "diffusion_models",
            "Comfy-Org/z_image_turbo",
            "split_files/diffusion_models/z_image_turbo_bf16.safetensors",
            "z-image",
        ),
        (
            "text_encoders",
            "Comfy-Org/z_image_turbo",
            "split_files/text_encoders/qwen_3_4b.safetensors",
            "qwen3-4b",
        ),
        (
            "diffusion_models",
            "Comfy-Org/Qwen-Image_ComfyUI",
            "split_files/diffusion_models/qwen_image_2512_fp8_e4m3fn.safetensors",
            "qwen-image",
        ),
        (
            "diffusion_models",
            "Comfy-Org/Qwen-Image-Edit_ComfyUI",
            "split_files/diffusion_models/qwen_image_edit_2511_bf16.safetensors",
            "qwen-image-edit",
        ),
        (
            "text_encoders",
            "Comfy-Org/Qwen-Image_ComfyUI",
            "split_files/text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors",
            "qwen25-vl-7b",
        ),
        (
            "vae",
            "Comfy-Org/Qwen-Image_ComfyUI",
            "split_files/vae/qwen_image_vae.safetensors",
            "qwen-image-vae",
        ),
        (
            "diffusion_models",
            "Comfy-Org/HunyuanVideo_1.5_repackaged",
            "split_files/diffusion_models/hunyuanvideo1.5_720p_i2v_fp16.safetensors",
            "hunyuan15-i2v",
        ),
        (
            "diffusion_models",
            "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
            "split_files/diffusion_models/wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors",
            "wan21-i2v-14b",
        ),
        (
            "clip_vision",
            "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
            "split_files/clip_vision/clip_vision_h.safetensors",
            "clip-vision-h",
        ),
        ("upscale_models", "lokCX/4x-Ultrasharp", "4x-UltraSharp.pth", "esrgan-4x"),
        (
            "controlnet",
            "xinsir/controlnet-tile-sdxl-1.0",
            "diffusion_pytorch_model.safetensors",
            "sdxl-controlnet",
        ),
        (
            "controlnet",
            "xinsir/controlnet-canny-sdxl-1.0",
            "diffusion_pytorch_model_V2.safetensors",
            "sdxl-controlnet",
        ),
        (
            "diffusion_models",
            "black-forest-labs/FLUX.2-klein-4b-fp8",
            "flux-2-klein-4b-fp8.safetensors",
            "flux2-klein",
        ),
        ("vae", "Comfy-Org/flux2-dev", "split_files/vae/flux2-vae.safetensors", "flux2-vae"),
        (
            "diffusion_models",
            "QuantStack/Wan2.2-I2V-A14B-GGUF",
            "LowNoise/Wan2.2-I2V-A14B-LowNoise-Q5_K_S.gguf",
            "wan22-i2v-a14b-gguf",
        ),
        # InstantID's face ControlNet is loaded by ComfyUI's own ControlNetLoader, whose
        # diffusers path knows a fixed list of UNet layouts; at 2.5 GB in fp16 it is full SDXL
        (
            "controlnet",
            "InstantX/InstantID",
            "ControlNetModel/diffusion_pytorch_model.safetensors",
            "sdxl-controlnet",
        ),
        ("instantid", "InstantX/InstantID", "ip-adapter.bin", "instantid-ip-adapter"),
        (
            "insightface/models/antelopev2",
            "MonsterMMORPG/tools",
            "antelopev2/scrfd_10g_bnkps.onnx",
            "insightface-scrfd",
        ),
        (
            "insightface/models/antelopev2",
            "MonsterMMORPG/tools",
            "antelopev2/glintr100.onnx",
            "insightface-arcface",
        ),
        ("insightface", "Gourieff/ReActor", "models/inswapper_128.onnx", "inswapper-128"),
        (
            "facedetection",
            "xinntao/facexlib",
            "v0.1.0/detection_Resnet50_Final.pth",
            "retinaface-resnet50",
        ),
        ("facedetection", "sczhou/CodeFormer", "v0.1.0/parsing_parsenet.pth", "parsenet"),
        ("facerestore_models", "Gourieff/ReActor", "models/GFPGANv1.4.pth", "gfpgan-v1.4"),
        ("pulid", "guozinan/PuLID", "pulid_flux_v0.9.1.safetensors", "pulid-flux"),
        ("text_encoders", "QuanSun/EVA-CLIP", "EVA02_CLIP_L_336_psz14_s6B.pt", "eva02-clip-l-336"),
        ("facexlib", "xinntao/facexlib", "v0.2.0/parsing_bisenet.pth", "bisenet"),
        (
            "facexlib",
            "xinntao/facexlib",
            "v0.1.0/detection_Resnet50_Final.pth",
            "retinaface-resnet50",
        ),
        (
            "nsfw_detector/vit-base-nsfw-detector",
            "AdamCodd/vit-base-nsfw-detector",
            "model.safetensors",
            "vit-nsfw-detector",
        ),
        (
            "nsfw_detector/vit-base-nsfw-detector",
            "AdamCodd/vit-base-nsfw-detector",
            "preprocessor_config.json",
            "vit-nsfw-detector-preprocessor",
        ),
    ],
)
def test_architecture_is_inferred_from_repo_and_file(folder, repo, file, arch) -> None:
    finding = infer_arch(model(folder, repo, file))
    assert (finding.arch, finding.how) == (arch, "inferred")


def test_a_member_of_an_archive_is_inferred_by_its_name_inside() -> None:
    zipped = ModelFileModel(
        "insightface/models/buffalo_l",
        "w600k_r50.onnx",
        None,
        None,
        "main",
        "https://huggingface.co/datasets/Gourieff/ReActor/resolve/main/models/buffalo_l.zip",
        None,
        None,
        unpack="w600k_r50.onnx",
    )
    assert infer_arch(zipped) == ArchFinding("insightface-arcface", "inferred")


def test_unknown_files_are_not_guessed() -> None:
    # a VAE named ae.safetensors from an unknown repo, and a custom-node model
    assert infer_arch(model("vae", "someone/else", "ae.safetensors")).arch is None
    assert infer_arch(model("pulid", "guozinan/PuLID", "pulid_v1.1.safetensors")).how == "unknown"
    # xinsir's union ControlNet is another layout
    union = ("xinsir/controlnet-union-sdxl-1.0", "diffusion_pytorch_model_promax.safetensors")
    assert infer_arch(model("controlnet", *union)).arch is None
    # ReActor's other swappers (reswapper, hyperswap) are other networks
    assert infer_arch(model("insightface", "someone/else", "reswapper_256.onnx")).arch is None
    # an InsightFace file outside a FaceAnalysis pack folder is not routed as one
    assert infer_arch(model("insightface", "someone/else", "det_10g.onnx")).arch is None
    # Flux 2 klein 9B is wider (4096) with another text encoder: not the 4B's architecture
    klein_9b = model(
        "diffusion_models",
        "black-forest-labs/FLUX.2-klein-9b-fp8",
        "flux-2-klein-9b-fp8.safetensors",
    )
    assert infer_arch(klein_9b).arch is None
    # the same file in another folder is another thing
    assert (
        infer_arch(model("loras", "black-forest-labs/FLUX.1-dev", "flux1-dev.safetensors")).arch
        is None
    )


def test_declared_architecture_wins() -> None:
    finding = infer_arch(
        model("checkpoints", "me/finetune", "mine.safetensors", arch="sdxl-checkpoint")
    )
    assert (finding.arch, finding.how) == ("sdxl-checkpoint", "declared")


def test_every_buildable_architecture_is_one_a_spec_may_declare() -> None:
    assert set(ARCHES) <= set(ARCHITECTURES)


# --- fp8 files stored as the published ones (what ComfyUI keeps in fp8 on the GPU)

UMT5_LAYER = "encoder.block.0.layer.0.SelfAttention"


def test_scaled_fp8_file_keeps_only_its_scaled_linear_weights_in_fp8() -> None:
    tensors = {  # name -> ndim of the built encoder, with the scaled-fp8 marker
        "scaled_fp8": 1,
        "shared.weight": 2,
        f"{UMT5_LAYER}.q.weight": 2,
        f"{UMT5_LAYER}.q.scale_weight": 0,
        f"{UMT5_LAYER}.relative_attention_bias.weight": 2,
        "encoder.final_layer_norm.weight": 1,
    }
    # embeddings and norms stay 16-bit, as in umt5_xxl_fp8_e4m3fn_scaled (only the 168 Linear
    # layers carry a scale): ComfyUI keeps those layers fp8 and builds the rest in 16 bits
    assert fp8_keys("umt5-xxl", tensors) == {f"{UMT5_LAYER}.q.weight"}


def test_plain_fp8_t5_in_a_checkpoint_is_fp8_down_to_its_final_norm() -> None:
    tensors = {
        "model.diffusion_model.img_in.weight": 2,
        "model.diffusion_model.final_layer.norm.weight": 1,
        "text_encoders.t5xxl.transformer.encoder.final_layer_norm.weight": 1,
        f"text_encoders.t5xxl.transformer.{UMT5_LAYER}.q.weight": 2,
        "text_encoders.clip_l.transformer.text_model.final_layer_norm.weight": 1,
        "text_encoders.clip_l.transformer.text_projection.weight": 2,
    }
    # ComfyUI builds the T5 in the dtype of its final norm: a 16-bit norm loads it in 16 bits
    assert fp8_keys("flux-schnell-checkpoint", tensors) == {
        "model.diffusion_model.img_in.weight",
        "text_encoders.t5xxl.transformer.encoder.final_layer_norm.weight",
        f"text_encoders.t5xxl.transformer.{UMT5_LAYER}.q.weight",
    }


def test_plain_fp8_diffusion_model_stores_its_matrices_in_fp8() -> None:
    tensors = {"blocks.0.self_attn.q.weight": 2, "blocks.0.self_attn.q.bias": 1}
    assert fp8_keys("wan21-i2v-14b", tensors) == {"blocks.0.self_attn.q.weight"}


def test_scaled_fp8_architectures_are_exactly_the_specs_scaled_files(apps) -> None:
    """A spec's ``*_scaled`` file gets a scaled synthetic file, and only such files do."""
    by_arch: dict[str, set[str]] = {}
    for app in apps.values():
        for m in app.models:
            arch = infer_arch(m).arch
            if arch in ARCHES:
                by_arch.setdefault(arch, set()).add(m.filename)
    scaled = {a for a, names in by_arch.items() if any("_scaled" in n for n in names)}
    assert scaled == set(SCALED_FP8)
    for arch in SCALED_FP8:
        assert all("fp8" in n and "_scaled" in n for n in by_arch[arch]), by_arch[arch]


# --- what an app needs


def test_flux_app_needs_its_files_and_a_lora_matching_its_base(apps) -> None:
    targets = {t.path: t for t in plan_app(apps["ryla-flux"])}
    assert all(t.covered for t in targets.values())  # /flux-dev-realism declares its LoRA's arch
    lora = targets["/flux-dev-lora"].files[-1]
    assert (lora.name, lora.arch) == ("loras/flux-character-abc123.safetensors", "flux-lora")
    built, links = builds(list(targets.values()))
    assert [f.name for f in built].count("diffusion_models/flux1-dev.safetensors") == 1
    # the realism LoRA is the same architecture: one file serves both names
    assert links == {
        "loras/flux-realism-lora.safetensors": "loras/flux-character-abc123.safetensors"
    }


@pytest.mark.parametrize(
    ("app", "path", "archs"),
    [
        ("ryla-wan26", "/svd", ["svd-checkpoint"]),
        ("ryla-z-image", "/z-image-simple", ["z-image", "qwen3-4b", "flux-vae"]),
        (
            "ryla-qwen-image",
            "/qwen-image-edit-2511",
            ["qwen-image-edit", "qwen25-vl-7b", "qwen-image-vae"],
        ),
        (
            "ryla-wan26",
            "/hunyuan15-i2v",
            ["hunyuan15-i2v", "qwen25-vl-7b", "byt5-small-glyph", "hunyuan15-vae", "siglip-vision"],
        ),
        ("ryla-wan26", "/wan2.6-i2v", ["wan21-i2v-14b", "clip-vision-h", "umt5-xxl", "wan21-vae"]),
        ("ryla-seedvr2", "/upscale", ["esrgan-4x", "sdxl-checkpoint", "sdxl-controlnet"]),
        ("ryla-z-image", "/flux-klein-edit", ["flux2-klein", "qwen3-4b", "flux2-vae"]),
    ],
)
def test_endpoints_with_new_builders_are_covered(apps, app, path, archs) -> None:
    target = {t.path: t for t in plan_app(apps[app])}[path]
    assert target.covered, target.not_covered
    assert [f.arch for f in target.files] == archs


def test_a_lora_named_by_a_formatted_parameter_is_built(apps) -> None:
    """/z-image-lora's lora_id is formatted into lora_name (no training link): the example's
    LoRA must be synthesised, else ComfyUI rejects the graph (seen on the H200)."""
    target = {t.path: t for t in plan_app(apps["ryla-z-image"])}["/z-image-lora"]
    assert ("loras/character-abc123.safetensors", "z-image-lora") in [
        (f.name, f.arch) for f in target.files
    ]


def test_files_of_one_architecture_are_built_once(apps) -> None:
    targets = [t for t in plan_app(apps["ryla-instantid"]) if t.covered]
    assert [t.path for t in targets] == ["/sdxl-turbo", "/sdxl-lightning"]
    built, links = builds(targets)
    assert [f.arch for f in built] == ["sdxl-checkpoint"]
    assert links == {
        "checkpoints/sdxl_lightning_4step.safetensors": "checkpoints/sd_xl_turbo_1.0_fp16.safetensors"
    }


def test_an_app_larger_than_the_disk_runs_in_rounds(apps) -> None:
    """ryla-qwen-image declares ~72 GB (Qwen-Image, Qwen-Image-Edit, Qwen2.5-VL): on a 64 GB disk
    it runs the Qwen-Image endpoints first, then the Edit ones, each round within the budget."""
    targets = [t for t in plan_app(apps["ryla-qwen-image"]) if t.covered]
    assert group_gb(targets) > 64
    rounds = disk_groups(targets, 55.0)
    assert [[t.path for t in r] for r in rounds] == [
        ["/qwen-image-2512", "/qwen-image-2512-fast", "/qwen-image-2512-lora"],
        ["/qwen-image-edit-2511", "/qwen-image-inpaint-2511"],
    ]
    assert all(group_gb(r) <= 55.0 for r in rounds)
    assert disk_groups(targets, None) == [targets]
    assert [len(r) for r in disk_groups(targets, 1.0)] == [1] * len(targets)  # each alone


def test_upscale_examples_leave_the_vae_a_latent_to_work_on(apps) -> None:
    # /upscale's output is 2x or 4x its input, encoded by SDXL's VAE (8 px per latent pixel):
    # a 2x2 example came out 4x4 at scale 2, which VAEEncodeTiled refuses (real ComfyUI, CPU)
    endpoint = next(e for e in apps["ryla-seedvr2"].endpoints if e.path == "/upscale")
    for example in endpoint.examples:
        data = base64.b64decode(example["image"].split(",", 1)[1])
        width, height = Image.open(io.BytesIO(data)).size
        scale = int(example.get("scale", 2))
        assert min(width, height) * scale // 8 >= 8, (width, height, scale)


def test_a_file_is_linked_only_to_a_built_file_of_its_own_type() -> None:
    # ComfyUI reads a file by its extension: a .safetensors name linked to a pickled .pth
    # (or back) would not load, so each architecture is built once per file type
    files = [
        SyntheticFile("upscale_models/4x-UltraSharp.pth", "esrgan-4x"),
        SyntheticFile("upscale_models/4x-UltraSharp.safetensors", "esrgan-4x"),
        SyntheticFile("upscale_models/4x-Other.pth", "esrgan-4x"),
    ]
    built, links = builds([EndpointTarget("/x", None, files)])  # type: ignore[arg-type]
    assert [f.name for f in built] == [
        "upscale_models/4x-UltraSharp.pth",
        "upscale_models/4x-UltraSharp.safetensors",
    ]
    assert links == {"upscale_models/4x-Other.pth": "upscale_models/4x-UltraSharp.pth"}


def test_z_image_app_builds_its_shared_text_encoder_once(apps) -> None:
    targets = plan_app(apps["ryla-z-image"])
    assert all(t.covered for t in targets), [t.not_covered for t in targets]
    built, links = builds(targets)
    names = [f.name for f in built]
    assert names.count("text_encoders/qwen_3_4b.safetensors") == 1  # klein and Z-Image share it
    assert {f.arch for f in built} == {
        "flux2-klein",
        "qwen3-4b",
        "flux2-vae",
        "z-image",
        "flux-vae",
        "z-image-lora",  # /z-image-lora's example character
    }
    assert links == {}


def test_uncovered_endpoints_say_why(apps) -> None:
    targets = {t.path: t for t in plan_app(apps["ryla-seedvr2"])}
    reasons = " ".join(targets["/seedvr2"].not_covered)
    assert "SEEDVR2/seedvr2_ema_7b_fp16.safetensors: unknown architecture" in reasons
    assert "custom nodes" in reasons


def test_flux_face_adapters_run_on_synthetic_files_once_their_packs_are_there(
    apps, tmp_path
) -> None:
    (tmp_path / "ComfyUI_PuLID_Flux_ll").mkdir()
    (target,) = plan_app(apps["ryla-instantid"], "/flux-pulid", tmp_path)
    assert target.covered, target.not_covered
    archs = {f.name.rsplit("/", 1)[-1]: f.arch for f in target.files}
    assert archs["pulid_flux_v0.9.1.safetensors"] == "pulid-flux"
    assert archs["EVA02_CLIP_L_336_psz14_s6B.pt"] == "eva02-clip-l-336"
    assert archs["detection_Resnet50_Final.pth"] == "retinaface-resnet50"
    assert archs["parsing_bisenet.pth"] == "bisenet"
    assert archs["flux1-dev.safetensors"] == "flux-dev"
    (tmp_path / "x-flux-comfyui").mkdir()
    (target,) = plan_app(apps["ryla-instantid"], "/flux-ipadapter-faceid", tmp_path)
    assert target.covered, target.not_covered
    archs = {f.name.rsplit("/", 1)[-1]: f.arch for f in target.files}
    assert archs["ip_adapter.safetensors"] == "xlabs-flux-ip-adapter"
    assert archs["model.safetensors"] == "clip-vit-l14"


def test_instantid_runs_on_synthetic_files_once_its_pack_is_there(apps, tmp_path) -> None:
    (target,) = plan_app(apps["ryla-instantid"], "/sdxl-instantid")
    assert target.not_covered == [
        "custom nodes not installed (no --custom-nodes folder given): ComfyUI_InstantID "
        "(https://github.com/cubiq/comfyui_instantid@1ef34ef57358)"
    ]
    (tmp_path / "ComfyUI_InstantID").mkdir()
    (target,) = plan_app(apps["ryla-instantid"], "/sdxl-instantid", tmp_path)
    assert target.covered, target.not_covered
    archs = {f.name.rsplit("/", 1)[-1]: f.arch for f in target.files}
    assert archs["ip-adapter.bin"] == "instantid-ip-adapter"
    assert archs["diffusion_pytorch_model.safetensors"] == "sdxl-controlnet"
    assert archs["scrfd_10g_bnkps.onnx"] == "insightface-scrfd"
    assert archs["1k3d68.onnx"] == "insightface-landmark-3d68"
    assert archs["glintr100.onnx"] == "insightface-arcface"


# --- custom-node packs (--custom-nodes DIR)


def test_custom_node_endpoints_without_their_packs_name_what_is_missing(apps, tmp_path) -> None:
    (tmp_path / "ComfyUI-VideoHelperSuite").mkdir()  # VHS only: GGUF is missing
    for packs_dir in (None, tmp_path):
        targets = {t.path: t for t in plan_app(apps["ryla-wan26"], packs_dir=packs_dir)}
        reasons = " ".join(targets["/wan22-i2v"].not_covered)
        assert "custom nodes not installed" in reasons
        assert "ComfyUI-GGUF (https://github.com/city96/comfyui-gguf@795e45156ece)" in reasons
        assert "VideoHelperSuite" not in reasons
    assert "no --custom-nodes folder given" in " ".join(
        plan_app(apps["ryla-wan26"], "/wan2.6-r2v")[0].not_covered
    )


def test_an_endpoint_whose_packs_are_installed_is_covered(apps, tmp_path) -> None:
    (tmp_path / "ComfyUI-VideoHelperSuite").mkdir()
    (target,) = plan_app(apps["ryla-wan26"], "/wan2.6-r2v", tmp_path)
    assert target.covered, target.not_covered
    assert [a.arch for a in target.files] == ["wan21-vace-1.3b", "umt5-xxl", "wan21-vae"]
    (pack,) = target.packs
    assert pack.path == tmp_path / "ComfyUI-VideoHelperSuite"
    assert "commit unknown (no .git), spec pins 4ee72c065db2" in pack.note()
    # a pack is matched by the folder the image clones it as, nothing looser
    (tmp_path / "ComfyUI-VideoHelperSuite").rename(tmp_path / "videohelpersuite")
    assert not plan_app(apps["ryla-wan26"], "/wan2.6-r2v", tmp_path)[0].covered


def test_the_gguf_experts_are_one_synthetic_file_once_ggufs_pack_is_there(apps, tmp_path) -> None:
    (tmp_path / "ComfyUI-GGUF").mkdir()
    (target,) = plan_app(apps["ryla-wan26"], "/wan22-i2v", tmp_path)
    assert target.covered, target.not_covered
    assert [f.arch for f in target.files] == [
        "wan22-i2v-a14b-gguf",
        "wan22-i2v-a14b-gguf",
        "umt5-xxl",
        "wan21-vae",
    ]
    built, links = builds([target])
    assert [f.name for f in built][0] == "diffusion_models/wan22_i2v_high_noise.gguf"
    assert links == {
        "diffusion_models/wan22_i2v_low_noise.gguf": "diffusion_models/wan22_i2v_high_noise.gguf"
    }


def _git_checkout(path: Path) -> str:
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    path.mkdir()
    (path / "__init__.py").write_text("")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env |= {"GIT_COMMITTER_EMAIL": "t@t", "HOME": str(path), "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True)
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True)
    return done.stdout.strip()


def test_a_checkout_at_another_commit_is_said_to_differ(apps, tmp_path) -> None:
    commit = _git_checkout(tmp_path / "ComfyUI-VideoHelperSuite")
    (target,) = plan_app(apps["ryla-wan26"], "/wan2.6-r2v", tmp_path)
    assert target.covered  # it runs, and the result says which code ran
    record = target.packs[0].record()
    assert record["commit"] == commit
    assert f"is at {commit[:12]}, the spec pins 4ee72c065db2" in record["note"]


def test_comfyui_sees_exactly_the_packs_of_the_class(apps, tmp_path) -> None:
    packs_dir = tmp_path / "packs"
    for name in ("ComfyUI-VideoHelperSuite", "ComfyUI-GGUF", "unrelated-pack"):
        (packs_dir / name).mkdir(parents=True)
    app = apps["ryla-wan26"]
    (cls,) = [c for c in app.classes if any(e.path == "/wan2.6-r2v" for e in c.endpoints)]
    paths = {e.path for e in cls.endpoints}  # /wan22-i2v (GGUF) runs in another class
    targets = [t for t in plan_app(app, None, packs_dir) if t.covered and t.path in paths]
    custom = tmp_path / "scratch" / "custom_nodes"
    custom.parent.mkdir()
    custom.symlink_to(packs_dir)  # what earlier smoke runs left: a link to a whole folder
    (packs_dir / "ComfyUI-VideoHelperSuite" / "nodes.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    expose_packs(custom, class_packs(targets))
    assert not custom.is_symlink()
    assert [p.name for p in custom.iterdir()] == ["ComfyUI-VideoHelperSuite"]
    # a copy, as the image clones it into custom_nodes: the pack's real path is ComfyUI's
    exposed = custom / "ComfyUI-VideoHelperSuite"
    assert not exposed.is_symlink() and exposed.resolve().parent == custom.resolve()
    assert (exposed / "nodes.py").read_text() == "NODE_CLASS_MAPPINGS = {}\n"
    assert sorted(p.name for p in packs_dir.iterdir()) == [
        "ComfyUI-GGUF",
        "ComfyUI-VideoHelperSuite",
        "unrelated-pack",
    ]  # the old link was removed, not the folder it pointed to
    expose_packs(custom, [])  # the next class needs none
    assert list(custom.iterdir()) == []
    (custom / "ComfyUI-VideoHelperSuite").mkdir()  # a real folder is never removed
    with pytest.raises(SmokeError, match="in the way of pack ComfyUI-VideoHelperSuite"):
        expose_packs(custom, class_packs(targets))


def test_comfyui_finds_the_synthetic_files_of_another_models_folder(tmp_path) -> None:
    # ComfyUI reads <--base-directory>/models: --models-dir elsewhere is linked there
    models_dir = tmp_path / "elsewhere"
    _link_models(tmp_path / "scratch" / "models", models_dir)
    assert (tmp_path / "scratch" / "models").resolve() == models_dir
    _link_models(tmp_path / "scratch" / "models", tmp_path / "other")  # a later run, moved
    assert (tmp_path / "scratch" / "models").resolve() == tmp_path / "other"
    (tmp_path / "s2" / "models").mkdir(parents=True)
    with pytest.raises(SmokeError, match="is a folder"):
        _link_models(tmp_path / "s2" / "models", models_dir)


# --- the result store


def test_store_keeps_results_by_endpoint_and_commit(tmp_path: Path) -> None:
    path = tmp_path / "smoke" / "results.json"
    store = ResultStore(path)
    store.put("ryla-demo", "/invert", "abc", {"status": "executed", "first_s": 1.0})
    again = ResultStore(path)
    kept = again.get("ryla-demo", "/invert", "abc")
    assert kept is not None and kept.pop("measured_at").endswith("Z")
    assert kept == {"status": "executed", "first_s": 1.0}
    assert again.get("ryla-demo", "/invert", "def") is None
    assert again.get("ryla-demo", "/scale", "abc") is None


@pytest.mark.parametrize(
    "body", ["not json", "[]", '{"version": 2, "results": {}}', '{"version": 1}']
)
def test_store_refuses_a_file_it_did_not_write(tmp_path: Path, body: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(body)
    with pytest.raises(StoreError, match="results.json"):
        ResultStore(path)


# --- output checks


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _webp(frames: int, colors: bool = True) -> bytes:
    images = [Image.new("RGB", (8, 8), (i * 40 if colors else 0, 0, 0)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="WEBP", save_all=True, append_images=images[1:], duration=100)
    return buffer.getvalue()


def test_output_size_must_be_the_requested_size() -> None:
    headers = {"content-type": "image/png"}
    assert check_response(_png(64, 32), headers, {"width": 64, "height": 32}) == (["PNG 64×32"], [])
    _, problems = check_response(_png(64, 64), headers, {"width": 64, "height": 32})
    assert problems == ["output is 64×64, the request asked 64×32"]


def test_frames_must_match_the_frames_header() -> None:
    headers = {"content-type": "image/webp", "x-frames": "4"}
    assert check_response(_webp(4), headers, {})[1] == []
    assert check_response(_webp(3), headers, {})[1] == ["output has 3 frames, X-Frames says 4"]


def test_undecodable_output_is_a_problem() -> None:
    _, problems = check_response(b"not a png", {"content-type": "image/png"}, {})
    assert len(problems) == 1 and problems[0].startswith("image/png: ")


# --- the command, against the stand-in


def test_smoke_command_runs_the_demo_app_and_resumes(standin, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "results.json"
    table = tmp_path / "table.md"
    args = ["smoke", "ryla-demo", "--comfy-url", standin.url, "--out", str(out), "--commit", "c1"]
    first = CliRunner().invoke(main, [*args, "--markdown", str(table)])
    assert first.exception is None or isinstance(first.exception, SystemExit), first.output
    results = json.loads(out.read_text())["results"]
    invert = results["ryla-demo /invert @c1"]
    assert invert["status"] == "executed", first.output
    assert [r["outputs"] for r in invert["runs"]] == [["PNG 64×64"], ["PNG 64×64"]]
    assert invert["first_s"] > 0 and invert["warm_s"] > 0
    assert results["ryla-demo /scale @c1"]["runs"][0]["outputs"] == ["PNG 4×4"]
    assert "| ryla-demo | `/invert` | executed |" in table.read_text()
    assert "ryla-demo /invert: executed" in first.output

    again = CliRunner().invoke(main, args)
    assert "ryla-demo /invert: measured at c1 already, skipped" in again.output
    assert json.loads(out.read_text())["results"] == results  # nothing measured twice

    other = CliRunner().invoke(
        main, ["smoke", "invert", "--comfy-url", standin.url, "--out", str(out), "--commit", "c2"]
    )
    keys = set(json.loads(out.read_text())["results"])
    assert "ryla-demo /invert @c2" in keys and "ryla-demo /scale @c2" not in keys, other.output

    two = CliRunner().invoke(
        main, ["smoke", "invert", "/blur", "--comfy-url", standin.url, "--out", str(out),
               "--commit", "c3"],
    )  # fmt: skip
    keys = set(json.loads(out.read_text())["results"])
    assert {"ryla-demo /invert @c3", "ryla-demo /blur @c3"} <= keys, two.output
    assert "ryla-demo /scale @c3" not in keys


def test_smoke_needs_a_comfyui(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["smoke", "ryla-demo", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    assert "--comfy-dir" in result.output and "Traceback" not in result.output


def test_rounds_remove_what_the_next_round_does_not_use(apps, tmp_path: Path, monkeypatch) -> None:
    """With 55 GB of disk, ryla-qwen-image's Edit round starts after the 20 GB Qwen-Image file is
    gone; the shared text encoder is built once; --clean leaves nothing behind."""
    import asyncio
    import contextlib

    from generator.smoke import run as smoke_run
    from generator.smoke.run import SmokeOptions, smoke_app

    models = tmp_path / "models"
    built: list[str] = []
    present_at_run: dict[str, set[str]] = {}

    def fake_synth(files, models_dir, options, echo):
        for f in files:
            (models_dir / f.name).parent.mkdir(parents=True, exist_ok=True)
            (models_dir / f.name).write_bytes(b"x")
            built.append(f.name)
        return {f.name: {"arch": f.arch, "seconds": 0} for f in files}

    @contextlib.asynccontextmanager
    async def fake_comfy(app, cls, options, echo, packs):
        yield object(), 0.0

    async def fake_measure(target, endpoint, app, comfy, echo, options):
        present_at_run[target.path] = {
            str(p.relative_to(models)) for p in models.rglob("*") if p.exists()
        }
        return {"status": "executed"}

    monkeypatch.setattr(smoke_run, "_run_synth", fake_synth)
    monkeypatch.setattr(smoke_run, "_comfy", fake_comfy)

    async def every_node_loaded(*args) -> str:
        return ""

    monkeypatch.setattr(smoke_run, "_measure", fake_measure)
    monkeypatch.setattr(smoke_run, "_unloaded_nodes", every_node_loaded)
    monkeypatch.setattr(smoke_run, "runtime_endpoints", lambda module: _AnyEndpoint())
    monkeypatch.setattr(smoke_run, "create_app", lambda *a: None)
    options = SmokeOptions(
        comfy_dir=tmp_path, comfy_url=None, models_dir=models, scratch=tmp_path, python="py",
        port=1, commit="c", clean=True, max_model_gb=55.0,
    )  # fmt: skip
    store = ResultStore(tmp_path / "results.json")
    module = type("Module", (), {"WORKFLOWS": {}})
    asyncio.run(smoke_app(apps["ryla-qwen-image"], module, options, store, lambda _: None))

    qwen = "diffusion_models/qwen_image_2512_fp8_e4m3fn.safetensors"
    edit = "diffusion_models/qwen_image_edit_2511_bf16.safetensors"
    encoder = "text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors"
    assert qwen in present_at_run["/qwen-image-2512-lora"]
    assert edit not in present_at_run["/qwen-image-2512-lora"]
    assert edit in present_at_run["/qwen-image-edit-2511"]
    assert qwen not in present_at_run["/qwen-image-edit-2511"]
    assert built.count(encoder) == 1 and built.count(edit) == 1
    assert not [p for p in models.rglob("*") if p.is_file()]


class _AnyEndpoint(dict):
    def __getitem__(self, path):
        return None, None


def test_max_steps_lowers_given_and_default_steps_and_the_table_says_so() -> None:
    from types import SimpleNamespace

    from pydantic import BaseModel

    from generator.smoke.report import outcome
    from generator.smoke.run import STEPS_CAPPED, _capped

    class Request(BaseModel):
        prompt: str
        steps: int = 50

    endpoint = SimpleNamespace(request_model=Request)
    assert _capped(endpoint, {"prompt": "a"}, 8) == {"prompt": "a", "steps": 8, STEPS_CAPPED: 50}
    assert _capped(endpoint, {"prompt": "a", "steps": 30}, 8)["steps"] == 8
    assert _capped(endpoint, {"prompt": "a", "steps": 4}, 8) == {"prompt": "a", "steps": 4}
    assert _capped(endpoint, {"prompt": "a"}, None) == {"prompt": "a"}
    result = {"status": "executed", "steps": {"ran": 8, "requested": 50}}
    assert outcome(result) == "executed (8 of 50 steps)"


def test_the_table_shows_the_newest_result_of_every_endpoint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "results.json"
    store = ResultStore(out)
    store.put("ryla-demo", "/invert", "old", {"status": "failed", "error": "boom"})
    memory = {"device_type": "cpu", "comfyui_version": "0.9.2"}
    store.put(
        "ryla-demo", "/invert", "new", {"status": "executed", "first_s": 1.5, "memory": memory}
    )
    store.put("ryla-demo", "/blur", "old", {"status": "executed", "first_s": 2.0})
    table = tmp_path / "table.md"
    result = CliRunner().invoke(main, ["smoke", "--out", str(out), "--markdown", str(table)])
    assert result.exit_code == 0, result.output
    lines = table.read_text().splitlines()
    assert len(lines) == 4
    assert (
        "| ryla-demo | `/invert` | executed | 1.50 |" in lines[3] and "| 0.9.2 | new |" in lines[3]
    )
    assert "| ryla-demo | `/blur` | executed | 2.00 |" in lines[2] and "| old |" in lines[2]
    older = ResultStore(tmp_path / "older.json")  # results from before measured_at existed
    older.results = {
        "a /x @c1": {"status": "failed"},
        "a /x @c2": {"status": "executed"},
        "a /y @c2": {"status": "executed"},
    }
    depth = {"c0": 1, "c1": 5, "c2": 3}.__getitem__  # c1 is the newest commit
    assert [r["status"] for r in older.latest(depth)] == ["failed", "executed"]
    older.put("a", "/x", "c0", {"status": "not-covered"})  # stamped: newer than any unstamped
    assert older.latest(depth)[0]["status"] == "not-covered"
    bare = CliRunner().invoke(main, ["smoke", "--out", str(out)])
    assert bare.exit_code == 2 and "--markdown" in bare.output


def test_the_expected_size_is_the_one_the_graph_gets(monkeypatch) -> None:
    """/qwen-image-2512's first example sends aspect_ratio 16:9, which sets 1664×928 although
    width/height default to 1328: the H200 run flagged the right output as a mismatch."""
    import asyncio

    import httpx

    from generator.dev import load_generated
    from generator.smoke.modal_stub import install
    from generator.smoke.run import _one, runtime_endpoints

    monkeypatch.chdir(REPO)
    install()
    module = load_generated(REPO / "generated" / "ryla_qwen_image.py")
    endpoint, _ = runtime_endpoints(module)["/qwen-image-2512"]
    example = {"prompt": "a neon sign", "aspect_ratio": "16:9", "seed": 7}

    def answer(width: int, height: int):
        def handler(request: httpx.Request) -> httpx.Response:
            body = io.BytesIO()
            Image.new("RGB", (width, height)).save(body, "PNG")
            return httpx.Response(
                200, content=body.getvalue(), headers={"content-type": "image/png"}
            )

        return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://t")

    right = asyncio.run(_one(answer(1664, 928), endpoint, example))
    wrong = asyncio.run(_one(answer(1328, 1328), endpoint, example))
    assert right["ok"] and right["problems"] == []
    assert wrong["problems"] == ["output is 1328×1328, the request asked 1664×928"]


def test_a_cut_build_leaves_no_partial_file_behind(tmp_path: Path) -> None:
    """Seen on the H200: a build stopped by a time limit left safetensors' 41 GB temporary file,
    and the next app's builds failed with 'No space left on device'."""
    from generator.smoke.run import remove_partial_files

    (tmp_path / "diffusion_models").mkdir()
    partial = tmp_path / "diffusion_models" / ".tmp3aohNr"
    partial.write_bytes(b"x" * 10)
    kept = tmp_path / "diffusion_models" / "model.safetensors"
    kept.write_bytes(b"y")
    said: list[str] = []
    remove_partial_files(tmp_path, said.append)
    assert not partial.exists() and kept.exists()
    assert said and ".tmp3aohNr" in said[0]


def test_an_image_the_graph_ignores_is_reported(standin, tmp_path: Path) -> None:
    """The issue's worry about /wan2.6-i2v's start image, as a check: the answered request again
    with the image inverted; the same output bytes mean the graph ignores it."""
    import asyncio
    from types import SimpleNamespace

    from helpers import import_generated

    from generator.runtime.backends import RemoteComfy
    from generator.runtime.config import Endpoint, Param, Target
    from generator.runtime.server import create_app
    from generator.smoke.report import outcome
    from generator.smoke.run import _measure

    demo = import_generated(REPO / "generated" / "ryla_demo.py")
    load = {"class_type": "LoadImage", "inputs": {"image": "x.png"}}
    canvas = {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}  # fmt: skip
    graphs = {
        "ignores.json": {"1": load, "2": canvas,
                         "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}},
        "uses.json": {"1": load,
                      "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}},
    }  # fmt: skip
    for name, graph in graphs.items():
        (tmp_path / name).write_text(json.dumps(graph))
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(png, "PNG")
    example = {"image": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()}

    def measure(workflow: str, at_defaults: bool = False, sets: tuple = ()) -> dict:
        endpoint = Endpoint(path="/x", request_model=demo.ScaleRequest, workflow=workflow,
                            params=(Param("image", kind="image", targets=(Target("1", "image"),)),),
                            outputs=("3",), timeout=30, prefix_nodes=("3",))  # fmt: skip
        target = SimpleNamespace(path="/x", endpoint=SimpleNamespace(examples=(example,)))

        async def run() -> dict:
            comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
            app = create_app(demo.SETTINGS, (endpoint,), comfy, tmp_path)
            try:
                options = SimpleNamespace(max_steps=None, at_defaults=at_defaults, overrides=sets)
                return await _measure(target, endpoint, app, comfy, lambda _: None, options)
            finally:
                await comfy.client.aclose()

        return asyncio.run(run())

    ignored = measure("ignores.json")
    assert ignored["status"] == "ignores-input" and ignored["ignored_inputs"] == ["image"]
    assert ignored["warm_s"] is not None  # the extra run is not taken for the warm one
    used = measure("uses.json")
    assert used["status"] == "executed" and "ignored_inputs" not in used
    bare = measure("ignores.json", at_defaults=True)  # one run: no warm one, no input check
    assert bare["status"] == "executed" and len(bare["runs"]) == 1 and bare["warm_s"] is None
    assert bare["request"] == {"defaults": True, "sent": ["image"]}
    assert outcome(bare) == "executed (defaults: sent image)"
    other = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    overridden = measure("uses.json", sets=(("image", other), ("frames", 5)))
    assert overridden["overrides"] == {"image": other}  # /x has no frames field: not set


def test_at_defaults_sends_only_the_required_fields_under_the_names_given() -> None:
    from types import SimpleNamespace

    from pydantic import AliasChoices, BaseModel, Field

    from generator.smoke.report import outcome
    from generator.smoke.run import _overridden, _required_only

    class Request(BaseModel):
        prompt: str = Field(validation_alias=AliasChoices("prompt", "text"))
        frames: int = Field(25, validation_alias=AliasChoices("frames", "num_frames"))
        seed: int | None = None

    endpoint = SimpleNamespace(request_model=Request)
    example = {"text": "a boat", "num_frames": 14, "seed": 3}
    assert _required_only(endpoint, example) == {"text": "a boat"}
    applied: dict = {}
    sets = (("frames", 5), ("width", 64))  # frames replaces num_frames; no width field here
    assert _overridden(endpoint, example, sets, applied) == {
        "text": "a boat",
        "seed": 3,
        "frames": 5,
    }
    assert applied == {"frames": 5}
    result = {"status": "executed", "steps": {"ran": 2, "requested": 20}, "overrides": applied}
    assert outcome(result) == "executed (2 of 20 steps; frames=5)"
    ignored = {"status": "ignores-input", "steps": result["steps"], "ignored_inputs": ["image"]}
    assert outcome(ignored) == "executed (2 of 20 steps), ignores its input: image"


def test_set_parses_json_values_and_needs_its_own_results_file(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    runner = CliRunner()
    base = ["smoke", "ryla-demo", "--comfy-url", "http://127.0.0.1:9"]
    result = runner.invoke(main, [*base, "--set", "frames=5"])
    assert result.exit_code == 2 and "give --out" in result.output
    result = runner.invoke(main, [*base, "--set", "frames", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 2 and "expected FIELD=VALUE" in result.output
    from generator.cli import _field_value

    assert _field_value("num_frames=5") == ("num_frames", 5)
    assert _field_value("prompt=a red fox") == ("prompt", "a red fox")


def test_a_set_value_an_endpoint_refuses_is_said_before_anything_runs(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "r.json"
    # nothing listens on port 9: had it tried to run, the error would be another one
    args = ["smoke", "/invert", "--comfy-url", "http://127.0.0.1:9", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--set", "width=0"])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "--set gives a value an endpoint refuses: /invert: width=0: " in result.output
    assert "greater than or equal to 1" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_tiny_shrinks_only_families_whose_detection_reads_their_size() -> None:
    from generator.smoke.synth import GGUF_MODELS, tiny_config

    wan = tiny_config(ARCHES["wan21-i2v-14b"][0].unet_config)
    assert wan is not None and (wan["dim"], wan["num_layers"], wan["in_dim"]) == (512, 2, 36)
    assert wan["num_heads"] == wan["dim"] // 128  # what ComfyUI's Wan detection derives
    vace = tiny_config(ARCHES["wan21-vace-1.3b"][0].unet_config)
    assert vace is not None and vace["num_layers"] // vace["vace_layers"] >= 1
    assert tiny_config(GGUF_MODELS["wan22-i2v-a14b-gguf"][1])["dim"] == 512
    # Flux's heads are not read from its tensors, its depth is: only the depth shrinks
    flux = tiny_config(ARCHES["flux-dev"][0].unet_config)
    assert flux is not None and (flux["hidden_size"], flux["num_heads"]) == (3072, 24)
    assert (flux["depth"], flux["depth_single_blocks"]) == (2, 4)
    assert tiny_config(None) is None


def test_tiny_and_full_size_runs_never_reuse_each_others_files(apps, tmp_path, monkeypatch) -> None:
    """A GPU run after a CPU --tiny run in the same scratch folder must not measure a 512-wide
    Wan as the 14B one; the table says which files were tiny."""
    import generator.smoke.run as smoke_run
    from generator.smoke.report import outcome
    from generator.smoke.run import SmokeOptions, _synthesise

    builds: list[tuple[str, bool]] = []

    def fake_synth(files, models_dir, options, echo):
        records = {}
        for f in files:
            (models_dir / f.name).parent.mkdir(parents=True, exist_ok=True)
            (models_dir / f.name).write_bytes(b"x")
            builds.append((f.name, options.tiny))
            records[f.name] = {"arch": f.arch, "seconds": 0}
            if options.tiny and f.arch == "wan21-i2v-14b":
                records[f.name]["tiny"] = {"dim": 512}
        return records

    monkeypatch.setattr(smoke_run, "_run_synth", fake_synth)
    targets = plan_app(apps["ryla-wan26"], frozenset({"/wan2.6-i2v"}))
    model = "diffusion_models/wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors"

    def run(tiny: bool) -> dict:
        options = SmokeOptions(
            comfy_dir=tmp_path, comfy_url=None, models_dir=None, scratch=tmp_path, python="py",
            port=1, commit="c", tiny=tiny,
        )  # fmt: skip
        return _synthesise(targets, options, lambda _: None)

    tiny = run(True)
    assert tiny[model]["tiny"] == {"dim": 512}
    assert outcome({"status": "executed", "synth": tiny}).startswith("executed (tiny wan2.1_i2v")
    assert run(True)[model] == {"arch": "wan21-i2v-14b", "reused": True, "tiny": {"dim": 512}}
    built = len(builds)
    full = run(False)
    assert "tiny" not in full[model] and "reused" not in full[model]
    assert len(builds) == built + 4  # the text encoder built by the tiny run is rebuilt too
    assert run(False)[model] == {"arch": "wan21-i2v-14b", "reused": True}
    assert outcome({"status": "executed", "synth": full}) == "executed"


def test_each_kind_of_run_has_its_own_results_file() -> None:
    from generator.smoke.run import results_name

    names = {results_name(d, t) for d in (False, True) for t in (False, True)}
    assert "gpu-smoke-results.json" in names and "gpu-smoke-defaults.json" in names
    assert results_name(False, True) == "tiny-smoke-results.json"


def test_clean_removes_the_built_files_when_comfyui_does_not_start(apps, tmp_path, monkeypatch):
    """The device's first ComfyUI 0.9.2 lacked a module and exited: the 12 GB it had built for
    klein stayed on the disk of the next run."""
    import asyncio
    import contextlib

    import generator.smoke.run as smoke_run
    from generator.smoke.run import SmokeOptions, smoke_app

    def fake_synth(files, models_dir, options, echo):
        for f in files:
            (models_dir / f.name).parent.mkdir(parents=True, exist_ok=True)
            (models_dir / f.name).write_bytes(b"x")
        return {f.name: {"arch": f.arch, "seconds": 0} for f in files}

    @contextlib.asynccontextmanager
    async def broken_comfy(app, cls, options, echo, packs):
        raise SmokeError("ComfyUI did not start (No module named 'sqlalchemy')")
        yield  # pragma: no cover

    monkeypatch.setattr(smoke_run, "_run_synth", fake_synth)
    monkeypatch.setattr(smoke_run, "_comfy", broken_comfy)
    monkeypatch.setattr(smoke_run, "runtime_endpoints", lambda module: _AnyEndpoint())
    models = tmp_path / "models"
    options = SmokeOptions(
        comfy_dir=tmp_path, comfy_url=None, models_dir=models, scratch=tmp_path, python="py",
        port=1, commit="c", clean=True, only=frozenset({"/flux-klein-edit"}),
    )  # fmt: skip
    store = ResultStore(tmp_path / "results.json")
    module = type("Module", (), {"WORKFLOWS": {}})
    with pytest.raises(SmokeError, match="sqlalchemy"):
        asyncio.run(smoke_app(apps["ryla-z-image"], module, options, store, lambda _: None))
    assert models.is_dir() and not [p for p in models.rglob("*") if p.is_file()]


def test_an_input_ignored_only_at_capped_steps_is_checked_at_the_steps_asked() -> None:
    """With --max-steps 2 each Wan 2.2 expert took one UniPC step, whose first step from sigma 1
    does not use the model: the start image looked ignored. At the steps asked it is not; a
    graph that ignores its image at every step count is still reported."""
    import asyncio
    import hashlib

    import httpx
    from pydantic import BaseModel

    from generator.runtime.config import Endpoint, Param, Target
    from generator.smoke.run import _capped, _input_checks, _one

    class Request(BaseModel):
        image: str
        steps: int = 20

    def png(color: tuple[int, int, int]) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (8, 8), color).save(out, "PNG")
        return out.getvalue()

    def serve(uses_image_from: int | None):
        def handle(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            shade = hashlib.sha256(body["image"].encode()).digest()[0]
            uses = uses_image_from is not None and body["steps"] >= uses_image_from
            color = (shade, 0, 0) if uses else (7, 7, 7)
            return httpx.Response(200, content=png(color), headers={"content-type": "image/png"})

        return httpx.MockTransport(handle)

    endpoint = Endpoint(path="/x", request_model=Request, workflow="w.json",
                        params=(Param("image", kind="image", targets=(Target("1", "image"),)),),
                        outputs=("3",), timeout=30)  # fmt: skip
    image = "data:image/png;base64," + base64.b64encode(png((200, 30, 30))).decode()
    example = _capped(endpoint, {"image": image}, 2)

    def check(uses_image_from: int | None) -> dict:
        async def run() -> dict:
            async with httpx.AsyncClient(
                transport=serve(uses_image_from), base_url="http://s"
            ) as c:
                answered = await _one(c, endpoint, example)
                return (await _input_checks(c, endpoint, example, answered, lambda _: None))[0]

        return asyncio.run(run())

    late = check(uses_image_from=4)
    assert late["ignored"] is False and late["uncapped"]["steps"] == 20
    never = check(uses_image_from=None)
    assert never["ignored"] is True and never["uncapped"]["same"] is True
    always = check(uses_image_from=1)
    assert always["ignored"] is False and "uncapped" not in always


def test_a_declared_face_refusal_that_never_fires_is_reported() -> None:
    """Found on the real ComfyUI with ReActor: a faceless reference made the pack log "No valid
    source face(s) found …", not the phrase the spec declared, so the client got a 200 with no
    face swapped. Smoke now sends a one-colour image in each field with a declared refusal and
    reports a field whose refusal did not fire."""
    import asyncio

    import httpx
    from pydantic import BaseModel

    from generator.runtime.config import Endpoint, Param, Target
    from generator.smoke.report import outcome
    from generator.smoke.run import _refusal_checks

    class Request(BaseModel):
        face: str

    def png(color: tuple[int, int, int], size: tuple[int, int]) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", size, color).save(out, "PNG")
        return out.getvalue()

    def serve(refuses: bool, sizes: list):
        def handle(request: httpx.Request) -> httpx.Response:
            data = json.loads(request.content)["face"].split(",", 1)[1]
            with Image.open(io.BytesIO(base64.b64decode(data))) as sent:
                sizes.append(sent.size)
                flat = len(set(sent.convert("RGB").getdata())) == 1
            if flat and refuses:
                body = {"error": "no face found in face", "details": "", "type": "unusable"}
                return httpx.Response(422, json=body)
            return httpx.Response(200, content=png((1, 2, 3), (8, 8)))

        return httpx.MockTransport(handle)

    face = Param("face", kind="image", targets=(Target("1", "image"),),
                 node_warnings={"No source face(s) found": "no face found in face"})  # fmt: skip
    endpoint = Endpoint(path="/x", request_model=Request, workflow="w.json", params=(face,),
                        outputs=("3",), timeout=30)  # fmt: skip
    drawn = png((200, 30, 30), (12, 10))
    example = {"face": "data:image/png;base64," + base64.b64encode(drawn).decode()}

    def check(refuses: bool) -> tuple[dict, list]:
        sizes: list = []

        async def run() -> list:
            async with httpx.AsyncClient(transport=serve(refuses, sizes), base_url="http://s") as c:
                return await _refusal_checks(c, endpoint, example, lambda _: None)

        (found,) = asyncio.run(run())
        return found, sizes

    refused, sizes = check(refuses=True)
    assert refused["ok"] and refused["refused"] == "face" and sizes == [(12, 10)]
    silent, _ = check(refuses=False)
    assert not silent["ok"] and silent["said"] == "200: an output, not refused"
    said = outcome({"status": "accepts-unusable", "unrefused_inputs": ["face"]})
    assert said == "executed, one-colour image not refused: face"


def test_a_pack_that_did_not_import_is_named_with_its_reason(standin, tmp_path: Path) -> None:
    """Found on the real ComfyUI: LivePortraitKJ failed to import (a missing requirement) and
    smoke reported only ComfyUI's "node … does not exist". Now it names the missing classes
    and the reason ComfyUI logged for the pack."""
    import asyncio
    from types import SimpleNamespace

    from generator.runtime.backends import RemoteComfy
    from generator.smoke.run import _unloaded_nodes

    graphs = {
        "pack.json": {"1": {"class_type": "DownloadAndLoadLivePortraitModels", "inputs": {}},
                      "2": {"class_type": "EmptyImage", "inputs": {}}},
        "core.json": {"2": {"class_type": "EmptyImage", "inputs": {}}},
    }  # fmt: skip
    for name, graph in graphs.items():
        (tmp_path / name).write_text(json.dumps(graph))
    log = tmp_path / "comfyui.log"
    log.write_text(
        "Traceback (most recent call last):\n"
        "ModuleNotFoundError: No module named 'pykalman'\n"
        "Cannot import /s/custom_nodes/ComfyUI-LivePortraitKJ module for custom nodes: "
        "No module named 'pykalman'\n"
        "   0.0 seconds (IMPORT FAILED): /s/custom_nodes/ComfyUI-LivePortraitKJ\n"
    )

    async def unloaded(workflow: str) -> str:
        comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
        try:
            return await _unloaded_nodes(comfy, tmp_path, SimpleNamespace(workflow=workflow), log)
        finally:
            await comfy.client.aclose()

    assert asyncio.run(unloaded("core.json")) == ""
    assert asyncio.run(unloaded("pack.json")) == (
        "node classes missing from ComfyUI: DownloadAndLoadLivePortraitModels; custom nodes "
        "that did not import: ComfyUI-LivePortraitKJ: No module named 'pykalman'"
    )


def test_set_node_changes_a_copy_of_the_graph_and_the_table_says_so(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from generator.smoke.report import outcome
    from generator.smoke.run import _node_overridden

    graph = {
        "1": {"class_type": "DownloadAndLoadLivePortraitModels",
              "inputs": {"precision": "fp16", "mode": "human"},
              "_meta": {"title": "Load LivePortrait Models"}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}},
    }  # fmt: skip
    (tmp_path / "wf.json").write_text(json.dumps(graph))
    endpoint = SimpleNamespace(workflow="wf.json")

    def options(*sets):
        return SimpleNamespace(node_overrides=sets, scratch=tmp_path / "scratch")

    by_title = options(("Load LivePortrait Models", "precision", "fp32"))
    folder, changed = _node_overridden(tmp_path, endpoint, by_title)
    assert changed == {"1.precision": "fp32"} and folder != tmp_path
    assert json.loads((folder / "wf.json").read_text())["1"]["inputs"]["precision"] == "fp32"
    assert json.loads((tmp_path / "wf.json").read_text()) == graph  # the committed one untouched
    # a node or input the graph lacks leaves it as it is
    assert _node_overridden(tmp_path, endpoint, options(("9", "precision", "fp32"))) == (
        tmp_path,
        {},
    )
    assert _node_overridden(tmp_path, endpoint, options(("2", "steps", 4))) == (tmp_path, {})
    said = outcome({"status": "executed", "node_overrides": changed})
    assert said == "executed (node 1.precision=fp32)"


def test_set_node_needs_node_input_and_value(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    out = ["--out", str(tmp_path / "r.json"), "--comfy-url", "http://127.0.0.1:9"]
    bad = CliRunner().invoke(main, ["smoke", "ryla-demo", "--set-node", "precision=fp32", *out])
    assert bad.exit_code == 2 and "expected NODE.INPUT=VALUE" in bad.output
    alone = CliRunner().invoke(
        main, ["smoke", "ryla-demo", "--set-node", "1.precision=fp32", "--comfy-url", "x"]
    )
    assert alone.exit_code == 2 and "give --out" in alone.output


def _older_comfyui(monkeypatch, known: set[str]) -> list[dict]:
    """A `comfy.model_detection` whose models take only the config keys in `known`."""
    import types

    built: list[dict] = []

    class ModelConfig:
        def __init__(self, config: dict) -> None:
            self.config = config

        def set_inference_dtype(self, dtype, manual_cast) -> None:
            pass

        def get_model(self, state_dict, device=None):
            for key in self.config:
                if key not in known:
                    raise TypeError(
                        f"FluxParams.__init__() got an unexpected keyword argument '{key}'"
                    )
            built.append(self.config)
            return object()

    detection = types.ModuleType("comfy.model_detection")
    detection.model_config_from_unet_config = ModelConfig
    comfy = types.ModuleType("comfy")
    comfy.model_detection = detection
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.model_detection", detection)
    return built


def test_an_older_comfyui_builds_the_model_without_the_keys_it_does_not_know(monkeypatch) -> None:
    # ComfyUI 0.3.66's FluxParams takes neither txt_ids_dims nor yak_mlp (found building Flux dev
    # for ryla-instantid, which pins 0.3.66); both are "off" in Flux 1, so its model is the same.
    from generator.smoke.synth import FLUX, _unet_model

    known = set(FLUX) - {"txt_ids_dims", "yak_mlp"} | {"guidance_embed"}
    built = _older_comfyui(monkeypatch, known)
    _unet_model({**FLUX, "guidance_embed": True}, "meta", None)
    assert set(built[-1]) == known
    assert built[-1]["depth"] == FLUX["depth"]


def test_a_key_an_older_comfyui_does_not_know_is_an_error_when_it_matters(monkeypatch) -> None:
    # Dropping a key that turns a feature on would build another architecture: refuse instead.
    from generator.smoke.synth import FLUX, _unet_model

    _older_comfyui(monkeypatch, set(FLUX) - {"txt_ids_dims"})
    with pytest.raises(TypeError, match="txt_ids_dims"):
        _unet_model({**FLUX, "txt_ids_dims": [3]}, "meta", None)


def _ran(path: str, files: list[str]):
    from generator.smoke.run import Ran
    from generator.smoke.targets import EndpointTarget, SyntheticFile

    target = EndpointTarget(path, None, [SyntheticFile(f, "flux-dev") for f in files])  # type: ignore[arg-type]
    endpoint = type("E", (), {"path": path, "timeout": 10})()
    result = {"status": "executed", "runs": [{"ok": True}]}
    return Ran(target, endpoint, None, result)


def _comfyui_with_a_shared_model(monkeypatch, mutates: str, jitter: str | None = None) -> list[str]:
    """Consecutive prompts share the cached model; ``mutates`` changes it in place (x-flux's
    IP-Adapter), after which another endpoint's graph fails; /free loads a fresh one."""
    from generator.smoke import run as smoke_run

    state = {"patched": False, "n": 0}
    order: list[str] = []

    async def freed(url):
        state["patched"] = False
        return 0.0

    async def run_in(r, echo):
        order.append(r.target.path)
        state["n"] += 1
        if r.target.path == mutates:
            state["patched"] = True
            return {"ok": True, "digest": "ip"}
        if state["patched"]:
            return {"ok": False, "error": "DoubleStreamBlock.forward() got 'attn_mask'"}
        return {"ok": True, "digest": f"d{state['n']}" if r.target.path == jitter else "d"}

    monkeypatch.setattr(smoke_run, "_freed", freed)
    monkeypatch.setattr(smoke_run, "_run_in", run_in)
    monkeypatch.setattr(smoke_run, "_comfy_url", lambda comfy: "http://comfy")
    return order


def test_an_endpoint_that_breaks_after_another_changed_the_shared_model_is_reported(
    monkeypatch,
) -> None:
    import asyncio

    from generator.smoke.report import line
    from generator.smoke.run import _after_others

    flux = "diffusion_models/flux1-dev.safetensors"
    pulid, ip = _ran("/flux-pulid", [flux, "pulid/p.safetensors"]), _ran("/ip", [flux])
    other = _ran("/sdxl", ["checkpoints/sdxl.safetensors"])  # shares nothing: not paired
    _comfyui_with_a_shared_model(monkeypatch, mutates="/ip")
    changed = asyncio.run(_after_others([pulid, ip, other], None, print))
    assert {r.target.path for r in changed} == {"/flux-pulid", "/ip"}
    assert pulid.result["status"] == "breaks-after-other"
    assert pulid.result["after_others"][0]["after"] == "/ip"
    assert pulid.result["after_others"][0]["verdict"] == "fails"
    assert ip.result["status"] == "executed"  # /ip itself works after /flux-pulid
    assert ip.result["after_others"][0]["verdict"] == "same"
    assert "after_others" not in other.result
    said = line({"app": "ryla-instantid", "path": "/flux-pulid", **pulid.result})
    assert "BREAKS after /ip: fails: DoubleStreamBlock.forward()" in said


def test_a_different_picture_after_another_endpoint_counts_only_where_runs_repeat(
    monkeypatch,
) -> None:
    import asyncio

    from generator.smoke.run import _after_verdict

    assert _after_verdict({"ok": True, "digest": "b"}, {"digest": "a", "deterministic": True}) == (
        "changed"
    )
    assert _after_verdict({"ok": True, "digest": "a"}, {"digest": "a", "deterministic": True}) == (
        "same"
    )
    # runs of the endpoint alone differ (GPU kernels): a different picture proves nothing
    assert _after_verdict(
        {"ok": True, "digest": "b"}, {"digest": None, "deterministic": False}
    ) == ("ok")
    from generator.smoke.run import _after_others

    flux = "diffusion_models/flux1-dev.safetensors"
    a, b = _ran("/a", [flux]), _ran("/b", [flux])
    _comfyui_with_a_shared_model(monkeypatch, mutates="/none", jitter="/b")
    asyncio.run(_after_others([a, b], None, print))
    assert b.result["after_others"][0]["verdict"] == "ok" and b.result["status"] == "executed"
    assert a.result["after_others"][0]["verdict"] == "same"


def test_by_default_only_endpoints_with_packs_run_before_the_check(monkeypatch) -> None:
    # Core nodes clone the model they patch; packs may change it in place. --after-others all
    # runs every pair (n x n-1 of them: long on apps of many endpoints sharing files).
    import asyncio

    from generator.smoke.run import _after_others

    flux = "diffusion_models/flux1-dev.safetensors"
    core, ip = _ran("/flux-dev", [flux]), _ran("/ip", [flux])
    ip.target.packs.append(object())  # type: ignore[arg-type]
    order = _comfyui_with_a_shared_model(monkeypatch, mutates="/ip")
    asyncio.run(_after_others([core, ip], None, print, only_packs=True))
    assert core.result["status"] == "breaks-after-other"
    assert "after_others" not in ip.result  # /flux-dev, core nodes only, never ran before it
    assert order[:2] == ["/ip", "/flux-dev"]
