"""Synthetic files of custom-node models, built from the pack's own model classes.

Part of ``synth.py`` (it imports this module; both run inside ComfyUI's Python and import
nothing of ``generator``). A pack whose models ComfyUI has no class for defines them itself:
the builder imports those classes from the pack's checkout (``synth.py --custom-nodes DIR``,
the folder ``ryla-gen smoke --custom-nodes`` names) and instantiates them with the pack's own
configuration, so the tensor names and shapes are the ones its loader takes. Nothing of a pack
is copied into ryla-gen.

* **LivePortrait** (ComfyUI-LivePortraitKJ): the appearance feature extractor, motion extractor
  (ConvNeXt V2 tiny), warping network, SPADE generator (``liveportrait/modules``, parameters
  from ``liveportrait/config/models.yaml``) and the stitching file, whose three networks the
  loader tells apart by the prefixes ``retarget_shoulder_module.``, ``retarget_mouth_module.``
  and ``retarget_eye_module.``. The landmark ONNX file is in ``synth_faces`` (interface only).
* **ReActor** (ComfyUI-ReActor): facexlib's RetinaFace (ResNet-50) and ParseNet
  (``r_facelib``) and GFPGAN v1.4 (``r_chainner``'s ``GFPGANv1Clean``, the class its
  loader builds), each loaded strictly by the pack's loader. RetinaFace's heads are set so that
  it reports what its loader then uses: a face on the 512-pixel anchors of its coarsest level
  (score ~1, the anchor's box, five key points where ArcFace's template has them), none
  elsewhere; random heads would report nothing or noise, and the restoration would never run.
  The NSFW filter ReActor runs on every frame (a Hugging Face ViT image classifier read by
  ``transformers.pipeline``) is built with ``transformers``' own class from the config written
  beside it, its classifier biased to "sfw" (a random one would drop frames at random). The
  InsightFace files (``buffalo_l``) and ``inswapper_128.onnx`` are in ``synth_faces``.
  RetinaFace and BiSeNet come from the ``facexlib`` package where it is installed (PuLID's
  loader), else from ReActor's copy of it (``r_facelib``): the same layout.
* **PuLID for Flux** (ComfyUI_PuLID_Flux_ll): ``pulid_flux_v0.9.1.safetensors`` from the pack's
  ``IDFormer`` and ``PerceiverAttentionCA`` (20 of them, for Flux dev's 19 double and 38 single
  blocks at its intervals 2 and 4), and EVA02-CLIP-L-14-336 from the pack's ``eva_clip``
  factory (the custom CLIP, both towers, ``torch.save``d as published).
* **XLabs IP-Adapter for Flux** (x-flux-comfyui): ``ip_adapter.safetensors`` from the pack's
  ``ImageProjModel`` (16 tokens) and 19 ``IPProcessor`` (its loader's fixed count), and the
  CLIP ViT-L/14 its loader reads with ``transformers`` (the whole ``CLIPModel`` of the
  published ``model.safetensors``, from the pack's own config).
"""

from __future__ import annotations

import importlib
import os
import re
import sys

PACKS_DIR: str | None = None  # the folder of pack checkouts (synth.py --custom-nodes)

LIVEPORTRAIT = "ComfyUI-LivePortraitKJ"
# arch -> (module of liveportrait/modules, class, models.yaml key)
LIVEPORTRAIT_PARTS = {
    "liveportrait-appearance": (
        "appearance_feature_extractor",
        "AppearanceFeatureExtractor",
        "appearance_feature_extractor_params",
    ),
    "liveportrait-motion": ("motion_extractor", "MotionExtractor", "motion_extractor_params"),
    "liveportrait-warping": ("warping_network", "WarpingNetwork", "warping_module_params"),
    "liveportrait-spade": ("spade_generator", "SPADEDecoder", "spade_generator_params"),
}
# the stitching file: loader prefix -> models.yaml entry
STITCHING = {"retarget_shoulder": "stitching", "retarget_mouth": "lip", "retarget_eye": "eye"}
LIVEPORTRAIT_ARCHES = (*LIVEPORTRAIT_PARTS, "liveportrait-stitching")


REACTOR = "ComfyUI-ReActor"
# face detection, parsing and restoration nets (ReActor; RetinaFace and BiSeNet also PuLID's)
FACE_NET_ARCHES = ("retinaface-resnet50", "parsenet", "gfpgan-v1.4", "bisenet")
XFLUX = "x-flux-comfyui"
XFLUX_ARCHES = ("xlabs-flux-ip-adapter", "clip-vit-l14")
XFLUX_TOKENS, XFLUX_BLOCKS = 16, 19  # the v2 adapter's image tokens; the loader's processors
PULID = "ComfyUI_PuLID_Flux_ll"
PULID_ARCHES = ("pulid-flux", "eva02-clip-l-336")
PULID_CA = 19 // 2 + 1 + 38 // 4 + 1  # the pack's count: Flux dev's blocks at intervals 2, 4
EVA_CLIP = "EVA02-CLIP-L-14-336"
# ArcFace's five-point template (eyes, nose, mouth corners) on 112 pixels, as offsets from the
# centre in units of the face's size: where the synthetic RetinaFace puts its key points
FIVE_POINTS = (
    (-0.158, -0.038),
    (0.157, -0.040),
    (0.000, 0.140),
    (-0.129, 0.325),
    (0.132, 0.324),
)
LANDMARK_VARIANCE = 0.1  # RetinaFace's cfg["variance"][0]: key points decode as prior + v * out
# the NSFW filter: AdamCodd/vit-base-nsfw-detector's layout (ViT-B/16 at 384 pixels, two labels)
NSFW_LABELS = {0: "nsfw", 1: "sfw"}
NSFW_ARCHES = ("vit-nsfw-detector", "vit-nsfw-detector-config", "vit-nsfw-detector-preprocessor")
NSFW_IMAGE = 384


def pack_dir(name: str) -> str:
    """The pack's checkout, importable (its folder on ``sys.path``)."""
    if PACKS_DIR is None:
        raise ValueError(f"built from the {name} pack's classes: give --custom-nodes DIR")
    path = os.path.join(PACKS_DIR, name)
    if not os.path.isdir(path):
        raise ValueError(f"{path} is not a checkout of {name}")
    if path not in sys.path:
        sys.path.insert(0, path)
    return path


def _liveportrait_params() -> dict:
    import yaml

    config = os.path.join(pack_dir(LIVEPORTRAIT), "liveportrait", "config", "models.yaml")
    with open(config) as f:
        return yaml.safe_load(f)["model_params"]


def liveportrait(arch: str):
    """State-dict builder of one LivePortrait file, from the pack's class and configuration."""

    def build(device, dtype):
        params = _liveportrait_params()
        if arch == "liveportrait-stitching":
            cls = _class("stitching_retargeting_network", "StitchingRetargetingNetwork")
            config = params["stitching_retargeting_module_params"]
            sd = {}
            for prefix, key in STITCHING.items():
                net = cls(**config[key]).to(device=device, dtype=dtype)
                sd.update({f"{prefix}_module.{k}": v for k, v in net.state_dict().items()})
            return sd
        module, name, key = LIVEPORTRAIT_PARTS[arch]
        return _class(module, name)(**params[key]).to(device=device, dtype=dtype).state_dict()

    return build


def _class(module: str, name: str):
    pack_dir(LIVEPORTRAIT)
    return getattr(importlib.import_module(f"liveportrait.modules.{module}"), name)


def verify_liveportrait(arch: str, build) -> str:
    """Load the built tensors the way the pack's loader does (strict ``load_state_dict`` into
    its class; the stitching file split by prefix)."""
    import torch

    sd = build("cpu", torch.float32)
    params = _liveportrait_params()
    if arch == "liveportrait-stitching":
        cls = _class("stitching_retargeting_network", "StitchingRetargetingNetwork")
        config = params["stitching_retargeting_module_params"]
        for prefix, key in STITCHING.items():
            part = {
                k.replace(prefix + "_module.", ""): v for k, v in sd.items() if k.startswith(prefix)
            }
            cls(**config[key]).load_state_dict(part)
        return f"3 stitching networks load strictly ({len(sd)} tensors)"
    module, name, key = LIVEPORTRAIT_PARTS[arch]
    _class(module, name)(**params[key]).load_state_dict(sd)
    count = sum(v.numel() for v in sd.values())
    return f"{name} loads strictly ({len(sd)} tensors, {count / 1e6:.1f}M values)"


# --- ReActor


def _reactor(module: str, name: str):
    pack_dir(REACTOR)
    return getattr(importlib.import_module(module), name)


def _facexlib(module: str, name: str):
    """facexlib's class (PuLID's loader), else ReActor's copy of it (``r_facelib``)."""
    try:
        return getattr(importlib.import_module(f"facexlib.{module}"), name)
    except ImportError:
        return _reactor(f"r_facelib.{module}", name)


def _face_net(arch: str):
    if arch == "retinaface-resnet50":
        cls = _facexlib("detection.retinaface", "RetinaFace")
        return cls(network_name="resnet50", half=False)
    if arch == "bisenet":
        return _facexlib("parsing.bisenet", "BiSeNet")(num_class=19)
    if arch == "parsenet":
        cls = _reactor("r_facelib.parsing.parsenet", "ParseNet")
        return cls(in_size=512, out_size=512, parsing_ch=19)
    # GFPGANv1Clean loads the state dict it is given at the end of __init__: a subclass that
    # skips that builds the same modules empty
    cls = _reactor("r_chainner.archs.face.gfpganv1_clean_arch", "GFPGANv1Clean")

    class Empty(cls):
        def load_state_dict(self, *args, **kwargs):
            return None

    return Empty({})


def face_net(arch: str):
    """State-dict builder of a face net (``torch.save``d), from the class its loader builds."""

    def build(device, dtype):
        import torch

        with torch.device("cpu"):
            net = _face_net(arch)
        return {k: v.to(device=device, dtype=dtype) for k, v in net.state_dict().items()}

    if arch == "retinaface-resnet50":
        build.finish = retinaface_heads
    return build


def retinaface_heads(sd: dict) -> dict:
    """Heads after the random fill: faces on the coarsest level's 512-pixel anchor only."""
    import torch

    levels = sorted({k.split(".")[1] for k in sd if k.startswith("ClassHead.")})
    for level in levels:
        for head in ("ClassHead", "BboxHead", "LandmarkHead"):
            sd[f"{head}.{level}.conv1x1.weight"].zero_()
        cls_bias = torch.tensor([8.0, -8.0, 8.0, -8.0])  # (background, face) per anchor
        if level == levels[-1]:
            cls_bias = torch.tensor([8.0, -8.0, -8.0, 8.0])  # anchor 1 (512 px) is a face
        sd[f"ClassHead.{level}.conv1x1.bias"].copy_(cls_bias)
        sd[f"BboxHead.{level}.conv1x1.bias"].zero_()
        points = torch.tensor(FIVE_POINTS).reshape(-1) / LANDMARK_VARIANCE
        sd[f"LandmarkHead.{level}.conv1x1.bias"].copy_(points.repeat(2))
    return sd


def verify_face_net(arch: str, build) -> str:
    """Load the built tensors as ReActor's loader does (strict into its class; GFPGAN through
    ``r_chainner.model_loading``, which picks the class by the keys); RetinaFace must then find
    a face with five distinct key points in an image."""
    import numpy as np
    import torch

    sd = build("cpu", torch.float32)
    if getattr(build, "finish", None):
        sd = build.finish(sd)
    if arch == "gfpgan-v1.4":
        load = _reactor("r_chainner.model_loading", "load_state_dict")
        net = load(sd)  # GFPGANv1Clean(sd) loads it strictly
        return f"r_chainner loads it as {type(net).__name__} ({len(sd)} tensors)"
    net = _face_net(arch)
    net.load_state_dict(sd, strict=True)
    if arch != "retinaface-resnet50":
        return f"{type(net).__name__} loads strictly ({len(sd)} tensors)"
    net.eval()
    image = np.random.default_rng(0).integers(0, 256, (640, 640, 3), dtype=np.uint8)
    with torch.no_grad():
        faces = net.detect_faces(image, conf_threshold=0.97)
    if len(faces) == 0:
        raise ValueError("the synthetic RetinaFace reports no face")
    points = faces[0][5:15].reshape(5, 2)
    if len({tuple(np.round(p)) for p in points}) != 5:
        raise ValueError(f"key points not distinct: {points.tolist()}")
    return f"RetinaFace loads strictly; {len(faces)} faces in a 640-pixel image, 5 key points"


def nsfw_config() -> dict:
    from transformers import ViTConfig

    config = ViTConfig(image_size=NSFW_IMAGE, patch_size=16)
    config.architectures = ["ViTForImageClassification"]
    config.id2label = dict(NSFW_LABELS)
    config.label2id = {v: k for k, v in NSFW_LABELS.items()}
    return config


def write_nsfw(arch: str, path: str) -> None:
    """``config.json`` or ``preprocessor_config.json`` of the NSFW filter (the weights are a
    state dict: ``nsfw_detector``)."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    if arch == "vit-nsfw-detector-config":
        nsfw_config().to_json_file(path)
        return
    from transformers import ViTImageProcessor

    size = {"height": NSFW_IMAGE, "width": NSFW_IMAGE}
    ViTImageProcessor(size=size).to_json_file(path)


def nsfw_detector():
    """State-dict builder of ``model.safetensors`` (``ViTForImageClassification``)."""

    def build(device, dtype):
        import torch
        from transformers import ViTForImageClassification

        with torch.device("meta"):
            net = ViTForImageClassification(nsfw_config())
        return {
            k: torch.empty(v.shape, device=device, dtype=dtype) for k, v in net.state_dict().items()
        }

    def finish(sd: dict) -> dict:
        sd["classifier.bias"].copy_(sd["classifier.bias"].new_tensor([-4.0, 4.0]))
        return sd

    build.finish = finish
    return build


def verify_nsfw(build) -> str:
    """The three files as ReActor reads them: ``pipeline("image-classification", folder)``
    must load them and call a picture "sfw"."""
    import tempfile

    import torch
    from PIL import Image
    from safetensors.torch import save_file
    from transformers import pipeline

    with tempfile.TemporaryDirectory() as folder:
        write_nsfw("vit-nsfw-detector-config", os.path.join(folder, "config.json"))
        write_nsfw(
            "vit-nsfw-detector-preprocessor", os.path.join(folder, "preprocessor_config.json")
        )
        sd = build.finish({k: v.normal_(0.0, 0.02) for k, v in build("cpu", torch.float32).items()})
        save_file(sd, os.path.join(folder, "model.safetensors"))
        result = pipeline("image-classification", model=folder)(Image.new("RGB", (96, 96), "gray"))
    if result[0]["label"] != "sfw":
        raise ValueError(f"the classifier says {result[0]}")
    return f"transformers' pipeline loads it: {result[0]['label']} {result[0]['score']:.3f}"


# --- PuLID for Flux


def _pack_module(pack: str, name: str):
    """Module (or subpackage) ``name`` of a pack's checkout, its relative imports working: the
    checkout becomes a package made here, without running its ``__init__`` (which imports the
    nodes, ComfyUI and the pack's requirements with them; and a folder name such as
    ``x-flux-comfyui`` is no identifier)."""
    import types

    package = "_ryla_" + re.sub(r"\W", "_", pack)
    if package not in sys.modules:
        module = types.ModuleType(package)
        module.__path__ = [pack_dir(pack)]
        sys.modules[package] = module
    return importlib.import_module(f"{package}.{name}")


def _pulid_net(arch: str):
    import torch

    if arch == "pulid-flux":
        encoders = _pack_module(PULID, "encoders_flux")

        class PulidFlux(torch.nn.Module):  # the pack's PulidFluxModel's modules, by name
            def __init__(self):
                super().__init__()
                self.pulid_encoder = encoders.IDFormer()
                self.pulid_ca = torch.nn.ModuleList(
                    encoders.PerceiverAttentionCA() for _ in range(PULID_CA)
                )

        return PulidFlux()
    factory = _pack_module(PULID, "eva_clip").factory
    return factory.create_model(EVA_CLIP, force_custom_clip=True)


def pulid(arch: str):
    """State-dict builder of PuLID's model or its EVA CLIP, from the pack's classes."""

    def build(device, dtype):
        import torch

        # EVA's init computes values (.item()), so it is built on the CPU, not on meta
        with torch.device("meta" if arch == "pulid-flux" else "cpu"):
            net = _pulid_net(arch)
        return {
            k: torch.empty(
                v.shape, device=device, dtype=dtype if v.is_floating_point() else v.dtype
            )
            for k, v in net.state_dict().items()
        }

    return build


def verify_pulid(arch: str, build) -> str:
    """Load the tensors as the pack's loaders do, but strictly: ``PulidFluxModel`` by module
    prefix; EVA CLIP through the factory's ``load_checkpoint`` (which is not strict itself, so
    missing or unexpected keys are checked here)."""
    import tempfile

    import torch

    sd = build("cpu", torch.float32)
    net = _pulid_net(arch)
    if arch == "pulid-flux":
        for module in ("pulid_encoder", "pulid_ca"):
            part = {k[len(module) + 1 :]: v for k, v in sd.items() if k.startswith(module + ".")}
            getattr(net, module).load_state_dict(part, strict=True)
        count = sum(v.numel() for v in sd.values())
        return f"PulidFluxModel's modules load strictly ({PULID_CA} CA, {count / 1e6:.0f}M values)"
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "eva.pt")
        torch.save(sd, path)
        found = _pack_module(PULID, "eva_clip").factory.load_checkpoint(net, path, strict=False)
    # the factory drops the rotary tables from any file (os.environ["RoPE"]) and keeps the
    # ones the model computed: only those may be missing
    missing = [k for k in found.missing_keys if not k.endswith(("freqs_cos", "freqs_sin"))]
    if missing or found.unexpected_keys:
        raise ValueError(f"missing {missing[:3]}, unexpected {found.unexpected_keys[:3]}")
    return f"{EVA_CLIP} takes every tensor through the pack's load_checkpoint ({len(sd)} tensors)"


# --- XLabs IP-Adapter for Flux


def _xflux_net(arch: str):
    import torch

    if arch == "clip-vit-l14":
        from transformers import CLIPConfig, CLIPModel

        config = CLIPConfig.from_dict(_pack_module(XFLUX, "clip").json_config)
        return CLIPModel(config)
    layers = _pack_module(XFLUX, "layers")
    net = torch.nn.Module()
    net.ip_adapter_proj_model = layers.ImageProjModel(4096, 768, XFLUX_TOKENS)
    net.double_blocks = torch.nn.ModuleList(
        torch.nn.ModuleDict({"processor": layers.IPProcessor(4096, 3072)})
        for _ in range(XFLUX_BLOCKS)
    )
    return net


def xflux(arch: str):
    """State-dict builder of the XLabs adapter or its CLIP, from the pack's classes."""

    def build(device, dtype):
        import torch

        with torch.device("meta"):
            net = _xflux_net(arch)
        return {
            k: torch.empty(v.shape, device=device, dtype=dtype) for k, v in net.state_dict().items()
        }

    return build


def verify_xflux(arch: str, build) -> str:
    """As the pack's ``LoadFluxIPAdapter`` loads them: the adapter split by prefix into its
    ``ImageProjModel`` and 19 ``IPProcessor`` (strict); the CLIP through ``FluxClipViT``
    (``CLIPVisionModelWithProjection.from_pretrained`` with the config it writes)."""
    import tempfile

    import torch
    from safetensors.torch import save_file

    sd = {k: v.normal_(0.0, 0.02) for k, v in build("cpu", torch.float32).items()}
    if arch == "clip-vit-l14":
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.safetensors")
            save_file(sd, path)
            clip = _pack_module(XFLUX, "clip").FluxClipViT(path)
            out = clip(torch.rand(1, 224, 224, 3) * 255)
        return f"FluxClipViT loads it: image embeds {tuple(out.shape)}"
    layers = _pack_module(XFLUX, "layers")
    proj = {k.split(".", 1)[1]: v for k, v in sd.items() if k.startswith("ip_adapter_proj_model.")}
    blocks = {
        k[len("double_blocks.") :].replace(".processor.", "."): v
        for k, v in sd.items()
        if k.startswith("double_blocks.")
    }
    tokens = 4 if sd["ip_adapter_proj_model.proj.weight"].shape[0] // 4096 == 4 else 16
    layers.ImageProjModel(4096, 768, tokens).load_state_dict(proj)
    processors = torch.nn.ModuleList(layers.IPProcessor(4096, 3072) for _ in range(XFLUX_BLOCKS))
    processors.load_state_dict(blocks)
    return f"ImageProjModel ({tokens} tokens) and {XFLUX_BLOCKS} IPProcessor load strictly"


PACK_ARCHES = (
    *LIVEPORTRAIT_ARCHES,
    *FACE_NET_ARCHES,
    *PULID_ARCHES,
    *XFLUX_ARCHES,
    *NSFW_ARCHES,
)


def verify(arch: str, build) -> str:
    """``synth.py --verify`` for an architecture of this module (one of ``PACK_ARCHES``)."""
    if arch in LIVEPORTRAIT_ARCHES:
        return verify_liveportrait(arch, build)
    if arch in FACE_NET_ARCHES:
        return verify_face_net(arch, build)
    if arch in PULID_ARCHES:
        return verify_pulid(arch, build)
    if arch in XFLUX_ARCHES:
        return verify_xflux(arch, build)
    return verify_nsfw(nsfw_detector())  # the three files are checked together
