"""Random-weight model files of real architectures, built from ComfyUI's own classes.

Runs INSIDE ComfyUI's Python (``python synth.py --comfy-dir DIR JOBS.json``): it imports
``comfy.*`` at run time from the ComfyUI tree named on the command line; ryla-gen ships no
ComfyUI code. Each job ``{"arch", "path", "dtype"?, "seed"?}`` becomes one file whose
tensor names, shapes and dtypes are those ComfyUI's loaders detect for that architecture (the
models are instantiated with ComfyUI's classes and configs, or spandrel's for upscale models,
weights left uninitialised, then filled with scaled Gaussian noise on the build device;
``--device cuda`` on a GPU). A ``.safetensors`` path is written as safetensors, any other
(``.pth``) as a ``torch.save``'d dict of tensors, which ``comfy.utils.load_torch_file`` reads
with ``weights_only``.

``--verify`` builds every architecture (or each ``--arch``) on the ``meta`` device (no memory)
and runs ComfyUI's own detection on the result: the architecture and config it detects must be
the one built. The ESRGAN upscaler is small (67 MB): it is built for real on the CPU, written,
and loaded and run by ComfyUI's own upscale nodes. fp8 files are written as the published ones
(``finish_fp8``: scaled-fp8 markers where the published file has them) and checked for what
ComfyUI keeps on the GPU: scaled text encoders loaded by ComfyUI's own loader must keep their
Linear layers in fp8, plain fp8 diffusion models must stay fp8 by ComfyUI's dtype choice on a
GPU with fp8 compute, a checkpoint's plain fp8 T5 must be built in fp8.

Prints one JSON line per file: ``{"path", "arch", "seconds", "bytes"}`` or ``{"path", "error"}``.
Stand-alone on purpose: it imports nothing of ``generator`` (it runs in ComfyUI's interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback

try:  # a script inside ComfyUI's Python (its folder is on the path), or generator.smoke.synth
    import synth_faces
    import synth_packs
except ImportError:
    from . import synth_faces, synth_packs

DTYPES = ("float32", "float16", "bfloat16", "float8_e4m3fn")

FLUX = {
    "image_model": "flux",
    "axes_dim": [16, 56, 56],
    "num_heads": 24,
    "mlp_ratio": 4.0,
    "theta": 10000,
    "out_channels": 16,
    "qkv_bias": True,
    "txt_ids_dims": [],
    "in_channels": 16,
    "hidden_size": 3072,
    "context_in_dim": 4096,
    "patch_size": 2,
    "vec_in_dim": 768,
    "depth": 19,
    "depth_single_blocks": 38,
    "yak_mlp": False,
}
FLUX2_KLEIN_4B = {  # model_detection's Flux 2 branch for the published 4B file (0.9.2 on)
    "image_model": "flux2",
    "axes_dim": [32, 32, 32, 32],
    "num_heads": 24,  # ComfyUI < 0.9.2 fixes 48 (Flux 2 dev's); later: hidden_size // 128
    "mlp_ratio": 3.0,
    "theta": 2000,
    "out_channels": 128,
    "global_modulation": True,
    "mlp_silu_act": True,
    "qkv_bias": False,
    "ops_bias": False,
    "default_ref_method": "index",
    "ref_index_scale": 10.0,
    "txt_ids_dims": [3],
    "in_channels": 128,
    "hidden_size": 3072,
    "context_in_dim": 7680,  # Qwen 3 4B's layers 9, 18 and 27 side by side (3 x 2560)
    "patch_size": 1,
    "vec_in_dim": None,
    "depth": 5,
    "depth_single_blocks": 20,
    "guidance_embed": False,
    "yak_mlp": False,
    "txt_norm": False,
}
WAN21_13B = {
    "image_model": "wan2.1",
    "dim": 1536,
    "out_dim": 16,
    "num_heads": 12,
    "ffn_dim": 8960,
    "num_layers": 30,
    "patch_size": (1, 2, 2),
    "freq_dim": 256,
    "window_size": (-1, -1),
    "qk_norm": True,
    "cross_attn_norm": True,
    "eps": 1e-6,
    "in_dim": 16,
    "model_type": "t2v",
}
Z_IMAGE = {  # model_detection's Lumina 2 branch at dim 3840
    "image_model": "lumina2",
    "patch_size": 2,
    "in_channels": 16,
    "dim": 3840,
    "cap_feat_dim": 2560,
    "n_layers": 30,
    "qk_norm": True,
    "n_heads": 30,
    "n_kv_heads": 30,
    "axes_dims": [32, 48, 48],
    "axes_lens": [1536, 512, 512],
    "rope_theta": 256.0,
    "ffn_dim_multiplier": 8.0 / 3.0,
    "z_image_modulation": True,
    "time_scale": 1000.0,
    "pad_tokens_multiple": 32,
}
QWEN_IMAGE = {"image_model": "qwen_image", "in_channels": 64, "num_layers": 60}
WAN21_I2V_14B = {
    **WAN21_13B,
    "dim": 5120,
    "num_heads": 40,
    "ffn_dim": 13824,
    "num_layers": 40,
    "in_dim": 36,
    "model_type": "i2v",
}
HUNYUAN15 = {  # model_detection's Hunyuan Video branch, 1.5 (8.3B, t2v and i2v alike)
    "image_model": "hunyuan_video",
    "in_channels": 65,
    "patch_size": [1, 1, 1],
    "out_channels": 32,
    "vec_in_dim": None,
    "axes_dim": [16, 56, 56],
    "meanflow": False,
    "context_in_dim": 3584,
    "hidden_size": 2048,
    "mlp_ratio": 4.0,
    "num_heads": 16,
    "depth": 54,
    "depth_single_blocks": 0,
    "theta": 256,
    "qkv_bias": True,
    "byt5": True,
    "guidance_embed": False,
    "use_cond_type_embedding": True,
    "vision_in_dim": 1152,
    "meanflow_sum": True,
}
HUNYUAN15_VAE = {  # comfy.sd.VAE's branch for a 32-channel conv3d decoder
    "block_out_channels": [128, 256, 512, 1024, 1024],
    "in_channels": 3,
    "out_channels": 3,
    "num_res_blocks": 2,
    "ffactor_spatial": 16,
    "ffactor_temporal": 4,
    "downsample_match_channel": True,
    "upsample_match_channel": True,
    "z_channels": 32,
}
UNET_COMMON = {
    "use_checkpoint": False,
    "image_size": 32,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "in_channels": 4,
    "model_channels": 320,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}
SDXL = {
    **UNET_COMMON,
    "num_classes": "sequential",
    "adm_in_channels": 2816,
    "num_res_blocks": [2, 2, 2],
    "transformer_depth": [0, 0, 2, 2, 10, 10],
    "channel_mult": [1, 2, 4],
    "transformer_depth_middle": 10,
    "use_linear_in_transformer": True,
    "context_dim": 2048,
    "num_head_channels": 64,
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
}
SD15 = {
    **UNET_COMMON,
    "adm_in_channels": None,
    "num_res_blocks": [2, 2, 2, 2],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth_middle": 1,
    "use_linear_in_transformer": False,
    "context_dim": 768,
    "num_heads": 8,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
}
SVD = {
    **UNET_COMMON,
    "in_channels": 8,
    "num_classes": "sequential",
    "adm_in_channels": 768,
    "num_res_blocks": [2, 2, 2, 2],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth_middle": 1,
    "use_linear_in_transformer": True,
    "context_dim": 1024,
    "num_head_channels": 64,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    # what ComfyUI's detection reads off a video UNet (model_detection.detect_unet_config)
    "extra_ff_mix_layer": True,
    "use_spatial_context": True,
    "merge_strategy": "learned_with_images",
    "merge_factor": 0.0,
    "video_kernel_size": [3, 1, 1],
    "use_temporal_resblock": True,
    "use_temporal_attention": True,
    "disable_temporal_crossattention": False,
}
KL_VAE = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
}
FLUX2_VAE = {  # comfy.sd.VAE's KL branch: 32 latent channels, batch-normed 2x2 patches
    **KL_VAE,
    "z_channels": 32,
    "batch_norm_latent": True,
}
WAN21_VAE = {
    "dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
}
# Wan 2.2 I2V A14B expert (high- and low-noise alike): Wan 2.1's 14B at in_dim 36 without the
# CLIP-vision projection (img_emb), which ComfyUI's detection names a "t2v" model of in_dim 36.
WAN22_I2V_A14B = {**WAN21_I2V_14B, "model_type": "t2v"}
# Smaller sizes of the families whose detection reads every dimension from the tensors (Wan:
# width from head.modulation, heads = width // 128, FFN width and depth counted), for a CPU run
# of the same graph (--tiny): the nodes, conditioning, latent shapes and decode are the real ones.
TINY = {
    "wan2.1": {"dim": 512, "num_heads": 4, "ffn_dim": 1024, "num_layers": 2},
    # Flux keeps its width: adapters that patch it (PuLID, XLabs IP-Adapter) are built for 3072
    "flux": {"depth": 2, "depth_single_blocks": 4},
}


def tiny_config(config: dict | None) -> dict | None:
    """``config`` at its family's tiny size; None when the family has none."""
    tiny = TINY.get((config or {}).get("image_model", ""))
    if tiny is None:
        return None
    return {**config, **tiny, **({"vace_layers": 1} if "vace_layers" in config else {})}


LORA_RANK = 16
# Text encoders published as ComfyUI scaled fp8 (umt5_xxl_fp8_e4m3fn_scaled,
# qwen_2.5_vl_7b_fp8_scaled): a ``scaled_fp8`` marker (empty float8_e4m3fn tensor) and a float32
# scalar ``<layer>.scale_weight`` per Linear layer (168 in UMT5-XXL, 358 in Qwen2.5-VL 7B with
# its vision tower). ComfyUI 0.8.0 turns them into per-layer ``comfy_quant`` configs
# (utils.convert_old_quants) and builds the encoder with MixedPrecisionOps: those layers stay
# fp8 on the GPU. Without the marker, it builds the encoder in the dtype of its final norm.
SCALED_FP8 = ("umt5-xxl", "qwen25-vl-7b")
SCALED_FP8_MARKER = "scaled_fp8"
TE_CLIP_TYPES = {"umt5-xxl": "WAN", "qwen25-vl-7b": "QWEN_IMAGE"}  # the loader's type for each


# --- model parts: each returns a state dict (tensors on the build device, weights uninitialised)


# Config values that mean "this feature is off": an older ComfyUI, whose detection does not name
# the key, builds the same model without it (0.3.66's FluxParams takes no txt_ids_dims, yak_mlp).
NEUTRAL_VALUES = ([], (), False, None)


def _unknown_keyword(error: TypeError) -> str | None:
    match = re.search(r"unexpected keyword argument '(\w+)'", str(error))
    return match.group(1) if match else None


def _unet_model(config: dict, device, dtype):
    """ComfyUI's model for a detected-style config. A key this ComfyUI does not know is left out
    when its value is neutral (an older version's model is the same); any other is an error."""
    import comfy.model_detection

    config = dict(config)
    while True:
        model_config = comfy.model_detection.model_config_from_unet_config(dict(config))
        if model_config is None:
            raise ValueError(f"ComfyUI knows no model for config {config}")
        model_config.set_inference_dtype(dtype, None)
        try:
            return model_config, model_config.get_model({}, device=device)
        except TypeError as error:
            key = _unknown_keyword(error)
            if key not in config or not any(config[key] == v for v in NEUTRAL_VALUES):
                raise
            del config[key]


def _clip_sd(model_config, device, dtype) -> dict:
    target = model_config.clip_target()
    clip = target.clip(**{**target.params, "device": device, "dtype": dtype, "model_options": {}})
    return clip.state_dict()  # BaseModel.state_dict_for_saving puts the checkpoint's prefixes


def _kl_vae_sd(device, z_channels: int = 4, quant_conv: bool = True) -> dict:
    import torch
    from comfy.ldm.models.autoencoder import AutoencoderKL, AutoencodingEngine

    config = {**KL_VAE, "z_channels": z_channels}
    with torch.device(device):
        if quant_conv:
            vae = AutoencoderKL(ddconfig=config, embed_dim=z_channels)
        else:
            vae = AutoencodingEngine(
                regularizer_config={
                    "target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"
                },
                encoder_config={
                    "target": "comfy.ldm.modules.diffusionmodules.model.Encoder",
                    "params": config,
                },
                decoder_config={
                    "target": "comfy.ldm.modules.diffusionmodules.model.Decoder",
                    "params": config,
                },
            )
    return vae.state_dict()


def _flux2_vae_sd(device) -> dict:
    """Flux 2's VAE in the published layout: its quant convs inside encoder and decoder, the
    latent batch norm's running statistics (no batch counter) under ``bn.``."""
    import torch
    from comfy.ldm.models.autoencoder import AutoencoderKL

    with torch.device(device):
        sd = AutoencoderKL(ddconfig=dict(FLUX2_VAE), embed_dim=FLUX2_VAE["z_channels"]).state_dict()
    nested = {"quant_conv.": "encoder.quant_conv.", "post_quant_conv.": "decoder.post_quant_conv."}
    out = {}
    for key, tensor in sd.items():
        if key == "bn.num_batches_tracked":
            continue
        for old, new in nested.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        out[key] = tensor
    return out


def _video_vae_sd(device) -> dict:
    """SVD's VAE: the KL encoder with a temporal decoder (ComfyUI keys on ``mix_factor``)."""
    import torch
    from comfy.ldm.models.autoencoder import AutoencodingEngine

    decoder = {**KL_VAE, "video_kernel_size": [3, 1, 1], "alpha": 0.0}
    with torch.device(device):
        vae = AutoencodingEngine(
            regularizer_config={
                "target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"
            },
            encoder_config={
                "target": "comfy.ldm.modules.diffusionmodules.model.Encoder",
                "params": KL_VAE,
            },
            decoder_config={
                "target": "comfy.ldm.modules.temporal_ae.VideoDecoder",
                "params": decoder,
            },
        )
    return vae.state_dict()


def _clip_vision_sd(config_name: str, device, dtype) -> dict:
    """A CLIP vision tower in the transformers layout ComfyUI's clip_vision loader reads."""
    import json as json_

    import comfy.clip_model
    import comfy.ops
    import torch

    with open(os.path.join("comfy", config_name)) as f:
        config = json_.load(f)
    with torch.device(device):
        model = comfy.clip_model.CLIPVisionModelProjection(
            config, dtype, device, comfy.ops.manual_cast
        )
    return model.state_dict()


def svd_checkpoint():
    """SVD-XT: video UNet, OpenCLIP ViT-H image encoder and the temporal VAE in one file.

    The image encoder is stored in the transformers layout under the checkpoint's OpenCLIP
    prefix (ComfyUI's loader accepts both layouts: clip_vision.convert_to_transformers).
    """

    def build(device, dtype):
        import torch

        _, model = _unet_model(SVD, device, dtype)
        vision = _clip_vision_sd("clip_vision_config_h.json", device, dtype)
        vae = {k: v.to(torch.float16) for k, v in _video_vae_sd(device).items()}
        return model.state_dict_for_saving(None, vae, vision)

    return build


def checkpoint(unet: dict, vae_z: int, quant_conv: bool, *, te_dtype=None, vae_dtype=None):
    def build(device, dtype):
        model_config, model = _unet_model(unet, device, dtype)
        clip = _clip_sd(model_config, device, _torch_dtype(te_dtype) if te_dtype else dtype)
        vae = _kl_vae_sd(device, vae_z, quant_conv)
        if vae_dtype is not None:
            vae = {k: v.to(_torch_dtype(vae_dtype)) for k, v in vae.items()}
        return model.state_dict_for_saving(clip, vae)

    return build


def diffusion_model(unet: dict, extra: tuple[str, ...] = ()):
    """The diffusion model alone; ``extra``: empty marker tensors the published file carries."""

    def build(device, dtype, config: dict = unet):
        import torch

        _, model = _unet_model(config, device, dtype)
        sd = model.diffusion_model.state_dict()
        sd.update({key: torch.empty(0, device=device) for key in extra})
        return sd

    build.unet_config = unet  # what ComfyUI's detection must find again (--verify)
    return build


def text_encoder(kind: str):
    def build(device, dtype):
        import torch

        if kind == "clip-l":
            from comfy.sd1_clip import SDClipModel

            model = SDClipModel(device=device, dtype=dtype)
        elif kind == "t5-xxl":
            from comfy.text_encoders.sd3_clip import T5XXLModel

            model = T5XXLModel(device=device, dtype=dtype)
        elif kind == "byt5-small-glyph":
            import comfy.text_encoders.t5  # noqa: F401 - ByT5SmallModel reads it off the package
            from comfy.text_encoders.hunyuan_image import ByT5SmallModel

            model = ByT5SmallModel(device=device, dtype=dtype)
        elif kind == "qwen3-4b":
            from comfy.text_encoders.z_image import Qwen3_4BModel

            model = Qwen3_4BModel(device=device, dtype=dtype)
        elif kind == "qwen25-vl-7b":
            from comfy.text_encoders.qwen_image import Qwen25_7BVLIModel

            model = Qwen25_7BVLIModel(device=device, dtype=dtype)
        else:
            from comfy.text_encoders.wan import UMT5XXlModel

            model = UMT5XXlModel(device=device, dtype=dtype)
        with torch.device(device):
            sd = model.transformer.state_dict()
        if kind == "umt5-xxl":  # Wan's tokenizer travels inside the file, as published
            sd["spiece_model"] = torch.frombuffer(bytearray(_spiece_model()), dtype=torch.uint8)
        if kind in SCALED_FP8:
            linears = [
                name
                for name, module in model.transformer.named_modules()
                if isinstance(module, torch.nn.Linear) and f"{name}.weight" in sd
            ]
            sd.update(_scaled_fp8_markers(linears, device))
        return sd

    return build


def _scaled_fp8_markers(layers: list[str], device) -> dict:
    """ComfyUI's scaled-fp8 layout: the marker and one float32 scalar scale per Linear layer.

    The scales are placeholders here; ``finish_fp8`` sets each to its weight's absmax / 448.
    """
    import torch

    out = {SCALED_FP8_MARKER: torch.empty(0, dtype=torch.float8_e4m3fn, device=device)}
    for layer in layers:
        out[f"{layer}.scale_weight"] = torch.ones((), dtype=torch.float32, device=device)
    return out


def _spiece_model() -> bytes:
    """A small SentencePiece model with UMT5's special ids (pad 0, end 1, unknown 2)."""
    import io

    import sentencepiece

    words = "a the of photo portrait red fox snow city night light walking market neon".split()
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(8)) for i in range(400)]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=24,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    return model.getvalue()


def vae(kind: str):
    def build(device, dtype):
        import torch

        if kind == "sd15-vae":
            sd = _kl_vae_sd(device, 4, quant_conv=True)
        elif kind == "flux-vae":
            sd = _kl_vae_sd(device, 16, quant_conv=False)
        elif kind == "flux2-vae":
            sd = _flux2_vae_sd(device)
        elif kind == "hunyuan15-vae":
            from comfy.ldm.models.autoencoder import AutoencodingEngine

            part = "comfy.ldm.hunyuan_video.vae_refiner."
            with torch.device(device):
                sd = AutoencodingEngine(
                    regularizer_config={"target": "comfy.ldm.models.autoencoder.EmptyRegularizer"},
                    encoder_config={"target": part + "Encoder", "params": HUNYUAN15_VAE},
                    decoder_config={"target": part + "Decoder", "params": HUNYUAN15_VAE},
                ).state_dict()
        else:  # Wan 2.1's; Qwen-Image's VAE is the same architecture (other weights)
            from comfy.ldm.wan.vae import WanVAE

            with torch.device(device):
                sd = WanVAE(**WAN21_VAE).state_dict()
        return {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}

    return build


def lora(base: str):
    """A rank-16 LoRA over the base model's linear layers, in the kohya/ComfyUI key layout."""

    def build(device, dtype):
        import torch

        _, model = _unet_model(LORA_BASES[base], "meta", dtype)
        out = {}
        for name, module in model.diffusion_model.named_modules():
            weight = getattr(module, "weight", None)
            if weight is None or weight.ndim != 2 or "att" not in name:
                continue
            key = f"diffusion_model.{name}"
            out[f"{key}.lora_down.weight"] = torch.empty(LORA_RANK, weight.shape[1], device=device)
            out[f"{key}.lora_up.weight"] = torch.empty(weight.shape[0], LORA_RANK, device=device)
            out[f"{key}.alpha"] = torch.tensor(float(LORA_RANK), device=device)
        if not out:
            raise ValueError(f"no attention layers found for {base}")
        return {k: v.to(dtype) if v.ndim else v for k, v in out.items()}

    return build


def clip_vision(config_name: str):
    def build(device, dtype):
        return _clip_vision_sd(config_name, device, dtype)

    return build


def esrgan(scale: int, blocks: int, features: int):
    """An ESRGAN (RRDBNet) upscaler in the old-ESRGAN key layout (``model.0``, ``model.1.sub.N``,
    ``model.3`` …), the layout 4x-UltraSharp is published in; spandrel's own class builds it."""

    def build(device, dtype):
        import torch
        from spandrel.architectures.ESRGAN import ESRGAN

        with torch.device(device):
            model = ESRGAN(in_nc=3, out_nc=3, num_filters=features, num_blocks=blocks, scale=scale)
        return {k: v.to(dtype) for k, v in model.state_dict().items()}

    return build


def _controlnet_model(unet: dict, device, dtype):
    """ComfyUI's ControlNet class (what ``comfy.controlnet`` instantiates) for a UNet config."""
    import comfy.cldm.cldm
    import torch

    config = {k: v for k, v in unet.items() if k != "out_channels"}
    with torch.device(device):
        return comfy.cldm.cldm.ControlNet(**config, hint_channels=3, dtype=dtype, device=device)


def _controlnet_diffusers_names(unet: dict, keys) -> dict:
    """ComfyUI key -> diffusers key: the inverse of the renaming ``comfy.controlnet`` applies to
    a diffusers ControlNet (``comfy.utils.unet_to_diffusers`` plus the ControlNet's own parts)."""
    import comfy.utils

    names = {}
    for diffusers, comfy_key in comfy.utils.unet_to_diffusers(unet).items():
        # SDXL's pooled-text + size embedding is diffusers' add_embedding, not class_embedding
        if diffusers.startswith("class_embedding."):
            continue
        names[comfy_key] = diffusers
    hints = sorted({int(k.split(".")[1]) for k in keys if k.startswith("input_hint_block.")})
    for i, index in enumerate(hints):
        if i == 0:
            part = "controlnet_cond_embedding.conv_in"
        elif i == len(hints) - 1:
            part = "controlnet_cond_embedding.conv_out"
        else:
            part = f"controlnet_cond_embedding.blocks.{i - 1}"
        for kind in ("weight", "bias"):
            names[f"input_hint_block.{index}.{kind}"] = f"{part}.{kind}"
    for key in keys:
        if key.startswith("zero_convs."):
            block, kind = key.split(".")[1], key.rsplit(".", 1)[1]
            names[key] = f"controlnet_down_blocks.{block}.{kind}"
        elif key.startswith("middle_block_out.0."):
            names[key] = "controlnet_mid_block." + key.rsplit(".", 1)[1]
    unnamed = sorted(k for k in keys if k not in names)
    if unnamed:
        raise ValueError(f"{len(unnamed)} ControlNet tensors have no diffusers name: {unnamed[0]}")
    return {k: names[k] for k in keys}


def controlnet(unet: dict):
    """A full-size ControlNet in the diffusers layout (``controlnet_cond_embedding.*``,
    ``down_blocks.*``, ``mid_block.*``, ``controlnet_down_blocks.*``, …), as xinsir's SDXL
    ControlNets are published; ComfyUI's loader converts it back (its diffusers path)."""

    def build(device, dtype):
        sd = _controlnet_model(unet, device, dtype).state_dict()
        names = _controlnet_diffusers_names(unet, list(sd))
        return {names[k]: v for k, v in sd.items()}

    return build


CLIP_VISION_CONFIGS = {
    "clip-vision-h": "clip_vision_config_h.json",
    "siglip-vision": "clip_vision_siglip_384.json",
}


LORA_BASES = {
    "flux-lora": {**FLUX, "guidance_embed": True},
    "wan21-1.3b-lora": WAN21_13B,
    "sdxl-lora": SDXL,
    "z-image-lora": Z_IMAGE,
    "qwen-image-lora": QWEN_IMAGE,
}


# --- GGUF diffusion models, laid out as city96's tools write them (ComfyUI-GGUF's convert.py,
# llama-quantize with its lcpp.patch, fix_5d_tensors.py) and ComfyUI-GGUF's loader reads them:
# - metadata general.architecture "wan", general.file_type 16 (Q5_K_S), quantization version 2;
# - tensor names are ComfyUI's Wan state-dict keys without a prefix (blocks.0.self_attn.q.weight);
# - every 2-D weight of the blocks is Q5_K (Q5_K_S has no per-tensor exceptions for image
#   models; each row length, 5120 or 13824, is a multiple of the 256-value K-block);
# - kept out of quantisation (the patch's Wan rule): names with modulation., patch_embedding.,
#   text_embedding., time_projection., time_embedding., img_emb., head. -> F16 matrices;
# - 1-D tensors (norms, biases) and the ``.modulation`` parameters are F32 (convert.py keeps
#   them so; a quantised nn.Parameter could not be used);
# - patch_embedding.weight is 5-D (5120, 36, 1, 2, 2): beyond ggml's 4 dims, so
#   fix_5d_tensors.py appends it as an F32 tensor with its 5 dims; the loader reshapes F32/F16
#   data to the stored dims (a ``comfy.gguf.orig_shape.<name>`` INT32 array overrides them,
#   used by convert.py for re-arranged SDXL rows; Wan files carry none).
# Random quantised blocks: random 5-bit values, one fixed fp16 scale per tensor (sub-block
# scales and mins all 1, min = 15.5 * scale): uniform values centred on 0 with the fan-in
# standard deviation the safetensors builders use, always finite.
GGUF_MODELS = {"wan22-i2v-a14b-gguf": ("wan", WAN22_I2V_A14B)}
GGUF_F16_PARTS = (
    "modulation.",
    "patch_embedding.",
    "text_embedding.",
    "time_projection.",
    "time_embedding.",
    "img_emb.",
    "head.",
)
GGUF_FILE_TYPE_Q5_K_S = 16
Q5_K_BLOCK = (256, 176)  # values, bytes: fp16 d, fp16 dmin, 12 scale bytes, 32 qh, 128 qs


def gguf_plan(config: dict) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, GGML type) of every tensor of the model ``config`` describes, in order."""
    import torch

    _, model = _unet_model(config, "meta", torch.float16)
    plan = []
    for name, tensor in model.diffusion_model.state_dict().items():
        shape = tuple(tensor.shape)
        if len(shape) <= 1 or name.endswith(".modulation"):
            qtype = "F32"
        elif len(shape) > 4:
            qtype = "F32"  # fix_5d_tensors.py
        elif any(part in name for part in GGUF_F16_PARTS):
            qtype = "F16"
        elif shape[-1] % Q5_K_BLOCK[0] == 0:
            qtype = "Q5_K"
        else:
            qtype = "F16"  # llama-quantize's fallback for rows K-blocks cannot cut
        plan.append((name, shape, qtype))
    return plan


def gguf_nbytes(shape: tuple[int, ...], qtype: str) -> int:
    count = 1
    for dim in shape:
        count *= dim
    if qtype == "Q5_K":
        return count // Q5_K_BLOCK[0] * Q5_K_BLOCK[1]
    return count * (4 if qtype == "F32" else 2)


def _q5_k_blocks(shape: tuple[int, ...], rng):
    """Random Q5_K blocks for a weight of ``shape``: values d*q - 15.5*d, q uniform in 0..31."""
    import numpy as np

    count = 1
    for dim in shape:
        count *= dim
    n_blocks = count // Q5_K_BLOCK[0]
    blocks = rng.integers(0, 256, size=(n_blocks, Q5_K_BLOCK[1]), dtype=np.uint8)
    fan_in = shape[-1]
    d = np.float16(fan_in**-0.5 / 9.233)  # std of uniform 0..31 is 9.233
    header = np.zeros(16, dtype=np.uint8)
    header[0:2] = np.frombuffer(np.float16(d).tobytes(), dtype=np.uint8)
    header[2:4] = np.frombuffer(np.float16(15.5 * float(d)).tobytes(), dtype=np.uint8)
    header[4:12] = 1  # 6-bit scales and mins of sub-blocks 0-3: 1, high bits of 4-7: 0
    header[12:16] = 0x11  # low bits of scale and min of sub-blocks 4-7: 1
    blocks[:, :16] = header
    return blocks.reshape(*shape[:-1], -1)


def _dense(name: str, shape: tuple[int, ...], qtype: str, rng):
    import numpy as np

    dtype = np.float32 if qtype == "F32" else np.float16
    if len(shape) == 1:
        return (np.zeros if name.endswith("bias") else np.ones)(shape, dtype=dtype)
    fan_in = max(1, int(np.prod(shape)) // shape[0])
    return (rng.standard_normal(shape, dtype=np.float32) * fan_in**-0.5).astype(dtype)


def write_gguf(arch: str, path: str, config: dict | None = None) -> int:
    """Write ``arch``'s GGUF file (``config``: another size of the same model); tensors count."""
    try:
        import gguf
    except ImportError:
        raise ImportError(
            "the gguf package is not installed in ComfyUI's Python (ComfyUI-GGUF needs it too)"
        ) from None
    import numpy as np

    gguf_arch, default = GGUF_MODELS[arch]
    plan = gguf_plan(config or default)
    writer = gguf.GGUFWriter(path, gguf_arch)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(GGUF_FILE_TYPE_Q5_K_S)
    writer.add_string("ryla_smoke", arch)
    for name, shape, qtype in plan:
        raw = getattr(gguf.GGMLQuantizationType, qtype)
        # the logical shape (a uint8 dtype would make the writer read it as a byte shape)
        np_dtype = np.float16 if qtype == "F16" else np.float32
        writer.add_tensor_info(name, shape, np_dtype, gguf_nbytes(shape, qtype), raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(0)
    for name, shape, qtype in plan:
        if qtype == "Q5_K":
            data = _q5_k_blocks(shape, rng)
        else:
            data = _dense(name, shape, qtype, rng)
        writer.write_tensor_data(data)
    writer.close()
    return len(plan)


def gguf_model(arch: str):
    """Marker builder: ``build_job`` writes these with ``write_gguf``."""

    def build(device, dtype):
        raise TypeError(f"{arch} is written by write_gguf, not built as a state dict")

    build.gguf = arch
    return build


def written(write, arch: str):
    """Marker builder of a file that is not a state dict (``write(arch, path)`` makes it)."""

    def build(device, dtype):
        raise TypeError(f"{arch} is written by {write.__name__}, not built as a state dict")

    build.write = write
    return build


# arch id -> (builder, default dtype)
ARCHES = {
    "sd15-checkpoint": (checkpoint(SD15, 4, True), "float16"),
    "sdxl-checkpoint": (checkpoint(SDXL, 4, True), "float16"),
    "flux-schnell-checkpoint": (
        checkpoint(
            {**FLUX, "guidance_embed": False},
            16,
            False,
            te_dtype="float16",
            vae_dtype="bfloat16",
        ),
        "float8_e4m3fn",
    ),
    "svd-checkpoint": (svd_checkpoint(), "float16"),
    "flux-dev": (diffusion_model({**FLUX, "guidance_embed": True}), "bfloat16"),
    "flux-schnell": (diffusion_model({**FLUX, "guidance_embed": False}), "bfloat16"),
    "wan21-t2v-1.3b": (diffusion_model(WAN21_13B), "float16"),
    "wan21-vace-1.3b": (
        diffusion_model({**WAN21_13B, "model_type": "vace", "vace_in_dim": 96, "vace_layers": 15}),
        "float16",
    ),
    "z-image": (diffusion_model(Z_IMAGE), "bfloat16"),
    "flux2-klein": (diffusion_model(FLUX2_KLEIN_4B), "float8_e4m3fn"),  # scaled: METADATA_FP8
    "qwen-image": (diffusion_model(QWEN_IMAGE), "float8_e4m3fn"),
    "qwen-image-edit": (
        diffusion_model(QWEN_IMAGE, extra=("__index_timestep_zero__",)),  # 2511's marker
        "bfloat16",
    ),
    "wan21-i2v-14b": (diffusion_model(WAN21_I2V_14B), "float8_e4m3fn"),
    "wan22-i2v-a14b-gguf": (gguf_model("wan22-i2v-a14b-gguf"), "float16"),
    "hunyuan15-t2v": (diffusion_model(HUNYUAN15), "float16"),
    "hunyuan15-i2v": (diffusion_model(HUNYUAN15), "float16"),
    "clip-l": (text_encoder("clip-l"), "float16"),
    "t5-xxl": (text_encoder("t5-xxl"), "float16"),
    "umt5-xxl": (text_encoder("umt5-xxl"), "float8_e4m3fn"),
    "qwen3-4b": (text_encoder("qwen3-4b"), "bfloat16"),
    "qwen25-vl-7b": (text_encoder("qwen25-vl-7b"), "float8_e4m3fn"),
    "byt5-small-glyph": (text_encoder("byt5-small-glyph"), "float16"),
    "clip-vision-h": (clip_vision(CLIP_VISION_CONFIGS["clip-vision-h"]), "float16"),
    "siglip-vision": (clip_vision(CLIP_VISION_CONFIGS["siglip-vision"]), "float16"),
    "sd15-vae": (vae("sd15-vae"), "float16"),
    "flux-vae": (vae("flux-vae"), "float32"),
    "flux2-vae": (vae("flux2-vae"), "float32"),
    "wan21-vae": (vae("wan21-vae"), "bfloat16"),
    "qwen-image-vae": (vae("qwen-image-vae"), "bfloat16"),
    "hunyuan15-vae": (vae("hunyuan15-vae"), "float16"),
    "flux-lora": (lora("flux-lora"), "bfloat16"),
    "wan21-1.3b-lora": (lora("wan21-1.3b-lora"), "bfloat16"),
    "sdxl-lora": (lora("sdxl-lora"), "float16"),
    "z-image-lora": (lora("z-image-lora"), "bfloat16"),
    "qwen-image-lora": (lora("qwen-image-lora"), "bfloat16"),
    "esrgan-4x": (esrgan(scale=4, blocks=23, features=64), "float32"),
    "sdxl-controlnet": (controlnet(SDXL), "float16"),
    "instantid-ip-adapter": (synth_faces.instantid_ip_adapter(SDXL), "float32"),
    **{
        arch: (written(synth_faces.write_onnx, arch), "float32") for arch in synth_faces.ONNX_ARCHES
    },
    **{
        arch: (synth_packs.liveportrait(arch), "float32")
        for arch in synth_packs.LIVEPORTRAIT_ARCHES
    },
    **{arch: (synth_packs.face_net(arch), "float32") for arch in synth_packs.FACE_NET_ARCHES},
    "pulid-flux": (synth_packs.pulid("pulid-flux"), "bfloat16"),
    "xlabs-flux-ip-adapter": (synth_packs.xflux("xlabs-flux-ip-adapter"), "bfloat16"),
    "clip-vit-l14": (synth_packs.xflux("clip-vit-l14"), "float32"),
    "eva02-clip-l-336": (synth_packs.pulid("eva02-clip-l-336"), "float16"),
    "vit-nsfw-detector": (synth_packs.nsfw_detector(), "float32"),
    **{
        arch: (written(synth_packs.write_nsfw, arch), "float32")
        for arch in synth_packs.NSFW_ARCHES[1:]
    },
}


# arch -> key prefixes of the matrices its published fp8 file stores as *scaled* fp8: the
# weight in float8_e4m3fn with float32 ``weight_scale`` and ``input_scale`` scalars beside it,
# each layer named in the ``_quantization_metadata`` header (ComfyUI reads it:
# comfy.utils.convert_old_quants -> ``.comfy_quant`` -> mixed-precision ops; comfy_kitchen
# runs them). Black Forest Labs' flux-2-klein-4b-fp8 keeps the block matrices so and the
# rest (img_in, txt_in, time_in, the shared modulations, final_layer, norms) in bf16.
METADATA_FP8 = {"flux2-klein": ("double_blocks.", "single_blocks.")}

# What running an architecture's endpoints needs of ComfyUI (said where --verify fails).
NEEDS = {
    "flux2-klein": (
        "ComfyUI 0.9.2 or later (Flux 2 klein: detection derives the heads from the width, "
        "CLIPLoader type flux2 taps Qwen 3 4B's layers 9/18/27 into a 7680-wide context) "
        "with comfy_kitchen (scaled fp8 layers)"
    ),
}


# --- filling and saving


def _torch_dtype(name):
    import torch

    return getattr(torch, name)


def _compute_dtype(dtype):
    """fp8 weights are built in bf16 (random fill) and cast when saved."""
    import torch

    return torch.bfloat16 if dtype == torch.float8_e4m3fn else dtype


def fill(state_dict: dict, seed: int = 0) -> dict:
    """Noise scaled by fan-in for matrices, ones for norm scales, zeros for biases."""
    import torch

    gen = {}
    out = {}
    for key, tensor in state_dict.items():
        if not tensor.is_floating_point() or tensor.ndim == 0 or tensor.numel() == 0:
            out[key] = tensor
            continue
        real = tensor if tensor.dtype.itemsize > 1 else tensor.to(torch.bfloat16)
        if real.ndim == 1:
            real = real.zero_() if key.endswith(("bias", "running_mean")) else real.fill_(1.0)
        else:
            device = str(real.device)
            if device not in gen:
                gen[device] = torch.Generator(device=real.device).manual_seed(seed)
            fan_in = max(1, real.numel() // real.shape[0])
            real.normal_(0.0, fan_in**-0.5, generator=gen[device])
            if key.endswith("lora_up.weight"):
                real.mul_(0.01)
        out[key] = real.to(tensor.dtype) if real is not tensor else tensor
    return out


def build_job(job: dict, device: str) -> dict:
    arch, path = job["arch"], job["path"]
    started = time.perf_counter()
    builder = ARCHES[arch][0]
    gguf = hasattr(builder, "gguf")
    config = GGUF_MODELS[arch][1] if gguf else getattr(builder, "unet_config", None)
    tiny = tiny_config(config) if job.get("tiny") else None
    if gguf:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        write_gguf(arch, path, tiny)
    elif hasattr(builder, "write"):
        builder.write(arch, path)
    else:
        _build_safetensors(job, device, tiny)
    record = {
        "path": path,
        "arch": arch,
        "seconds": round(time.perf_counter() - started, 2),
        "bytes": os.path.getsize(path),
    }
    if tiny is not None:
        record["tiny"] = {k: tiny[k] for k in TINY[tiny["image_model"]]}
    return record


def _build_safetensors(job: dict, device: str, tiny: dict | None = None) -> None:
    import torch

    arch, path = job["arch"], job["path"]
    builder, default_dtype = ARCHES[arch]
    dtype = _torch_dtype(job.get("dtype") or default_dtype)
    metadata = {"ryla_smoke": arch}
    with torch.inference_mode():
        sized = {"config": tiny} if tiny is not None else {}
        sd = builder(device, _compute_dtype(dtype), **sized)
        sd = fill(sd, job.get("seed", 0))
        if getattr(builder, "finish", None):  # values the random fill must not decide
            sd = builder.finish(sd)
        if arch in METADATA_FP8 and dtype == torch.float8_e4m3fn:
            sd, quantization = metadata_fp8(sd, METADATA_FP8[arch])
            metadata["_quantization_metadata"] = json.dumps(quantization)
        elif dtype != _compute_dtype(dtype):
            sd = finish_fp8(arch, sd, dtype)
        elif SCALED_FP8_MARKER in sd:  # a 16-bit file asked of a scaled-fp8 architecture
            sd = {
                k: v
                for k, v in sd.items()
                if k != SCALED_FP8_MARKER and not k.endswith(".scale_weight")
            }
        sd = {k: v.contiguous().cpu() for k, v in sd.items()}
        if getattr(builder, "nested", False):  # a pickled dict of dicts (InstantID's .bin)
            sd = synth_faces.nest(sd)
    save(sd, path, metadata)
    del sd
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def save(sd: dict, path: str, metadata: dict[str, str]) -> None:
    """safetensors for ``.safetensors``/``.sft`` (ComfyUI picks the reader by extension), else a
    plain ``torch.save``'d dict of tensors (what ``torch.load(weights_only=True)`` accepts)."""
    import torch
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if path.lower().endswith((".safetensors", ".sft")):
        save_file(sd, path, metadata=metadata)
    else:
        torch.save(dict(sd), path)


def metadata_fp8(state_dict: dict, prefixes: tuple[str, ...]) -> tuple[dict, dict]:
    """The matrices under ``prefixes`` as scaled fp8 (see METADATA_FP8); the quantization header."""
    import torch

    fp8 = torch.float8_e4m3fn
    out, layers = {}, {}
    for key, tensor in state_dict.items():
        if not (key.startswith(prefixes) and key.endswith(".weight") and tensor.ndim == 2):
            out[key] = tensor
            continue
        layer = key[: -len(".weight")]
        scale = (tensor.abs().amax().float() / torch.finfo(fp8).max).clamp(min=1e-12)
        out[key] = (tensor.float() / scale).to(fp8)
        out[f"{layer}.weight_scale"] = scale
        out[f"{layer}.input_scale"] = torch.ones((), dtype=torch.float32, device=tensor.device)
        layers[layer] = {"format": "float8_e4m3fn"}
    return out, {"layers": layers}


def fp8_keys(arch: str, tensors: dict[str, int]) -> set[str]:
    """Which tensors the published fp8 file stores in fp8, of ``tensors``: the 16/32-bit
    tensors of the built file (name -> ndim; scalars included) and its marker if any.

    Scaled fp8 (a ``scaled_fp8`` marker): exactly the Linear weights that carry a
    ``.scale_weight``; embeddings and norms stay in the compute dtype. Plain fp8: the matrices
    of a diffusion model; a plain fp8 T5 in fp8 throughout, norms included (ComfyUI takes the
    T5's dtype from ``encoder.final_layer_norm.weight``: a 16-bit norm builds it in 16 bits).
    """
    if SCALED_FP8_MARKER in tensors:
        suffix = ".scale_weight"
        return {k[: -len(suffix)] + ".weight" for k in tensors if k.endswith(suffix)} & set(tensors)
    if arch == "flux-schnell-checkpoint":
        return {
            k
            for k, ndim in tensors.items()
            if (k.startswith("model.diffusion_model.") and ndim >= 2)
            or (k.startswith("text_encoders.t5xxl.") and ndim >= 1)
        }
    return {k for k, ndim in tensors.items() if ndim >= 2}


def finish_fp8(arch: str, sd: dict, dtype) -> dict:
    """The filled state dict stored as the published fp8 file stores it.

    Scaled layers are quantised the way ComfyUI's scaled files are: scale = absmax / 448
    (float32 scalar), weight = weight / scale in fp8.
    """
    import torch

    floating = {
        k: v.ndim
        for k, v in sd.items()
        if k == SCALED_FP8_MARKER
        or (v.is_floating_point() and v.numel() > 0 and v.dtype.itemsize > 1)
    }
    out = dict(sd)
    for key in fp8_keys(arch, floating):
        weight = sd[key]
        scale_key = key[: -len(".weight")] + ".scale_weight"
        if scale_key in sd:
            absmax = weight.abs().amax().float()
            scale = torch.where(absmax > 0, absmax / 448.0, torch.ones_like(absmax))
            out[scale_key] = scale.reshape(())
            out[key] = (weight.float() / scale).to(dtype)
        else:
            out[key] = weight.to(dtype)
    return out


DIFFUSION_ARCHES = (
    "sd15-checkpoint",
    "sdxl-checkpoint",
    "svd-checkpoint",
    "flux-schnell-checkpoint",
    "flux-dev",
    "flux-schnell",
    "wan21-t2v-1.3b",
    "wan21-vace-1.3b",
    "z-image",
    "flux2-klein",
    "qwen-image",
    "qwen-image-edit",
    "wan21-i2v-14b",
    "hunyuan15-t2v",
    "hunyuan15-i2v",
)


UPSCALE_ARCHES = {"esrgan-4x": ("ESRGAN", 4)}  # arch -> (spandrel architecture, scale)
CONTROLNET_ARCHES = ("sdxl-controlnet",)


# --- verification on the meta device (CPU machines: no weights allocated)


def verify(arch: str) -> str:
    import comfy.model_detection
    import comfy.sd

    if arch in UPSCALE_ARCHES:
        return _verify_upscale_model(arch)
    builder, default_dtype = ARCHES[arch]
    if hasattr(builder, "gguf"):
        return verify_gguf(arch)
    if arch in synth_faces.ONNX_ARCHES:
        return synth_faces.verify_onnx(arch)
    if arch in synth_packs.PACK_ARCHES:
        return synth_packs.verify(arch, builder)
    stored = _torch_dtype(default_dtype)
    dtype = _compute_dtype(stored)
    sd = builder("meta", dtype)
    if arch in CONTROLNET_ARCHES:
        return _verify_controlnet(sd)
    if arch == "instantid-ip-adapter":
        return synth_faces.verify_instantid(sd, _unet_model(SDXL, "meta", dtype)[1].diffusion_model)
    if stored != dtype and arch not in METADATA_FP8:  # fp8: the file as build_job writes it
        sd = finish_fp8(arch, sd, stored)
    if arch in DIFFUSION_ARCHES:
        prefix = (
            comfy.model_detection.unet_prefix_from_state_dict(sd)
            if arch.endswith("checkpoint")
            else ""
        )
        options, quantized = {}, {}
        if arch in METADATA_FP8:  # the header the published file carries, read as the loader does
            import comfy.utils

            sd, quantization = metadata_fp8(sd, METADATA_FP8[arch])
            quantized = quantization["layers"]
            sd, options["metadata"] = comfy.utils.convert_old_quants(
                sd, prefix, metadata={"_quantization_metadata": json.dumps(quantization)}
            )
        config = comfy.model_detection.model_config_from_unet(sd, prefix, **options)
        if config is None:
            raise ValueError("ComfyUI detects no model")
        _check_detected_config(arch, getattr(builder, "unet_config", {}), config.unet_config)
        detected = f"{type(config).__name__} {config.unet_config.get('image_model', '')}".strip()
        detected += ", " + _verify_loads(config, sd, prefix, quantized)
        if stored != dtype and arch not in METADATA_FP8:
            detected += ", " + _verify_fp8_diffusion(config, sd, prefix)
        if arch == "svd-checkpoint":
            detected += ", " + _verify_video_checkpoint_parts(config, sd)
        elif arch.endswith("checkpoint"):
            detected += ", " + _verify_checkpoint_parts(config, sd)
        return detected
    if arch in CLIP_VISION_CONFIGS:
        return _verify_clip_vision(sd)
    if arch in KL_VAES:
        return _verify_vae(sd)
    if arch == "byt5-small-glyph":
        return f"{comfy.sd.detect_te_model(sd)}"
    if arch in ("clip-l", "t5-xxl", "umt5-xxl", "qwen3-4b", "qwen25-vl-7b"):
        vocab = sd.get(
            "shared.weight",
            sd.get(
                "text_model.embeddings.token_embedding.weight", sd.get("model.embed_tokens.weight")
            ),
        )
        detected = f"{comfy.sd.detect_te_model(sd)}, vocabulary {vocab.shape[0]}"
        if arch in SCALED_FP8:
            detected += ", " + _verify_scaled_text_encoder(arch, sd)
        return detected
    if arch.endswith("lora"):
        return _verify_lora(arch, sd)
    keys = sorted(sd)
    first = sd[keys[0]]
    return f"{len(keys)} tensors, {keys[0]} .. {keys[-1]} ({first.dtype}, {list(first.shape)})"


GGUF_PACK_ENV = "RYLA_GGUF_PACK"  # a ComfyUI-GGUF checkout: --verify loads a tiny file with it


def verify_gguf(arch: str) -> str:
    """Full size on meta: ComfyUI detects the model from the planned tensors and its model takes
    each one; the file size from the plan. Tiny (2 blocks of width 512) when ``gguf`` imports: a
    real file read back by gguf's reader and dequantised (finite, fan-in scale); with
    ``RYLA_GGUF_PACK`` also loaded by ComfyUI-GGUF's loader and run one forward step."""
    import comfy.model_detection
    import torch

    _, config = GGUF_MODELS[arch]
    plan = gguf_plan(config)
    sd = {name: torch.empty(shape, device="meta") for name, shape, _ in plan}
    detected = comfy.model_detection.model_config_from_unet(sd, "")
    if detected is None:
        raise ValueError("ComfyUI detects no model in the planned tensors")
    text = f"{type(detected).__name__} {detected.unet_config.get('image_model', '')}"
    text += f" in_dim {detected.unet_config.get('in_dim')}, " + _verify_loads(detected, sd, "")
    types: dict[str, int] = {}
    params = 0
    for _, shape, qtype in plan:
        types[qtype] = types.get(qtype, 0) + 1
        params += int(torch.Size(shape).numel())
    size = sum(gguf_nbytes(shape, qtype) for _, shape, qtype in plan)
    text += f"; {params / 1e9:.2f}B parameters, " + ", ".join(f"{k} {v}" for k, v in types.items())
    text += f", data {size / 1e9:.2f} GB"
    try:
        import gguf  # noqa: F401
    except ImportError:
        return text + "; tiny file not checked: no gguf package in this Python"
    return text + "; " + _verify_tiny_gguf(arch, config)


def _verify_tiny_gguf(arch: str, config: dict) -> str:
    import tempfile

    import gguf
    import numpy as np

    tiny = tiny_config(config)
    plan = {name: (shape, qtype) for name, shape, qtype in gguf_plan(tiny)}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "tiny.gguf")
        write_gguf(arch, path, tiny)
        reader = gguf.GGUFReader(path)
        arch_field = reader.get_field("general.architecture")
        stored_arch = str(arch_field.parts[arch_field.data[-1]], encoding="utf-8")
        if stored_arch != GGUF_MODELS[arch][0]:
            raise ValueError(f"general.architecture is {stored_arch!r}")
        for tensor in reader.tensors:
            shape, qtype = plan.pop(tensor.name)
            stored = tuple(int(v) for v in reversed(tensor.shape))
            if stored != shape or tensor.tensor_type.name != qtype:
                raise ValueError(f"{tensor.name}: {stored} {tensor.tensor_type.name}, not {shape}")
            if qtype == "Q5_K":
                values = gguf.quants.dequantize(np.asarray(tensor.data), tensor.tensor_type)
                std = float(values.std()) * shape[-1] ** 0.5
                if not np.isfinite(values).all() or not 0.8 < std < 1.2:
                    raise ValueError(f"{tensor.name}: dequantised std x sqrt(fan-in) is {std}")
        if plan:
            raise ValueError(f"{len(plan)} planned tensors missing from the file")
        text = f"tiny GGUF read back, {len(reader.tensors)} tensors, Q5_K dequantises finite"
        pack = os.environ.get(GGUF_PACK_ENV)
        if pack:
            text += ", " + _verify_gguf_pack(pack, path)
    return text


def _verify_gguf_pack(pack: str, path: str) -> str:
    """Load ``path`` as UnetLoaderGGUF does (its loader, its ops); one forward step, finite."""
    import importlib.util

    import comfy.sd
    import torch

    spec = importlib.util.spec_from_file_location(
        "ryla_gguf_pack", os.path.join(pack, "__init__.py"), submodule_search_locations=[pack]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["ryla_gguf_pack"] = module
    spec.loader.exec_module(module)
    loader = sys.modules["ryla_gguf_pack.loader"]
    ops = sys.modules["ryla_gguf_pack.ops"]
    sd = loader.gguf_sd_loader(path)
    taken = dict(sd)
    patcher = comfy.sd.load_diffusion_model_state_dict(
        sd, model_options={"custom_operations": ops.GGMLOps()}
    )
    if patcher is None:
        raise ValueError("ComfyUI detects no model in the GGUF file")
    model = patcher.model.diffusion_model
    # the pack's layers list a fake "temp.weight" for its memory estimate: not a tensor
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if ".temp." not in k}
    missing = sorted(set(expected) - set(taken))
    if missing:
        raise ValueError(f"the model lacks {len(missing)} tensors, e.g. {missing[0]}")
    unused = sorted(set(taken) - set(expected))
    if unused:
        raise ValueError(f"{len(unused)} tensors of the file unused, e.g. {unused[0]}")
    wrong = [  # quantised weights keep their logical shape beside the packed bytes
        name
        for name, layer in model.named_modules()
        if isinstance(layer, torch.nn.Linear)
        and tuple(getattr(layer.weight, "tensor_shape", layer.weight.shape))
        != (layer.out_features, layer.in_features)
    ]
    if wrong:
        raise ValueError(f"{len(wrong)} linear layers got weights of another shape: {wrong[0]}")
    config = patcher.model.model_config.unet_config
    with torch.inference_mode():
        x = torch.randn(1, config["in_dim"], 2, 8, 8)
        out = model(x, torch.tensor([500.0]), torch.randn(1, 8, 4096))
    if not torch.isfinite(out).all():
        raise ValueError("one forward step gave non-finite values")
    return (
        f"ComfyUI-GGUF loads it ({type(patcher.model).__name__}, {len(expected)} tensors), "
        f"forward {list(out.shape)} finite, std {float(out.std()):.3f}"
    )


def _verify_checkpoint_parts(config, sd: dict) -> str:
    """The text encoders and VAE ComfyUI's checkpoint loader takes out of the file."""
    import comfy.model_management
    import comfy.utils

    target = config.clip_target(state_dict=sd)
    dtype = comfy.model_management.text_encoder_dtype()  # comfy.sd.CLIP's default, fp16
    clip = target.clip(**{**target.params, "device": "meta", "dtype": dtype, "model_options": {}})
    clip_sd = config.process_clip_state_dict(dict(sd))
    expected = set(clip.state_dict())
    found = {k for k in clip_sd if k in expected}
    # published SD1.5/SDXL checkpoints hold neither CLIP-L's logit scale nor its projection
    optional = {
        k
        for k in expected
        if k.endswith(("logit_scale", "clip_l.transformer.text_projection.weight"))
    }
    missing = sorted(expected - found - optional)
    if missing:
        raise ValueError(f"text encoder: {len(missing)} tensors missing, e.g. {missing[0]}")
    vae = comfy.utils.state_dict_prefix_replace(
        dict(sd), {k: "" for k in config.vae_key_prefix}, filter_keys=True
    )
    if not vae:
        raise ValueError("no VAE tensors under " + ", ".join(config.vae_key_prefix))
    stored: dict = {}
    for param in clip.parameters():
        stored[param.dtype] = stored.get(param.dtype, 0) + param.numel() * param.element_size()
    t5 = getattr(clip, "t5xxl", None)
    if t5 is not None and any(
        v.dtype.itemsize == 1 for k, v in sd.items() if k.startswith("text_encoders.t5xxl.")
    ):  # a plain fp8 T5: ComfyUI builds it in the dtype of its final norm
        kept = {p.dtype for p in t5.parameters() if p.ndim}  # not its logit scale
        if kept != {_torch_dtype("float8_e4m3fn")}:
            raise ValueError(f"the file's fp8 T5 would be kept in {sorted(map(str, kept))}")
    weights = ", ".join(
        f"{str(k).removeprefix('torch.')} {v / 1e9:.2f} GB"
        for k, v in sorted(stored.items(), key=lambda kv: -kv[1])
        if v >= 1e7
    )
    return f"text encoders {len(found)} tensors ({weights}), VAE {len(vae)} tensors"


def _comfy_version() -> str:
    try:
        import comfyui_version

        return comfyui_version.__version__
    except ImportError:
        return "(version unknown)"


def _check_detected_config(arch: str, built: dict, detected: dict) -> None:
    """ComfyUI's detection must find the config the file was built from (keys both name)."""

    def same(a, b) -> bool:
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return list(a) == list(b)
        return a == b

    drift = [
        f"{key} {detected[key]!r} (built {value!r})"
        for key, value in built.items()
        if key in detected and not same(value, detected[key])
    ]
    if drift:
        need = f"; needs {NEEDS[arch]}" if arch in NEEDS else ""
        raise ValueError(f"ComfyUI {_comfy_version()} detects " + ", ".join(drift) + need)


QUANT_EXTRAS = (".weight_scale", ".input_scale", ".comfy_quant")


def _verify_loads(config, sd: dict, prefix: str, quantized: dict | None = None) -> str:
    """The model ComfyUI builds from the detected config takes every tensor, shape for shape;
    a scaled-fp8 layer's scales (and the loader's ``.comfy_quant``) sit beside an fp8 matrix."""
    import torch

    quantized = quantized or {}
    if quantized and not getattr(config, "quant_config", None):
        raise ValueError("ComfyUI does not see the quantization header (no .comfy_quant)")
    # mixed-precision ops create their weights only when loaded: the names and shapes come
    # from the same config with plain ops
    quant_config, config.quant_config = getattr(config, "quant_config", None), None
    config.set_inference_dtype(_torch_dtype("bfloat16"), None)
    model = config.get_model(sd, prefix, device="meta")
    config.quant_config = quant_config
    expected = {k: tuple(v.shape) for k, v in model.diffusion_model.state_dict().items()}
    if quantized:
        for layer in quantized:
            weight = sd.get(f"{prefix}{layer}.weight")
            if weight is None or weight.dtype != torch.float8_e4m3fn:
                raise ValueError(f"quantized layer {layer} has no float8_e4m3fn weight")
            if len(expected.get(f"{layer}.weight", ())) != 2:
                raise ValueError(f"quantized layer {layer} is no matrix of the detected model")
        sd = {
            k: v
            for k, v in sd.items()
            if not (k.endswith(QUANT_EXTRAS) and k[len(prefix) :].rsplit(".", 1)[0] in quantized)
        }
    got = {k[len(prefix) :]: tuple(v.shape) for k, v in sd.items() if k.startswith(prefix)}
    missing = sorted(set(expected) - set(got))
    if missing:
        raise ValueError(
            f"detected model needs {len(missing)} tensors not built, e.g. {missing[0]}"
        )
    wrong = sorted(k for k in expected if expected[k] != got[k])
    if wrong:
        raise ValueError(f"{len(wrong)} tensors of another shape, e.g. {wrong[0]}")
    extra = sorted(k for k in set(got) - set(expected) if got[k] != (0,))
    if extra:
        raise ValueError(f"{len(extra)} tensors the detected model does not take, e.g. {extra[0]}")
    ref = config.unet_config.get("default_ref_method")
    loads = f"all {len(expected)} tensors load"
    if quantized:
        loads += f" ({len(quantized)} scaled fp8 layers)"
    return loads + (f", reference method {ref}" if ref else "")


def _verify_fp8_diffusion(config, sd: dict, prefix: str) -> str:
    """A plain fp8 diffusion model stays fp8 on a GPU with fp8 compute (sm >= 8.9: L40S, H100,
    H200): ComfyUI's own dtype choice (model_management.unet_dtype) from the file's weights."""
    import comfy.model_management as mm
    import comfy.utils

    weight_dtype = comfy.utils.weight_dtype(sd, prefix)
    params = comfy.utils.calculate_parameters(sd, prefix)
    original = mm.supports_fp8_compute
    mm.supports_fp8_compute = lambda device=None: True
    try:
        kept = mm.unet_dtype(
            model_params=params,
            supported_dtypes=list(config.supported_inference_dtypes),
            weight_dtype=weight_dtype,
        )
    finally:
        mm.supports_fp8_compute = original
    if kept != _torch_dtype("float8_e4m3fn"):
        raise ValueError(f"ComfyUI would keep the diffusion model in {kept}, not fp8")
    return (
        f"diffusion model weights {str(weight_dtype).removeprefix('torch.')}, kept "
        f"{str(kept).removeprefix('torch.')} on an fp8 GPU ({params / 1e9:.2f} G parameters)"
    )


def _verify_scaled_text_encoder(arch: str, sd: dict) -> str:
    """ComfyUI's text encoder loader on the file: the scaled layers must stay fp8.

    As ``CLIPLoader`` does it (utils.convert_old_quants, then load_text_encoder_state_dicts),
    the model built on the meta device; what its parameters store is what goes to the GPU.
    """
    import comfy.sd
    import comfy.utils
    import torch

    error = _scaled_round_trip(arch)
    converted, _ = comfy.utils.convert_old_quants(dict(sd), "", {})
    layers = sum(k.endswith(".comfy_quant") for k in converted)
    if not layers:
        raise ValueError("ComfyUI finds no scaled fp8 layers (scaled_fp8 marker missing?)")
    cpu = torch.device("cpu")
    clip = comfy.sd.load_text_encoder_state_dicts(
        [converted],
        clip_type=getattr(comfy.sd.CLIPType, TE_CLIP_TYPES[arch]),
        model_options={
            "load_device": cpu,
            "offload_device": cpu,
            "initial_device": torch.device("meta"),
        },
    )
    stored: dict = {}
    quantized = 0
    for param in clip.cond_stage_model.parameters():
        data = getattr(param.data, "_qdata", None)  # comfy QuantizedTensor: its storage
        if data is not None and data.dtype == torch.float8_e4m3fn:
            quantized += 1
        tensor = param if data is None else data
        stored[tensor.dtype] = stored.get(tensor.dtype, 0) + tensor.numel() * tensor.element_size()
    if quantized != layers:
        raise ValueError(f"{quantized} of {layers} scaled layers kept in fp8")
    parts = " + ".join(
        f"{str(k).removeprefix('torch.')} {v / 1e9:.2f}"
        for k, v in sorted(stored.items(), key=lambda kv: -kv[1])
        if v >= 1e7
    )
    total = sum(stored.values()) / 1e9
    return (
        f"{layers} Linear layers kept float8_e4m3fn, weights {total:.2f} GB ({parts}); "
        f"a small scaled layer through safetensors and ComfyUI's ops dequantises within "
        f"{error:.3f} of its absmax"
    )


def _scaled_round_trip(arch: str) -> float:
    """A small Linear layer written as ``finish_fp8`` writes it, saved and read back with
    safetensors, converted and loaded by ComfyUI's MixedPrecisionOps on the CPU: its
    dequantised weight must be the filled one within fp8's precision (3 mantissa bits)."""
    import comfy.ops
    import comfy.utils
    import torch
    from safetensors.torch import load, save

    sd = {"layer.weight": torch.empty(32, 64, dtype=torch.bfloat16)}
    sd.update(_scaled_fp8_markers(["layer"], "cpu"))
    sd = fill(sd)
    filled = sd["layer.weight"].float()
    sd = load(save(finish_fp8(arch, sd, torch.float8_e4m3fn)))
    sd, _ = comfy.utils.convert_old_quants(sd, "", {})
    ops = comfy.ops.mixed_precision_ops({"mixed_ops": True}, torch.bfloat16, full_precision_mm=True)
    layer = ops.Linear(64, 32, bias=False, device="cpu")
    layer.load_state_dict({k.removeprefix("layer."): v for k, v in sd.items()}, strict=False)
    stored = getattr(layer.weight.data, "_qdata", None)
    if stored is None or stored.dtype != torch.float8_e4m3fn:
        raise ValueError("ComfyUI did not keep the scaled layer in fp8")
    error = float(
        (layer.weight.data.dequantize().float() - filled).abs().max() / filled.abs().max()
    )
    if error > 0.0625:
        raise ValueError(f"scaled layer dequantises {error:.3f} of its absmax away from its weight")
    return error


def _verify_clip_vision(sd: dict, prefix: str = "") -> str:
    """ComfyUI's clip_vision loader picks a config from the keys; every tensor must load."""
    import comfy.clip_vision

    picked = {}

    class Recorder:
        def __init__(self, json_config):
            picked["config"] = json_config

        def load_sd(self, sd):
            return [], list(sd)

    original = comfy.clip_vision.ClipVisionModel
    comfy.clip_vision.ClipVisionModel = Recorder
    try:
        converted = comfy.clip_vision.convert_to_transformers(dict(sd), prefix)
        if prefix:
            converted = {
                k: v
                for k, v in converted.items()
                if not k.startswith(("model.", "first_stage_model."))
            }
        comfy.clip_vision.load_clipvision_from_sd(dict(converted))
    finally:
        comfy.clip_vision.ClipVisionModel = original
    if "config" not in picked:
        raise ValueError("ComfyUI's clip_vision loader detects no image encoder")
    name = os.path.basename(picked["config"])
    expected = set(_clip_vision_sd(name, "meta", None))
    missing = sorted(expected - set(converted))
    if missing:
        raise ValueError(f"clip vision ({name}): {len(missing)} tensors missing, e.g. {missing[0]}")
    return f"clip vision {name} {len(expected)} tensors"


KL_VAES = (
    "sd15-vae",
    "flux-vae",
    "flux2-vae",
    "hunyuan15-vae",
)  # comfy.sd.VAE builds them as autoencoders


class _VaePicked(Exception):
    """comfy.sd.VAE chose a model and is about to load the file into it."""


def _verify_vae(sd: dict) -> str:
    """comfy.sd.VAE picks a config from the keys; the model it builds takes every tensor.

    Its two autoencoder classes are swapped for ones that build on ``meta`` and stop at the
    load, handing back the model and the state dict as ComfyUI rewrote it."""
    import comfy.sd
    import torch

    def picking(cls):
        def make(*args, **kwargs):
            with torch.device("meta"):
                model = cls(*args, **kwargs)

            def load_state_dict(state_dict, strict=False):
                raise _VaePicked(cls.__name__, kwargs, model, state_dict)

            model.load_state_dict = load_state_dict
            return model

        return make

    originals = comfy.sd.AutoencoderKL, comfy.sd.AutoencodingEngine
    comfy.sd.AutoencoderKL, comfy.sd.AutoencodingEngine = map(picking, originals)
    try:
        comfy.sd.VAE(sd=dict(sd))
        raise ValueError("comfy.sd.VAE built no autoencoder from these keys")
    except _VaePicked as picked:
        name, kwargs, model, loaded = picked.args
    finally:
        comfy.sd.AutoencoderKL, comfy.sd.AutoencodingEngine = originals
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in loaded.items()}
    missing = sorted(set(expected) - set(got) - {"bn.num_batches_tracked"})
    if missing:
        raise ValueError(f"{name}: {len(missing)} tensors missing, e.g. {missing[0]}")
    extra = sorted(set(got) - set(expected))
    if extra:
        raise ValueError(f"{name}: {len(extra)} tensors it does not take, e.g. {extra[0]}")
    wrong = sorted(k for k in got if got[k] != expected[k])
    if wrong:
        raise ValueError(f"{name}: {len(wrong)} tensors of another shape, e.g. {wrong[0]}")
    config = kwargs.get("ddconfig") or kwargs.get("decoder_config", {}).get("params", {})
    z = config.get("z_channels")
    norm = ", latent batch norm" if config.get("batch_norm_latent") else ""
    return f"{name}, {z} latent channels{norm}, all {len(got)} tensors load"


def _verify_video_checkpoint_parts(config, sd: dict) -> str:
    """SVD: the image encoder and the temporal VAE the checkpoint loader takes out."""
    import comfy.utils

    vision = _verify_clip_vision(sd, config.clip_vision_prefix)
    vae = comfy.utils.state_dict_prefix_replace(
        dict(sd), {k: "" for k in config.vae_key_prefix}, filter_keys=True
    )
    if "decoder.mid.block_1.mix_factor" not in vae:
        raise ValueError("VAE has no temporal decoder (decoder.mid.block_1.mix_factor)")
    return f"{vision}, video VAE {len(vae)} tensors"


def _verify_upscale_model(arch: str) -> str:
    """Built for real on the CPU (tens of MB), written as its file is published (``.pth``), then
    ComfyUI's own nodes load it (UpscaleModelLoader: ``load_torch_file`` with ``weights_only``,
    spandrel's detection) and upscale an 8x8 image with it."""
    import tempfile

    import folder_paths
    import torch
    from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel, UpscaleModelLoader

    expected_arch, expected_scale = UPSCALE_ARCHES[arch]
    saved = folder_paths.folder_names_and_paths.get("upscale_models")
    with tempfile.TemporaryDirectory() as tmp:
        record = build_job({"arch": arch, "path": os.path.join(tmp, "model.pth")}, "cpu")
        folder_paths.folder_names_and_paths["upscale_models"] = ([tmp], {".pth"})
        try:
            model = UpscaleModelLoader.execute("model.pth")[0]
        finally:
            if saved is None:
                folder_paths.folder_names_and_paths.pop("upscale_models", None)
            else:
                folder_paths.folder_names_and_paths["upscale_models"] = saved
    detected = f"{model.architecture.id} {model.scale}x"
    if (model.architecture.id, model.scale) != (expected_arch, expected_scale):
        raise ValueError(f"spandrel detects {detected}, not {expected_arch} {expected_scale}x")
    image = torch.rand(1, 8, 8, 3, generator=torch.Generator().manual_seed(0))
    out = ImageUpscaleWithModel.execute(model, image)[0]
    if tuple(out.shape) != (1, 8 * expected_scale, 8 * expected_scale, 3):
        raise ValueError(f"an 8x8 image came out {list(out.shape)}")
    if not torch.isfinite(out).all():
        raise ValueError("the upscaled image holds NaN or infinite values")
    return (
        f"spandrel {detected} ({', '.join(model.tags)}), {record['bytes']} bytes, "
        f"8x8 -> {out.shape[2]}x{out.shape[1]}"
    )


def _verify_controlnet(sd: dict) -> str:
    """ComfyUI's ``load_controlnet_state_dict`` takes its diffusers path, converts every tensor
    (no leftover key) and its ControlNet loads them all (no missing or unexpected key)."""
    import logging

    import comfy.controlnet
    import comfy.model_management
    import torch

    if "controlnet_cond_embedding.conv_in.weight" not in sd:
        raise ValueError("not in the diffusers layout ComfyUI detects")
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler, root = Collect(level=logging.DEBUG), logging.getLogger()
    level, offload = root.level, comfy.model_management.unet_offload_device
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # the ControlNet is built where ComfyUI offloads models: the meta device here (no memory)
    comfy.model_management.unet_offload_device = lambda: torch.device("meta")
    try:
        control = comfy.controlnet.load_controlnet_state_dict(dict(sd))
    finally:
        comfy.model_management.unet_offload_device = offload
        root.removeHandler(handler)
        root.setLevel(level)
    if not isinstance(control, comfy.controlnet.ControlNet):
        raise ValueError(f"ComfyUI loads a {type(control).__name__}, not a ControlNet")
    for problem in ("leftover keys", "missing controlnet keys", "unexpected controlnet keys"):
        found = [m for m in messages if m.startswith(problem)]
        if found:
            raise ValueError(found[0][:300])
    model = control.control_model
    loaded = len(model.state_dict())
    if loaded != len(sd):
        raise ValueError(f"{len(sd)} tensors built, the ControlNet holds {loaded}")
    return (
        f"ControlNet (diffusers path), all {loaded} tensors load, "
        f"model_channels {model.model_channels}, hint channels "
        f"{model.input_hint_block[0].weight.shape[1]}"
    )


def _verify_lora(arch: str, sd: dict) -> str:
    """Every LoRA layer must map to a weight of its base model (ComfyUI's own key map)."""
    import comfy.lora

    _, model = _unet_model(LORA_BASES[arch], "meta", _torch_dtype("bfloat16"))
    key_map = comfy.lora.model_lora_keys_unet(model, {})
    layers = {k.rsplit(".lora_", 1)[0] for k in sd if ".lora_" in k}
    unmapped = sorted(layer for layer in layers if layer not in key_map)
    if unmapped:
        raise ValueError(f"{len(unmapped)} LoRA layers unknown to ComfyUI, e.g. {unmapped[0]}")
    return f"{len(layers)} LoRA layers, all mapped to model weights"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfy-dir", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--verify", action="store_true", help="detect every architecture on meta")
    parser.add_argument(
        "--arch",
        action="append",
        choices=sorted(ARCHES),
        help="--verify only this one (repeatable)",
    )
    parser.add_argument(
        "--custom-nodes", help="folder of custom-node pack checkouts (packs' own model classes)"
    )
    parser.add_argument("jobs", nargs="?", help="JSON file: a list of {arch, path, dtype?, seed?}")
    args = parser.parse_args(argv)
    synth_packs.PACKS_DIR = args.custom_nodes
    sys.path.insert(0, os.path.abspath(args.comfy_dir))
    os.chdir(args.comfy_dir)  # ComfyUI resolves some data files relative to its tree
    # ComfyUI parses sys.argv itself: give it only its own flags
    sys.argv = [sys.argv[0], *(["--cpu"] if args.device == "cpu" or args.verify else [])]
    import comfy.options

    comfy.options.enable_args_parsing()
    if args.verify:
        failed = 0
        for arch in args.arch or ARCHES:
            try:
                print(json.dumps({"arch": arch, "detected": verify(arch)}), flush=True)
            except Exception as exc:  # noqa: BLE001 - report every architecture
                failed += 1
                print(
                    json.dumps({"arch": arch, "error": f"{type(exc).__name__}: {exc}"}), flush=True
                )
        return 1 if failed else 0
    with open(args.jobs) as f:
        jobs = json.load(f)
    failed = 0
    for job in jobs:
        try:
            print(json.dumps(build_job(job, args.device)), flush=True)
        except Exception as exc:  # noqa: BLE001 - one broken builder must not stop the rest
            failed += 1
            traceback.print_exc()
            print(
                json.dumps({"path": job.get("path"), "error": f"{type(exc).__name__}: {exc}"}),
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
