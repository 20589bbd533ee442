"""Asynchronous jobs through the generated app's FastAPI against the stand-in (ryla-gen dev)."""

from __future__ import annotations

import asyncio
import dataclasses
import http.server
import io
import json
import threading
import warnings
from pathlib import Path

import httpx
import pytest
from helpers import REPO, import_generated
from PIL import Image

from generator.runtime.backends import RemoteComfy
from generator.runtime.config import Endpoint
from generator.runtime.server import create_app
from generator.runtime.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

DEMO = import_generated(REPO / "generated" / "ryla_demo.py")
SECRET = "test-webhook-secret"


@pytest.fixture()
async def api(slow_standin, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RYLA_WEBHOOK_SECRET", SECRET)
    comfy = RemoteComfy(slow_standin.url, base_dir=slow_standin.base_dir)
    settings = dataclasses.replace(DEMO.SETTINGS, allow_private_urls=True)  # local receiver
    app = create_app(settings, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as client:
        yield client
    await comfy.client.aclose()


async def wait_for(
    api: httpx.AsyncClient, job_id: str, statuses: set[str], timeout: float = 20
) -> dict:
    for _ in range(int(timeout / 0.02)):
        status = (await api.get(f"/jobs/{job_id}")).json()
        if status["status"] in statuses:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}: {status}")


async def test_submit_poll_progress_and_result(api: httpx.AsyncClient) -> None:
    submitted = await api.post("/jobs/blur", json={"sigma": 1.0, "seed": 5})
    assert submitted.status_code == 202
    job_id = submitted.json()["job_id"]
    assert submitted.json()["status_url"] == f"/jobs/{job_id}"
    seen: list[float] = []
    while True:
        status = (await api.get(f"/jobs/{job_id}")).json()
        if status["status"] == "running":
            seen.append(status["progress"])
        if status["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.05)
    assert status["status"] == "succeeded", status
    assert status["result_url"] == f"/jobs/{job_id}/result"
    assert seen == sorted(seen) and len(set(seen)) >= 3  # increasing, several steps
    assert seen[0] < 0.5 < seen[-1] <= 1
    result = await api.get(f"/jobs/{job_id}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert result.headers["X-Seed"] == "5"
    with Image.open(io.BytesIO(result.content)) as image:
        assert image.size == (256, 256)


async def test_result_before_the_end_is_409(api: httpx.AsyncClient) -> None:
    job_id = (await api.post("/jobs/blur", json={})).json()["job_id"]
    early = await api.get(f"/jobs/{job_id}/result")
    assert early.status_code == 409 and early.json()["type"] == "not_ready"
    await wait_for(api, job_id, {"succeeded"})


async def test_cancel_mid_run_empties_the_queue(api: httpx.AsyncClient, slow_standin) -> None:
    job_id = (await api.post("/jobs/blur", json={"sigma": 1.0})).json()["job_id"]
    await wait_for(api, job_id, {"running"})
    await asyncio.sleep(0.3)
    cancelled = await api.delete(f"/jobs/{job_id}")
    assert cancelled.status_code == 202
    assert (await wait_for(api, job_id, {"cancelled"}))["status"] == "cancelled"
    queue = slow_standin.queue()
    assert queue["queue_running"] == [] and queue["queue_pending"] == []


async def test_failing_job_reports_node_details(slow_standin, tmp_path: Path) -> None:
    (Path(slow_standin.base_dir) / "input" / "corrupt.png").write_bytes(b"not an image")
    (tmp_path / "broken.json").write_text(json.dumps({
        "1": {"class_type": "LoadImage", "inputs": {"image": "corrupt.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }))  # fmt: skip
    broken = Endpoint(path="/broken", request_model=DEMO.InvertRequest, workflow="broken.json",
                      params=(), outputs=("2",), timeout=10)  # fmt: skip
    comfy = RemoteComfy(slow_standin.url, base_dir=slow_standin.base_dir)
    app = create_app(DEMO.SETTINGS, [broken], comfy, tmp_path)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as api:
        job_id = (await api.post("/jobs/broken", json={})).json()["job_id"]
        status = await wait_for(api, job_id, {"failed"})
        result = await api.get(f"/jobs/{job_id}/result")
    assert status["http_status"] == 500
    details = status["error"]["details"]
    assert (details["node_id"], details["node_type"]) == ("1", "LoadImage")
    assert result.status_code == 500 and result.json() == status["error"]
    await comfy.client.aclose()


class Receiver(http.server.BaseHTTPRequestHandler):
    calls: list[tuple[bytes, dict[str, str]]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.calls.append((body, dict(self.headers)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def receiver():
    Receiver.calls = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


async def test_webhook_gets_one_signed_call(api: httpx.AsyncClient, receiver: str) -> None:
    job_id = (await api.post("/jobs/invert", json={"width": 4, "webhook_url": receiver})).json()[
        "job_id"
    ]
    await wait_for(api, job_id, {"succeeded"})
    for _ in range(100):
        if Receiver.calls:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert len(Receiver.calls) == 1
    body, headers = Receiver.calls[0]
    payload = json.loads(body)
    assert payload["job"]["job_id"] == job_id and payload["job"]["status"] == "succeeded"
    assert payload["job"]["result_url"] == f"/jobs/{job_id}/result"
    assert "result" not in payload["job"]  # a reference, not the bytes
    assert headers[SIGNATURE_HEADER].startswith("v1,")
    assert verify(body, headers, SECRET)
    tampered = body.replace(b"succeeded", b"failed")
    assert not verify(tampered, headers, SECRET)
    assert not verify(body, headers, "another-secret")
    later = int(headers[TIMESTAMP_HEADER]) + 301  # replayed after the window
    assert not verify(body, headers, SECRET, now=later)
    forged = {**headers, TIMESTAMP_HEADER: str(later)}  # a fresh timestamp breaks the signature
    assert not verify(body, forged, SECRET, now=later)


async def test_webhook_url_follows_the_ssrf_rules(slow_standin, monkeypatch) -> None:
    monkeypatch.setenv("RYLA_WEBHOOK_SECRET", SECRET)
    comfy = RemoteComfy(slow_standin.url, base_dir=slow_standin.base_dir)
    app = create_app(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)  # private refused
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as client:
        for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/", "ftp://example.com/"):
            response = await client.post("/jobs/invert", json={"webhook_url": url})
            assert response.status_code == 422, url
            assert response.json()["details"][0]["field"] == "webhook_url"
    await comfy.client.aclose()


async def test_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.get("/jobs/job-nope")).status_code == 404
    assert (await api.delete("/jobs/job-nope")).status_code == 404


def test_generated_module_runs_jobs_in_a_spawned_method() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        function = DEMO.app.registered_functions["ComfyUI.*"]
    info = function.info()
    assert {"fastapi_app", "run_job"} <= set(info.method_names)
    assert set(info.method_details) == {"fastapi_app"}  # run_job is a plain method: spawned
    source = (REPO / "generated" / "ryla_demo.py").read_text()
    assert "ComfyUI().run_job.spawn" in source


class FakeAio:
    """The `.aio` calling convention of Modal objects, over a plain function."""

    def __init__(self, fn):
        self.aio = fn


class FakeDict:
    def __init__(self) -> None:
        self.data: dict = {}

        async def put(key, value):
            self.data[key] = value

        async def get(key):
            return self.data.get(key)

        self.put, self.get = FakeAio(put), FakeAio(get)


async def test_modal_jobs_spawn_and_publish_through_the_dict(standin) -> None:
    from types import SimpleNamespace

    from generator.runtime.config import load_workflows
    from generator.runtime.jobs import ModalJobs

    spawned = []

    async def spawn(path, values, webhook_url, job_id):
        spawned.append((path, values, webhook_url, job_id))
        return SimpleNamespace(object_id="fc-test")

    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    state = FakeDict()
    jobs = ModalJobs(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy, load_workflows(DEMO.WORKFLOWS, DEMO.ENDPOINTS),
                     state=state, spawn=FakeAio(spawn))  # fmt: skip
    job_id = await jobs.submit("/invert", {"width": 2, "height": 2, "color": 0}, None)
    assert job_id.startswith("job_") and job_id != "fc-test"  # random, not the call id
    assert state.data[job_id] == {**state.data[job_id], "status": "queued", "call_id": "fc-test"}
    assert spawned == [("/invert", {"width": 2, "height": 2, "color": 0}, None, job_id)]
    final = await jobs.run(job_id, "/invert", {"width": 2, "height": 2, "color": 0}, None)
    assert (
        final["status"] == "succeeded" and final["result"]["files"][0]["media_type"] == "image/png"
    )
    stored = state.data[job_id]
    assert (
        stored["status"] == "succeeded" and "result" not in stored
    )  # bytes stay in the call's result
    await comfy.client.aclose()
