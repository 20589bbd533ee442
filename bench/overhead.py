"""What a generated endpoint adds over a hand-written ComfyUI client, in one run.

Starts the ComfyUI stand-in and `ryla-gen dev ryla-demo` (uvicorn) as child processes on
loopback, then alternates requests: POST /invert to the endpoint, and the same 64x64 workflow
(EmptyImage -> ImageInvert -> SaveImage) through bench/direct_client.py straight to ComfyUI.
Every request uses a new colour, so ComfyUI's cache never answers. Prints p50/p90 of both and
the difference, and, for context, a few runs of the hand-written apps' way of waiting (poll
``/history`` once a second).

    .venv/bin/python bench/overhead.py [--runs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ scripts run from anywhere
from direct_client import direct_run  # noqa: E402

from generator.standin import StandinProcess, free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = json.loads((REPO / "comfy_workflows" / "demo-invert.json").read_text())


def percentile(samples: list[float], q: float) -> float:
    return (
        statistics.quantiles(samples, n=100, method="inclusive")[q - 1]
        if len(samples) > 1
        else samples[0]
    )


def start_dev(comfy_url: str, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "generator.cli",
        "dev",
        "ryla-demo",
        "--comfy-url",
        comfy_url,
        "--port",
        str(port),
    ]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_up(url: str, timeout: float = 30) -> None:
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


async def measure(runs: int, comfy_url: str, endpoint_url: str) -> tuple[list[float], list[float]]:
    endpoint_ms, direct_ms = [], []
    async with (
        httpx.AsyncClient(trust_env=False, timeout=30) as endpoint_http,
        httpx.AsyncClient(base_url=comfy_url, trust_env=False, timeout=30) as comfy_http,
    ):
        for i in range(runs + 20):  # the first 20 of each warm up connections and imports
            color = (i * 7919) % 0xFFFFFF
            started = time.perf_counter()
            response = await endpoint_http.post(f"{endpoint_url}/invert", json={"color": color})
            elapsed_endpoint = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            prompt = json.loads(json.dumps(WORKFLOW))
            prompt["1"]["inputs"]["color"] = (color + 1) % 0xFFFFFF
            prompt["3"]["inputs"]["filename_prefix"] = f"direct/{i}"
            started = time.perf_counter()
            await direct_run(comfy_url, prompt, http=comfy_http)
            elapsed_direct = (time.perf_counter() - started) * 1000
            if i >= 20:
                endpoint_ms.append(elapsed_endpoint)
                direct_ms.append(elapsed_direct)
    return endpoint_ms, direct_ms


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


async def measure_polling(runs: int, comfy_url: str) -> list[float]:
    samples = []
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        for i in range(runs):
            prompt = json.loads(json.dumps(WORKFLOW))
            prompt["1"]["inputs"]["color"] = (i * 104729) % 0xFFFFFF
            prompt["3"]["inputs"]["filename_prefix"] = f"polling/{i}"
            started = time.perf_counter()
            await polling_run(comfy_url, prompt, http)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument(
        "--polling-runs", type=int, default=10, help="runs of the history-polling baseline"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, StandinProcess(Path(tmp) / "comfy") as comfy:
        port = free_port()
        dev = start_dev(comfy.url, port)
        try:
            endpoint_url = f"http://127.0.0.1:{port}"
            asyncio.run(wait_up(f"{endpoint_url}/ready"))
            endpoint_ms, direct_ms = asyncio.run(measure(args.runs, comfy.url, endpoint_url))
            polling_ms = asyncio.run(measure_polling(args.polling_runs, comfy.url))
        finally:
            dev.terminate()
            dev.wait(10)
    print(
        f"tiny workflow (64x64 EmptyImage -> ImageInvert -> SaveImage), {args.runs} runs each,"
        " alternating"
    )
    print(f"{'':28}{'p50 ms':>10}{'p90 ms':>10}")
    for name, samples in (
        ("direct ComfyUI API client", direct_ms),
        ("ryla-gen endpoint (dev)", endpoint_ms),
    ):
        print(f"{name:28}{percentile(samples, 50):>10.2f}{percentile(samples, 90):>10.2f}")
    p50 = percentile(endpoint_ms, 50) - percentile(direct_ms, 50)
    p90 = percentile(endpoint_ms, 90) - percentile(direct_ms, 90)
    print(f"{'endpoint - direct':28}{p50:>+10.2f}{p90:>+10.2f}")
    print(
        f"{'history polling (today)':28}{percentile(polling_ms, 50):>10.2f}"
        f"{percentile(polling_ms, 90):>10.2f}   ({args.polling_runs} runs; 1 s poll)"
    )


if __name__ == "__main__":
    main()
