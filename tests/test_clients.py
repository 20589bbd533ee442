"""The generated clients (generated/clients/) against `ryla-gen dev ryla-demo` on the ComfyUI
stand-in, both as child processes; and the committed OpenAPI documents against what the apps
serve.

The TypeScript client's own test (generated/clients/typescript/test/ryla-demo.test.ts) runs
under node: this copies the client to a temporary folder, runs `npm ci` there (the pinned
typescript from the lockfile) and `npm test`, which compiles with the strict tsconfig (what
`npm run check` checks; a type error fails it) and runs the node test.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import REPO
from PIL import Image

from generator.dev import dev_app
from generator.standin import StandinProcess, free_port

CLIENTS = REPO / "generated" / "clients"
INVERT = {"width": 8, "height": 8, "color": 0x112233}
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGM8UaHBwMDAxM"
    "DAwMDAAAARqgFsecZ2JgAAAABJRU5ErkJggg=="
)


INVERTED = {(0xEE, 0xDD, 0xCC)}  # the colours of an inverted 0x112233 canvas


def _pixels(source: Path | bytes) -> set[tuple[int, ...]]:
    """The distinct RGB colours of a PNG."""
    with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as image:
        return {color for _, color in image.convert("RGB").getcolors(1 << 24)}


@dataclass
class Demo:
    url: str  # ryla-gen dev ryla-demo
    fleet_url: str  # ryla-gen dev ryla-comfyui: the fleet's front door, same stand-in


def _wait_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ryla-gen dev exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/health", trust_env=False, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"ryla-gen dev did not come up:\n{log.read_text()}")


def _dev(app: str, comfy_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "generator.cli", "dev", app]
            + ["--comfy-url", comfy_url, "--port", str(port)],
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`ryla-gen dev ryla-demo` and `ryla-gen dev ryla-comfyui` (the committed modules) against
    one stand-in whose blur is slow."""
    root = tmp_path_factory.mktemp("clients")
    standin = StandinProcess(root / "comfy", node_delay=0.5).start()
    servers = [
        (*_dev(name, standin.url, root / f"{name}.log"), root / f"{name}.log")
        for name in ("ryla-demo", "ryla-comfyui")
    ]
    try:
        for process, url, log in servers:
            _wait_up(url, process, log)
        yield Demo(servers[0][1], servers[1][1])
    finally:
        for process, _, _ in servers:
            process.terminate()
            process.wait(timeout=10)
        standin.stop()


def _npm(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_typescript_client_type_checks_and_passes_its_node_test(demo: Demo, tmp_path: Path) -> None:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node and npm are needed for the TypeScript client's test")
    client = tmp_path / "typescript"
    ignore = shutil.ignore_patterns("node_modules", "dist")
    shutil.copytree(CLIENTS / "typescript", client, ignore=ignore)
    env = {**os.environ, "NO_UPDATE_NOTIFIER": "1"}
    installed = _npm(["ci", "--prefer-offline", "--no-audit", "--no-fund"], client, env)
    if installed.returncode != 0 and any(
        code in installed.stderr for code in ("ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED")
    ):
        pytest.skip(f"npm ci could not reach the registry:\n{installed.stderr[-500:]}")
    assert installed.returncode == 0, installed.stderr
    out = tmp_path / "received"
    out.mkdir()
    env |= {"RYLA_DEMO_URL": demo.url, "RYLA_FLEET_URL": demo.fleet_url, "RYLA_DEMO_OUT": str(out)}
    tested = _npm(["test"], client, env)
    output = tested.stdout + tested.stderr
    assert tested.returncode == 0, output
    assert "# fail 0" in output and "# skipped 0" in output, output
    assert _pixels(out / "invert.png") == _pixels(out / "job-result.png") == INVERTED
    assert _pixels(out / "scale-legacy.png") == _pixels(out / "scale-current.png")
    assert _pixels(out / "fleet-invert.png") == INVERTED
    assert _pixels(out / "fleet-chain.png") == INVERTED


@pytest.fixture(scope="module")
def fleet(demo: Demo) -> Iterator[object]:
    sys.path.insert(0, str(CLIENTS / "python"))
    try:
        import ryla_client

        client = ryla_client.Fleet(base_urls={"ryla-demo": demo.url}, timeout=30)
        yield client
        client.transport.client.close()
    finally:
        sys.path.remove(str(CLIENTS / "python"))


def test_python_client_returns_bytes_and_headers(fleet, demo: Demo) -> None:
    result = fleet.ryla_demo.invert(INVERT)
    assert _pixels(result.data) == INVERTED
    assert result.content_type == "image/png" and result.gpu_type == "T4"
    assert result.execution_time_sec is not None and result.execution_time_sec >= 0
    assert result.cost_usd is not None and result.cost_usd >= 0
    assert fleet.ryla_demo.blur({"sigma": 0.5, "seed": 42}).seed == "42"
    assert fleet.ryla_demo.animate({"frames": 2}).headers["x-frames"] == "2"


def test_python_client_accepts_legacy_names_and_raises_typed_errors(fleet) -> None:
    import ryla_client

    current = fleet.ryla_demo.scale({"image": PIXEL})
    legacy = fleet.ryla_demo.scale({"source_image": PIXEL})
    assert _pixels(legacy.data) == _pixels(current.data)
    with Image.open(io.BytesIO(legacy.data)) as image:
        assert image.size == (4, 4)
    with pytest.raises(ryla_client.RylaError) as caught:
        fleet.ryla_demo.invert({"width": 0})
    assert caught.value.status == 422 and caught.value.type == "validation_error"
    assert "width" in caught.value.error


def test_python_client_jobs(fleet, demo: Demo) -> None:
    import ryla_client

    key = f"py-{time.time_ns()}"
    job = fleet.ryla_demo.submit("/invert", INVERT, idempotency_key=key)
    assert fleet.ryla_demo.submit("/invert", INVERT, idempotency_key=key).id == job.id
    with pytest.raises(ryla_client.RylaError) as caught:
        fleet.ryla_demo.submit("/invert", {"width": 9}, idempotency_key=key)
    assert caught.value.status == 422 and caught.value.type == "idempotency_key_reused"
    events = list(job.events())
    assert events[-1].event == "final" and events[-1].status["status"] == "succeeded"
    assert _pixels(job.result().data) == INVERTED
    assert job.wait(interval=0.05)["status"] == "succeeded"

    slow = fleet.ryla_demo.submit("/blur", {"sigma": 9})
    seen = []
    for event in slow.events():  # cancel once it runs: the stream ends with the final status
        seen.append(event.status["status"])
        if event.status["status"] == "running" and seen.count("running") == 1:
            slow.cancel()
    assert "running" in seen and seen[-1] == "cancelled", seen
    assert slow.wait(interval=0.05, timeout=20)["status"] == "cancelled"


def test_python_client_through_the_fleet_url(fleet, demo: Demo) -> None:
    """One URL for every app: the front door forwards /invert to ryla-demo, runs the chain."""
    import ryla_client

    one_url = ryla_client.Fleet(fleet_url=demo.fleet_url, timeout=30)
    try:
        assert _pixels(one_url.ryla_demo.invert(INVERT).data) == INVERTED
        chained = one_url.ryla_comfyui.demo_invert_scale({"size": 4, "color": 0x112233})
        assert chained.content_type == "image/png" and _pixels(chained.data) == INVERTED
        with Image.open(io.BytesIO(chained.data)) as image:
            assert image.size == (8, 8)  # scaled by 2
        assert not hasattr(one_url.ryla_comfyui, "submit")  # the front door runs no jobs
    finally:
        one_url.transport.client.close()


def test_python_client_sends_jobs_to_the_app_and_runs_to_the_fleet_url(fleet) -> None:
    import ryla_client

    target = ryla_client.Target("ryla-demo", "comfyui-fastapi-app")
    both = ryla_client.Transport(fleet_url="https://fleet.example", workspace="ws")
    assert both.base_url(target) == "https://fleet.example"
    assert both.base_url(target, jobs=True) == "https://ws--ryla-demo-comfyui-fastapi-app.modal.run"
    only_fleet = ryla_client.Transport(fleet_url="https://fleet.example/")
    assert only_fleet.base_url(target, jobs=True) == "https://fleet.example"
    with pytest.raises(ValueError, match="no URL for app ryla-demo"):
        ryla_client.Transport().base_url(target)


@pytest.mark.parametrize(
    ("module", "jobs"), [("ryla_demo", True), ("ryla_flux", True), ("ryla_comfyui", False)]
)
def test_committed_openapi_is_what_the_app_serves(module: str, jobs: bool) -> None:
    """ryla_comfyui is the fleet's front door (every route, chains; no jobs)."""
    app = dev_app(REPO / "generated" / f"{module}.py", "http://127.0.0.1:9")
    with TestClient(app) as client:
        served = client.get("/openapi.json").json()
    committed = json.loads((REPO / "generated" / "openapi" / f"{module}.json").read_text())
    assert committed == served
    assert ("/jobs/{job_id}/events" in committed["paths"]) == jobs
    submits = [
        o["post"] for p, o in committed["paths"].items() if p.startswith("/jobs/") and "post" in o
    ]
    assert bool(submits) == jobs
    assert all("Idempotency-Key" in [p["name"] for p in s.get("parameters", [])] for s in submits)
