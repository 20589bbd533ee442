"""Start, watch, restart and stop the ComfyUI server process inside the container."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

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
    """One ComfyUI subprocess whose stdout and stderr go to ``log_path`` and to our stdout.

    ``url`` is where the server answers once up (``http://127.0.0.1:8188``); readiness counts
    only when the socket answering there is this process's own. The process runs in its own
    session, so :meth:`stop` also ends anything it spawned.
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
        self.echo: IO[bytes] | None = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
        self._port = urlsplit(self.url).port or 80
        self._tee: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        """Whether the process has been started and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Launch the process (non-blocking).

        Raises ``RuntimeError`` if it is already alive, :class:`ComfyStartFailed` when another
        process already listens on the port (ComfyUI could not bind, yet that one would answer).
        """
        if self.alive:
            raise RuntimeError("ComfyUI process is already running")
        if _port_taken(self._port):
            raise ComfyStartFailed(
                f"port {self._port} is already taken by another process: ComfyUI cannot listen"
                f" at {self.url} (stop that process or choose another port)",
                returncode=None,
                log_tail="",
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log.write(f"--- starting: {' '.join(self.command)}\n".encode())
        log.flush()
        self._proc = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        self._tee = threading.Thread(
            target=_copy_lines, args=(self._proc.stdout, log, self.echo), daemon=True
        )
        self._tee.start()

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
                    self._raise_if_foreign()
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
        """The last ``n`` lines of the log file ('' if there is none yet). Once the process has
        exited, its last lines are waited for (the copy into the log runs behind it)."""
        if self._proc is not None and self._proc.poll() is not None and self._tee is not None:
            self._tee.join(2.0)
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

    def _raise_if_foreign(self) -> None:
        """Raise :class:`ComfyStartFailed` when the server answering is not this process.

        Decided from ``/proc``: the listening socket on the port must be one of our child's
        (or its children's) open files. Where ``/proc`` does not tell, the answer is trusted.
        """
        assert self._proc is not None
        owners = _listener_owned_by(self._port, self._proc.pid)
        if owners is False:
            raise ComfyStartFailed(
                f"another process answers at {self.url}, not the ComfyUI started here"
                f" (pid {self._proc.pid}): port {self._port} is taken",
                returncode=self._proc.poll(),
                log_tail=self.log_tail(),
            )


def _copy_lines(pipe: IO[bytes], log: IO[bytes], echo: IO[bytes] | None) -> None:
    """Copy the child's output line by line into its log file and onto our own stdout."""
    with pipe, log:
        for line in pipe:
            log.write(line)
            log.flush()
            if echo is not None:
                try:
                    echo.write(b"[comfyui] " + line)
                    echo.flush()
                except (OSError, ValueError):  # our stdout is gone: keep the log file going
                    echo = None


def _port_taken(port: int) -> bool:
    """Whether something already listens on ``127.0.0.1:port`` (we cannot bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _listener_owned_by(port: int, pid: int) -> bool | None:
    """Whether the socket listening on ``port`` belongs to ``pid`` or a descendant of it.

    None when ``/proc`` cannot tell (not Linux, no such table, unreadable file descriptors).
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    pids = _process_tree(pid)
    readable = False
    for member in pids:
        try:
            fds = os.listdir(f"/proc/{member}/fd")
        except OSError:
            continue
        readable = True
        for fd in fds:
            try:
                if os.readlink(f"/proc/{member}/fd/{fd}") in inodes:
                    return True
            except OSError:
                continue
    return False if readable else None


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from ``/proc/<pid>/task/*/children``."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in children.read_text().split())
            except (OSError, ValueError):
                continue
    return tree


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
