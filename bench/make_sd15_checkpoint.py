"""Write a random-weight SD1.5 checkpoint (or a VAE alone) for timing benches.

The networks are ComfyUI's own classes (its ``UNetModel`` with the SD1.5 configuration, its
``AutoencoderKL``) and transformers' ``CLIPTextModel`` with ComfyUI's ``sd1_clip_config.json``;
one fp16 state dict with the standard prefixes, which ``CheckpointLoaderSimple`` detects as SD1.5
(``VAELoader`` for ``--vae-only``). Weights are random: images are noise, timings are real.
Run it with the Python that runs ComfyUI (torch, transformers, safetensors):

    python bench/make_sd15_checkpoint.py --comfy-dir DIR --out models/checkpoints/a.safetensors
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

SD15_UNET = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_middle": 1,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "context_dim": 768,
    "num_heads": 8,
    "num_head_channels": -1,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": False,
    "legacy": False,
    "adm_in_channels": None,
    "use_checkpoint": False,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}
SD_VAE = {
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


def randomize(module, generator) -> dict:
    """The module's state dict with every float tensor drawn small and random, in fp16."""
    import torch

    state = {}
    for name, tensor in module.state_dict().items():
        if tensor.is_floating_point():
            tensor = torch.randn(tensor.shape, generator=generator) * 0.02
            if name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "norm3.weight")):
                tensor = tensor + 1.0
            tensor = tensor.half()
        state[name] = tensor.contiguous()
    return state


def build(comfy_dir: Path, vae_only: bool, seed: int) -> dict:
    sys.path.insert(0, str(comfy_dir))
    import comfy.cli_args
    import torch

    comfy.cli_args.args.cpu = not torch.cuda.is_available()  # ComfyUI picks its device on import
    from comfy.ldm.models.autoencoder import AutoencoderKL

    generator = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        vae = AutoencoderKL(ddconfig=SD_VAE, embed_dim=4)
    vae = vae.to_empty(device="cpu")
    vae_state = randomize(vae, generator)
    if vae_only:
        return vae_state
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNetModel(
        **SD15_UNET, dtype=torch.float16, device="meta", operations=comfy.ops.disable_weight_init
    )
    unet = unet.to_empty(device="cpu")
    with torch.device("meta"):
        clip = CLIPTextModel(
            CLIPTextConfig.from_json_file(comfy_dir / "comfy" / "sd1_clip_config.json")
        )
    clip = clip.to_empty(device="cpu")
    state = {f"model.diffusion_model.{k}": v for k, v in randomize(unet, generator).items()}
    state |= {f"cond_stage_model.transformer.{k}": v for k, v in randomize(clip, generator).items()}
    state |= {f"first_stage_model.{k}": v for k, v in vae_state.items()}
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfy-dir", type=Path, required=True, help="a ComfyUI checkout")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--vae-only", action="store_true", help="write an SD VAE alone")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from safetensors.torch import save_file

    started = time.perf_counter()
    state = build(args.comfy_dir.resolve(), args.vae_only, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out))
    size = args.out.stat().st_size / 1e9
    print(f"{args.out}: {len(state)} tensors, {size:.2f} GB, {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
