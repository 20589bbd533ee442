"""GET /jobs/{id}/events (Server-Sent Events) and Idempotency-Key on POST /jobs/<path>, through
the generated app's FastAPI against the stand-in (as ryla-gen dev serves it)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from helpers import REPO, import_generated

from generator.runtime.backends import RemoteComfy
from generator.runtime.server import create_app

DEMO = import_generated(REPO / "generated" / "ryla_demo.py")


@pytest.fixture()
async def api(slow_standin):
    comfy = RemoteComfy(slow_standin.url, base_dir=slow_standin.base_dir)
    app = create_app(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app", timeout=30
    ) as client:
        yield client
    await comfy.client.aclose()


def parse(text: str) -> list[dict]:
    """Events as {id, event, data}; comment lines (heartbeats) are skipped."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ":" in line[:6])
        if "data" in fields:
            events.append({**fields, "data": json.loads(fields["data"])})
    return events


async def test_events_stream_progress_then_the_final_status(api: httpx.AsyncClient) -> None:
    job_id = (await api.post("/jobs/blur", json={"sigma": 1.0})).json()["job_id"]
    answer = await api.get(f"/jobs/{job_id}/events")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = parse(answer.text)
    assert [e["event"] for e in events[:-1]] == ["progress"] * (len(events) - 1)
    assert events[-1]["event"] == "final" and events[-1]["data"]["status"] == "succeeded"
    assert events[-1]["data"]["result_url"] == f"/jobs/{job_id}/result"
    running = [e["data"]["progress"] for e in events if e["data"]["status"] == "running"]
    assert len(running) >= 3 and running == sorted(running)  # several steps, increasing
    assert any(e["data"]["node"] for e in events)  # the node running now is named
    assert len({e["id"] for e in events}) == len(events)


async def test_last_event_id_resumes_without_repeating(api: httpx.AsyncClient) -> None:
    job_id = (await api.post("/jobs/blur", json={"sigma": 1.0})).json()["job_id"]
    first = parse((await api.get(f"/jobs/{job_id}/events")).text)
    final = first[-1]
    again = await api.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": first[-2]["id"]})
    assert parse(again.text) == [final]  # only what changed since: the final status
    done = await api.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": final["id"]})
    assert done.status_code == 200 and parse(done.text) == []


async def test_events_of_an_unknown_job_are_404(api: httpx.AsyncClient) -> None:
    answer = await api.get("/jobs/job-nope/events")
    assert answer.status_code == 404 and answer.json()["type"] == "not_found"


async def test_idempotency_key_same_body_same_job_other_body_422(api: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "order-17"}
    first = await api.post("/jobs/invert", json={"width": 8, "height": 8}, headers=key)
    assert first.status_code == 202
    # same body, keys in another order: the same job, not a second run
    again = await api.post("/jobs/invert", json={"height": 8, "width": 8}, headers=key)
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await api.post("/jobs/invert", json={"width": 9}, headers=key)
    assert other.status_code == 422 and other.json()["type"] == "idempotency_key_reused"
    elsewhere = await api.post("/jobs/blur", json={"width": 8, "height": 8}, headers=key)
    assert elsewhere.status_code == 422
    fresh = await api.post("/jobs/invert", json={"width": 8, "height": 8})
    assert fresh.json()["job_id"] != first.json()["job_id"]  # no key: a new job


async def test_an_invalid_submission_does_not_take_the_key(api: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "k-invalid"}
    bad = await api.post("/jobs/invert", json={"width": 0}, headers=key)
    assert bad.status_code == 422 and bad.json()["type"] == "validation_error"
    good = await api.post("/jobs/invert", json={"width": 8}, headers=key)
    assert good.status_code == 202
    empty = await api.post("/jobs/invert", json={}, headers={"Idempotency-Key": " "})
    assert empty.status_code == 422


async def test_concurrent_submissions_with_one_key_make_one_job(api: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "retry-storm"}
    answers = await asyncio.gather(
        *(api.post("/jobs/invert", json={"width": 8}, headers=key) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["job_id"] for a in answers}) == 1
