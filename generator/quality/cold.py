"""``--cold`` against a deployed app: stop its running containers with Modal's CLI first.

Uses the documented commands ``modal container list --json`` and ``modal container stop -y
ID`` (https://modal.com/docs/reference/cli/container), then waits until the app has no
container left, so the next request has to start one: a cold start. Containers belong to the
app whose name (the deployment's description) equals the spec's app name.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Runner = Callable[[Sequence[str]], Awaitable[subprocess.CompletedProcess[str]]]
COMMAND_TIMEOUT_S = 120.0


class ColdStartError(RuntimeError):
    """The app's containers could not be listed or stopped."""


async def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a command without blocking the event loop (Ctrl-C cancels it)."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
    except (TimeoutError, asyncio.CancelledError):
        process.kill()
        await process.wait()
        raise
    returncode = process.returncode if process.returncode is not None else -1
    return subprocess.CompletedProcess(
        list(command), returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    )


def _key(name: str) -> str:
    """Column names as Modal's JSON output spells them in any version: ``app_name``."""
    return re.sub(r"[^a-zA-Z0-9]+", "_", name).lower().strip("_")


class ModalColdStarter:
    """Stops every running container of an app and waits until they are gone."""

    def __init__(
        self,
        env: str | None = None,
        *,
        modal: Sequence[str] = (sys.executable, "-m", "modal"),
        run: Runner = _run,
        wait_s: float = 180.0,
        poll_s: float = 2.0,
    ) -> None:
        self.env = env
        self.modal = list(modal)
        self.run = run
        self.wait_s = wait_s
        self.poll_s = poll_s

    async def containers(self, app: str) -> list[str]:
        """IDs of the app's running containers."""
        command = [*self.modal, "container", "list", "--json"]
        if self.env:
            command += ["--env", self.env]
        rows = self._json(await self._check(command))
        normalized = [{_key(k): v for k, v in row.items()} for row in rows]
        return [
            str(row["container_id"])
            for row in normalized
            if app in (row.get("app_name"), row.get("app_description")) and row.get("container_id")
        ]

    async def stop_all(self, app: str) -> int:
        """Stop the app's containers and wait until none is listed; returns how many stopped."""
        stopped = await self.containers(app)
        for container in stopped:
            await self._check([*self.modal, "container", "stop", "-y", container])
        deadline = time.monotonic() + self.wait_s
        while await self.containers(app):
            if time.monotonic() > deadline:
                raise ColdStartError(f"{app}: containers still running after {self.wait_s:g}s")
            await asyncio.sleep(self.poll_s)
        return len(stopped)

    async def _check(self, command: list[str]) -> str:
        try:
            result = await self.run(command)
        except (OSError, TimeoutError) as exc:
            raise ColdStartError(f"`{' '.join(command)}` failed: {exc}") from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
            raise ColdStartError(f"`{' '.join(command)}` failed: {detail[0]}")
        return result.stdout

    @staticmethod
    def _json(text: str) -> list[dict[str, Any]]:
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise ColdStartError(f"unexpected output of `modal container list`: {exc}") from None
        if not isinstance(rows, list):
            raise ColdStartError("unexpected output of `modal container list`: not a list")
        return [r for r in rows if isinstance(r, dict)]
