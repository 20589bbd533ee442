"""The HTTP side of a generated app: FastAPI routes that run the endpoint's workflow.

``create_app`` builds the same FastAPI app for the Modal container (``ComfyServer``: ComfyUI
as a subprocess next to it) and for ``ryla-gen dev`` (``RemoteComfy``: any running ComfyUI).
"""

import asyncio
import base64
import contextlib
import dataclasses
import inspect
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask

from ..catalog import Catalog
from .apply import apply_request
from .comfy_client import ComfyClient, EventCallback, FileRef
from .config import AppSettings, Endpoint, ModelFile
from .errors import ComfyUnavailable, ExecutionFailed, PromptRejected, RunInterrupted, RunTimeout
from .jobs import JobsFactory, LocalJobs, add_job_routes
from .media import MediaError, load_media
from .responses import error_response
from .warmup import Warmup

log = logging.getLogger("ryla.runtime")
COMFY_DIR = Path("/root/comfy/ComfyUI")


class RemoteComfy:
    """A ComfyUI reached over HTTP only (``ryla-gen dev``); files it writes are not ours to delete.

    ``base_dir``: when ComfyUI's input/output/temp folders are on this machine (tests, a local
    ComfyUI), pass its base directory so each request's files are removed after the response.
    """

    def __init__(
        self,
        url: str,
        base_dir: str | os.PathLike[str] | None = None,
        models_dir: str | os.PathLike[str] | None = None,
    ):
        self.client = ComfyClient(url)
        self.base_dir = Path(base_dir) if base_dir else None
        self.models_dir = str(models_dir) if models_dir else None
        self.catalog: Catalog | None = None  # the server's nodes, for client workflows

    @property
    def alive(self) -> bool:
        return True

    async def recover(self) -> None:
        """Nothing to restart: the ComfyUI is someone else's process."""

    async def reload_models(self) -> None:
        """A local folder needs no reload."""


class ComfyServer:
    """ComfyUI running as a subprocess of the container, with the app's models linked in.

    ``snapshot``: start it for a CPU memory snapshot (no GPU attached yet; ryla-gen's helper
    node makes ComfyUI fall back to the CPU device), then :meth:`after_restore` hands it the GPU.
    """

    def __init__(
        self,
        models: Sequence[ModelFile],
        models_dir: str,
        *,
        extra_args: Sequence[str] = (),
        comfy_dir: str | os.PathLike[str] = COMFY_DIR,
        port: int = 8188,
        command: Sequence[str] | None = None,
        start_timeout: float = 600.0,
        log_path: str | os.PathLike[str] = "/tmp/comfyui.log",
        snapshot: bool = False,
        volume_folders: Sequence[str] = (),
        models_volume: Any = None,
    ):
        from .comfy_process import ComfyProcess, comfy_launch_command

        self.models, self.models_dir = list(models), models_dir
        self.catalog: Catalog | None = None  # the server's nodes, for client workflows
        self.base_dir = Path(comfy_dir)
        self.url = f"http://127.0.0.1:{port}"
        self.models_volume = models_volume
        self.volume_folders = tuple(volume_folders)
        if self.volume_folders:  # ComfyUI lists these volume folders live (job outputs)
            extra_args = [*extra_args, "--extra-model-paths-config", str(self._paths_file)]
        self.command = list(command or comfy_launch_command(comfy_dir, port, extra_args))
        self.snapshot = snapshot
        env = {"RYLA_SNAPSHOT": "1"} if snapshot else {}
        self.process = ComfyProcess(
            self.command, cwd=comfy_dir, url=self.url, log_path=log_path, env=env
        )
        self.client = ComfyClient(self.url)
        self.start_timeout = start_timeout
        self._restart_lock: asyncio.Lock | None = None

    @property
    def alive(self) -> bool:
        return self.process.alive

    def start(self) -> None:
        """Link models (and the snapshot helper), launch ComfyUI, wait until it answers."""
        from .models import link_models

        if self.models:
            link_models(self.models, self.models_dir, self.base_dir / "models")
        if self.volume_folders:
            lines = ["ryla_models_volume:", f"  base_path: {self.models_dir}"]
            lines += [f"  {folder}: {folder}" for folder in self.volume_folders]
            self._paths_file.write_text("\n".join(lines) + "\n")
        if self.snapshot:
            helper = self.base_dir / "custom_nodes" / "ryla_snapshot_helper"
            helper.parent.mkdir(parents=True, exist_ok=True)
            if not helper.exists():
                helper.symlink_to(Path(__file__).parent / "snapshot_node")
        self.process.start()
        asyncio.run(self.process.wait_ready(self.start_timeout))

    @property
    def _paths_file(self) -> Path:
        return Path("/tmp/ryla_extra_model_paths.yaml")

    async def reload_models(self) -> None:
        """See files committed to the models volume since this container started (new LoRAs)."""
        if self.models_volume is None:
            return
        try:
            await self.models_volume.reload.aio()
        except Exception as exc:  # noqa: BLE001 - a busy volume keeps its current view
            log.warning("models volume reload failed: %s", exc)

    def after_restore(self) -> None:
        """After a memory-snapshot restore: move ComfyUI to the GPU now attached."""
        import httpx

        response = httpx.post(f"{self.url}/ryla/snapshot/gpu", timeout=60, trust_env=False)
        response.raise_for_status()
        log.info("ComfyUI after restore: %s", response.json())

    def warm_up(
        self,
        settings: AppSettings,
        endpoints: Sequence[Endpoint],
        workflows_dir: str | os.PathLike[str],
    ) -> "Warmup":
        """Run every endpoint's warm-up request now (blocking); returns the outcome."""
        warmup = Warmup()
        workflows = load_workflows(workflows_dir, endpoints)

        async def run() -> None:
            comfy = RemoteComfy(self.url, base_dir=self.base_dir)  # a client of this event loop
            try:
                await warmup.run(settings, endpoints, workflows, comfy)
            finally:
                await comfy.client.aclose()

        asyncio.run(run())
        return warmup

    async def recover(self) -> None:
        """Restart ComfyUI after it died (once, however many requests noticed)."""
        self._restart_lock = self._restart_lock or asyncio.Lock()
        async with self._restart_lock:
            if self.process.alive and await self.client.ready():
                return
            log.warning("ComfyUI is down; restarting. Last log lines:\n%s", self.process.log_tail())
            await self.process.restart(self.start_timeout)

    def stop(self) -> None:
        asyncio.run(self.process.stop())


def create_app(
    settings: AppSettings,
    endpoints: Iterable[Endpoint],
    comfy: "ComfyServer | RemoteComfy",
    workflows_dir: str | os.PathLike[str],
    warmup: "Warmup | None" = None,
    jobs: "JobsFactory | None" = None,
) -> FastAPI:
    """The app's FastAPI. ``warmup``: done already (Modal runs it in ``@modal.enter``), or
    pending, and then run in the background at start-up while ``/ready`` answers 503.
    ``jobs``: how submitted jobs run (default: tasks of this process, as in ``ryla-gen dev``)."""
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
    return app


def load_workflows(
    workflows_dir: str | os.PathLike[str], endpoints: Iterable[Endpoint]
) -> dict[str, dict[str, Any]]:
    """Each endpoint's workflow JSON, read once."""
    return {e.workflow: _load(Path(workflows_dir) / e.workflow) for e in endpoints if e.workflow}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


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
                settings, endpoint, workflow, comfy, body.model_dump(), trail, _wants_json(request)
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


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def execute(
    settings: AppSettings,
    endpoint: Endpoint,
    workflow: dict[str, Any],
    comfy: "ComfyServer | RemoteComfy",
    values: dict[str, Any],
    trail: "Trail",
    wants_json: bool = False,
    on_event: "EventCallback | None" = None,
) -> Response:
    """Run one validated request: media, workflow, ComfyUI, response (or a JSON error).

    ``on_event`` receives ComfyUI's WebSocket events of the run (job progress)."""
    started = time.perf_counter()
    for group in endpoint.require_one_of:
        given = [name for name in group if values.get(name) is not None]
        if len(given) != 1:
            return error_response(
                422,
                f"give exactly one of: {', '.join(group)}",
                "validation_error",
                [{"field": name, "message": "exactly one of these is required"} for name in group],
            )
    if endpoint.client_workflow_max_nodes:
        checked = await _client_workflow(endpoint, values, comfy)
        if isinstance(checked, Response):
            return checked
        endpoint, workflow, values = checked
    missing = await _missing_volume_file(endpoint, values, comfy)
    if missing is not None:
        field, file = missing
        message = f"{field}: {file} not found in the models volume"
        return error_response(404, message, "not_found", {"field": field, "file": file})
    try:
        try:
            uploads = await _upload_media(settings, endpoint, values, comfy, trail.uploaded)
        except _FieldError as exc:
            return error_response(
                422,
                f"invalid request: {exc.field}",
                "validation_error",
                [{"field": exc.field, "message": str(exc)}],
            )
        applied = apply_request(endpoint, workflow, values, uploads)
        if on_event is not None:
            on_event("prompt", {"nodes": list(applied.prompt)})
        result = await comfy.client.run(applied.prompt, timeout=endpoint.timeout, on_event=on_event)
        trail.prompt_id = result.prompt_id
        nodes = endpoint.outputs or tuple(result.outputs)  # a client workflow: every output
        files = [ref for node in nodes for ref in result.outputs.get(node, [])]
        trail.outputs = files
        if not files:
            return error_response(
                500,
                "the workflow produced no output file",
                "no_output",
                {"nodes": list(endpoint.outputs)},
            )
        fetched = [await comfy.client.fetch(ref) for ref in files]
    except PromptRejected as exc:
        return _rejected(endpoint, exc)
    except ExecutionFailed as exc:
        trail.prompt_id = exc.prompt_id
        return error_response(
            500,
            f"node {exc.node_id} ({exc.node_type}) failed",
            "execution_error",
            {
                "node_id": exc.node_id,
                "node_type": exc.node_type,
                "exception_type": exc.exception_type,
                "exception_message": exc.exception_message.strip(),
            },
        )
    except RunTimeout as exc:
        trail.prompt_id = exc.prompt_id
        return error_response(
            504,
            f"generation exceeded {endpoint.timeout:g}s and was stopped",
            "timeout",
            {"state_when_stopped": exc.state},
        )
    except RunInterrupted as exc:
        trail.prompt_id = exc.prompt_id
        return error_response(500, "generation was interrupted", "interrupted", str(exc))
    except ComfyUnavailable as exc:
        asyncio.ensure_future(comfy.recover())
        return error_response(
            503, "ComfyUI is unavailable; restarting, retry shortly", "unavailable", str(exc)
        )
    elapsed = time.perf_counter() - started
    headers = {
        "X-Execution-Time-Sec": f"{elapsed:.3f}",
        "X-GPU-Type": settings.gpu,
        "X-Cost-USD": f"{elapsed * settings.usd_per_second:.6f}",
        **applied.headers,
    }
    if endpoint.response == "raw" and len(fetched) == 1 and not wants_json:
        data, media_type = fetched[0]
        return Response(data, media_type=media_type, headers=headers)
    payload = {
        "files": [
            {
                "filename": ref.filename,
                "media_type": media_type,
                "data": base64.b64encode(data).decode("ascii"),
            }
            for ref, (data, media_type) in zip(files, fetched, strict=True)
        ],
        "headers": headers,
    }
    return JSONResponse(payload, headers=headers)


async def _client_workflow(
    endpoint: Endpoint, values: dict[str, Any], comfy: "ComfyServer | RemoteComfy"
) -> "tuple[Endpoint, dict[str, Any], dict[str, Any]] | Response":
    """Check the client's graph against the live node catalog; 422 with every problem."""
    from .client_workflow import check_client_workflow, save_nodes

    if comfy.catalog is None:  # read once per container: the nodes do not change
        comfy.catalog = Catalog()
        comfy.catalog.merge(await comfy.client.object_info())
    catalog = comfy.catalog
    workflow, problems = check_client_workflow(
        values["workflow"], max_nodes=endpoint.client_workflow_max_nodes, catalog=catalog
    )
    if problems:
        return error_response(422, "invalid workflow", "validation_error", problems)
    assert workflow is not None
    endpoint = dataclasses.replace(endpoint, prefix_nodes=save_nodes(workflow))
    return endpoint, workflow.nodes, {}


async def _missing_volume_file(
    endpoint: Endpoint, values: dict[str, Any], comfy: "ComfyServer | RemoteComfy"
) -> tuple[str, str] | None:
    """A job-written file the request names (a character LoRA) that does not exist: 404.

    A file committed after this container started appears once the volume is reloaded.
    """
    if comfy.models_dir is None:
        return None
    for param in endpoint.params:
        if param.volume_file is None or values.get(param.name) is None:
            continue
        file = param.volume_file.format_map(values)
        root = Path(comfy.models_dir).resolve()
        path = (root / file).resolve()
        if not path.is_relative_to(root):  # "../" in a lora_id: never outside the volume
            return param.name, file
        if not path.exists():
            await comfy.reload_models()
        if not path.exists():
            return param.name, file
    return None


class _FieldError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


async def _upload_media(
    settings: AppSettings,
    endpoint: Endpoint,
    values: dict[str, Any],
    comfy: "ComfyServer | RemoteComfy",
    uploaded: list[str],
) -> dict[str, list[str]]:
    uploads: dict[str, list[str]] = {}
    for param in endpoint.params:
        if param.kind not in ("image", "video", "mask") or values.get(param.name) is None:
            continue
        items = values[param.name] if param.many else [values[param.name]]
        names = []
        for item in items:
            try:
                media = await load_media(
                    item,
                    param.kind,
                    max_bytes=settings.max_body_bytes,
                    max_pixels=settings.max_image_pixels,
                    allow_private=settings.allow_private_urls,
                )
            except MediaError as exc:
                raise _FieldError(param.name, str(exc)) from None
            stored = await comfy.client.upload(media.data, media.upload_name(param.name))
            uploaded.append(stored)
            names.append(stored)
        uploads[param.name] = names
    return uploads


def _rejected(endpoint: Endpoint, exc: PromptRejected) -> JSONResponse:
    bound = {(t.node, t.input): p.name for p in endpoint.params for t in p.targets}
    details = []
    status = 500  # the workflow itself is broken on this server
    for entry in exc.entries():
        field = bound.get((entry.node_id or "", entry.input_name or ""))
        details.append(
            {
                "node_id": entry.node_id,
                "class_type": entry.class_type,
                "input": entry.input_name,
                "field": field,
                "type": entry.error_type,
                "message": entry.message,
                "details": entry.details,
            }
        )
        if field is not None:
            status = 404 if entry.error_type == "value_not_in_list" else 400
    first = details[0] if details else {}
    message = (
        f"ComfyUI rejected the workflow at node {first.get('node_id')} "
        f"({first.get('class_type')}): {first.get('message')}"
    )
    return error_response(status, message, "prompt_rejected", details)


@dataclass
class Trail:
    """What a request left in ComfyUI: removed after the response is sent."""

    uploaded: list[str] = field(default_factory=list)
    prompt_id: str | None = None
    outputs: list[FileRef] = field(default_factory=list)


async def cleanup(comfy: "ComfyServer | RemoteComfy", trail: Trail) -> None:
    """Remove the request's inputs, outputs and history entry: nothing of it stays behind."""
    if comfy.base_dir is not None:
        for name in trail.uploaded:
            _unlink(comfy.base_dir / "input" / name)
        for ref in trail.outputs:
            _unlink(comfy.base_dir / ref.type / ref.subfolder / ref.filename)
    if trail.prompt_id is not None:
        try:
            await comfy.client.delete_history(trail.prompt_id)
        except Exception:  # noqa: BLE001 - cleanup must not mask the response
            log.warning("could not delete history of %s", trail.prompt_id)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
