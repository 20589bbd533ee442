"""The fleet's one URL: a front door answering every route of every app.

A route owned by another app runs in that app: the front door validates the body (a bad request
never wakes a GPU), then calls the owning class's ``run_request`` (on Modal a remote call of
``modal.Cls.from_name(app, cls)``; in ``ryla-gen dev`` in-process against the same ComfyUI).
Chains run here step by step, so no GPU waits for another; retired routes answer 410; unknown
paths 404 listing the routes. The front door holds no GPU and no ComfyUI.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from .body_limit import BodyLimit
from .config import AppSettings, Chain, Endpoint, Forward, Retired
from .execute import Trail, cleanup, execute, wants_json
from .guards import BearerAuth, allowed_methods
from .responses import error_docs, error_response, unique_operation_ids

if TYPE_CHECKING:
    from .backends import ComfyServer, RemoteComfy

PASSED_HEADERS = ("x-",)  # response headers a forwarded answer keeps (besides content-type)


@dataclass
class Outcome:
    """One endpoint's answer as it crosses a process boundary (a Modal call's return value)."""

    status: int
    body: bytes
    media_type: str | None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, response: Response) -> Outcome:
        headers = {
            k: v for k, v in response.headers.items() if k.lower().startswith(PASSED_HEADERS)
        }
        media_type = response.headers.get("content-type", response.media_type)
        return cls(response.status_code, bytes(response.body), media_type, headers)

    @classmethod
    def error(cls, status: int, error: str, type_: str, details: Any = None) -> Outcome:
        return cls.of(error_response(status, error, type_, details))

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "body": self.body,
            "media_type": self.media_type,
            "headers": dict(self.headers),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(
            int(data["status"]), bytes(data["body"]), data.get("media_type"), dict(data["headers"])
        )

    def response(self, extra_headers: Mapping[str, str] | None = None) -> Response:
        headers = {**self.headers, **(extra_headers or {})}
        return Response(self.body, self.status, headers=headers, media_type=self.media_type)

    def data_url(self) -> str:
        media_type = (self.media_type or "application/octet-stream").split(";")[0].strip()
        return f"data:{media_type};base64,{base64.b64encode(self.body).decode('ascii')}"

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


def validation_outcome(exc: ValidationError | RequestValidationError) -> Outcome:
    """A body the request model refuses: 422, shaped as the routes' own validation errors."""
    details = [
        {
            "field": ".".join(str(p) for p in e["loc"] if p != "body")
            if e["type"] != "json_invalid"  # loc is the character offset
            else "body",
            "message": e["msg"],
        }
        for e in exc.errors()
    ]
    fields = ", ".join(dict.fromkeys(d["field"] for d in details))
    return Outcome.error(422, f"invalid request: {fields}", "validation_error", details)


async def run_request(
    settings: AppSettings,
    endpoints: Iterable[Endpoint],
    comfy: ComfyServer | RemoteComfy,
    workflows: Mapping[str, dict[str, Any]],
    path: str,
    values: Mapping[str, Any],
    as_json: bool = False,
) -> Outcome:
    """The owning class's side of a forwarded request: validate, execute, clean up."""
    endpoint = next((e for e in endpoints if e.path == path), None)
    if endpoint is None:
        return Outcome.error(404, f"{settings.name} has no endpoint {path}", "not_found")
    try:
        body = endpoint.request_model.model_validate(dict(values))
    except ValidationError as exc:
        return validation_outcome(exc)
    trail = Trail()
    try:
        response = await execute(
            settings,
            endpoint,
            workflows.get(endpoint.workflow, {}),
            comfy,
            body.model_dump(by_alias=True),
            trail,
            as_json,
        )
    finally:
        await cleanup(comfy, trail)
    return Outcome.of(response)


class Owners(Protocol):
    """Where the front door sends a route: the owning app's class."""

    async def call(
        self, app: str, cls: str, path: str, values: dict[str, Any], as_json: bool
    ) -> Outcome: ...


@dataclass(frozen=True)
class OwnerClass:
    """One class of an owning app, as ``ryla-gen dev`` runs it in-process."""

    settings: AppSettings
    endpoints: tuple[Endpoint, ...]
    workflows: Mapping[str, dict[str, Any]]


class LocalOwners:
    """``ryla-gen dev``: every owner runs in this process against the same ComfyUI."""

    def __init__(
        self, classes: Mapping[tuple[str, str], OwnerClass], comfy: ComfyServer | RemoteComfy
    ) -> None:
        self.classes = dict(classes)
        self.comfy = comfy

    async def call(
        self, app: str, cls: str, path: str, values: dict[str, Any], as_json: bool
    ) -> Outcome:
        owner = self.classes.get((app, cls))
        if owner is None:
            return Outcome.error(502, f"{app} ({cls}) is not loaded here", "upstream_unavailable")
        return await run_request(
            owner.settings, owner.endpoints, self.comfy, owner.workflows, path, values, as_json
        )


class ModalOwners:
    """On Modal: a remote call of the owning class's ``run_request`` (its container, its GPU,
    its models; this front door waits without a GPU)."""

    def __init__(self, environment: str | None = None) -> None:
        self.environment = environment
        self._handles: dict[tuple[str, str], Any] = {}

    async def call(
        self, app: str, cls: str, path: str, values: dict[str, Any], as_json: bool
    ) -> Outcome:
        import modal

        key = (app, cls)
        try:
            if key not in self._handles:
                found = modal.Cls.from_name(app, cls, environment_name=self.environment)
                self._handles[key] = found()
            result = await self._handles[key].run_request.remote.aio(path, values, as_json)
        except Exception as exc:  # noqa: BLE001 - any failure of the hop is the owner's 502
            return Outcome.error(
                502, f"{app} did not answer {path}", "upstream_unavailable", str(exc)[:500]
            )
        return Outcome.from_dict(result)


async def run_chain(
    chain: Chain, values: Mapping[str, Any], owners: Owners, as_json: bool = False
) -> Outcome:
    """Each step in order, its output feeding later steps; time and cost add up. A failing
    step's status and body are the answer (``X-Chain-Step`` names it)."""
    done: dict[str, Outcome] = {}
    seconds = cost = 0.0
    gpus: list[str] = []
    headers: dict[str, str] = {}
    for index, step in enumerate(chain.steps):
        last = index == len(chain.steps) - 1
        request = dict(step.values)
        request |= {f: values[s] for f, s in step.inputs.items() if values.get(s) is not None}
        request |= {f: done[s].data_url() for f, s in step.outputs.items()}
        outcome = await owners.call(step.app, step.cls, step.path, request, as_json and last)
        seconds += _number(outcome.header("X-Execution-Time-Sec"))
        cost += _number(outcome.header("X-Cost-USD"))
        gpu = outcome.header("X-GPU-Type")
        if gpu and gpu not in gpus:
            gpus.append(gpu)
        if outcome.status < 400 and not last and _is_json(outcome):
            outcome = Outcome.error(
                502,
                f"step {step.name} ({step.path}) answered several files; a chain passes one on",
                "chain_error",
            )
        totals = {
            "X-Execution-Time-Sec": f"{seconds:.6f}",
            "X-Cost-USD": f"{cost:.10f}",
            "X-GPU-Type": ",".join(gpus),
        }
        if outcome.status >= 400:
            failed = {**outcome.headers, **totals, "X-Chain-Step": step.name}
            return Outcome(outcome.status, outcome.body, outcome.media_type, failed)
        headers |= {k: v for k, v in outcome.headers.items() if k.lower() not in _TOTALS}
        done[step.name] = outcome
        if last:
            return Outcome(outcome.status, outcome.body, outcome.media_type, headers | totals)
    raise AssertionError("a chain has at least one step")


_TOTALS = {"x-execution-time-sec", "x-cost-usd", "x-gpu-type"}


def _number(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def _is_json(outcome: Outcome) -> bool:
    return (outcome.media_type or "").startswith("application/json")


def create_fleet_app(
    settings: AppSettings,
    forwards: Iterable[Forward],
    chains: Iterable[Chain],
    retired: Iterable[Retired],
    owners: Owners,
) -> FastAPI:
    """The front door's FastAPI (no ComfyUI here: every route runs where its models are)."""
    forwards, chains, retired = tuple(forwards), tuple(chains), tuple(retired)
    routes = sorted([*(f.path for f in forwards), *(c.path for c in chains)])
    app = FastAPI(
        title=settings.name,
        description=f"The fleet's one URL ({settings.name}): every route of every app.",
        version="1",
        generate_unique_id_function=unique_operation_ids(),
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return validation_outcome(exc).response()

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"no route {request.url.path}"
            return error_response(404, message, "not_found", {"routes": routes})
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
            allow = {"Allow": ", ".join(allowed_methods(app, request.scope))}
            details = {"routes": routes}
            return error_response(405, message, "method_not_allowed", details, headers=allow)
        type_ = "payload_too_large" if exc.status_code == 413 else "bad_request"
        return error_response(exc.status_code, str(exc.detail), type_)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "internal error", "internal_error", type(exc).__name__)

    if settings.auth == "bearer":
        app.add_middleware(BearerAuth, token_env=settings.auth_token_env)
    per_path = {f.path: f.max_body_bytes for f in forwards if f.max_body_bytes}
    app.add_middleware(BodyLimit, default=settings.max_body_bytes, per_path=per_path)

    @app.get("/health", summary="The front door is up (it holds no ComfyUI)", responses={})
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "routes": len(routes)})

    statuses = [400, *((401,) if settings.auth == "bearer" else ()), 404, 413, 422, 499]
    statuses += [500, 503, 504]
    for forward in forwards:
        run = _forwarder(forward, owners)
        _post(app, forward.path, forward.request_model, forward.summary, run, statuses)
    for chain in chains:
        run = _chainer(chain, owners)
        _post(app, chain.path, chain.request_model, chain.summary, run, statuses)
    for gone in retired:
        _add_retired(app, gone)
    return app


def _forwarder(forward: Forward, owners: Owners):  # noqa: ANN202
    async def run(body: BaseModel, as_json: bool) -> Outcome:
        values = body.model_dump(by_alias=True)
        return await owners.call(forward.app, forward.cls, forward.target, values, as_json)

    return run


def _chainer(chain: Chain, owners: Owners):  # noqa: ANN202
    async def run(body: BaseModel, as_json: bool) -> Outcome:
        return await run_chain(chain, body.model_dump(by_alias=True), owners, as_json)

    return run


def _post(app: FastAPI, path: str, model: type[BaseModel], summary: str, run, statuses) -> None:  # noqa: ANN001
    async def handler(request: Request, body: BaseModel) -> Response:
        work = asyncio.ensure_future(run(body, wants_json(request)))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the server cancelled us: stop the run as well
            work.cancel()
            raise
        finally:
            gone.cancel()
        if work in done:
            return work.result().response()
        work.cancel()  # the client left: stop the owner's run (and a chain's later steps)
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return error_response(499, "client closed the request", "cancelled")

    handler.__signature__ = inspect.Signature(
        [
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
            ),
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model),
        ],
        return_annotation=Response,
    )
    app.post(
        path,
        summary=summary or f"POST {path}",
        response_class=Response,
        responses={
            200: {
                "description": "The owning endpoint's answer: the output file's bytes, or JSON.",
                "content": {"*/*": {}},
            },
            **error_docs(*statuses),
        },
    )(handler)


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def add_retired_routes(app: FastAPI, retired: Iterable[Retired]) -> None:
    """410 Gone on every retired path (any method), naming the route to use instead."""
    for gone in retired:
        _add_retired(app, gone)


def _add_retired(app: FastAPI, gone: Retired) -> None:
    async def handler() -> JSONResponse:
        return retired_response(gone)

    app.add_api_route(
        gone.path,
        handler,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        summary=f"Retired: use {gone.use}",
        include_in_schema=False,
    )


def retired_response(gone: Retired) -> JSONResponse:
    """``{error, details, type, use}``: today's error body plus the replacement route."""
    return JSONResponse(
        {
            "error": f"{gone.path} is retired; use {gone.use}",
            "details": gone.reason or None,
            "type": "gone",
            "use": gone.use,
        },
        status_code=410,
    )
