"""One request, start to finish: media, workflow, ComfyUI, response (or a JSON error)."""

import asyncio
import base64
import dataclasses
import logging
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from .apply import apply_request
from .comfy_client import EventCallback, FileRef
from .config import AppSettings, Endpoint
from .errors import (
    ComfyError,
    ComfyUnavailable,
    ExecutionFailed,
    PromptRejected,
    RunInterrupted,
    RunTimeout,
)
from .media import Media, MediaError, load_media
from .responses import error_response

if TYPE_CHECKING:
    from .backends import ComfyServer, RemoteComfy

log = logging.getLogger("ryla.runtime")


def wants_json(request: Request) -> bool:
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
            media = await _load_media(settings, endpoint, values)
        except _FieldError as exc:
            return error_response(
                422,
                f"invalid request: {exc.field}",
                "validation_error",
                [{"field": exc.field, "message": str(exc)}],
            )
        uploads = await _upload_media(media, comfy, trail)
        applied = apply_request(endpoint, workflow, values, uploads, prefix=trail.output_prefix)
        if on_event is not None:
            on_event("prompt", {"nodes": list(applied.prompt)})
        trail.prompt_id = str(uuid.uuid4())  # known before it is queued: any ending cleans up
        result = await comfy.client.run(
            applied.prompt,
            timeout=endpoint.timeout,
            on_event=on_event,
            prompt_id=trail.prompt_id,
            watch=_watched(endpoint, values),
        )
        nodes = endpoint.outputs or tuple(result.outputs)  # a client workflow: every output
        files = [ref for node in nodes for ref in result.outputs.get(node, [])]
        trail.outputs = files
        for phrase in result.noticed:  # the run went on without a sent value: no output
            unusable = _unusable(endpoint, values, "node_warnings", phrase, {"logged": phrase})
            if unusable is not None:
                return unusable
        if not files:
            return error_response(
                500,
                "the workflow produced no output file",
                "no_output",
                {"nodes": list(endpoint.outputs)},
            )
        fetched = [await comfy.client.fetch(ref) for ref in files]
    except PromptRejected as exc:
        return _rejected(endpoint, exc, client_graph=bool(endpoint.client_workflow_max_nodes))
    except ExecutionFailed as exc:
        node = {
            "node_id": exc.node_id,
            "node_type": exc.node_type,
            "node_message": exc.exception_message.strip(),
        }
        unusable = _unusable(endpoint, values, "node_errors", exc.exception_message, node)
        if unusable is not None:
            return unusable
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
        return error_response(
            504,
            f"generation exceeded {endpoint.timeout:g}s and was stopped",
            "timeout",
            {"state_when_stopped": exc.state},
        )
    except RunInterrupted as exc:
        return error_response(500, "generation was interrupted", "interrupted", str(exc))
    except ComfyUnavailable as exc:
        asyncio.ensure_future(comfy.recover())
        return error_response(
            503, "ComfyUI is unavailable; restarting, retry shortly", "unavailable", str(exc)
        )
    except ComfyError as exc:  # an unexpected answer of ComfyUI (upload, /view)
        return error_response(500, "ComfyUI answered unexpectedly", "comfy_error", str(exc))
    headers = {  # this prompt's execution in ComfyUI, not the wait behind other prompts
        "X-Execution-Time-Sec": f"{result.execution:.6f}",
        "X-Queue-Time-Sec": f"{result.queue:.6f}",
        "X-GPU-Type": settings.gpu,
        "X-Cost-USD": f"{result.execution * settings.usd_per_second:.10f}",
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
    from .backends import node_catalog
    from .client_workflow import check_client_workflow, save_nodes

    catalog = await node_catalog(comfy)
    workflow, problems = check_client_workflow(
        values["workflow"],
        max_nodes=endpoint.client_workflow_max_nodes,
        catalog=catalog,
        max_output_pixels=endpoint.max_output_pixels,
        input_files=endpoint.input_files,
    )
    if problems:
        nodes = ", ".join(dict.fromkeys(str(p["node_id"]) for p in problems if p["node_id"]))
        error = f"invalid workflow (nodes {nodes})" if nodes else "invalid workflow"
        return error_response(422, error, "validation_error", problems)
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
        if not path.exists() and not await comfy.reload_models(file):
            return param.name, file
    return None


class _FieldError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


async def _load_media(
    settings: AppSettings, endpoint: Endpoint, values: dict[str, Any]
) -> dict[str, list[Media]]:
    """Every media input fetched and decoded before anything reaches ComfyUI (422 otherwise)."""
    loaded: dict[str, list[Media]] = {}
    for param in endpoint.params:
        if param.kind not in ("image", "video", "mask") or values.get(param.name) is None:
            continue
        items = values[param.name] if param.many else [values[param.name]]
        loaded[param.name] = []
        for item in items:
            try:
                media = await load_media(
                    item,
                    param.kind,
                    max_bytes=settings.body_limit(endpoint),
                    max_pixels=param.pixel_limit(settings.max_image_pixels),
                    allow_private=settings.allow_private_urls,
                    download_timeout=settings.download_timeout,
                    download_max_bytes=settings.download_max_bytes,
                    min_side=param.min_side,
                )
            except MediaError as exc:
                raise _FieldError(param.name, str(exc)) from None
            loaded[param.name].append(media)
    return loaded


async def _upload_media(
    media: dict[str, list[Media]], comfy: "ComfyServer | RemoteComfy", trail: "Trail"
) -> dict[str, list[str]]:
    """Upload into the request's own input subfolder: ComfyUI lists only top-level input files
    (LoadImage's choices, its errors), so no listing ever shows another request's upload."""
    uploads: dict[str, list[str]] = {}
    for name, items in media.items():
        uploads[name] = []
        for item in items:
            stored = await comfy.client.upload(
                item.data, item.upload_name(name), subfolder=trail.folder
            )
            trail.uploaded.append(stored)
            uploads[name].append(stored)
    return uploads


def _watched(endpoint: Endpoint, values: dict[str, Any]) -> tuple[str, ...]:
    """The logged phrases that would refuse a value this request sent (``node_warnings``)."""
    phrases = (
        part
        for param in endpoint.params
        if param.node_warnings and values.get(param.name) is not None
        for part in param.node_warnings
    )
    return tuple(dict.fromkeys(phrases))


def _unusable(
    endpoint: Endpoint, values: dict[str, Any], rules: str, said: str, details: dict[str, Any]
) -> JSONResponse | None:
    """422 naming the field when what a node raised or logged (``said``) means a value the
    client sent is unusable: the parameter's ``rules`` (``node_errors`` or ``node_warnings``,
    e.g. "No face detected"); None: not the client's doing (a 500 for an error)."""
    said = said.casefold()
    for param in endpoint.params:
        table = getattr(param, rules)
        if not table or values.get(param.name) is None:
            continue
        for part, message in table.items():
            if part.casefold() in said:
                detail = {"field": param.name, "message": message, **details}
                return error_response(
                    422, f"invalid request: {param.name}", "validation_error", [detail]
                )
    return None


def _rejected(endpoint: Endpoint, exc: PromptRejected, client_graph: bool) -> JSONResponse:
    """400/404 for a rejected request value, 422 for a client's graph, 500 for our workflow."""
    bound = {(t.node, t.input): p.name for p in endpoint.params for t in p.targets}
    details = []
    status = 422 if client_graph else 500  # a committed workflow broken on this server: 500
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
    """What a request left in ComfyUI: removed after the response is sent, or after any other
    ending (failure, timeout, cancel, disconnect). ``folder``: the request's own subfolder of
    ComfyUI's input and output folders (128 random bits)."""

    uploaded: list[str] = field(default_factory=list)
    prompt_id: str | None = None
    outputs: list[FileRef] = field(default_factory=list)
    folder: str = field(default_factory=lambda: f"ryla/{uuid.uuid4().hex}")

    @property
    def output_prefix(self) -> str:
        return f"{self.folder}/out"


async def cleanup(comfy: "ComfyServer | RemoteComfy", trail: Trail) -> None:
    """Remove the request's inputs, outputs and history entry: nothing of it stays behind."""
    if comfy.base_dir is not None:
        for name in trail.uploaded:
            _unlink(comfy.base_dir / "input" / name)
        for ref in trail.outputs:
            _unlink(comfy.base_dir / ref.type / ref.subfolder / ref.filename)
        for kind in ("input", "output", "temp"):  # files of nodes that ran before a failure
            shutil.rmtree(comfy.base_dir / kind / trail.folder, ignore_errors=True)
    if trail.prompt_id is not None:
        try:
            await comfy.client.delete_history(trail.prompt_id)
        except Exception:  # noqa: BLE001 - cleanup must not mask the response
            log.warning("could not delete history of %s", trail.prompt_id)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
