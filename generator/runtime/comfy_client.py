"""Asyncio client for the local ComfyUI server: submit a prompt, follow it, fetch its files.

One shared ``httpx.AsyncClient`` carries the HTTP calls and one WebSocket per client
(``/ws?clientId=<uuid4>``, opened before the first prompt is posted) carries the events of every
prompt, routed to the run that posted it by prompt id. Completion is read from the WebSocket
(``executing {node: null}`` after ``execution_success`` / ``execution_error`` /
``execution_interrupted``); ``/history`` is read only after the WebSocket was lost and
reconnected, for prompts whose events fell into the gap. No request ever waits for a WebSocket
close handshake (ComfyUI under load often never answers a close frame).

ComfyUI's log lines come on the same WebSocket (``logs`` events), once subscribed through
``PATCH /internal/logs/subscribe``: the client subscribes when a run first watches for a line,
so an app that watches none gets no log traffic. They carry no prompt id: ComfyUI runs one
prompt at a time, so a line belongs to the prompt between its ``execution_start`` and
``executing {node: null}``. A run that ``watch``es phrases (what a node logs when it goes on
without an input) is told which of them its own prompt logged; no line is kept.
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
    """Outcome of a successful run: output files per output node id and its times in seconds.

    ``execution``: this prompt's execution in ComfyUI, ``execution_start`` to
    ``execution_success`` (ComfyUI's own timestamps); ``queue``: from posting it until ComfyUI
    started it (waiting behind other prompts); ``elapsed``: the whole call, as the caller saw it.
    """

    prompt_id: str
    outputs: dict[str, list[FileRef]]
    elapsed: float
    execution: float
    queue: float
    noticed: tuple[str, ...] = ()  # the watched phrases this prompt's log lines contained


@dataclass(frozen=True, slots=True)
class QueueState:
    """Prompt ids ComfyUI is running and holding pending (``GET /queue``)."""

    running: list[str]
    pending: list[str]

    def holds(self, prompt_id: str) -> bool:
        """Whether the prompt is still running or pending."""
        return prompt_id in self.running or prompt_id in self.pending


_RECONNECT_DELAYS = (0.0, 0.1, 0.3, 1.0)
"""Seconds slept before each attempt to reopen a lost WebSocket; then pending runs fail."""

_LOST = "ryla.websocket_lost"
"""Pseudo-event queued to every pending run when the WebSocket is gone for good."""


class _Run:
    """One pending prompt: the events the reader routed to it, and whether some may be lost."""

    __slots__ = ("events", "gapped", "noticed", "watch")

    def __init__(self, watch: tuple[str, ...] = ()) -> None:
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.gapped = False  # the WebSocket was reopened while this prompt was pending
        self.watch = watch  # phrases looked for in the prompt's log lines
        self.noticed: list[str] = []

    def read_logs(self, data: dict[str, Any]) -> None:
        """Note the watched phrases one ``logs`` event's lines contain (any case)."""
        for entry in data.get("entries") or ():
            line = entry.get("m") if isinstance(entry, dict) else None
            if not isinstance(line, str):
                continue
            said = line.casefold()
            for phrase in self.watch:
                if phrase not in self.noticed and phrase.casefold() in said:
                    self.noticed.append(phrase)


@dataclass(slots=True)
class _Timing:
    """When the prompt was posted (wall clock), ComfyUI's start/end timestamps (seconds), and
    when this client received those two events (monotonic)."""

    posted: float
    started: float | None = None
    ended: float | None = None
    started_rx: float | None = None
    ended_rx: float | None = None

    def start(self, data: dict[str, Any]) -> None:
        self.started, self.started_rx = _timestamp(data), time.perf_counter()

    def end(self, data: dict[str, Any]) -> None:
        self.ended, self.ended_rx = _timestamp(data), time.perf_counter()

    def queue_and_execution(self) -> tuple[float, float]:
        """Seconds waiting behind other prompts, seconds executing.

        ComfyUI stamps events in whole milliseconds; a run shorter than that is measured
        between the client's receipts of the two events instead (microseconds).
        """
        now = time.time()
        started = self.started if self.started is not None else self.posted
        ended = self.ended if self.ended is not None else now
        execution = ended - started
        if execution < 0.002 and self.started_rx is not None and self.ended_rx is not None:
            execution = self.ended_rx - self.started_rx
        return max(0.0, started - self.posted), max(0.0, execution)


class ComfyClient:
    """Client of one ComfyUI server (``base_url`` such as ``http://127.0.0.1:8188``).

    ``abort_grace`` bounds how long a timed-out or cancelled run waits for ComfyUI to confirm
    that the interrupted prompt left the queue.
    """

    def __init__(
        self, base_url: str, *, http_timeout: float = 60.0, abort_grace: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = uuid.uuid4().hex
        self._ws_url = "ws" + self.base_url.removeprefix("http") + "/ws?clientId=" + self.client_id
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(http_timeout, connect=5.0),
            trust_env=False,
        )
        self._abort_grace = abort_grace
        self._aborts: set[asyncio.Task[str]] = set()
        self._runs: dict[str, _Run] = {}
        self._executing: str | None = None  # the prompt ComfyUI is running (its log lines)
        # set once a run watches for log lines: the subscription, renewed on each reopen
        self._logs: asyncio.Future[None] | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opening: asyncio.Lock | None = None

    async def __aenter__(self) -> ComfyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the event reader, drop the WebSocket (no close handshake), close HTTP."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        self._drop_ws()
        await self._http.aclose()

    # ------------------------------------------------------------------ run

    async def run(
        self,
        prompt: dict[str, Any],
        *,
        timeout: float,
        on_event: EventCallback | None = None,
        prompt_id: str | None = None,
        watch: tuple[str, ...] = (),
    ) -> RunResult:
        """Execute an API-format prompt and return its output files.

        Raises :class:`PromptRejected`, :class:`ExecutionFailed`, :class:`RunInterrupted`,
        :class:`RunTimeout` (after interrupting or dequeuing the prompt) or
        :class:`ComfyUnavailable` (also when ComfyUI cannot be reached to abort a timed-out
        prompt). If the awaiting task is cancelled, the prompt is interrupted or dequeued the
        same way before ``CancelledError`` propagates; the abort runs in a shielded task, so a
        repeated cancellation does not stop it. ``prompt_id``: chosen by the caller, so it can
        clean up after any ending (default: a fresh uuid4). ``watch``: phrases to look for in
        the prompt's log lines (``RunResult.noticed``).
        """
        started = time.perf_counter()
        prompt_id = prompt_id or str(uuid.uuid4())
        run = _Run(watch)
        self._runs[prompt_id] = run  # before posting: no event of the prompt can be missed
        try:
            await self._listen()
            if watch:  # subscribed before the prompt is posted, by whichever run asks first
                self._logs = self._logs or asyncio.ensure_future(self._subscribe_logs())
                await asyncio.shield(self._logs)
            outputs, timing = await self._run_on(run, prompt, prompt_id, timeout, on_event)
        finally:
            self._runs.pop(prompt_id, None)
        queued, executed = timing.queue_and_execution()
        elapsed = time.perf_counter() - started
        return RunResult(prompt_id, outputs, elapsed, executed, queued, tuple(run.noticed))

    async def _run_on(
        self,
        run: _Run,
        prompt: dict[str, Any],
        prompt_id: str,
        timeout: float,
        on_event: EventCallback | None,
    ) -> tuple[dict[str, list[FileRef]], _Timing]:
        """Submit and follow the prompt within ``timeout``; abort it on timeout or cancel."""
        try:
            async with asyncio.timeout(timeout) as budget:
                timing = _Timing(posted=time.time())
                await self._submit(run, prompt, prompt_id)
                outputs = await self._follow(run, prompt_id, timing, on_event)
                return outputs, timing
        except TimeoutError:
            if not budget.expired():
                raise
            state = await self._abort_shielded(run, prompt_id)
            raise RunTimeout(prompt_id=prompt_id, timeout=timeout, state=state) from None
        except ComfyError:
            raise
        except BaseException:
            with contextlib.suppress(ComfyError):
                await self._abort_shielded(run, prompt_id)
            raise

    async def _submit(self, run: _Run, prompt: dict[str, Any], prompt_id: str) -> None:
        """``POST /prompt``; raise :class:`PromptRejected` unless every output node was queued.

        When only some output nodes fail validation, ComfyUI still queues the others and lists
        the failures in ``node_errors`` of a 200 answer; such a partial run is removed from the
        queue (or interrupted) and rejected as well.
        """
        body = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        resp = await self._request("POST", "/prompt", json=body)
        answer = _json_or_none(resp)
        if resp.status_code == 200 and answer is not None:
            if answer.get("node_errors"):
                await self._abort(run, prompt_id)
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
        self, run: _Run, prompt_id: str, timing: _Timing, on_event: EventCallback | None
    ) -> dict[str, list[FileRef]]:
        """Consume the prompt's events until ``executing {node: null}``; return its outputs."""
        outputs: dict[str, list[FileRef]] = {}
        failure: ComfyError | None = None
        while True:
            kind, data = await _next_event(run)
            if kind == "logs":  # ComfyUI's own output: never passed on (job events)
                run.read_logs(data)
                continue
            if on_event is not None:
                on_event(kind, data)
            if kind == "executed":
                node_id = str(data.get("display_node") or data["node"])
                outputs.setdefault(node_id, []).extend(_file_refs(data.get("output") or {}))
            elif kind == "execution_start":
                timing.start(data)
            elif kind == "execution_success":
                timing.end(data)
            elif kind == "execution_error":
                timing.end(data)
                failure = ExecutionFailed.from_event(data)
            elif kind == "execution_interrupted":
                timing.end(data)
                failure = RunInterrupted(
                    prompt_id=prompt_id,
                    node_id=data.get("node_id"),
                    node_type=data.get("node_type"),
                )
            elif kind == "executing" and data.get("node") is None:
                if failure is not None:
                    raise failure
                if run.gapped:  # some ``executed`` events may have fallen into the gap
                    entry = await self._history_entry(prompt_id)
                    if entry is not None:
                        outputs = _history_outputs(entry)
                return outputs

    # ------------------------------------------------------------ WebSocket

    async def _listen(self) -> None:
        """Make sure the client's WebSocket is open and its reader task is running."""
        if self._reader is not None and not self._reader.done():
            return
        self._opening = self._opening or asyncio.Lock()
        async with self._opening:
            if self._reader is not None and not self._reader.done():
                return
            await self._open_ws()
            self._reader = asyncio.create_task(self._read())

    async def _open_ws(self) -> None:
        """Open the client's event WebSocket."""
        try:
            self._ws = await connect(
                self._ws_url,
                compression=None,
                max_size=None,
                ping_interval=None,
                proxy=None,
                open_timeout=10,
                close_timeout=0.1,
            )
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise ComfyUnavailable(f"cannot open {self._ws_url}: {exc!r}") from exc
        if self._logs is not None:
            await self._subscribe_logs()

    async def _subscribe_logs(self) -> None:
        """Ask ComfyUI to send its log lines on this client's WebSocket (again after each
        reopen: it forgets a client whose socket closed). A ComfyUI without the route
        (older, or the stand-in) sends none, and watched phrases are never noticed."""
        body = {"clientId": self.client_id, "enabled": True}
        try:
            resp = await self._request("PATCH", "/internal/logs/subscribe", json=body)
        except ComfyError as exc:
            log.warning("ComfyUI log lines not subscribed: %s", exc)
            return
        if resp.status_code != 200:
            log.info(
                "ComfyUI sends no log lines (PATCH /internal/logs/subscribe: %s)", resp.status_code
            )

    def _drop_ws(self) -> None:
        """Forget the WebSocket and cut its TCP connection: nobody waits for a close frame."""
        ws, self._ws = self._ws, None
        if ws is not None and ws.transport is not None:
            ws.transport.abort()

    async def _read(self) -> None:
        """Route every event to its prompt's run; reopen the WebSocket when it is lost."""
        while True:
            ws = self._ws
            assert ws is not None
            with contextlib.suppress(ConnectionClosed):
                async for raw in ws:
                    if isinstance(raw, str):
                        self._route(raw)
            self._drop_ws()
            if not self._runs:
                return  # nothing pending: the next run opens a new one
            if not await self._reopen():
                for run in self._runs.values():
                    run.events.put_nowait((_LOST, {}))
                return
            await self._recover_gap()

    def _route(self, raw: str) -> None:
        """Queue a JSON event for the run of its ``prompt_id`` (others are dropped)."""
        try:
            message = json.loads(raw)
        except ValueError:
            return
        data = message.get("data") if isinstance(message, dict) else None
        if not isinstance(data, dict):
            return
        kind = str(message.get("type"))
        prompt_id = data.get("prompt_id")
        if kind == "logs":  # no prompt id: the lines of the prompt ComfyUI is running
            prompt_id = self._executing
        elif kind == "execution_start":
            self._executing = prompt_id if isinstance(prompt_id, str) else None
        elif kind == "executing" and data.get("node") is None and prompt_id == self._executing:
            self._executing = None
        run = self._runs.get(prompt_id) if isinstance(prompt_id, str) else None
        if run is not None and (kind != "logs" or run.watch):
            run.events.put_nowait((kind, data))

    async def _reopen(self) -> bool:
        """Try to reopen the lost WebSocket a few times; whether it worked."""
        for delay in _RECONNECT_DELAYS:
            await asyncio.sleep(delay)
            try:
                await self._open_ws()
            except ComfyUnavailable:
                continue
            log.warning("ComfyUI WebSocket was lost and has been reopened")
            return True
        log.warning("ComfyUI WebSocket was lost and could not be reopened")
        return False

    async def _recover_gap(self) -> None:
        """Pending prompts that finished while the WebSocket was down: replay from history."""
        for prompt_id, run in list(self._runs.items()):
            run.gapped = True
            try:
                entry = await self._history_entry(prompt_id)
            except ComfyError:
                entry = None
            if entry is not None and (entry.get("status") or {}).get("completed") is not None:
                for event in _history_events(prompt_id, entry):
                    run.events.put_nowait(event)

    async def _history_entry(self, prompt_id: str) -> dict[str, Any] | None:
        """The prompt's ``/history`` entry, or None while it has not finished."""
        resp = await self._request("GET", f"/history/{prompt_id}")
        _raise_for_status(resp, "GET /history")
        entry = (_json_or_none(resp) or {}).get(prompt_id)
        return entry if isinstance(entry, dict) else None

    # ---------------------------------------------------------------- abort

    async def _abort_shielded(self, run: _Run, prompt_id: str) -> str:
        """Run :meth:`_abort` in its own task so a repeated cancellation cannot cut it short."""
        task = asyncio.create_task(self._abort(run, prompt_id))
        self._aborts.add(task)
        task.add_done_callback(self._abort_done)
        return await asyncio.shield(task)

    def _abort_done(self, task: asyncio.Task[str]) -> None:
        """Forget a finished abort task and log its failure (nobody may be awaiting it)."""
        self._aborts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("aborting a ComfyUI prompt failed: %r", task.exception())

    async def _abort(self, run: _Run, prompt_id: str) -> str:
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
            await self._wait_left_queue(run, prompt_id)
        return state

    async def _wait_left_queue(self, run: _Run, prompt_id: str) -> None:
        """Wait for the prompt's ``executing {node: null}``, sent once it has left the queue."""
        try:
            async with asyncio.timeout(self._abort_grace):
                while True:
                    kind, data = await _next_event(run)
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


async def _next_event(run: _Run) -> tuple[str, dict[str, Any]]:
    """The next event routed to ``run``; :class:`ComfyUnavailable` once the WebSocket is gone."""
    kind, data = await run.events.get()
    if kind == _LOST:
        raise ComfyUnavailable("ComfyUI closed the WebSocket mid-run and it could not be reopened")
    return kind, data


def _timestamp(data: dict[str, Any]) -> float:
    """An event's ComfyUI timestamp (ms since the epoch) in seconds; now when it has none."""
    stamp = data.get("timestamp")
    return stamp / 1000 if isinstance(stamp, (int, float)) else time.time()


def _history_outputs(entry: dict[str, Any]) -> dict[str, list[FileRef]]:
    """Output files per display node from a ``/history`` entry."""
    outputs: dict[str, list[FileRef]] = {}
    meta = entry.get("meta") or {}
    for node_id, output in (entry.get("outputs") or {}).items():
        shown = str((meta.get(node_id) or {}).get("display_node") or node_id)
        outputs.setdefault(shown, []).extend(_file_refs(output or {}))
    return outputs


def _history_events(prompt_id: str, entry: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The events a finished prompt sent, rebuilt from its ``/history`` entry."""
    messages = [
        (str(kind), dict(data))
        for kind, data in (entry.get("status") or {}).get("messages") or []
        if isinstance(data, dict)
    ]
    final = ("execution_success", "execution_error", "execution_interrupted")
    events = [m for m in messages if m[0] not in final]
    meta = entry.get("meta") or {}
    for node_id, output in (entry.get("outputs") or {}).items():
        shown = (meta.get(node_id) or {}).get("display_node") or node_id
        events.append(
            (
                "executed",
                {"node": node_id, "display_node": shown, "output": output, "prompt_id": prompt_id},
            )
        )
    events += [m for m in messages if m[0] in final]
    events.append(("executing", {"node": None, "prompt_id": prompt_id}))
    return events


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
