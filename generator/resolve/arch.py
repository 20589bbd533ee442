"""Which architecture a model file is: declared (spec ``arch:``) or inferred from repo and file.

The architecture says what a file holds (``sdxl-checkpoint``, ``flux-dev``, ``t5-xxl``, …), so a
synthetic file of the same architecture can stand in for it (``ryla-gen smoke``). Inference
matches the model's folder and its ``repo/file`` against a short table of the repositories the
specs use; a file the table does not know is *unknown* (reported, never guessed). A spec
declares ``arch:`` for files the table cannot name (fine-tunes under other names, say).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .model import ModelFileModel

# Loader inputs whose value is a file of a models folder.
LOADER_FILE_INPUTS = {
    "lora_name": "loras",
    "ckpt_name": "checkpoints",
    "unet_name": "diffusion_models",
    "vae_name": "vae",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
}

# Inputs naming the file a loader builds a diffusion model (ComfyUI's MODEL) from.
MODEL_FILE_INPUTS = ("ckpt_name", "unet_name")

# Every architecture a spec may declare, with what it is.
ARCHITECTURES: dict[str, str] = {
    "sd15-checkpoint": "Stable Diffusion 1.5 checkpoint (UNet, CLIP-L, VAE)",
    "sdxl-checkpoint": "SDXL checkpoint (UNet, CLIP-L + CLIP-G, VAE); Turbo, Lightning, fine-tunes",
    "svd-checkpoint": "Stable Video Diffusion checkpoint (video UNet, CLIP vision, VAE)",
    "flux-schnell-checkpoint": "Flux schnell checkpoint (fp8 transformer, CLIP-L, T5-XXL, VAE)",
    "flux-dev": "Flux dev transformer (12B)",
    "flux-schnell": "Flux schnell transformer (12B)",
    "flux2-klein": "Flux 2 klein 4B transformer (9B is another architecture)",
    "wan21-t2v-1.3b": "Wan 2.1 text-to-video 1.3B transformer",
    "wan21-vace-1.3b": "Wan 2.1 VACE 1.3B transformer",
    "wan21-i2v-14b": "Wan 2.1 image-to-video 14B transformer",
    "wan22-i2v-a14b-gguf": (
        "Wan 2.2 image-to-video A14B expert (high- or low-noise), GGUF for ComfyUI-GGUF"
    ),
    "hunyuan15-t2v": "HunyuanVideo 1.5 text-to-video transformer",
    "hunyuan15-i2v": "HunyuanVideo 1.5 image-to-video transformer",
    "qwen-image": "Qwen-Image transformer",
    "qwen-image-edit": "Qwen-Image-Edit transformer",
    "z-image": "Z-Image transformer",
    "seedvr2": "SeedVR2 upscaler transformer (custom node)",
    "clip-l": "CLIP-L text encoder",
    "t5-xxl": "T5-XXL text encoder",
    "umt5-xxl": "UMT5-XXL text encoder (Wan)",
    "qwen25-vl-7b": "Qwen 2.5 VL 7B text encoder",
    "qwen3-4b": "Qwen 3 4B text encoder",
    "byt5-small-glyph": "ByT5 small glyph text encoder (HunyuanVideo 1.5)",
    "clip-vision-h": "CLIP ViT-H vision encoder",
    "siglip-vision": "SigLIP vision encoder",
    "sd15-vae": "Stable Diffusion 1.5 VAE (4 latent channels)",
    "flux-vae": "Flux VAE (16 latent channels; also Z-Image's)",
    "flux2-vae": "Flux 2 VAE",
    "wan21-vae": "Wan 2.1 VAE",
    "qwen-image-vae": "Qwen-Image VAE",
    "hunyuan15-vae": "HunyuanVideo 1.5 VAE",
    "flux-lora": "LoRA for Flux dev",
    "wan21-1.3b-lora": "LoRA for Wan 2.1 1.3B",
    "sdxl-lora": "LoRA for SDXL",
    "z-image-lora": "LoRA for Z-Image",
    "qwen-image-lora": "LoRA for Qwen-Image",
    "esrgan-4x": "ESRGAN 4x upscaler (RRDBNet, 23 blocks, 64 features; old-ESRGAN .pth layout)",
    "sdxl-controlnet": (
        "SDXL ControlNet, full size, diffusers layout (xinsir's tile, InstantID's, …)"
    ),
    "instantid-ip-adapter": (
        "InstantID's IP-Adapter for SDXL (face-embedding Resampler, 70 K/V pairs)"
    ),
    "insightface-scrfd": "InsightFace SCRFD face detector with key points (ONNX)",
    "insightface-landmark-3d68": "InsightFace 68-point 3D landmarks (ONNX)",
    "insightface-landmark-2d106": "InsightFace 106-point 2D landmarks (ONNX)",
    "insightface-genderage": "InsightFace gender and age (ONNX)",
    "insightface-arcface": "InsightFace ArcFace recognition, 512-d embedding (ONNX)",
    "liveportrait-appearance": "LivePortrait appearance feature extractor (built from the pack)",
    "liveportrait-motion": "LivePortrait motion extractor, ConvNeXt V2 tiny (built from the pack)",
    "liveportrait-warping": "LivePortrait warping network (built from the pack)",
    "liveportrait-spade": "LivePortrait SPADE generator (built from the pack)",
    "liveportrait-stitching": "LivePortrait stitching and retargeting networks (from the pack)",
    "liveportrait-landmark": "LivePortrait 203-point landmark runner (ONNX)",
    "inswapper-128": "InsightFace inswapper_128 face swapper (ONNX)",
    "retinaface-resnet50": "facexlib RetinaFace ResNet-50 face detector (built from the pack)",
    "parsenet": "facexlib ParseNet face parsing, 19 classes (built from the pack)",
    "gfpgan-v1.4": "GFPGAN v1.4 face restoration, 512 px (built from the pack)",
    "bisenet": "facexlib BiSeNet face parsing, 19 classes (built from facexlib)",
    "xlabs-flux-ip-adapter": "XLabs IP-Adapter v2 for Flux: image projection, 19 K/V (pack)",
    "clip-vit-l14": "OpenAI CLIP ViT-L/14, the whole CLIPModel (transformers)",
    "pulid-flux": "PuLID for Flux: IDFormer and 20 cross-attentions (built from the pack)",
    "eva02-clip-l-336": "EVA02-CLIP-L-14-336, both towers (built from PuLID's eva_clip)",
    "vit-nsfw-detector": "ViT-B/16 NSFW image classifier weights (transformers)",
    "vit-nsfw-detector-config": "its config.json (transformers ViTConfig, labels nsfw/sfw)",
    "vit-nsfw-detector-preprocessor": "its preprocessor_config.json (ViTImageProcessor)",
}

# InsightFace's model packs (FaceAnalysis(name=…) reads every .onnx of one folder)
_INSIGHTFACE = ("insightface/models/antelopev2", "insightface/models/buffalo_l")
# ReActor's NSFW filter: a Hugging Face model folder (transformers.pipeline reads it whole)
_NSFW = ("nsfw_detector/vit-base-nsfw-detector",)

# (folders, pattern on "repo/file" lower-cased, architecture); the first match wins.
_RULES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("checkpoints",), r"flux1-schnell", "flux-schnell-checkpoint"),
    (("checkpoints",), r"(^|/)(sd_xl|sdxl)|realvisxl|juggernaut-xl", "sdxl-checkpoint"),
    (("checkpoints",), r"stable-video-diffusion|(^|/)svd", "svd-checkpoint"),
    (("checkpoints",), r"v1-5|stable-diffusion-v1|sd15", "sd15-checkpoint"),
    (("diffusion_models", "unet"), r"flux1-dev", "flux-dev"),
    (("diffusion_models", "unet"), r"flux1-schnell", "flux-schnell"),
    (("diffusion_models", "unet"), r"flux-2-klein-4b", "flux2-klein"),
    (("diffusion_models", "unet"), r"wan2\.1_t2v_1\.3b", "wan21-t2v-1.3b"),
    (("diffusion_models", "unet"), r"wan2\.1_vace_1\.3b", "wan21-vace-1.3b"),
    (("diffusion_models", "unet"), r"wan2\.1_i2v_\d+p_14b", "wan21-i2v-14b"),
    (
        ("diffusion_models", "unet"),
        r"wan2\.2-i2v-a14b-(high|low)noise-q\w+\.gguf$",
        "wan22-i2v-a14b-gguf",
    ),
    (("diffusion_models", "unet"), r"hunyuanvideo1\.5_\w+_t2v", "hunyuan15-t2v"),
    (("diffusion_models", "unet"), r"hunyuanvideo1\.5_\w+_i2v", "hunyuan15-i2v"),
    (("diffusion_models", "unet"), r"qwen_image_edit", "qwen-image-edit"),
    (("diffusion_models", "unet"), r"qwen_image", "qwen-image"),
    (("diffusion_models", "unet"), r"z_image", "z-image"),
    (("text_encoders", "clip"), r"(^|/)clip_l\.", "clip-l"),
    (("text_encoders", "clip"), r"(^|/)t5xxl_", "t5-xxl"),
    (("text_encoders", "clip"), r"(^|/)umt5_xxl_", "umt5-xxl"),
    (("text_encoders", "clip"), r"qwen_2\.5_vl_7b", "qwen25-vl-7b"),
    (("text_encoders", "clip"), r"qwen_3_4b", "qwen3-4b"),
    (("text_encoders", "clip"), r"byt5_small_glyph", "byt5-small-glyph"),
    (("clip_vision",), r"clip_vision_h", "clip-vision-h"),
    (("clip_vision",), r"sigclip_vision", "siglip-vision"),
    (("vae",), r"^black-forest-labs/flux\.1-(dev|schnell)/ae\.", "flux-vae"),
    (("vae",), r"z[-_]image.*/ae\.", "flux-vae"),
    (("vae",), r"flux2-vae", "flux2-vae"),
    (("vae",), r"wan_2\.1_vae", "wan21-vae"),
    (("vae",), r"qwen_image_vae", "qwen-image-vae"),
    (("vae",), r"hunyuanvideo15_vae", "hunyuan15-vae"),
    (("loras",), r"qwen-image-lightning", "qwen-image-lora"),
    (("upscale_models",), r"(^|/)4x-ultrasharp\.(pth|safetensors)$", "esrgan-4x"),
    # xinsir's single-condition SDXL ControlNets; the union one is another layout
    (("controlnet",), r"^xinsir/controlnet-(?!union)[a-z]+-sdxl-1\.0/", "sdxl-controlnet"),
    (("controlnet",), r"^instantx/instantid/controlnetmodel/", "sdxl-controlnet"),
    (("instantid",), r"^instantx/instantid/ip-adapter\.bin$", "instantid-ip-adapter"),
    (_INSIGHTFACE, r"/(scrfd_\w+|det_10g)\.onnx$", "insightface-scrfd"),
    (_INSIGHTFACE, r"/1k3d68\.onnx$", "insightface-landmark-3d68"),
    (_INSIGHTFACE, r"/2d106det\.onnx$", "insightface-landmark-2d106"),
    (_INSIGHTFACE, r"/genderage\.onnx$", "insightface-genderage"),
    (_INSIGHTFACE, r"/(glintr100|w600k_r50)\.onnx$", "insightface-arcface"),
    (
        ("liveportrait",),
        r"^kijai/liveportrait_safetensors/appearance_feature_extractor\.",
        "liveportrait-appearance",
    ),
    (
        ("liveportrait",),
        r"^kijai/liveportrait_safetensors/motion_extractor\.",
        "liveportrait-motion",
    ),
    (
        ("liveportrait",),
        r"^kijai/liveportrait_safetensors/warping_module\.",
        "liveportrait-warping",
    ),
    (("liveportrait",), r"^kijai/liveportrait_safetensors/spade_generator\.", "liveportrait-spade"),
    (
        ("liveportrait",),
        r"^kijai/liveportrait_safetensors/stitching_retargeting_module\.",
        "liveportrait-stitching",
    ),
    (
        ("liveportrait",),
        r"^kijai/liveportrait_safetensors/landmark\.onnx$",
        "liveportrait-landmark",
    ),
    (("insightface",), r"/inswapper_128\.onnx$", "inswapper-128"),
    (("facedetection", "facexlib"), r"/detection_resnet50_final\.pth$", "retinaface-resnet50"),
    (("facexlib",), r"/parsing_bisenet\.pth$", "bisenet"),
    (("pulid",), r"^guozinan/pulid/pulid_flux_v0\.9\.\d\.safetensors$", "pulid-flux"),
    (
        ("xlabs/ipadapters",),
        r"^xlabs-ai/flux-ip-adapter-v2/ip_adapter\.safetensors$",
        "xlabs-flux-ip-adapter",
    ),
    (("clip_vision",), r"^openai/clip-vit-large-patch14/model\.safetensors$", "clip-vit-l14"),
    (("text_encoders",), r"^quansun/eva-clip/eva02_clip_l_336_psz14_s6b\.pt$", "eva02-clip-l-336"),
    (("facedetection",), r"/parsing_parsenet\.pth$", "parsenet"),
    (("facerestore_models",), r"/gfpganv1\.4\.pth$", "gfpgan-v1.4"),
    (_NSFW, r"^adamcodd/vit-base-nsfw-detector/model\.safetensors$", "vit-nsfw-detector"),
    (_NSFW, r"^adamcodd/vit-base-nsfw-detector/config\.json$", "vit-nsfw-detector-config"),
    (
        _NSFW,
        r"^adamcodd/vit-base-nsfw-detector/preprocessor_config\.json$",
        "vit-nsfw-detector-preprocessor",
    ),
)

# A character LoRA an endpoint loads takes the architecture of the endpoint's base model.
LORA_OF_BASE: dict[str, str] = {
    "flux-dev": "flux-lora",
    "flux-schnell": "flux-lora",
    "wan21-t2v-1.3b": "wan21-1.3b-lora",
    "sdxl-checkpoint": "sdxl-lora",
    "z-image": "z-image-lora",
    "qwen-image": "qwen-image-lora",
}


@dataclass(frozen=True)
class ArchFinding:
    """A model file's architecture (None: unknown) and how it was decided."""

    arch: str | None
    how: str  # declared | inferred | unknown


def model_key(model: ModelFileModel) -> str:
    """What inference reads: ``repo/file`` (or the URL), lower-cased; an archive's member
    after it (``…/buffalo_l.zip/det_10g.onnx``)."""
    key = model.url if model.url else f"{model.repo}/{model.file}"
    if model.unpack:
        key = f"{key}/{model.unpack}"
    return key.lower()


def infer_arch(model: ModelFileModel) -> ArchFinding:
    if model.arch:
        return ArchFinding(model.arch, "declared")
    key = model_key(model)
    for folders, pattern, arch in _RULES:
        if model.folder in folders and re.search(pattern, key):
            return ArchFinding(arch, "inferred")
    return ArchFinding(None, "unknown")


def base_arch(archs: list[str]) -> str | None:
    """The architecture whose LoRAs an endpoint loads: its first model that takes LoRAs."""
    return next((a for a in archs if a in LORA_OF_BASE), None)
