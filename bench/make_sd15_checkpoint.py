"""Write a random-weight SD1.5 checkpoint (or its VAE alone) for timing benches.

The file is `ryla-gen smoke`'s synthetic ``sd15-checkpoint`` (``sd15-vae`` with ``--vae-only``),
built by ``generator/smoke/synth.py`` from ComfyUI's own classes: ``CheckpointLoaderSimple``
detects it as SD1.5 (``VAELoader`` takes the VAE). Weights are random: images are noise, timings
are real; ``--seed`` makes two files differ. Run it with the Python that runs ComfyUI:

    python bench/make_sd15_checkpoint.py --comfy-dir DIR --out models/checkpoints/a.safetensors
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYNTH = Path(__file__).resolve().parents[1] / "generator" / "smoke" / "synth.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfy-dir", type=Path, required=True, help="a ComfyUI checkout")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--vae-only", action="store_true", help="write an SD VAE alone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device", default="cpu", help="where the weights are drawn (cuda: faster)"
    )
    args = parser.parse_args()
    job = {
        "arch": "sd15-vae" if args.vae_only else "sd15-checkpoint",
        "path": str(args.out.resolve()),
        "seed": args.seed,
    }
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", suffix=".json") as jobs:
        json.dump([job], jobs)
        jobs.flush()
        command = [sys.executable, str(SYNTH), "--comfy-dir", str(args.comfy_dir.resolve())]
        done = subprocess.run([*command, "--device", args.device, jobs.name], check=False)
    if done.returncode:
        sys.exit(done.returncode)
    size = args.out.stat().st_size / 1e9
    print(f"{args.out}: {job['arch']}, {size:.2f} GB, {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
