"""What the fleet's one URL costs over calling the owning app, in one run.

Starts the ComfyUI stand-in and two `ryla-gen dev` servers against it (uvicorn, loopback):
ryla-demo (the owner) and ryla-comfyui (the fleet's front door; in dev it runs the owner
in-process). A third front door, started here, forwards over a real HTTP hop to the ryla-demo
server, the nearest local stand-in for the Modal call it makes when deployed. Requests
alternate, every one with a new colour (ComfyUI's cache never answers):

- direct:        POST /invert to ryla-demo
- fleet (dev):   POST /invert to the front door, owner executed in-process
- fleet + hop:   POST /invert to the front door, owner reached over loopback HTTP
- chain:         POST /demo-invert-scale to the front door, vs the client calling /invert then
                 /scale itself (sending the image back)

Also prints what pickling a forwarded request's answer costs for a small image and a 4 MB
video (Modal serialises call arguments and results). What this cannot measure: Modal's own
hop (function-call scheduling, its network, a cold owner container), which only a deployed
fleet shows; `ryla-gen bench --workspace WS` against both URLs measures it there.

    .venv/bin/python bench/fleet_hop.py [--runs 100]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import pickle
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from generator.dev import load_generated
from generator.runtime.fleet import Outcome, create_fleet_app
from generator.standin import StandinProcess, free_port

REPO = Path(__file__).resolve().parents[1]


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def start_dev(app: str, comfy_url: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "generator.cli", "dev", app, "--comfy-url", comfy_url]
    return subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class HttpOwners:
    """Front-door owners reached over HTTP (every app served by one `ryla-gen dev` here)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=60)

    async def call(
        self, app: str, cls: str, path: str, values: dict[str, Any], as_json: bool
    ) -> Outcome:
        response = await self.http.post(path, json=values)
        headers = {k: v for k, v in response.headers.items() if k.startswith("x-")}
        media_type = response.headers.get("content-type")
        return Outcome(response.status_code, response.content, media_type, headers)


def serve_in_thread(app: Any, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    return server


async def wait_up(url: str, timeout: float = 60) -> None:
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


async def timed(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[float, bytes]:
    started = time.perf_counter()
    response = await http.post(url, json=body)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response.content


async def measure(runs: int, demo: str, fleet: str, hop: str) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {k: [] for k in ("direct", "fleet", "hop", "chain", "client")}
    async with httpx.AsyncClient(trust_env=False, timeout=60) as http:
        for i in range(runs + 10):  # the first 10 warm up connections and imports
            color = (i * 7919) % 0xFFFFF0
            body = {"width": 64, "height": 64}
            direct, _ = await timed(http, f"{demo}/invert", {**body, "color": color})
            forwarded, _ = await timed(http, f"{fleet}/invert", {**body, "color": color + 1})
            hopped, _ = await timed(http, f"{hop}/invert", {**body, "color": color + 2})
            chain_body = {"size": 64, "color": color + 3, "scale_by": 2.0}
            chained, _ = await timed(http, f"{fleet}/demo-invert-scale", chain_body)
            first, image = await timed(http, f"{demo}/invert", {**body, "color": color + 4})
            png = "data:image/png;base64," + base64.b64encode(image).decode()
            second, _ = await timed(http, f"{demo}/scale", {"image": png, "scale_by": 2.0})
            if i >= 10:
                samples["direct"].append(direct)
                samples["fleet"].append(forwarded)
                samples["hop"].append(hopped)
                samples["chain"].append(chained)
                samples["client"].append(first + second)
    return samples


def pickling_ms(size: int, repeat: int = 50) -> float:
    outcome = Outcome(200, bytes(size), "video/mp4", {"x-cost-usd": "0.1"}).as_dict()
    started = time.perf_counter()
    for _ in range(repeat):
        pickle.loads(pickle.dumps(outcome))
    return (time.perf_counter() - started) * 1000 / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    fleet_module = load_generated(REPO / "generated" / "ryla_comfyui.py")
    with tempfile.TemporaryDirectory() as tmp, StandinProcess(Path(tmp) / "comfy") as comfy:
        demo_port, fleet_port, hop_port = free_port(), free_port(), free_port()
        demo = start_dev("ryla-demo", comfy.url, demo_port)
        fleet = start_dev("ryla-comfyui", comfy.url, fleet_port)
        demo_url, fleet_url = f"http://127.0.0.1:{demo_port}", f"http://127.0.0.1:{fleet_port}"
        hop_app = create_fleet_app(
            fleet_module.SETTINGS,
            fleet_module.FORWARDS,
            fleet_module.CHAINS,
            fleet_module.RETIRED,
            HttpOwners(demo_url),
        )
        hop = serve_in_thread(hop_app, hop_port)
        try:
            asyncio.run(wait_up(f"{demo_url}/ready"))
            asyncio.run(wait_up(f"{fleet_url}/health"))
            asyncio.run(wait_up(f"http://127.0.0.1:{hop_port}/health"))
            samples = asyncio.run(
                measure(args.runs, demo_url, fleet_url, f"http://127.0.0.1:{hop_port}")
            )
        finally:
            hop.should_exit = True
            for process in (demo, fleet):
                process.terminate()
                process.wait(10)
    base = statistics.median(samples["direct"])
    print(f"{args.runs} runs each, 64x64 /invert on the ComfyUI stand-in (loopback)")
    print(f"{'':32} {'p50 ms':>8} {'p90 ms':>8} {'p50 - direct':>13}")
    rows = [
        ("direct (ryla-demo)", "direct"),
        ("fleet URL, owner in-process", "fleet"),
        ("fleet URL, owner over HTTP", "hop"),
    ]
    for label, key in rows:
        p50, p90 = statistics.median(samples[key]), percentile(samples[key], 90)
        print(f"{label:32} {p50:8.1f} {p90:8.1f} {p50 - base:+13.1f}")
    chain, client = statistics.median(samples["chain"]), statistics.median(samples["client"])
    print(f"{'chain /demo-invert-scale':32} {chain:8.1f} {percentile(samples['chain'], 90):8.1f}")
    print(
        f"{'client calls /invert, /scale':32} {client:8.1f} "
        f"{percentile(samples['client'], 90):8.1f} {chain - client:+13.1f} (chain - client)"
    )
    for label, size in (("64x64 PNG answer", 600), ("4 MB video answer", 4 * 1024 * 1024)):
        print(f"pickle round trip of a {label}: {pickling_ms(size):.3f} ms")
    print("Not measured: Modal's function-call hop (scheduling, network, cold owner).")


if __name__ == "__main__":
    main()
