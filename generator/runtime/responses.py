"""Error bodies as today's clients read them: ``{error, details, type}``; one model for OpenAPI."""

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id
from pydantic import BaseModel, Field

ERROR_STATUSES = {
    400: "ComfyUI refused a value from the request, or a feature is not configured",
    401: "Missing or wrong bearer token",
    404: "A named file, model or job does not exist",
    405: "Method not allowed",
    409: "The job is not in a state that allows this",
    413: "Request body too large",
    422: "Invalid request (the field is named in details)",
    429: "Too many pending jobs; retry after the Retry-After seconds",
    499: "The client closed the request; the run was stopped",
    500: "The workflow failed in ComfyUI (node, type and exception in details)",
    503: "ComfyUI is unavailable (restarting) or not ready",
    504: "The run exceeded the endpoint's timeout and was stopped",
}


class ErrorBody(BaseModel):
    """Every error answer of a generated app."""

    error: str = Field(description="What went wrong, in one line.")
    details: Any = Field(None, description="Field, node or limit details; null when none.")
    type: str = Field(description="Machine-readable kind, e.g. validation_error, timeout.")


def error_response(
    status: int,
    error: str,
    type_: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "details": details, "type": type_}, status_code=status, headers=headers
    )


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, all with the shared error model."""
    return {s: {"model": ErrorBody, "description": ERROR_STATUSES[s]} for s in statuses}


def unique_operation_ids() -> Callable[[APIRoute], str]:
    """FastAPI's operation ids, made unique per app: ``/in-vert`` and ``/in_vert`` both derive
    ``handler_in_vert_post``, so the later one gets ``_2`` (OpenAPI requires unique ids)."""
    given: dict[tuple[str, tuple[str, ...]], str] = {}
    used: set[str] = set()

    def generate(route: APIRoute) -> str:
        key = (route.path_format, tuple(sorted(route.methods or ())))
        if key not in given:
            base = candidate = generate_unique_id(route)
            n = 1
            while candidate in used:
                n += 1
                candidate = f"{base}_{n}"
            used.add(candidate)
            given[key] = candidate
        return given[key]

    return generate
