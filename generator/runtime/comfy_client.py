"""Asyncio client for the local ComfyUI server: submit a prompt, follow it, fetch its files.

One shared ``httpx.AsyncClient`` carries the HTTP calls; each run opens its own WebSocket
``/ws?clientId=<uuid4>`` *before* posting the prompt, so no event of that prompt can be missed,
and completion is read from the WebSocket (``executing {node: null}`` after ``execution_success``
/ ``execution_error`` / ``execution_interrupted``) — ``/history`` is never polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .errors import (
    ComfyError,
    ComfyUnavailable,
    ExecutionFailed,
    PromptRejected,
    RunInterrupted,
    RunTimeout,
)

EventCallback = Callable[[str, dict[str, Any]], None]
"""Receives ``(event_type, data)`` for every WebSocket event of the running prompt."""

log = logging.getLogger(__name__)

_PARTIAL_REJECTION = {
    "type": "prompt_outputs_failed_validation",
    "message": "Prompt outputs failed validation",
    "details": "some output nodes were queued, others failed validation",
    "extra_info": {},
}


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file an output node reported: the ``/view`` coordinates plus what kind of output it is.

    ``kind`` is the key it was listed under (``images``, ``gifs``, ``videos``, ``audio``...);
    ``animated`` comes from the node's ``animated`` flags (animated WEBP/PNG, video).
    """

    filename: str
    subfolder: str = ""
    type: str = "output"
    kind: str = "images"
    animated: bool = False


@dataclass(frozen=True, slots=True)
class RunResult:
    """Outcome of a successful run: output files per output node id, wall time in seconds."""

    prompt_id: str
    outputs: dict[str, list[FileRef]]
    elapsed: float


@dataclass(frozen=True, slots=True)
class QueueState:
    """Prompt ids ComfyUI is running and holding pending (``GET /queue``)."""

    running: list[str]
    pending: list[str]

    def holds(self, prompt_id: str) -> bool:
        """Whether the prompt is still running or pending."""
        return prompt_id in self.running or prompt_id in self.pending


class ComfyClient:
    """Client of one ComfyUI server (``base_url`` such as ``http://127.0.0.1:8188``).

    ``abort_grace`` bounds how long a timed-out or cancelled run waits for ComfyUI to confirm
    that the interrupted prompt left the queue.
    """

    def __init__(
        self, base_url: str, *, http_timeout: float = 60.0, abort_grace: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._ws_url = "ws" + self.base_url.removeprefix("http") + "/ws?clientId="
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(http_timeout, connect=5.0),
            trust_env=False,
        )
        self._abort_grace = abort_grace
        self._aborts: set[asyncio.Task[str]] = set()

    async def __aenter__(self) -> ComfyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    # ------------------------------------------------------------------ run

    async def run(
        self,
        prompt: dict[str, Any],
        *,
        timeout: float,
        on_event: EventCallback | None = None,
        prompt_id: str | None = None,
    ) -> RunResult:
        """Execute an API-format prompt and return its output files.

        Raises :class:`PromptRejected`, :class:`ExecutionFailed`, :class:`RunInterrupted`,
        :class:`RunTimeout` (after interrupting or dequeuing the prompt) or
        :class:`ComfyUnavailable` (also when ComfyUI cannot be reached to abort a timed-out
        prompt). If the awaiting task is cancelled, the prompt is interrupted or dequeued the
        same way before ``CancelledError`` propagates; the abort runs in a shielded task, so a
        repeated cancellation does not stop it. ``prompt_id``: chosen by the caller, so it can
        clean up after any ending (default: a fresh uuid4).
        """
        started = time.perf_counter()
        client_id = uuid.uuid4().hex
        prompt_id = prompt_id or str(uuid.uuid4())
        ws = await self._open_ws(client_id)
        try:
            outputs = await self._run_on(ws, prompt, client_id, prompt_id, timeout, on_event)
        finally:
            await ws.close()
        return RunResult(prompt_id, outputs, time.perf_counter() - started)

    async def _run_on(
        self,
        ws: ClientConnection,
        prompt: dict[str, Any],
        client_id: str,
        prompt_id: str,
        timeout: float,
        on_event: EventCallback | None,
    ) -> dict[str, list[FileRef]]:
        """Submit and follow the prompt within ``timeout``; abort it on timeout or cancel."""
        try:
            async with asyncio.timeout(timeout) as budget:
                await self._submit(ws, prompt, client_id, prompt_id)
                return await self._follow(ws, prompt_id, on_event)
        except TimeoutError:
            if not budget.expired():
                raise
            state = await self._abort_shielded(ws, prompt_id)
            raise RunTimeout(prompt_id=prompt_id, timeout=timeout, state=state) from None
        except ComfyError:
            raise
        except BaseException:
            with contextlib.suppress(ComfyError):
                await self._abort_shielded(ws, prompt_id)
            raise

    async def _open_ws(self, client_id: str) -> ClientConnection:
        """Open the event WebSocket for one run."""
        try:
            return await connect(
                self._ws_url + client_id,
                compression=None,
                max_size=None,
                ping_interval=None,
                proxy=None,
                open_timeout=10,
                close_timeout=2,
            )
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise ComfyUnavailable(f"cannot open {self._ws_url}{client_id}: {exc!r}") from exc

    async def _submit(
        self, ws: ClientConnection, prompt: dict[str, Any], client_id: str, prompt_id: str
    ) -> None:
        """``POST /prompt``; raise :class:`PromptRejected` unless every output node was queued.

        When only some output nodes fail validation, ComfyUI still queues the others and lists
        the failures in ``node_errors`` of a 200 answer; such a partial run is removed from the
        queue (or interrupted) and rejected as well.
        """
        body = {"prompt": prompt, "client_id": client_id, "prompt_id": prompt_id}
        resp = await self._request("POST", "/prompt", json=body)
        answer = _json_or_none(resp)
        if resp.status_code == 200 and answer is not None:
            if answer.get("node_errors"):
                await self._abort(ws, prompt_id)
                raise PromptRejected(dict(_PARTIAL_REJECTION), answer["node_errors"])
            return
        if answer is not None and isinstance(answer.get("error"), dict):
            raise PromptRejected(answer["error"], answer.get("node_errors") or {})
        raise PromptRejected(
            {
                "type": f"http_{resp.status_code}",
                "message": "POST /prompt failed",
                "details": resp.text.strip(),
            },
            {},
        )

    async def _follow(
        self, ws: ClientConnection, prompt_id: str, on_event: EventCallback | None
    ) -> dict[str, list[FileRef]]:
        """Consume the prompt's events until ``executing {node: null}``; return its outputs."""
        outputs: dict[str, list[FileRef]] = {}
        failure: ComfyError | None = None
        while True:
            kind, data = await _next_event(ws, prompt_id)
            if on_event is not None:
                on_event(kind, data)
            if kind == "executed":
                node_id = str(data.get("display_node") or data["node"])
                outputs.setdefault(node_id, []).extend(_file_refs(data.get("output") or {}))
            elif kind == "execution_error":
                failure = ExecutionFailed.from_event(data)
            elif kind == "execution_interrupted":
                failure = RunInterrupted(
                    prompt_id=prompt_id,
                    node_id=data.get("node_id"),
                    node_type=data.get("node_type"),
                )
            elif kind == "executing" and data.get("node") is None:
                if failure is not None:
                    raise failure
                return outputs

    # ---------------------------------------------------------------- abort

    async def _abort_shielded(self, ws: ClientConnection, prompt_id: str) -> str:
        """Run :meth:`_abort` in its own task so a repeated cancellation cannot cut it short."""
        task = asyncio.create_task(self._abort(ws, prompt_id))
        self._aborts.add(task)
        task.add_done_callback(self._abort_done)
        return await asyncio.shield(task)

    def _abort_done(self, task: asyncio.Task[str]) -> None:
        """Forget a finished abort task and log its failure (nobody may be awaiting it)."""
        self._aborts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("aborting a ComfyUI prompt failed: %r", task.exception())

    async def _abort(self, ws: ClientConnection, prompt_id: str) -> str:
        """Dequeue the prompt if pending, interrupt it if running, wait until it has left.

        Returns the state it was found in: ``pending``, ``running`` or ``gone``.
        """
        state = "gone"
        queue = await self.queue()
        if prompt_id in queue.pending:
            state = "pending"
            await self._post_ok("/queue", {"delete": [prompt_id]})
            queue = await self.queue()
        if prompt_id in queue.running:
            state = "running"
            await self.interrupt(prompt_id)
            await self._wait_left_queue(ws, prompt_id)
        return state

    async def _wait_left_queue(self, ws: ClientConnection, prompt_id: str) -> None:
        """Wait for the prompt's ``executing {node: null}``, sent once it has left the queue."""
        try:
            async with asyncio.timeout(self._abort_grace):
                while True:
                    kind, data = await _next_event(ws, prompt_id)
                    if kind == "executing" and data.get("node") is None:
                        return
        except TimeoutError:
            log.warning("prompt %s still running %gs after interrupt", prompt_id, self._abort_grace)
        except ComfyUnavailable:
            log.warning("WebSocket closed while prompt %s was being interrupted", prompt_id)

    # ----------------------------------------------------------- endpoints

    async def fetch(self, ref: FileRef) -> tuple[bytes, str]:
        """Download an output file via ``/view``; return its bytes and media type."""
        params = {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.type}
        resp = await self._request("GET", "/view", params=params)
        _raise_for_status(resp, "GET /view")
        media_type = resp.headers.get("content-type", "").split(";")[0].strip()
        if not media_type or media_type == "application/octet-stream":
            media_type = mimetypes.guess_type(ref.filename)[0] or "application/octet-stream"
        return resp.content, media_type

    async def upload(self, data: bytes, filename: str, subfolder: str = "") -> str:
        """Upload an input image; return the name to give ``LoadImage`` (``subfolder/name``).

        ComfyUI renames on a clash with a different file (``name (1).png``): the returned name is
        the one it actually stored.
        """
        resp = await self._request(
            "POST",
            "/upload/image",
            files={"image": (filename, data)},
            data={"type": "input", "subfolder": subfolder, "overwrite": "false"},
        )
        _raise_for_status(resp, "POST /upload/image")
        stored = resp.json()
        name, folder = str(stored["name"]), str(stored.get("subfolder") or "")
        return f"{folder}/{name}" if folder else name

    async def delete_history(self, prompt_id: str) -> None:
        """Drop the prompt from ComfyUI's history."""
        await self._post_ok("/history", {"delete": [prompt_id]})

    async def object_info(self) -> dict[str, Any]:
        """``GET /object_info``: the node catalog of the running server."""
        resp = await self._request("GET", "/object_info")
        _raise_for_status(resp, "GET /object_info")
        return resp.json()

    async def ready(self) -> bool:
        """Whether ComfyUI answers ``GET /system_stats`` with 200."""
        try:
            resp = await self._http.get("/system_stats", timeout=2.0)
        except httpx.TransportError:
            return False
        return resp.status_code == 200

    async def queue(self) -> QueueState:
        """Prompt ids currently running and pending."""
        resp = await self._request("GET", "/queue")
        _raise_for_status(resp, "GET /queue")
        body = resp.json()
        return QueueState(
            running=[str(item[1]) for item in body.get("queue_running", [])],
            pending=[str(item[1]) for item in body.get("queue_pending", [])],
        )

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running prompt; with ``prompt_id``, only if that one is running."""
        await self._post_ok("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    # ------------------------------------------------------------- helpers

    async def _post_ok(self, path: str, body: dict[str, Any]) -> None:
        """POST a JSON body and require a 2xx answer."""
        resp = await self._request("POST", path, json=body)
        _raise_for_status(resp, f"POST {path}")

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send an HTTP request; a transport failure means ComfyUI is down."""
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ComfyUnavailable(f"{method} {path}: {exc!r}") from exc


async def _next_event(ws: ClientConnection, prompt_id: str) -> tuple[str, dict[str, Any]]:
    """Next JSON event of ``prompt_id``; binary previews and other prompts' events are skipped."""
    while True:
        try:
            raw = await ws.recv()
        except ConnectionClosed as exc:
            raise ComfyUnavailable(f"ComfyUI closed the WebSocket mid-run: {exc!r}") from exc
        if isinstance(raw, bytes):
            continue
        message = json.loads(raw)
        data = message.get("data")
        if isinstance(data, dict) and data.get("prompt_id") == prompt_id:
            return str(message.get("type")), data


def _file_refs(output: dict[str, Any]) -> list[FileRef]:
    """File references of one ``executed`` output, of every kind, with their animated flag."""
    flags = output.get("animated") or []
    refs = []
    for kind, items in output.items():
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if isinstance(item, dict) and "filename" in item:
                animated = bool(flags[min(index, len(flags) - 1)]) if flags else False
                refs.append(
                    FileRef(
                        filename=str(item["filename"]),
                        subfolder=str(item.get("subfolder") or ""),
                        type=str(item.get("type") or "output"),
                        kind=kind,
                        animated=animated,
                    )
                )
    return refs


def _json_or_none(resp: httpx.Response) -> dict[str, Any] | None:
    """The response body as a JSON object, or None when it is not one."""
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _raise_for_status(resp: httpx.Response, what: str) -> None:
    """Raise :class:`ComfyError` for a non-2xx answer."""
    if not resp.is_success:
        raise ComfyError(f"{what} -> HTTP {resp.status_code}: {resp.text[:500]}")
