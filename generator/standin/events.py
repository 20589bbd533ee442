"""WebSocket fan-out of the stand-in: one ordered stream of JSON events to the connected clients.

Events may be sent from any thread (the worker executes prompts in its own thread); a single
task on the server's event loop delivers them in the order they were sent. A client connects as
``/ws?clientId=X``: it first receives ``status`` with its ``sid``, then the broadcast events and
the events addressed to ``X``. A later connection with the same id replaces the earlier one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Connect:
    sid: str
    socket: WebSocket


@dataclass(frozen=True)
class _Disconnect:
    sid: str
    socket: WebSocket


@dataclass(frozen=True)
class _Event:
    sid: str | None
    text: str


class EventHub:
    """Registered sockets by client id and the queue of events to deliver."""

    def __init__(self, queue_remaining: Callable[[], int]) -> None:
        self._queue_remaining = queue_remaining
        self._sockets: dict[str, WebSocket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: asyncio.Queue[_Connect | _Disconnect | _Event] | None = None
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start delivering; must run on the server's event loop."""
        self._loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue()
        self._pump = asyncio.create_task(self._deliver())

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        self._loop = None

    def send(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        """Queue ``{"type": event, "data": data}`` for ``sid`` (every socket when None)."""
        self._post(_Event(sid, json.dumps({"type": event, "data": data})))

    def connect(self, sid: str, socket: WebSocket) -> None:
        self._post(_Connect(sid, socket))

    def disconnect(self, sid: str, socket: WebSocket) -> None:
        self._post(_Disconnect(sid, socket))

    def _post(self, item: _Connect | _Disconnect | _Event) -> None:
        """Hand an item to the delivery task, from any thread; dropped once stopped."""
        loop, inbox = self._loop, self._inbox
        if loop is None or inbox is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(inbox.put_nowait, item)

    async def _deliver(self) -> None:
        assert self._inbox is not None
        while True:
            item = await self._inbox.get()
            if isinstance(item, _Connect):
                self._sockets[item.sid] = item.socket
                status = {"exec_info": {"queue_remaining": self._queue_remaining()}}
                greeting = {"type": "status", "data": {"status": status, "sid": item.sid}}
                await self._send_to(item.sid, json.dumps(greeting))
            elif isinstance(item, _Disconnect):
                if self._sockets.get(item.sid) is item.socket:
                    del self._sockets[item.sid]
            elif item.sid is None:
                for sid in list(self._sockets):
                    await self._send_to(sid, item.text)
            elif item.sid in self._sockets:
                await self._send_to(item.sid, item.text)

    async def _send_to(self, sid: str, text: str) -> None:
        socket = self._sockets.get(sid)
        if socket is None:
            return
        try:
            await socket.send_text(text)
        except Exception as exc:  # the client went away; forget it
            log.debug("dropping WebSocket %s: %r", sid, exc)
            if self._sockets.get(sid) is socket:
                del self._sockets[sid]
