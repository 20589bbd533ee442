"""One measured request: time to first byte, total time, outcome, output checks and cost.

Responses are streamed, so the time to first byte (status line and headers received) is
separate from the total time (last body byte read). A request succeeds when the status is
2xx and no output check failed; otherwise it gets an error kind such as ``500
prompt_rejected`` (status and the runtime's error ``type``), ``timeout`` or ``bad_output``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .checks import OutputCheck, check_body
from .targets import BenchTarget

COST_HEADER = "x-cost-usd"
EXECUTION_HEADER = "x-execution-time-sec"
FRAMES_HEADER = "x-frames"  # the frame count the endpoint reports; checked against the file


@dataclass
class Sample:
    """What one request measured. ``phase``: ``cold``, ``first`` or ``warm``."""

    path: str
    phase: str
    example: int
    ok: bool
    total_s: float
    status: int | None = None
    error: str | None = None
    message: str | None = None
    ttfb_s: float | None = None
    bytes: int = 0
    content_type: str | None = None
    execution_s: float | None = None
    cost_usd: float | None = None
    cost_source: str | None = None  # header | gpu_price
    checks: list[OutputCheck] = field(default_factory=list)

    @property
    def outputs(self) -> int:
        """Output files this request delivered (0 unless it succeeded)."""
        return len(self.checks) if self.ok else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "phase": self.phase,
            "example": self.example,
            "ok": self.ok,
            "status": self.status,
            "error": self.error,
            "message": self.message,
            "ttfb_s": self.ttfb_s,
            "total_s": self.total_s,
            "bytes": self.bytes,
            "content_type": self.content_type,
            "execution_s": self.execution_s,
            "cost_usd": self.cost_usd,
            "cost_source": self.cost_source,
            "outputs": self.outputs,
            "checks": [c.as_dict() for c in self.checks],
        }


async def measure_request(
    client: httpx.AsyncClient,
    target: BenchTarget,
    body: dict[str, Any],
    *,
    phase: str,
    example: int,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> Sample:
    """POST ``body`` to the target, streaming the response; never raises for HTTP errors."""
    started = time.perf_counter()
    sample = Sample(target.path, phase, example, ok=False, total_s=0.0)
    try:
        async with client.stream(
            "POST", target.url, json=body, headers=headers, timeout=timeout
        ) as response:
            sample.ttfb_s = time.perf_counter() - started
            chunks = [chunk async for chunk in response.aiter_bytes()]
            sample.total_s = time.perf_counter() - started
            _record_response(sample, target, response, b"".join(chunks))
    except httpx.TimeoutException as exc:
        _record_transport_error(sample, started, "timeout", exc)
    except httpx.ConnectError as exc:
        _record_transport_error(sample, started, "connect_error", exc)
    except httpx.HTTPError as exc:
        _record_transport_error(sample, started, f"transport_error {type(exc).__name__}", exc)
    return sample


def _record_transport_error(sample: Sample, started: float, kind: str, exc: Exception) -> None:
    sample.total_s = time.perf_counter() - started
    sample.error = kind
    sample.message = str(exc) or type(exc).__name__


def _record_response(
    sample: Sample, target: BenchTarget, response: httpx.Response, data: bytes
) -> None:
    sample.status = response.status_code
    sample.bytes = len(data)
    sample.content_type = response.headers.get("content-type")
    sample.execution_s = _float_header(response, EXECUTION_HEADER)
    if not response.is_success:
        sample.error, sample.message = _error_kind(response.status_code, data)
        return
    frames = _float_header(response, FRAMES_HEADER)
    expected = int(frames) if frames is not None and frames.is_integer() else None
    sample.checks = check_body(data, sample.content_type, expected)
    failed = [c for c in sample.checks if c.status == "failed"]
    if failed:
        sample.error, sample.message = "bad_output", failed[0].reason
        return
    sample.ok = True
    sample.cost_usd, sample.cost_source = _cost(response, target, sample)


def _cost(response: httpx.Response, target: BenchTarget, sample: Sample) -> tuple[float, str]:
    """``X-Cost-USD`` when the app reports it, else GPU price × execution (or total) time."""
    reported = _float_header(response, COST_HEADER)
    if reported is not None:
        return reported, "header"
    seconds = sample.execution_s if sample.execution_s is not None else sample.total_s
    return seconds * target.usd_per_second, "gpu_price"


def _float_header(response: httpx.Response, name: str) -> float | None:
    value = response.headers.get(name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_kind(status: int, data: bytes) -> tuple[str, str | None]:
    """``"<status> <type>"`` from the runtime's ``{error, details, type}`` body, else the status."""
    try:
        payload = json.loads(data)
    except ValueError:
        text = data[:200].decode("utf-8", "replace").strip()
        return str(status), text or None
    if isinstance(payload, dict) and payload.get("type"):
        return f"{status} {payload['type']}", str(payload.get("error") or "") or None
    if isinstance(payload, dict) and "detail" in payload:
        return str(status), str(payload["detail"])
    return str(status), None
