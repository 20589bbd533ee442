"""The request body limit as an ASGI wrapper: it holds for streamed (chunked) bodies too.

A declared ``Content-Length`` over the limit is answered 413 before any byte is read; a body
without one is counted as it arrives and refused (413) as soon as it passes the limit, so no
route ever holds more than ``limit`` bytes of a request in memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import HTTPException

from .responses import error_response

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body passes the limit (an HTTPException, so FastAPI's
    body reader lets it through instead of turning it into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: the limit is {limit} bytes")
        self.limit = limit


def too_large(limit: int):  # noqa: ANN201 - a JSONResponse
    return error_response(
        413, "request body too large", "payload_too_large", f"limit is {limit} bytes"
    )


class BodyLimit:
    """ASGI middleware: ``default`` bytes per request body, ``per_path`` overrides."""

    def __init__(self, app: Any, default: int, per_path: Mapping[str, int]) -> None:
        self.app, self.default, self.per_path = app, default, dict(per_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = _header(scope, b"content-encoding")
        if encoding is not None and encoding.strip().lower() not in ("", "identity"):
            # the body would be read as if it were not encoded: gzip bytes were a 400 "cannot
            # parse", and plain JSON declared as gzip was run as if it had been decoded
            await error_response(  # 400: documented on every route (415 is not)
                400,
                f"Content-Encoding {encoding!r} is not accepted",
                "bad_request",
                "send the body unencoded (identity)",
            )(scope, receive, send)
            return
        limit = self.per_path.get(scope.get("path", ""), self.default)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await too_large(limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await too_large(limit)(scope, receive, send)


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return value.decode("latin-1")
    return None


def _content_length(scope: Scope) -> int | None:
    text = (_header(scope, b"content-length") or "").strip()
    return int(text) if text.isdigit() else None
