# ruff: noqa: E501 - table rows and literal workflow nodes read better on one line
"""The generated runtime around a real ComfyUI with real checkpoints: does it tell the truth?

Drives what a generated Modal class runs (``ComfyServer``, its warm-up, ``create_app``) around
a ComfyUI directory, with two SD1.5-style checkpoints behind two endpoints ``/a`` and ``/b``
(txt2img, defaults WxH and ``--steps``), launched with the flags and pins the residency plan
picks for them. Measures, in one run:

- readiness: ``ComfyServer.start`` against a raw ComfyUI start (first 200 from /system_stats,
  polled every 10 ms), raw before and after;
- warm-up (each endpoint's default request, 1 step) and first request vs warm p50 per endpoint;
- residency: ``--mix`` random requests to /a and /b (``--mix-steps``), with a stretch of 40 /a
  in a row; a reload = the checkpoint loader ran instead of coming from ComfyUI's cache;
- 16 concurrent requests: slowest latency against ComfyUI's queue + execution for it, and the
  sum of ``X-Execution-Time-Sec`` against ComfyUI's own "Prompt executed in" log lines.

    python bench/gpu_runtime.py --comfy-dir DIR --checkpoint a.safetensors --checkpoint b...
    (checkpoints under DIR/models/checkpoints; bench/make_sd15_checkpoint.py writes them)

Prints a table; ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generator.resolve.model import ClassModel, EndpointModel, ModelFileModel  # noqa: E402
from generator.resolve.plan import plan_class  # noqa: E402
from generator.runtime.backends import ComfyServer  # noqa: E402
from generator.runtime.comfy_process import comfy_launch_command  # noqa: E402
from generator.runtime.config import AppSettings, Endpoint, Param, Target  # noqa: E402
from generator.runtime.server import create_app  # noqa: E402
from generator.runtime.warmup import warm_up  # noqa: E402

LOADER = "4"  # the checkpoint loader's node id in the workflow below


def txt2img(ckpt: str) -> dict:
    """An SD1.5 txt2img API workflow (ComfyUI's default graph)."""
    return {
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "bench", "images": ["8", 0]}},
    }  # fmt: skip


def request_model(default_size: int, default_steps: int) -> type[BaseModel]:
    class Txt2Img(BaseModel):
        model_config = ConfigDict(extra="forbid")
        prompt: str = Field(...)
        seed: int | None = Field(None, ge=0)
        steps: int = Field(default_steps, ge=1, le=100)
        width: int = Field(default_size, ge=64, le=2048)
        height: int = Field(default_size, ge=64, le=2048)

    return Txt2Img


def endpoints(size: int, steps: int, names: list[str]) -> tuple[Endpoint, ...]:
    params = (
        Param("prompt", targets=(Target("6", "text"),)),
        Param("seed", kind="seed", targets=(Target("3", "seed"),)),
        Param("steps", targets=(Target("3", "steps"),)),
        Param("width", targets=(Target("5", "width"),)),
        Param("height", targets=(Target("5", "height"),)),
    )
    model = request_model(size, steps)
    return tuple(
        Endpoint(
            path=f"/{label}",
            request_model=model,
            workflow=f"{label}.json",
            params=params,
            outputs=("9",),
            timeout=600,
            prefix_nodes=("9",),
            warmup={"prompt": "warm-up", "steps": 1},  # what warmup_request makes of it
        )
        for label in [chr(ord("a") + i) for i in range(len(names))]
    )


def plan_for(names: list[str], gpu: str, sizes_gb: list[float]):
    """The residency plan ryla-gen renders for one class serving these checkpoints."""
    files = tuple(
        ModelFileModel("checkpoints", n, None, None, "main", "file:///x", None, s)
        for n, s in zip(names, sizes_gb, strict=True)
    )
    eps = tuple(
        EndpointModel(
            path=f"/{i}", request_class="R", summary="", description=None, workflow_file="w.json",
            fields=(), params=(), outputs=(), response="raw", timeout=60, gpu=gpu, headers={},
            require_one_of=(), prefix_nodes=(), examples=(), source="bench",
            model_names=(f"checkpoints/{n}",),
        )
        for i, n in enumerate(names)
    )  # fmt: skip
    return plan_class("bench", files, ClassModel("ComfyUI", gpu, 600, 0.001, eps))


def raw_ready_seconds(command: list[str], comfy_dir: Path, port: int, env: dict) -> float:
    """A raw ComfyUI start: seconds to its first 200 from /system_stats (polled every 10 ms)."""
    started = time.monotonic()
    out = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        command,
        cwd=comfy_dir,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        start_new_session=True,
    )
    try:
        with httpx.Client(trust_env=False) as http:
            while True:
                try:
                    if (
                        http.get(f"http://127.0.0.1:{port}/system_stats", timeout=1).status_code
                        == 200
                    ):
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    out.seek(0)
                    tail = out.read().decode(errors="replace")[-3000:]
                    raise RuntimeError(f"raw ComfyUI exited with {proc.returncode}:\n{tail}")
                time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(30)


class Recorder:
    """Wraps ``ComfyClient.run``: per prompt, whether the checkpoint loader came from cache."""

    def __init__(self, server: ComfyServer) -> None:
        self.runs: list[dict] = []
        original = server.client.run

        async def run(prompt, *, timeout, on_event=None, **options):
            cached: set[str] = set()

            def seen(kind: str, data: dict) -> None:
                if kind == "execution_cached":
                    cached.update(str(n) for n in data.get("nodes", []))
                if on_event is not None:
                    on_event(kind, data)

            result = await original(prompt, timeout=timeout, on_event=seen, **options)
            ckpt = prompt.get(LOADER, {}).get("inputs", {}).get("ckpt_name")
            self.runs.append(
                {
                    "ckpt": ckpt,
                    "loader_cached": LOADER in cached,
                    "execution": result.execution,
                    "queue": result.queue,
                }
            )
            return result

        server.client.run = run  # type: ignore[method-assign]


def p50(values: list[float]) -> float:
    return statistics.median(values)


async def post(http: httpx.AsyncClient, path: str, body: dict) -> dict:
    started = time.perf_counter()
    response = await http.post(path, json=body)
    latency = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{path} -> {response.status_code}: {response.text[:500]}")
    return {
        "path": path,
        "latency": latency,
        "execution": float(response.headers["X-Execution-Time-Sec"]),
        "queue": float(response.headers["X-Queue-Time-Sec"]),
    }


def executed_in(log: Path, offset: int) -> list[float]:
    text = log.read_bytes()[offset:].decode(errors="replace")
    return [float(m) for m in re.findall(r"Prompt executed in ([0-9.]+) seconds", text)]


async def main_async(args: argparse.Namespace) -> dict:
    comfy_dir = args.comfy_dir.resolve()
    names = args.checkpoint
    sizes = [(comfy_dir / "models" / "checkpoints" / n).stat().st_size / 1e9 for n in names]
    plan = plan_for(names, args.gpu, sizes)
    cpu = "--cpu" in args.extra_arg  # a dry run on a CPU: ComfyUI refuses --highvram with --cpu
    flags = tuple(f for f in plan.flags if not (cpu and f == "--highvram")) + tuple(args.extra_arg)
    env = {}
    figures: dict = {"plan": {"verdict": plan.verdict, "flags": flags, "pinned": plan.pinned}}
    figures["meminfo"] = memory_view()

    command = comfy_launch_command(comfy_dir, args.port, flags, python=args.comfy_python)
    raw = [raw_ready_seconds(command, comfy_dir, args.port, env)] if args.raw_starts else []
    log = Path(tempfile.mkdtemp()) / "comfyui.log"
    server = ComfyServer(
        [], str(comfy_dir / "models"), comfy_dir=comfy_dir, port=args.port, command=command,
        log_path=log, snapshot=args.snapshot, pin_models=plan.pinned if not args.no_pin else (),
    )  # fmt: skip
    started = time.monotonic()
    try:
        await server.start()
        ours = time.monotonic() - started
        if args.snapshot:
            await server.after_restore()
        figures["readiness"] = {"raw_s": raw, "ours_s": ours}
        url = f"http://127.0.0.1:{args.port}"
        async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
            figures["residency_helper"] = (await http.get("/ryla/residency")).json()
        figures |= await exercise(args, server, names, log)
    finally:
        await server.stop()
    if args.raw_starts > 1:
        raw.append(raw_ready_seconds(command, comfy_dir, args.port, env))
    figures["torch_imported_early"] = "Torch already imported" in log.read_text(errors="replace")
    return figures


async def exercise(args, server: ComfyServer, names: list[str], log: Path) -> dict:
    eps = endpoints(args.size, args.steps, names)
    settings = AppSettings(name="bench", gpu=args.gpu, usd_per_second=0.001261)
    workflows = Path(tempfile.mkdtemp())
    for ep, name in zip(eps, names, strict=True):
        (workflows / ep.workflow).write_text(json.dumps(txt2img(name)))
    recorder = Recorder(server)
    started = time.monotonic()
    warmup = await warm_up(server, settings, eps, workflows)
    figures: dict = {"warmup": {"s": time.monotonic() - started, "report": warmup.report()}}
    app = create_app(settings, eps, server, workflows, warmup)
    rng = random.Random(args.seed)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app", timeout=600) as http:
        first_warm = {}
        for ep in eps:
            runs = [
                await post(http, ep.path, {"prompt": f"first {i} {rng.random()}"})
                for i in range(args.warm_runs + 1)
            ]
            first_warm[ep.path] = {
                "first_s": runs[0]["latency"],
                "warm_p50_s": p50([r["latency"] for r in runs[1:]]),
                "ratio": runs[0]["latency"] / p50([r["latency"] for r in runs[1:]]),
                "header_vs_latency_p50": p50([r["execution"] / r["latency"] for r in runs[1:]]),
            }
        figures["first_vs_warm"] = first_warm

        recorder.runs.clear()
        order = [
            eps[0].path if rng.random() < 0.8 else rng.choice(eps).path for _ in range(args.mix)
        ]
        gap_at = args.mix // 2
        order[gap_at : gap_at + args.gap] = [eps[0].path] * args.gap
        order.insert(min(len(order), gap_at + args.gap), eps[-1].path)
        mix = []
        for path in order:
            body = {"prompt": f"mix {rng.random()}", "steps": args.mix_steps}
            mix.append(await post(http, path, body))
        reloads = sum(1 for r in recorder.runs if not r["loader_cached"])
        by_path: dict[str, list[float]] = {}
        for r in mix:
            by_path.setdefault(r["path"], []).append(r["latency"])
        switches = sum(1 for a, b in zip(order, order[1:], strict=False) if a != b)
        figures["gap"] = args.gap
        figures["mix"] = {
            "requests": len(order),
            "switches": switches,
            "reloads": reloads,
            "latency_p50_s": {p: p50(v) for p, v in by_path.items()},
            "latency_max_s": {p: max(v) for p, v in by_path.items()},
        }

        offset = log.stat().st_size
        bodies = [
            (eps[i % len(eps)].path, {"prompt": f"crowd {i} {rng.random()}"})
            for i in range(args.concurrent)
        ]
        started = time.perf_counter()
        crowd = await asyncio.gather(*(post(http, p, b) for p, b in bodies))
        wall = time.perf_counter() - started
        await asyncio.sleep(0.5)  # the last log lines
        logged = executed_in(log, offset)
        slowest = max(crowd, key=lambda r: r["latency"])
        figures["concurrent"] = {
            "n": len(crowd),
            "wall_s": wall,
            "slowest_s": slowest["latency"],
            "slowest_comfy_s": slowest["queue"] + slowest["execution"],
            "slowest_ratio": slowest["latency"] / (slowest["queue"] + slowest["execution"]),
            "sum_execution_header_s": sum(r["execution"] for r in crowd),
            "sum_logged_s": sum(logged),
            "logged_n": len(logged),
            "sum_latency_s": sum(r["latency"] for r in crowd),
        }
    return figures


def memory_view() -> dict:
    """What psutil (ComfyUI's --cache-ram) reads against the container's cgroup limit."""
    view: dict = {}
    try:
        import psutil

        view["psutil_available_gb"] = psutil.virtual_memory().available / 2**30
        view["psutil_total_gb"] = psutil.virtual_memory().total / 2**30
    except ImportError:
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        view["cgroup_limit_gb"] = raw if raw == "max" else int(raw) / 2**30
        break
    return view


def table(f: dict) -> str:
    r, c, m = f["readiness"], f["concurrent"], f["mix"]
    raw = statistics.mean(r["raw_s"]) if r["raw_s"] else float("nan")
    lines = [
        f"plan: {f['plan']['verdict']}, flags {' '.join(f['plan']['flags'])}, pinned {', '.join(f['plan']['pinned'])}",
        f"helper: {f['residency_helper']}; torch imported before ComfyUI: {f['torch_imported_early']}",
        f"memory seen by psutil vs cgroup: {f['meminfo']}",
        "",
        "| measurement | result | goal |",
        "|---|---|---|",
        f"| readiness over raw ComfyUI start | {1000 * (r['ours_s'] - raw):+.0f} ms (ours {r['ours_s']:.2f} s, raw {', '.join(f'{x:.2f}' for x in r['raw_s'])} s) | <= +100 ms |",
        f"| warm-up (all endpoints) | {f['warmup']['s']:.2f} s | |",
    ]
    for path, fw in f["first_vs_warm"].items():
        lines.append(
            f"| first request {path} vs warm p50 | {fw['ratio']:.2f}x ({fw['first_s']:.3f} / {fw['warm_p50_s']:.3f} s) | <= 1.1x |"
        )
    lines += [
        f"| reloads over {m['requests']} random requests ({m['switches']} switches, {f['gap']} /a in a row) | {m['reloads']} (p50 {m['latency_p50_s']}, max {m['latency_max_s']}) | 0 |",
        f"| {c['n']} concurrent: slowest vs its queue + execution | {c['slowest_ratio']:.3f}x ({c['slowest_s']:.2f} / {c['slowest_comfy_s']:.2f} s) | <= 1.2x |",
        f"| {c['n']} concurrent: sum X-Execution-Time-Sec vs ComfyUI's log | {c['sum_execution_header_s']:.2f} / {c['sum_logged_s']:.2f} s ({c['logged_n']} lines) = {c['sum_execution_header_s'] / max(c['sum_logged_s'], 1e-9):.3f} | within 5 % |",
        f"| {c['n']} concurrent: sum of latencies (what the old header summed) | {c['sum_latency_s']:.2f} s over {c['wall_s']:.2f} s wall | |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfy-dir", type=Path, required=True)
    parser.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        help="file name in models/checkpoints; repeat",
    )
    parser.add_argument("--gpu", default="H200", help="GPU type for the residency plan")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--mix", type=int, default=200)
    parser.add_argument("--mix-steps", type=int, default=4)
    parser.add_argument("--gap", type=int, default=40, help="requests to /a in a row, then /b")
    parser.add_argument("--warm-runs", type=int, default=8)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--port", type=int, default=8190)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="start as for a memory snapshot, then hand over the GPU",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="the plan's flags without the helper's pins"
    )
    parser.add_argument("--extra-arg", action="append", default=[], help="more ComfyUI flags")
    parser.add_argument(
        "--comfy-python", default=sys.executable, help="the Python that runs ComfyUI"
    )
    parser.add_argument(
        "--raw-starts",
        type=int,
        default=2,
        choices=(0, 1, 2),
        help="raw ComfyUI starts for the readiness baseline (before, after)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    print(table(figures))


if __name__ == "__main__":
    main()
