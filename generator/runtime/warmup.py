"""Warm-up: each endpoint's warm-up request runs once at container start, before serving.

So no user request pays model loading or the GPU's one-time work for its sizes: the requests
are at the endpoint's real size with one step (``generator.resolve.fields.warmup_request``).
Endpoints whose warm-up would run the same workflow with the same request share one run.
Failures are kept with their reason and reported by ``/ready`` (503), never swallowed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .config import AppSettings, Endpoint, load_workflows

if TYPE_CHECKING:
    from .backends import ComfyServer, RemoteComfy

log = logging.getLogger("ryla.warmup")


class Warmup:
    """State of the app's warm-up: pending, running, ok or failed (with per-endpoint reasons)."""

    def __init__(self) -> None:
        self.state = "pending"
        self.results: dict[str, dict[str, Any]] = {}

    def report(self) -> dict[str, Any]:
        return {"state": self.state, "endpoints": self.results}

    async def run(
        self,
        settings: AppSettings,
        endpoints: Sequence[Endpoint],
        workflows: dict[str, dict[str, Any]],
        comfy: ComfyServer | RemoteComfy,
    ) -> None:
        from .execute import Trail, cleanup, execute

        self.state = "running"
        done: dict[str, str] = {}  # same workflow and request -> the endpoint that ran it
        for endpoint in endpoints:
            if endpoint.warmup is None:
                continue
            same = json.dumps([endpoint.workflow, endpoint.warmup], sort_keys=True, default=str)
            if same in done:
                self.results[endpoint.path] = {"ok": True, "seconds": 0.0, "same_as": done[same]}
                continue
            done[same] = endpoint.path
            started = time.perf_counter()
            try:
                values = endpoint.request_model.model_validate(dict(endpoint.warmup)).model_dump(
                    by_alias=True
                )
            except ValidationError as exc:
                self._fail(endpoint, f"invalid warm-up request: {exc.errors()[0]['msg']}", started)
                continue
            trail = Trail()
            response = await execute(
                settings, endpoint, workflows[endpoint.workflow], comfy, values, trail
            )
            await cleanup(comfy, trail)
            if response.status_code == 200:
                self.results[endpoint.path] = {
                    "ok": True,
                    "seconds": round(time.perf_counter() - started, 3),
                }
            else:
                self._fail(endpoint, response.body.decode(errors="replace")[:500], started)
        self.state = "failed" if any(not r["ok"] for r in self.results.values()) else "ok"
        log.info("warm-up %s: %s", self.state, self.results)

    def _fail(self, endpoint: Endpoint, reason: str, started: float) -> None:
        log.error("warm-up of %s failed: %s", endpoint.path, reason)
        self.results[endpoint.path] = {
            "ok": False,
            "seconds": round(time.perf_counter() - started, 3),
            "reason": reason,
        }


async def warm_up(
    comfy: ComfyServer | RemoteComfy,
    settings: AppSettings,
    endpoints: Sequence[Endpoint],
    workflows_dir: str | os.PathLike[str],
) -> Warmup:
    """Run every endpoint's warm-up request now, before serving; returns the outcome."""
    warmup = Warmup()
    await warmup.run(settings, endpoints, load_workflows(workflows_dir, endpoints), comfy)
    return warmup
