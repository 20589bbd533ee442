"""The hand-written part of the ryla fleet's Python client (httpx).

Copied by ``ryla-gen build`` from templates/clients/python/; do not edit the copy in generated/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

FINAL_STATES = ("succeeded", "failed", "cancelled", "expired")


class RylaError(Exception):
    """A non-2xx answer: the HTTP status and the server's ``{error, details, type}``."""

    def __init__(self, status: int, error: str, type: str, details: Any = None) -> None:
        super().__init__(f"{status} {type}: {error}")
        self.status, self.error, self.type, self.details = status, error, type, details

    @classmethod
    def from_response(cls, response: httpx.Response) -> RylaError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return cls(
                response.status_code, body["error"], str(body.get("type")), body.get("details")
            )
        return cls(response.status_code, response.text or response.reason_phrase, "http_error")


@dataclass(frozen=True)
class RunResult:
    """One output of a run, with what the server reported in its headers."""

    data: bytes
    content_type: str
    execution_time_sec: float | None
    cost_usd: float | None
    gpu_type: str | None
    seed: str | None
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    @classmethod
    def from_response(cls, response: httpx.Response) -> RunResult:
        def number(name: str) -> float | None:
            value = response.headers.get(name)
            return None if value is None else float(value)

        return cls(
            data=response.content,
            content_type=response.headers.get("content-type", "application/octet-stream"),
            execution_time_sec=number("x-execution-time-sec"),
            cost_usd=number("x-cost-usd"),
            gpu_type=response.headers.get("x-gpu-type"),
            seed=response.headers.get("x-seed"),
            headers={k.lower(): v for k, v in response.headers.items()},
        )


@dataclass(frozen=True)
class Target:
    """Which deployed app and class serve an endpoint."""

    app: str
    url_label: str


@dataclass(frozen=True)
class JobEvent:
    """One Server-Sent Event of GET /jobs/{id}/events."""

    id: str
    event: str
    status: dict[str, Any]


class Transport:
    """URLs (one per app, one fleet URL, or a Modal workspace), headers, time limits, errors."""

    def __init__(
        self,
        *,
        base_urls: Mapping[str, str] | None = None,
        fleet_url: str | None = None,
        workspace: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 600.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_urls = dict(base_urls or {})
        self.fleet_url, self.workspace = fleet_url, workspace
        self.client = client or httpx.Client(headers=dict(headers or {}), timeout=timeout)

    def base_url(self, target: Target, *, jobs: bool = False) -> str:
        """Where ``target`` is: its own URL first for jobs (the fleet's front door runs none)."""
        own = None
        if self.workspace:
            own = f"https://{self.workspace}--{target.app}-{target.url_label}.modal.run"
        url = self.base_urls.get(target.app) or (
            (own or self.fleet_url) if jobs else (self.fleet_url or own)
        )
        if url is None:
            raise ValueError(f"no URL for app {target.app}: give base_urls, fleet_url or workspace")
        return url.rstrip("/")

    def request(
        self,
        target: Target,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        jobs: bool = False,
    ) -> httpx.Response:
        extra = {} if timeout is None else {"timeout": timeout}
        url = self.base_url(target, jobs=jobs) + path
        response = self.client.request(method, url, json=json, headers=headers, **extra)
        if response.is_error:
            raise RylaError.from_response(response)
        return response

    def run(
        self, target: Target, path: str, request: Mapping[str, Any], *, timeout: float | None = None
    ) -> RunResult:
        return RunResult.from_response(
            self.request(target, "POST", path, json=dict(request), timeout=timeout)
        )

    def submit(
        self,
        target: Target,
        path: str,
        request: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
    ) -> Job:
        body = dict(request)
        if webhook_url is not None:
            body["webhook_url"] = webhook_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self.request(
            target, "POST", f"/jobs{path}", json=body, headers=headers, jobs=True
        )
        return Job(self, target, response.json()["job_id"])


class Job:
    """A submitted job: status, wait (polling with backoff), events (SSE), result, cancel."""

    def __init__(self, transport: Transport, target: Target, id: str) -> None:
        self.transport, self.target, self.id = transport, target, id

    @property
    def _path(self) -> str:
        return f"/jobs/{self.id}"

    def status(self) -> dict[str, Any]:
        return self.transport.request(self.target, "GET", self._path, jobs=True).json()

    def wait(
        self,
        *,
        interval: float = 0.5,
        max_interval: float = 5.0,
        factor: float = 1.5,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Poll until the job is final, waiting longer between polls (backoff)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if status["status"] in FINAL_STATES:
                return status
            if deadline is not None and time.monotonic() + interval > deadline:
                raise TimeoutError(f"job {self.id} is still {status['status']}")
            time.sleep(interval)
            interval = min(max_interval, interval * factor)

    def events(self, *, last_event_id: str | None = None, retries: int = 5) -> Iterator[JobEvent]:
        """Progress as Server-Sent Events until the final status; a dropped connection is
        resumed with ``Last-Event-ID`` (nothing repeated, the final status never missed)."""
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            url = self.transport.base_url(self.target, jobs=True) + self._path + "/events"
            final = False
            try:
                with self.transport.client.stream("GET", url, headers=headers) as response:
                    if response.is_error:
                        response.read()
                        raise RylaError.from_response(response)
                    for event in _parse_events(response.iter_lines()):
                        last_event_id = event.id
                        yield event
                        final = final or event.status.get("status") in FINAL_STATES
            except httpx.TransportError:
                if retries <= 0:
                    raise
            if final:
                return
            retries -= 1
            if retries < 0:
                raise RuntimeError(f"job {self.id}: event stream ended before the final status")
            time.sleep(0.5)

    def result(self) -> RunResult:
        """The output of a succeeded job (a failed one raises its RylaError)."""
        return RunResult.from_response(
            self.transport.request(self.target, "GET", self._path + "/result", jobs=True)
        )

    def cancel(self) -> dict[str, Any]:
        return self.transport.request(self.target, "DELETE", self._path, jobs=True).json()


def _parse_events(lines: Iterator[str]) -> Iterator[JobEvent]:
    id_, event, data = "", "message", []
    for line in lines:
        if line == "":
            if data:
                yield JobEvent(id_, event, json.loads("\n".join(data)))
            event, data = "message", []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                id_ = value
            elif name == "event":
                event = value
            elif name == "data":
                data.append(value)
