"""The HTTP side of a generated app: FastAPI routes that run the endpoint's workflow.

``create_app`` builds the same FastAPI app for the Modal container (``ComfyServer``: ComfyUI
as a subprocess next to it) and for ``ryla-gen dev`` (``RemoteComfy``: any running ComfyUI).
"""

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from .backends import ComfyServer, RemoteComfy
from .body_limit import BodyLimit
from .config import AppSettings, Endpoint, Retired, load_workflows
from .execute import Trail, cleanup, execute, wants_json
from .fleet import add_retired_routes
from .guards import BearerAuth, allowed_methods
from .job_events import add_job_extras
from .jobs import JobsFactory, LocalJobs, add_job_routes
from .responses import error_docs, error_response, unique_operation_ids
from .warmup import Warmup

log = logging.getLogger("ryla.runtime")
_HTTP_TYPES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
_HTTP_TYPES |= {413: "payload_too_large"}


def create_app(
    settings: AppSettings,
    endpoints: Iterable[Endpoint],
    comfy: "ComfyServer | RemoteComfy",
    workflows_dir: str | os.PathLike[str],
    warmup: "Warmup | None" = None,
    jobs: "JobsFactory | None" = None,
    retired: Iterable[Retired] = (),
) -> FastAPI:
    """The app's FastAPI. ``warmup``: done already (Modal runs it in ``@modal.enter``), or
    pending, and then run in the background at start-up while ``/ready`` answers 503.
    ``jobs``: how submitted jobs run (default: tasks of this process, as in ``ryla-gen dev``).
    ``retired``: routes answering 410 Gone with their replacement."""
    endpoints = tuple(endpoints)
    workflows = load_workflows(workflows_dir, endpoints)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):  # noqa: ANN202
        task = None
        if warmup is not None and warmup.state == "pending":
            task = asyncio.ensure_future(warmup.run(settings, endpoints, workflows, comfy))
        yield
        if task is not None:
            task.cancel()

    app = FastAPI(
        title=settings.name,
        description=f"ComfyUI endpoints of {settings.name} on {settings.gpu}.",
        version="1",
        lifespan=lifespan,
        generate_unique_id_function=unique_operation_ids(),
    )

    _add_error_handlers(app)

    if settings.auth == "bearer":
        app.add_middleware(BearerAuth, token_env=settings.auth_token_env)
    per_path = {e.path: settings.body_limit(e) for e in endpoints}
    per_path |= {f"/jobs{path}": limit for path, limit in per_path.items()}
    app.add_middleware(BodyLimit, default=settings.max_body_bytes, per_path=per_path)

    @app.get("/health", summary="The ComfyUI process is up", responses=error_docs(503))
    async def health() -> JSONResponse:
        if comfy.alive:
            return JSONResponse({"status": "ok"})
        return error_response(503, "ComfyUI process is not running", "unavailable")

    @app.get(
        "/ready",
        summary="ComfyUI answers and the warm-up requests are done",
        responses=error_docs(*((401,) if settings.auth == "bearer" else ()), 503),
    )
    async def ready() -> JSONResponse:
        if warmup is not None and warmup.state != "ok":
            reason = "warming up" if warmup.state in ("pending", "running") else "warm-up failed"
            return error_response(503, reason, "unavailable", warmup.report())
        if await comfy.client.ready():
            return JSONResponse({"status": "ready"})
        return error_response(503, "ComfyUI is not answering", "unavailable")

    for endpoint in endpoints:
        _add_route(app, settings, endpoint, workflows.get(endpoint.workflow, {}), comfy)
    job_backend = (jobs or LocalJobs)(settings, endpoints, comfy, workflows)
    add_job_routes(app, settings, endpoints, job_backend)
    add_job_extras(app, settings, job_backend)
    add_retired_routes(app, retired)
    return app


def _add_route(
    app: FastAPI,
    settings: AppSettings,
    endpoint: Endpoint,
    workflow: dict[str, Any],
    comfy: "ComfyServer | RemoteComfy",
) -> None:
    async def handler(request: Request, body: BaseModel) -> Response:
        trail = Trail()
        work = asyncio.ensure_future(
            execute(
                settings,
                endpoint,
                workflow,
                comfy,
                body.model_dump(by_alias=True),
                trail,
                wants_json(request),
            )
        )
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the server cancelled us: stop the run as well
            work.cancel()
            gone.cancel()
            asyncio.ensure_future(cleanup(comfy, trail))
            raise
        if work in done:
            gone.cancel()
            response = work.result()
            response.background = BackgroundTask(cleanup, comfy, trail)  # after it is sent
            return response
        work.cancel()  # the client left: interrupt ComfyUI instead of burning GPU time
        with contextlib.suppress(asyncio.CancelledError):
            await work
        await cleanup(comfy, trail)
        return error_response(499, "client closed the request", "cancelled")

    handler.__signature__ = inspect.Signature(
        [
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
            ),
            inspect.Parameter(
                "body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=endpoint.request_model
            ),
        ],
        return_annotation=Response,
    )
    statuses = [400, 401, 404, 413, 422, 499, 500, 503, 504]
    if settings.auth != "bearer":
        statuses.remove(401)
    app.post(
        endpoint.path,
        summary=endpoint.summary,
        response_class=Response,
        responses={
            200: {
                "description": "The output file's bytes (its own media type), or JSON with "
                "base64 when asked (Accept: application/json) or when there are several files.",
                "content": {"*/*": {}},
            },
            **error_docs(*statuses),
        },
    )(handler)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error, body-parse and routing ones included, as ``{error, details, type}``."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        for e in exc.errors():
            loc = [str(p) for p in e["loc"][1:]] if e["type"] != "json_invalid" else []
            details.append({"field": ".".join(loc) or "body", "message": e["msg"]})
        fields = ", ".join(dict.fromkeys(d["field"] for d in details))
        return error_response(422, f"invalid request: {fields}", "validation_error", details)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        type_ = _HTTP_TYPES.get(exc.status_code, "bad_request")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        return error_response(exc.status_code, str(exc.detail), type_, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal error", "internal_error", type(exc).__name__)


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
