"""A job's progress as Server-Sent Events, and ``Idempotency-Key`` on job submission.

Both sit on top of the jobs backend's public surface (``status``, ``submit`` answers), so they
work the same for ``LocalJobs`` and ``ModalJobs``:

- ``GET /jobs/{id}/events``: one event per change of the status record (state, progress 0..1,
  node running now) as GET /jobs/{id} shows it; ``event: progress`` while queued or running,
  ``event: final`` for the last one, then the stream ends. Each event's id names the snapshot it
  carries, so a client reconnecting with ``Last-Event-ID`` gets only what changed since, and
  always the final status. A comment line every ``HEARTBEAT_SECONDS`` keeps proxies from
  closing a quiet stream.
- ``Idempotency-Key`` on ``POST /jobs/<path>``: the same key with the same path and body answers
  the first submission's 202 again (``Idempotent-Replayed: true``) instead of running twice; the
  same key with another path or body is 422 ``idempotency_key_reused``. Keys are kept as long as
  their job is known (LocalJobs: in this process; ModalJobs: in the jobs ``modal.Dict``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .config import AppSettings
from .jobs import LocalJobs, ModalJobs, public_status
from .responses import error_docs, error_response

POLL_SECONDS = 0.2
HEARTBEAT_SECONDS = 15.0
ENDED = ("succeeded", "failed", "cancelled", "expired")
KEY_HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255


def snapshot_id(record: dict[str, Any]) -> str:
    """The event id of one status snapshot: equal snapshots, equal ids."""
    progress = record.get("progress")
    basis_points = -1 if progress is None else round(float(progress) * 10000)
    return f"{record.get('status')}.{basis_points}.{record.get('node') or ''}"


def _event(job_id: str, record: dict[str, Any], event_id: str) -> str:
    kind = "final" if record.get("status") in ENDED else "progress"
    data = json.dumps(public_status(job_id, record), separators=(",", ":"))
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n"


async def job_events(
    jobs: LocalJobs | ModalJobs, job_id: str, last_event_id: str | None
) -> AsyncIterator[str]:
    last, quiet_since = last_event_id, time.monotonic()
    while True:
        record = await jobs.status(job_id)
        if record is None:  # expired or forgotten while we watched
            gone = {"status": "expired", "error": "the job is no longer known"}
            yield _event(job_id, gone, snapshot_id(gone))
            return
        event_id = snapshot_id(record)
        if event_id != last:
            yield _event(job_id, record, event_id)
            last, quiet_since = event_id, time.monotonic()
        elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        if record.get("status") in ENDED:
            return
        await asyncio.sleep(POLL_SECONDS)


def add_job_event_route(app: FastAPI, settings: AppSettings, jobs: LocalJobs | ModalJobs) -> None:
    @app.get(
        "/jobs/{job_id}/events",
        summary="A job's progress as Server-Sent Events (resumable with Last-Event-ID)",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "`event: progress` per change of state, progress or node; "
                "`event: final` with the final status, then the stream ends. `data` is the "
                "status as GET /jobs/{job_id} shows it.",
                "content": {"text/event-stream": {}},
            },
            **error_docs(*((401,) if settings.auth == "bearer" else ()), 404, 422),
        },
    )
    async def events(job_id: str, request: Request) -> Response:
        if await jobs.status(job_id) is None:
            return error_response(404, f"no job {job_id}", "not_found")
        stream = job_events(jobs, job_id, request.headers.get("last-event-id"))
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


class _Keys:
    """Idempotency keys -> (fingerprint of path and body, job id), where the backend keeps state."""

    def __init__(self, jobs: LocalJobs | ModalJobs) -> None:
        self.jobs = jobs
        self.local: dict[str, tuple[str, str]] = {}
        self.locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # with its users

    @staticmethod
    def _name(key: str) -> str:
        return "idempotency-" + hashlib.sha256(key.encode()).hexdigest()

    async def get(self, key: str) -> tuple[str, str] | None:
        if isinstance(self.jobs, ModalJobs):
            found = await self.jobs.state.get.aio(self._name(key))
            entry = tuple(found) if found else None
        else:
            entry = self.local.get(key)
        if entry is None or await self.jobs.status(entry[1]) is None:
            return None  # the job it named is gone: the key is free again
        return entry  # type: ignore[return-value]

    async def put(self, key: str, fingerprint: str, job_id: str) -> None:
        if isinstance(self.jobs, ModalJobs):
            await self.jobs.state.put.aio(self._name(key), [fingerprint, job_id])
        else:
            self.local[key] = (fingerprint, job_id)


def _fingerprint(path: str, body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(path.encode() + b"\0" + canonical).hexdigest()


class IdempotentSubmit:
    """ASGI middleware for ``POST /jobs/<path>`` requests that carry an ``Idempotency-Key``."""

    def __init__(self, app: Any, settings: AppSettings, jobs: LocalJobs | ModalJobs) -> None:
        self.app, self.settings, self.keys = app, settings, _Keys(jobs)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        if not scope["path"].startswith("/jobs/"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v for k, v in scope["headers"]}
        if KEY_HEADER not in headers:
            return await self.app(scope, receive, send)
        key = headers[KEY_HEADER].decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            message = f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters"
            return await error_response(422, message, "validation_error")(scope, receive, send)
        endpoint = self.keys.jobs.endpoints.get(scope["path"].removeprefix("/jobs"))
        limit = self.settings.body_limit(endpoint) if endpoint else self.settings.max_body_bytes
        body, more = b"", True
        while more:  # the body, bounded as the app bounds this route
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                details = f"limit is {limit} bytes"
                response = error_response(
                    413, "request body too large", "payload_too_large", details
                )
                return await response(scope, receive, send)
        fingerprint = _fingerprint(scope["path"], body)
        lock, users = self.keys.locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:  # one submission per key at a time in this process
                known = await self.keys.get(key)
                if known is not None:
                    response = self._replay(known, fingerprint)
                    return await response(scope, receive, send)
                await self._forward(scope, body, send, key, fingerprint)
        finally:
            users[0] -= 1
            if not users[0]:
                del self.keys.locks[key]
        return None

    def _replay(self, known: tuple[str, str], fingerprint: str) -> Response:
        first, job_id = known
        if first != fingerprint:
            message = "Idempotency-Key was used for another request (path or body differs)"
            return error_response(422, message, "idempotency_key_reused", {"job_id": job_id})
        answer = {"job_id": job_id, "status_url": f"/jobs/{job_id}"}
        return JSONResponse(answer, status_code=202, headers={"Idempotent-Replayed": "true"})

    async def _forward(
        self, scope: Any, body: bytes, send: Any, key: str, fingerprint: str
    ) -> None:
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        status, chunks = 0, []

        async def capture(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, capture)
        if status == 202:
            await self.keys.put(key, fingerprint, json.loads(b"".join(chunks))["job_id"])


KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Same key, path and body: the first submission's job again (202, "
    "Idempotent-Replayed: true); same key, other path or body: 422 idempotency_key_reused.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
}


def _document_key(app: FastAPI) -> None:
    """The middleware's header in the OpenAPI document of every POST /jobs/<path>."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/jobs/") and "post" in operations:
                operations["post"].setdefault("parameters", []).append(KEY_PARAMETER)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_job_extras(app: FastAPI, settings: AppSettings, jobs: LocalJobs | ModalJobs) -> None:
    """GET /jobs/{id}/events and Idempotency-Key on POST /jobs/<path>."""
    add_job_event_route(app, settings, jobs)
    app.add_middleware(IdempotentSubmit, settings=settings, jobs=jobs)
    _document_key(app)
