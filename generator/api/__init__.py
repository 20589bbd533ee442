"""The served HTTP API, described from the rendered modules themselves: each app's OpenAPI
document (what its FastAPI serves on ``/openapi.json``) and the typed clients (TypeScript,
Python) generated from the same request models."""

from .outputs import OWNED_DIRS, render_api

__all__ = ["OWNED_DIRS", "render_api"]
