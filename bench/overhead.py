"""What a generated endpoint adds over a hand-written ComfyUI client, in one run.

Serves `ryla-gen dev ryla-demo` (uvicorn) as a child process on loopback, in front of a ComfyUI:
the stand-in by default, or any running ComfyUI with ``--comfy-url`` (``--comfy-dir`` names its
base directory when it is on this machine, so request files get removed as in production).
Then, alternating request by request with a hand-written client that keeps one WebSocket
(bench/direct_client.py), the same workflow (EmptyImage -> ImageInvert -> SaveImage):

- 64x64: the endpoint's fixed cost;
- ``--big`` (default 1536x1536; ~0.6 s on a real ComfyUI on a CPU): its cost on real work;
- 16 concurrent requests: the slowest one's latency against what ComfyUI spent on it (its queue
  wait plus its execution, from ``X-Queue-Time-Sec`` and ``X-Execution-Time-Sec``), and the sum
  of ``X-Execution-Time-Sec`` against the batch's wall time (ComfyUI runs one prompt at a time).

Every request uses a new colour, so ComfyUI's cache never answers. For context, a few runs of the
hand-written apps' way of waiting (poll ``/history`` once a second).

    .venv/bin/python bench/overhead.py [--runs 300] [--comfy-url URL [--comfy-dir DIR]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ scripts run from anywhere
from direct_client import DirectSession  # noqa: E402

from generator.standin import StandinProcess, free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = json.loads((REPO / "comfy_workflows" / "demo-invert.json").read_text())
WARMUP_RUNS = 20  # per series, not counted: connections, imports, allocator


def percentile(samples: list[float], q: int) -> float:
    return (
        statistics.quantiles(samples, n=100, method="inclusive")[q - 1]
        if len(samples) > 1
        else samples[0]
    )


def start_dev(comfy_url: str, comfy_dir: str | None, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "generator.cli", "dev", "ryla-demo"]
    command += ["--comfy-url", comfy_url, "--port", str(port)]
    if comfy_dir:
        command += ["--comfy-dir", comfy_dir]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(trust_env=False) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


class Colours:
    """A new colour per request, so ComfyUI's cache never answers."""

    def __init__(self, seed: int) -> None:
        self.n = seed

    def __next__(self) -> int:
        self.n += 1
        return (self.n * 7919) % 0xFFFFFF


def prompt_for(size: int, color: int, prefix: str) -> dict:
    prompt = json.loads(json.dumps(WORKFLOW))
    prompt["1"]["inputs"].update(width=size, height=size, color=color)
    prompt["3"]["inputs"]["filename_prefix"] = prefix
    return prompt


async def alternate(
    runs: int, size: int, comfy_url: str, endpoint_url: str, colours: Colours
) -> tuple[list[float], list[float]]:
    """Latency in ms of the endpoint and of the direct client, request by request alternating."""
    endpoint_ms, direct_ms = [], []
    async with (
        httpx.AsyncClient(trust_env=False, timeout=120) as endpoint_http,
        httpx.AsyncClient(base_url=comfy_url, trust_env=False, timeout=120) as comfy_http,
        DirectSession(comfy_url, comfy_http) as direct,
    ):
        for i in range(runs + WARMUP_RUNS):
            body = {"color": next(colours), "width": size, "height": size}
            started = time.perf_counter()
            response = await endpoint_http.post(f"{endpoint_url}/invert", json=body)
            elapsed_endpoint = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            prompt = prompt_for(size, next(colours), f"direct/{size}_{i}")
            started = time.perf_counter()
            await direct.run(prompt)
            elapsed_direct = (time.perf_counter() - started) * 1000
            if i >= WARMUP_RUNS:
                endpoint_ms.append(elapsed_endpoint)
                direct_ms.append(elapsed_direct)
    return endpoint_ms, direct_ms


async def concurrent(
    n: int, comfy_url: str, endpoint_url: str, colours: Colours
) -> dict[str, float]:
    """``n`` simultaneous /invert requests: latencies against ComfyUI's own timings, and the
    slowest of ``n`` prompts posted at once by a direct client following them on one socket."""
    async with (
        httpx.AsyncClient(base_url=comfy_url, trust_env=False, timeout=120) as comfy_http,
        DirectSession(comfy_url, comfy_http) as direct,
    ):
        prompts = [prompt_for(64, next(colours), f"direct/crowd_{i}") for i in range(n)]
        direct_slowest = max(await direct.run_many(prompts))
    async with httpx.AsyncClient(trust_env=False, timeout=120) as http:

        async def one() -> tuple[float, float, float]:
            started = time.perf_counter()
            response = await http.post(f"{endpoint_url}/invert", json={"color": next(colours)})
            latency = time.perf_counter() - started
            response.raise_for_status()
            execution = float(response.headers["X-Execution-Time-Sec"])
            return latency, execution, float(response.headers["X-Queue-Time-Sec"])

        started = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - started
    latency, execution, queue = max(results)
    return {
        "slowest_s": latency,
        "direct_slowest_s": direct_slowest,
        "slowest_comfy_s": queue + execution,
        "ratio": latency / max(queue + execution, 1e-9),
        "sum_execution_s": sum(r[1] for r in results),
        "wall_s": wall,
    }


async def polling_run(comfy_url: str, prompt: dict, http: httpx.AsyncClient) -> bytes:
    """How the hand-written apps wait: POST, then GET /history once a second until done."""
    response = await http.post(f"{comfy_url}/prompt", json={"prompt": prompt})
    prompt_id = response.json()["prompt_id"]
    while True:
        await asyncio.sleep(1.0)
        history = (await http.get(f"{comfy_url}/history/{prompt_id}")).json()
        if prompt_id in history:
            outputs = history[prompt_id]["outputs"]
            image = next(iter(outputs.values()))["images"][0]
            return (await http.get(f"{comfy_url}/view", params=image)).content


async def measure_polling(runs: int, comfy_url: str, colours: Colours) -> list[float]:
    samples = []
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        for i in range(runs):
            prompt = prompt_for(64, next(colours), f"polling/{i}")
            started = time.perf_counter()
            await polling_run(comfy_url, prompt, http)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


@contextlib.contextmanager
def comfyui(url: str | None, base_dir: str | None) -> Iterator[tuple[str, str | None]]:
    """The ComfyUI to measure against: the given one, or a stand-in for the run."""
    if url:
        yield url, base_dir
        return
    with tempfile.TemporaryDirectory() as tmp, StandinProcess(Path(tmp) / "comfy") as comfy:
        yield comfy.url, str(Path(tmp) / "comfy")


def row(name: str, samples: list[float]) -> str:
    return f"{name:34}{percentile(samples, 50):>10.2f}{percentile(samples, 90):>10.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="alternating pairs at 64x64")
    parser.add_argument("--big", type=int, default=1536, help="side of the larger workflow")
    parser.add_argument("--big-runs", type=int, default=40)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--polling-runs", type=int, default=10, help="history-polling baseline")
    parser.add_argument("--comfy-url", help="a running ComfyUI (default: start the stand-in)")
    parser.add_argument("--comfy-dir", help="that ComfyUI's base directory, when local")
    args = parser.parse_args()
    colours = Colours(int(time.time()))
    with comfyui(args.comfy_url, args.comfy_dir) as (comfy_url, comfy_dir):
        port = free_port()
        dev = start_dev(comfy_url, comfy_dir, port)
        try:
            endpoint_url = f"http://127.0.0.1:{port}"
            asyncio.run(wait_up(f"{endpoint_url}/ready"))
            tiny = asyncio.run(alternate(args.runs, 64, comfy_url, endpoint_url, colours))
            big = asyncio.run(alternate(args.big_runs, args.big, comfy_url, endpoint_url, colours))
            asyncio.run(concurrent(args.concurrent, comfy_url, endpoint_url, colours))  # warm
            crowd = asyncio.run(concurrent(args.concurrent, comfy_url, endpoint_url, colours))
            polling = asyncio.run(measure_polling(args.polling_runs, comfy_url, colours))
        finally:
            dev.terminate()
            dev.wait(10)
    print(f"ComfyUI: {args.comfy_url or 'stand-in'}; EmptyImage -> ImageInvert -> SaveImage")
    for (endpoint_ms, direct_ms), size, runs in (
        (tiny, 64, args.runs),
        (big, args.big, args.big_runs),
    ):
        print(f"\n{size}x{size}, {runs} runs each, alternating{'':8}p50 ms    p90 ms")
        print(row("direct client (one WebSocket)", direct_ms))
        print(row("ryla-gen endpoint (dev)", endpoint_ms))
        d50 = percentile(endpoint_ms, 50) - percentile(direct_ms, 50)
        d90 = percentile(endpoint_ms, 90) - percentile(direct_ms, 90)
        ratio = percentile(endpoint_ms, 50) / percentile(direct_ms, 50)
        print(f"{'endpoint - direct':34}{d50:>+10.2f}{d90:>+10.2f}   ratio p50 {ratio:.3f}x")
    print(f"\n{args.concurrent} concurrent /invert (64x64) through the endpoint")
    print(
        f"  slowest: {crowd['slowest_s'] * 1000:.1f} ms; ComfyUI spent"
        f" {crowd['slowest_comfy_s'] * 1000:.1f} ms on it (queue + run): {crowd['ratio']:.3f}x"
    )
    print(
        f"  slowest of the same prompts posted at once by the direct client:"
        f" {crowd['direct_slowest_s'] * 1000:.1f} ms: endpoint"
        f" {crowd['slowest_s'] / crowd['direct_slowest_s']:.3f}x"
    )
    print(
        f"  sum of X-Execution-Time-Sec {crowd['sum_execution_s'] * 1000:.1f} ms over"
        f" {crowd['wall_s'] * 1000:.1f} ms wall ({crowd['sum_execution_s'] / crowd['wall_s']:.2f}"
        " of the batch; one prompt at a time)"
    )
    if polling:  # --polling-runs 0 skips the baseline
        print(
            f"\nhistory polling (hand-written apps): p50 {percentile(polling, 50):.1f} ms,"
            f" p90 {percentile(polling, 90):.1f} ms ({args.polling_runs} runs, 1 s poll)"
        )


if __name__ == "__main__":
    main()
