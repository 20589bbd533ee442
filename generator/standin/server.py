"""The stand-in's ASGI app: ComfyUI's HTTP API and ``/ws`` event socket, built on Starlette.

Every route is served both at its ComfyUI path (``/prompt``) and under ``/api`` (``/api/prompt``)
as ComfyUI does. Unexpected failures answer ``500`` with aiohttp's plain-text body, which is what
ComfyUI clients see for a body that is not JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from .files import content_type, is_inside, split_annotation
from .forms import FormError, UploadedFile, parse_form
from .state import Standin, StandinConfig

log = logging.getLogger(__name__)

COMFYUI_VERSION = "0.3.64"
"""The ComfyUI release whose protocol the stand-in follows."""

SERVER_ERROR_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"
MODEL_FOLDERS = [
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
    "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen",
    "upscale_models", "custom_nodes", "hypernetworks", "photomaker", "classifiers",
    "model_patches", "audio_encoders",
]  # fmt: skip


def create_app(config: StandinConfig) -> Starlette:
    """A stand-in app; its :class:`Standin` state is ``app.state.standin``."""
    standin = Standin(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await standin.start()
        try:
            yield
        finally:
            await standin.stop()

    routes = _routes()
    app = Starlette(
        routes=[*routes, Mount("/api", routes=routes)],
        lifespan=lifespan,
        exception_handlers={Exception: _server_error},
    )
    app.state.standin = standin
    return app


def _routes() -> list[BaseRoute]:
    return [
        Route("/prompt", post_prompt, methods=["POST"]),
        Route("/prompt", get_prompt, methods=["GET"]),
        Route("/queue", get_queue, methods=["GET"]),
        Route("/queue", post_queue, methods=["POST"]),
        Route("/interrupt", post_interrupt, methods=["POST"]),
        Route("/free", post_free, methods=["POST"]),
        Route("/history", get_history, methods=["GET"]),
        Route("/history", post_history, methods=["POST"]),
        Route("/history/{prompt_id}", get_history_item, methods=["GET"]),
        Route("/view", view, methods=["GET"]),
        Route("/upload/image", upload_image, methods=["POST"]),
        Route("/object_info", object_info, methods=["GET"]),
        Route("/object_info/{node_class}", object_info_class, methods=["GET"]),
        Route("/system_stats", system_stats, methods=["GET"]),
        Route("/embeddings", lambda request: JSONResponse([]), methods=["GET"]),
        Route("/extensions", lambda request: JSONResponse([]), methods=["GET"]),
        Route("/features", features, methods=["GET"]),
        Route("/models", lambda request: JSONResponse(MODEL_FOLDERS), methods=["GET"]),
        Route("/models/{folder}", models_in_folder, methods=["GET"]),
        WebSocketRoute("/ws", websocket),
    ]


def _standin(request: Request | WebSocket) -> Standin:
    return request.app.state.standin


async def _server_error(request: Request, exc: Exception) -> Response:
    """Any unexpected failure: the 500 page ComfyUI (aiohttp) answers with."""
    return _malformed()


async def _json_object(request: Request) -> dict[str, Any] | None:
    """The body as a JSON object; None when it is empty, not JSON or not an object."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _malformed() -> Response:
    """ComfyUI's answer to a body it cannot use (aiohttp's 500 page)."""
    return PlainTextResponse(SERVER_ERROR_TEXT, status_code=500)


# ------------------------------------------------------------------- prompts & queue


async def post_prompt(request: Request) -> Response:
    """Queue a prompt (200) or explain why not (400); a body that is not JSON gives 500."""
    try:
        body = json.loads(await request.body())
        submission = _standin(request).submit(body)
    except (ValueError, TypeError, AttributeError, KeyError):
        log.debug("POST /prompt: malformed body", exc_info=True)
        return _malformed()
    return JSONResponse(submission.body, status_code=submission.status)


async def get_prompt(request: Request) -> Response:
    return JSONResponse({"exec_info": {"queue_remaining": _standin(request).queue.remaining()}})


async def get_queue(request: Request) -> Response:
    return JSONResponse(_standin(request).queue_listing())


async def post_queue(request: Request) -> Response:
    """``{"clear": true}`` empties the pending queue; ``{"delete": [ids]}`` removes prompts."""
    body = await _json_object(request)
    if body is None:
        return _malformed()
    queue = _standin(request).queue
    if body.get("clear"):
        queue.clear()
    for prompt_id in body.get("delete", []):
        queue.delete(prompt_id)
    return Response(status_code=200)


async def post_interrupt(request: Request) -> Response:
    """Interrupt the running prompt; ``{"prompt_id": id}`` only interrupts that prompt."""
    body = await _json_object(request) or {}
    _standin(request).interrupt(body.get("prompt_id"))
    return Response(status_code=200)


async def post_free(request: Request) -> Response:
    body = await _json_object(request) or {}
    if body.get("free_memory"):
        _standin(request).free_memory()
    return Response(status_code=200)


# ---------------------------------------------------------------------------- history


async def get_history(request: Request) -> Response:
    max_items = request.query_params.get("max_items")
    offset = int(request.query_params.get("offset", -1))
    history = _standin(request).queue.history(
        int(max_items) if max_items is not None else None, offset
    )
    return JSONResponse(history)


async def get_history_item(request: Request) -> Response:
    return JSONResponse(_standin(request).queue.history_item(request.path_params["prompt_id"]))


async def post_history(request: Request) -> Response:
    """``{"clear": true}`` empties the history; ``{"delete": [ids]}`` drops entries."""
    body = await _json_object(request)
    if body is None:
        return _malformed()
    queue = _standin(request).queue
    if body.get("clear"):
        queue.clear_history()
    for prompt_id in body.get("delete", []):
        queue.delete_history(prompt_id)
    return Response(status_code=200)


# ------------------------------------------------------------------------------ files


async def view(request: Request) -> Response:
    """``/view?filename=&subfolder=&type=``: a file of input/, output/ or temp/.

    400 for a traversing file name or unknown type, 403 for a subfolder leaving the folder,
    404 when missing. ``preview=webp;90`` and ``channel=rgb|a`` convert images like ComfyUI.
    """
    query = request.query_params
    if "filename" not in query:
        return Response(status_code=404)
    name, annotated_type = split_annotation(query["filename"])
    if not name or name.startswith("/") or ".." in name:
        return Response(status_code=400)
    root = _standin(request).dirs.by_type(annotated_type or query.get("type", "output"))
    if root is None:
        return Response(status_code=400)
    folder = root / query.get("subfolder", "")
    if not is_inside(root, folder):
        return Response(status_code=403)
    filename = os.path.basename(name)
    path = folder / filename
    if not path.is_file():
        return Response(status_code=404)
    headers = {"Content-Disposition": f'filename="{filename}"'}
    channel = query.get("channel", "")
    if "preview" in query:
        return _preview(path, query["preview"], channel, headers)
    if channel in ("rgb", "a"):
        return _channel_png(path, channel, headers)
    return FileResponse(path, media_type=content_type(filename), headers=headers)


def _preview(path: Path, preview: str, channel: str, headers: dict[str, str]) -> Response:
    """A re-encoded preview: ``webp`` or ``jpeg`` with an optional ``;quality``."""
    parts = preview.split(";")
    image_format = parts[0] if parts[0] in ("webp", "jpeg") and "a" not in channel else "webp"
    quality = int(parts[-1]) if parts[-1].isdigit() else 90
    buffer = io.BytesIO()
    with Image.open(path) as image:
        if image_format == "jpeg" or channel == "rgb":
            image = image.convert("RGB")
        image.save(buffer, format=image_format, quality=quality)
    return Response(buffer.getvalue(), media_type=f"image/{image_format}", headers=headers)


def _channel_png(path: Path, channel: str, headers: dict[str, str]) -> Response:
    """The RGB channels, or the alpha channel as a transparent image, as PNG."""
    with Image.open(path) as image:
        if channel == "rgb":
            result = image.convert("RGB")
        else:
            opaque = Image.new("L", image.size, 255)
            alpha = image.getchannel("A") if image.mode == "RGBA" else opaque
            result = Image.new("RGBA", image.size)
            result.putalpha(alpha)
    buffer = io.BytesIO()
    result.save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png", headers=headers)


async def upload_image(request: Request) -> Response:
    """Store a multipart ``image`` in input/ (or ``type``), optionally in ``subfolder``.

    A clash with a different file is renamed ``name (1).ext`` unless ``overwrite`` is
    ``true``/``1``; re-uploading identical bytes keeps the existing name.
    """
    try:
        form = parse_form(request.headers.get("content-type", ""), await request.body())
    except FormError:
        return Response(status_code=400)
    image = form.get("image")
    folder_type = str(form.get("type") or "input")
    root = _standin(request).dirs.by_type(folder_type)
    if not isinstance(image, UploadedFile) or not image.filename or root is None:
        return Response(status_code=400)
    subfolder = str(form.get("subfolder", ""))
    folder = root / os.path.normpath(subfolder)
    filename = image.filename
    path = folder / filename
    if not is_inside(root, path):
        return Response(status_code=400)
    path.parent.mkdir(parents=True, exist_ok=True)
    duplicate = False
    if form.get("overwrite") not in ("true", "1"):
        stem, extension = os.path.splitext(image.filename)
        counter = 1
        while path.exists():
            if path.is_file() and path.read_bytes() == image.data:
                duplicate = True
                break
            filename = f"{stem} ({counter}){extension}"
            path = folder / filename
            counter += 1
    if not duplicate:
        path.write_bytes(image.data)
    return JSONResponse({"name": filename, "subfolder": subfolder, "type": folder_type})


# ------------------------------------------------------------------------ information


async def object_info(request: Request) -> Response:
    return JSONResponse(_standin(request).catalog.object_info())


async def object_info_class(request: Request) -> Response:
    """``{class: definition}``, or ``{}`` for an unknown class."""
    catalog = _standin(request).catalog
    node_class = request.path_params["node_class"]
    if node_class not in catalog:
        return JSONResponse({})
    return JSONResponse({node_class: catalog.definition(node_class)})


async def system_stats(request: Request) -> Response:
    total, free = _memory()
    system = {
        "os": os.name,
        "ram_total": total,
        "ram_free": free,
        "comfyui_version": COMFYUI_VERSION,
        "required_frontend_version": "1.27.10",
        "installed_templates_version": "0.1.95",
        "required_templates_version": "0.1.95",
        "python_version": sys.version,
        "pytorch_version": "none (ComfyUI stand-in)",
        "embedded_python": False,
        "argv": sys.argv,
    }
    device = {
        "name": "cpu",
        "type": "cpu",
        "index": None,
        "vram_total": total,
        "vram_free": free,
        "torch_vram_total": total,
        "torch_vram_free": free,
    }
    return JSONResponse({"system": system, "devices": [device]})


def _memory() -> tuple[int, int]:
    """(total, available) RAM in bytes from /proc/meminfo; zeros where unavailable."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)


async def features(request: Request) -> Response:
    return JSONResponse({"supports_preview_metadata": True, "max_upload_size": 104857600})


async def models_in_folder(request: Request) -> Response:
    if request.path_params["folder"] not in MODEL_FOLDERS:
        return Response(status_code=404)
    return JSONResponse([])


# -------------------------------------------------------------------------- websocket


async def websocket(socket: WebSocket) -> None:
    """``/ws?clientId=X``: register the socket for X's events until the client leaves."""
    await socket.accept()
    sid = socket.query_params.get("clientId") or uuid.uuid4().hex
    hub = _standin(socket).hub
    hub.connect(sid, socket)
    try:
        while (await socket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        hub.disconnect(sid, socket)
