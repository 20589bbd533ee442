"""Error bodies as today's clients read them: ``{error, details, type}``."""

from typing import Any

from fastapi.responses import JSONResponse


def error_response(status: int, error: str, type_: str, details: Any = None) -> JSONResponse:
    return JSONResponse({"error": error, "details": details, "type": type_}, status_code=status)
