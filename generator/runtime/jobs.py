"""Asynchronous jobs: submit, poll progress, fetch the result, cancel; optional signed webhook.

Video endpoints run for minutes, past the 150 s a Modal web request may take. A job runs the
same pipeline as the synchronous route (``execute``) but outside the web request:
- ``LocalJobs`` (``ryla-gen dev``, tests): an asyncio task in this process;
- ``ModalJobs`` (the container): a spawned call of the class's ``run_job`` method; progress goes
  through a ``modal.Dict`` (its record names the call), the result is the call's return value
  and expires when Modal expires it.

Job ids are ``job_`` + 128 random bits (``secrets.token_urlsafe(16)``), never a function call id,
so they cannot be guessed or enumerated. Each container accepts at most
``settings.max_pending_jobs`` unfinished jobs (more: 429 with Retry-After); local records are
forgotten ``settings.job_ttl_seconds`` after they end.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from .config import AppSettings, Endpoint
from .responses import error_docs, error_response
from .urls import UrlError
from .webhooks import check_webhook_url, deliver

if TYPE_CHECKING:
    from .backends import ComfyServer, RemoteComfy

Publish = Callable[[dict[str, Any]], None]
FINAL = ("succeeded", "failed", "cancelled")
_PRIVATE = ("result", "call_id")  # never shown by GET /jobs/{id}


def new_job_id() -> str:
    """128 random bits, URL-safe."""
    return "job_" + secrets.token_urlsafe(16)


class TooManyJobs(Exception):
    """This container already holds ``max_pending_jobs`` unfinished jobs."""


class Progress:
    """ComfyUI's WebSocket events -> overall progress 0..1 and the node running now."""

    def __init__(self) -> None:
        self.total = 0
        self.done: set[str] = set()
        self.node: str | None = None
        self.fraction = 0.0

    def update(self, event: str, data: dict[str, Any]) -> bool:
        """Feed one event; True when the progress or the node changed."""
        before = (self.value, self.node)
        if event == "prompt":
            self.total = len(data["nodes"])
        elif event == "execution_cached":
            self.done.update(str(n) for n in data.get("nodes", []))
        elif event == "executing":
            if self.node is not None:
                self.done.add(self.node)
            self.node, self.fraction = data.get("node"), 0.0
        elif event == "progress" and data.get("max"):
            self.fraction = min(1.0, data["value"] / data["max"])
        elif event == "executed":
            self.done.add(str(data.get("node")))
        return (self.value, self.node) != before

    @property
    def value(self) -> float:
        if not self.total:
            return 0.0
        running = self.fraction if self.node is not None and self.node not in self.done else 0.0
        return round(min(1.0, (len(self.done) + running) / self.total), 4)


async def run_job(
    settings: AppSettings,
    endpoint: Endpoint,
    workflow: dict[str, Any],
    comfy: ComfyServer | RemoteComfy,
    values: dict[str, Any],
    publish: Publish,
) -> dict[str, Any]:
    """Run one job to its final state (also published); cancellation publishes 'cancelled'."""
    from .execute import Trail, cleanup, execute

    progress = Progress()

    def on_event(event: str, data: dict[str, Any]) -> None:
        if progress.update(event, data):
            publish({"status": "running", "progress": progress.value, "node": progress.node})

    publish({"status": "running", "progress": 0.0, "node": None})
    trail = Trail()
    try:
        response = await execute(
            settings, endpoint, workflow, comfy, values, trail, wants_json=True, on_event=on_event
        )
    except asyncio.CancelledError:
        publish({"status": "cancelled", "progress": progress.value, "node": None})
        raise
    finally:
        await cleanup(comfy, trail)
    body = json.loads(response.body)
    if response.status_code == 200:
        final = {"status": "succeeded", "progress": 1.0, "node": None, "result": body}
    else:
        final = {
            "status": "failed",
            "node": None,
            "http_status": response.status_code,
            "error": body,
        }
    publish(final)
    return final


def public_status(job_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """What GET /jobs/{id} shows: the record without the result bytes, plus its URLs."""
    shown = {k: v for k, v in record.items() if k not in _PRIVATE}
    shown["job_id"] = job_id
    shown["status_url"] = f"/jobs/{job_id}"
    if record.get("status") == "succeeded":
        shown["result_url"] = f"/jobs/{job_id}/result"
    return shown


async def notify(
    settings: AppSettings, job_id: str, path: str, record: dict[str, Any], url: str
) -> None:
    """The webhook: the final status and where the result is (not the bytes)."""
    payload = {"job": public_status(job_id, record), "endpoint": path}
    secret = os.environ.get(settings.webhook_secret_env, "")
    await deliver(url, payload, secret, allow_private=settings.allow_private_urls)


class _Jobs:
    """What both backends need: the endpoints by path, their workflows, the ComfyUI."""

    def __init__(
        self,
        settings: AppSettings,
        endpoints: Sequence[Endpoint],
        comfy: ComfyServer | RemoteComfy,
        workflows: dict[str, dict[str, Any]],
    ) -> None:
        self.settings, self.comfy, self.workflows = settings, comfy, workflows
        self.endpoints = {e.path: e for e in endpoints}

    async def _run(self, path: str, values: dict[str, Any], publish: Publish) -> dict[str, Any]:
        endpoint = self.endpoints[path]
        workflow = self.workflows.get(endpoint.workflow, {})
        return await run_job(self.settings, endpoint, workflow, self.comfy, values, publish)


class LocalJobs(_Jobs):
    """Jobs as asyncio tasks of this process (``ryla-gen dev``)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.records: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, asyncio.Task[Any]] = {}

    def _expire(self) -> None:
        horizon = time.time() - self.settings.job_ttl_seconds
        for job_id in [j for j, r in self.records.items() if r.get("ended", horizon) < horizon]:
            del self.records[job_id]
            self.tasks.pop(job_id, None)

    async def submit(self, path: str, values: dict[str, Any], webhook_url: str | None) -> str:
        self._expire()
        if sum(not t.done() for t in self.tasks.values()) >= self.settings.max_pending_jobs:
            raise TooManyJobs
        job_id = new_job_id()
        self.records[job_id] = {
            "status": "queued",
            "progress": 0.0,
            "node": None,
            "created": time.time(),
        }
        task = self._execute(job_id, path, values, webhook_url)
        self.tasks[job_id] = asyncio.ensure_future(task)
        return job_id

    async def _execute(
        self, job_id: str, path: str, values: dict[str, Any], webhook_url: str | None
    ) -> None:
        record = self.records[job_id]
        try:
            await self._run(path, values, record.update)
        finally:
            record["ended"] = time.time()
            if webhook_url:
                await notify(self.settings, job_id, path, record, webhook_url)

    async def status(self, job_id: str) -> dict[str, Any] | None:
        self._expire()
        return self.records.get(job_id)

    async def cancel(self, job_id: str) -> str | None:
        """The job's status before the cancel (None: no such job); a final one is left as is."""
        record = await self.status(job_id)
        if record is None:
            return None
        task = self.tasks.get(job_id)
        if record["status"] in FINAL or task is None:
            return record["status"]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return "running"


class ModalJobs(_Jobs):
    """Jobs as spawned calls of the class's ``run_job`` method; state in a ``modal.Dict``."""

    def __init__(self, *args: Any, state: Any, spawn: Callable[..., Any]) -> None:
        super().__init__(*args)
        self.state, self.spawn = state, spawn
        self.pending: set[str] = set()  # submitted by this container, not seen final

    async def submit(self, path: str, values: dict[str, Any], webhook_url: str | None) -> str:
        if len(self.pending) >= self.settings.max_pending_jobs:
            for job_id in list(self.pending):
                record = await self.state.get.aio(job_id)
                if record is None or record.get("status") in FINAL:
                    self.pending.discard(job_id)
            if len(self.pending) >= self.settings.max_pending_jobs:
                raise TooManyJobs
        job_id = new_job_id()
        record = {"status": "queued", "progress": 0.0, "node": None, "created": time.time()}
        await self.state.put.aio(job_id, record)
        call = await self.spawn.aio(path, values, webhook_url, job_id)
        await self.state.put.aio(job_id, {**record, "call_id": call.object_id})
        self.pending.add(job_id)
        return job_id

    async def run(
        self,
        job_id: str,
        path: str,
        values: dict[str, Any],
        webhook_url: str | None,
        call_id: str | None = None,
    ) -> dict[str, Any]:
        """Inside the spawned call: run, publishing progress (at most every half second).

        ``call_id``: this call's id, kept in every record (the submitter may not have stored it
        yet when the call starts)."""
        last = [0.0]
        call_id = call_id or ((await self.state.get.aio(job_id)) or {}).get("call_id")
        keep = {"call_id": call_id} if call_id else {}

        def publish(update: dict[str, Any]) -> None:
            now = time.monotonic()
            if update["status"] in FINAL or now - last[0] >= 0.5:
                last[0] = now
                asyncio.ensure_future(
                    self.state.put.aio(job_id, {"created": time.time(), **keep, **update})
                )

        final: dict[str, Any] = {"status": "cancelled", "node": None}
        try:
            final = await self._run(path, values, publish)
        except asyncio.CancelledError:
            await self.state.put.aio(job_id, {**keep, **final})
            raise
        finally:
            if webhook_url:
                await notify(self.settings, job_id, path, final, webhook_url)
        stored = {k: v for k, v in final.items() if k != "result"}
        await self.state.put.aio(job_id, {**keep, **stored})
        return final

    async def status(self, job_id: str) -> dict[str, Any] | None:
        import modal

        record = await self.state.get.aio(job_id)
        if record is None:
            return None
        if record.get("status") == "succeeded" and record.get("call_id"):
            try:
                call = modal.FunctionCall.from_id(record["call_id"])
                final = await call.get.aio(timeout=0)
            except modal.exception.OutputExpiredError:
                return {**record, "status": "expired", "error": "the result expired on Modal"}
            return {**record, **final}
        return record

    async def cancel(self, job_id: str) -> str | None:
        import modal

        record = await self.state.get.aio(job_id)
        if record is None:
            return None
        if record.get("status") in FINAL or not record.get("call_id"):
            return record.get("status")
        await modal.FunctionCall.from_id(record["call_id"]).cancel.aio()
        return "running"


class JobSubmitted(BaseModel):
    job_id: str
    status_url: str


class JobStatus(BaseModel):
    """GET /jobs/{id}: ``status`` is queued, running, succeeded, failed, cancelled or expired."""

    model_config = ConfigDict(extra="allow")
    job_id: str
    status: str
    status_url: str
    progress: float | None = None
    node: str | None = None
    result_url: str | None = None


JobsFactory = Callable[..., "LocalJobs | ModalJobs"]
"""Builds the jobs backend from (settings, endpoints, comfy, workflows)."""


def add_job_routes(
    app: FastAPI, settings: AppSettings, endpoints: Sequence[Endpoint], jobs: LocalJobs | ModalJobs
) -> None:
    """POST /jobs/<path> (202), GET /jobs/{id}, GET /jobs/{id}/result, DELETE /jobs/{id}."""
    auth = (401,) if settings.auth == "bearer" else ()
    for endpoint in endpoints:
        app.post(
            f"/jobs{endpoint.path}",
            status_code=202,
            summary=f"Submit POST {endpoint.path} as a job (for runs past the web time limit)",
            response_model=JobSubmitted,
            responses=error_docs(400, *auth, 413, 422, 429),
        )(_submit_handler(settings, endpoint, jobs))

    @app.get(
        "/jobs/{job_id}",
        summary="A job's status and progress",
        response_model=JobStatus,
        responses=error_docs(*auth, 404, 422),
    )
    async def job_status(job_id: str) -> JSONResponse:
        record = await jobs.status(job_id)
        if record is None:
            return error_response(404, f"no job {job_id}", "not_found")
        return JSONResponse(public_status(job_id, record))

    @app.get(
        "/jobs/{job_id}/result",
        summary="A finished job's output (a failed job answers its run's error)",
        response_class=Response,
        responses={
            200: {"description": "As the synchronous route answers.", "content": {"*/*": {}}},
            **error_docs(400, *auth, 404, 409, 422, 500, 503, 504),
        },
    )
    async def job_result(job_id: str, request: Request) -> Response:
        record = await jobs.status(job_id)
        if record is None:
            return error_response(404, f"no job {job_id}", "not_found")
        if record["status"] == "failed":
            return JSONResponse(record["error"], status_code=record.get("http_status", 500))
        if record["status"] != "succeeded":
            status = public_status(job_id, record)
            return error_response(409, f"job is {record['status']}", "not_ready", status)
        result = record.get("result")
        if result is None:
            return error_response(409, "the job's result is not available", "not_ready")
        files, headers = result["files"], result["headers"]
        if len(files) == 1 and "application/json" not in request.headers.get("accept", ""):
            data = base64.b64decode(files[0]["data"])
            return Response(data, media_type=files[0]["media_type"], headers=headers)
        return JSONResponse(result, headers=headers)

    @app.delete(
        "/jobs/{job_id}",
        status_code=202,
        summary="Cancel a job (interrupts ComfyUI); a finished job answers 409",
        response_model=JobStatus,
        responses=error_docs(*auth, 404, 409, 422),
    )
    async def job_cancel(job_id: str) -> JSONResponse:
        before = await jobs.cancel(job_id)
        if before is None:
            return error_response(404, f"no job {job_id}", "not_found")
        record = await jobs.status(job_id) or {}
        if before in FINAL:
            message = f"job already {before}"
            return error_response(409, message, "conflict", public_status(job_id, record))
        return JSONResponse(public_status(job_id, record), status_code=202)


def _submit_handler(
    settings: AppSettings, endpoint: Endpoint, jobs: LocalJobs | ModalJobs
) -> Callable[..., Awaitable[JSONResponse]]:
    """The submit route: the endpoint's request model plus ``webhook_url``."""
    webhook = (
        str | None,
        Field(
            None,
            max_length=2048,
            pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://",
            description="Gets the final status, signed the Standard Webhooks way "
            "(webhook-id, webhook-timestamp, webhook-signature).",
        ),
    )
    # Offered only where webhooks can be signed: elsewhere the field is unknown (422).
    fields = {"webhook_url": webhook} if os.environ.get(settings.webhook_secret_env) else {}
    submit_model = create_model(
        endpoint.request_model.__name__.removesuffix("Request") + "JobRequest",
        __base__=endpoint.request_model,
        **fields,
    )

    async def submit(body: BaseModel) -> JSONResponse:
        values = body.model_dump()
        webhook_url = values.pop("webhook_url", None)
        for group in endpoint.require_one_of:
            if sum(values.get(name) is not None for name in group) != 1:
                message = f"give exactly one of: {', '.join(group)}"
                return error_response(422, message, "validation_error")
        if webhook_url:
            if not os.environ.get(settings.webhook_secret_env):
                message = "webhooks are not configured for this app"
                return error_response(400, message, "webhook_unavailable")
            try:
                await check_webhook_url(webhook_url, allow_private=settings.allow_private_urls)
            except UrlError as exc:
                details = [{"field": "webhook_url", "message": str(exc)}]
                return error_response(
                    422, "invalid request: webhook_url", "validation_error", details
                )
        try:
            job_id = await jobs.submit(endpoint.path, values, webhook_url)
        except TooManyJobs:
            message = f"{settings.max_pending_jobs} jobs are pending here; retry later"
            return error_response(429, message, "too_many_jobs", headers={"Retry-After": "30"})
        return JSONResponse({"job_id": job_id, "status_url": f"/jobs/{job_id}"}, status_code=202)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    submit.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("body", kind, annotation=submit_model)]
    )
    return submit
