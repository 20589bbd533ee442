"""Start, watch, restart and stop the ComfyUI server process inside the container."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from .errors import ComfyStartFailed

_POLL_INTERVAL = 0.05


def comfy_launch_command(
    comfy_dir: str | os.PathLike[str],
    port: int,
    extra_args: Sequence[str] = (),
    *,
    python: str = sys.executable,
) -> list[str]:
    """Command line of a ComfyUI server listening on ``127.0.0.1:port`` only."""
    return [
        python,
        str(Path(comfy_dir) / "main.py"),
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--disable-auto-launch",
        *extra_args,
    ]


class ComfyProcess:
    """One ComfyUI subprocess whose stdout and stderr are appended to ``log_path``.

    ``url`` is where the server answers once up (``http://127.0.0.1:8188``). The process runs
    in its own session, so :meth:`stop` also ends anything it spawned.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        url: str,
        log_path: str | os.PathLike[str],
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.cwd = cwd
        self.url = url.rstrip("/")
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        """Whether the process has been started and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Launch the process (non-blocking); raises ``RuntimeError`` if it is already alive."""
        if self.alive:
            raise RuntimeError("ComfyUI process is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- starting: {' '.join(self.command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                start_new_session=True,
            )

    async def wait_ready(self, timeout: float) -> float:
        """Poll ``GET /system_stats`` every ~50 ms until 200; return the seconds it took.

        Raises :class:`ComfyStartFailed` with the last log lines as soon as the process exits,
        or when ``timeout`` passes first.
        """
        started = time.monotonic()
        deadline = started + timeout
        async with httpx.AsyncClient(base_url=self.url, trust_env=False) as http:
            while True:
                self._raise_if_exited()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ComfyStartFailed(
                        f"ComfyUI not ready at {self.url} after {timeout:g}s",
                        returncode=None,
                        log_tail=self.log_tail(),
                    )
                if await _answers(http, min(1.0, remaining)):
                    return time.monotonic() - started
                await asyncio.sleep(_POLL_INTERVAL)

    async def restart(self, timeout: float) -> float:
        """Stop, start and wait until ready again; return the seconds the restart took."""
        started = time.monotonic()
        await self.stop()
        self.start()
        await self.wait_ready(timeout)
        return time.monotonic() - started

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL it if still running after ``grace`` s."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the log file ('' if there is none yet)."""
        try:
            return "\n".join(_tail_lines(self.log_path, n))
        except FileNotFoundError:
            return ""

    def _raise_if_exited(self) -> None:
        """Raise :class:`ComfyStartFailed` if the process was never started or has exited."""
        if self._proc is None:
            raise ComfyStartFailed("ComfyUI process was not started", returncode=None, log_tail="")
        code = self._proc.poll()
        if code is not None:
            raise ComfyStartFailed(
                f"ComfyUI exited with code {code} during start-up",
                returncode=code,
                log_tail=self.log_tail(),
            )


async def _answers(http: httpx.AsyncClient, timeout: float) -> bool:
    """Whether ``GET /system_stats`` answers 200 within ``timeout``."""
    try:
        resp = await http.get("/system_stats", timeout=timeout)
    except httpx.TransportError:
        return False
    return resp.status_code == 200


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the process's session group (it leads it: pgid == pid)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _tail_lines(path: Path, n: int, block: int = 8192) -> list[str]:
    """Last ``n`` lines of a file, reading backwards so large logs stay cheap."""
    with path.open("rb") as f:
        pos = f.seek(0, os.SEEK_END)
        data = b""
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    return data.decode("utf-8", "replace").splitlines()[-n:]
