"""The HTTP side of a generated app: FastAPI routes that run the endpoint's workflow.

``create_app`` builds the same FastAPI app for the Modal container (``ComfyServer``: ComfyUI
as a subprocess next to it) and for ``ryla-gen dev`` (``RemoteComfy``: any running ComfyUI).
"""

import asyncio
import contextlib
import inspect
import os
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask

from .backends import ComfyServer, RemoteComfy
from .config import AppSettings, Endpoint, Retired, load_workflows
from .execute import Trail, cleanup, execute, wants_json
from .fleet import add_retired_routes
from .jobs import JobsFactory, LocalJobs, add_job_routes
from .responses import error_response
from .warmup import Warmup


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
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "message": e["msg"]}
            for e in exc.errors()
        ]
        fields = ", ".join(d["field"] for d in details)
        return error_response(422, f"invalid request: {fields}", "validation_error", details)

    @app.middleware("http")
    async def _limits_and_auth(request: Request, call_next):  # noqa: ANN202
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_body_bytes:
            return error_response(
                413,
                "request body too large",
                "payload_too_large",
                f"limit is {settings.max_body_bytes} bytes",
            )
        if settings.auth == "bearer" and request.url.path not in ("/health",):
            token = os.environ.get(settings.auth_token_env, "")
            if not token or request.headers.get("authorization") != f"Bearer {token}":
                return error_response(401, "missing or wrong bearer token", "unauthorized")
        return await call_next(request)

    @app.get("/health", summary="The ComfyUI process is up")
    async def health() -> JSONResponse:
        if comfy.alive:
            return JSONResponse({"status": "ok"})
        return error_response(503, "ComfyUI process is not running", "unavailable")

    @app.get("/ready", summary="ComfyUI answers and the warm-up requests are done")
    async def ready() -> JSONResponse:
        if warmup is not None and warmup.state != "ok":
            reason = "warming up" if warmup.state in ("pending", "running") else "warm-up failed"
            return error_response(503, reason, "unavailable", warmup.report())
        if await comfy.client.ready():
            return JSONResponse({"status": "ready"})
        return error_response(503, "ComfyUI is not answering", "unavailable")

    for endpoint in endpoints:
        _add_route(app, settings, endpoint, workflows.get(endpoint.workflow, {}), comfy)
    add_job_routes(
        app, settings, endpoints, (jobs or LocalJobs)(settings, endpoints, comfy, workflows)
    )
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
                settings, endpoint, workflow, comfy, body.model_dump(), trail, wants_json(request)
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
    app.post(
        endpoint.path,
        summary=endpoint.summary,
        response_class=Response,
        responses={200: {"description": "The output file's bytes (or JSON with base64)."}},
    )(handler)


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
