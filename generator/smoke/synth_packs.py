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
"""

from __future__ import annotations

import importlib
import os
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
