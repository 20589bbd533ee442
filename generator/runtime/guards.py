"""Checks in front of every route of a generated app or the fleet's front door: the bearer
token (plain ASGI, constant-time) and the ``Allow`` header of a 405."""

from __future__ import annotations

import hmac
import os
from typing import Any

from fastapi import FastAPI
from starlette.routing import Match

from .responses import error_response


class BearerAuth:
    """ASGI middleware: every route but ``/health`` needs ``Authorization: Bearer <token>``.

    Plain ASGI (no BaseHTTPMiddleware), so errors raised while the body is read reach the
    routes' handlers as themselves."""

    def __init__(self, app: Any, token_env: str) -> None:
        self.app, self.token_env = app, token_env

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") != "/health":
            header = dict(scope.get("headers", [])).get(b"authorization", b"")
            if not bearer_ok(header.decode("latin-1"), self.token_env):
                response = error_response(401, "missing or wrong bearer token", "unauthorized")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def bearer_ok(header: str | None, token_env: str) -> bool:
    """``Authorization: Bearer <token>`` (scheme in any case), compared in constant time."""
    token = os.environ.get(token_env, "")
    scheme, _, given = (header or "").strip().partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def allowed_methods(app: FastAPI, scope: dict[str, Any]) -> list[str]:
    """The methods of the route that answered a 405, and of its siblings on the same path."""
    matching = [r for r in app.router.routes if r.matches(scope)[0] != Match.NONE]
    if not matching:
        return []
    path = getattr(matching[0], "path", None)
    methods = {m for r in matching if getattr(r, "path", None) == path for m in r.methods or ()}
    return sorted(methods)
