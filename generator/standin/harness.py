"""Ways to run the stand-in for tests and benchmarks.

- :func:`run_in_thread` serves it in-process from a background thread on a free port.
- :class:`StandinProcess` runs ``python -m generator.standin`` as a child process that can be
  killed (ComfyUI died) and restarted on the same port and folders.
- :class:`EventRecorder` follows one ``/ws`` connection and collects its JSON messages.

Handles offer the URL, the folders and HTTP helpers to look at the queue and history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from websockets.sync.client import ClientConnection, connect

from .catalog import CatalogFiles
from .server import create_app
from .state import Standin, StandinConfig

READY_MESSAGE = "ComfyUI stand-in listening on"
"""Start of the line ``python -m generator.standin`` prints once it accepts connections."""

_REPO_ROOT = Path(__file__).resolve().parents[2]


class StandinServer(uvicorn.Server):
    """A uvicorn server that calls ``on_ready(url)`` once it is listening."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit and self._on_ready is not None:
            self._on_ready()

    async def main_loop(self) -> None:
        """uvicorn's loop, checking for shutdown every 10 ms instead of 100 ms."""
        ticks = 0
        while not await self.on_tick(ticks):
            ticks = (ticks + 1) % 864000
            await asyncio.sleep(0.01)


def make_server(
    app: Starlette, host: str, port: int, on_ready: Callable[[], None] | None = None
) -> StandinServer:
    """A quiet uvicorn server for the app (no access log, short graceful shutdown)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    return StandinServer(config, on_ready)


class _HttpHelpers:
    """HTTP look-ups shared by the in-thread and subprocess handles."""

    url: str

    @property
    def ws_url(self) -> str:
        """``ws://host:port/ws`` (append ``?clientId=...``)."""
        return "ws" + self.url.removeprefix("http") + "/ws"

    def get(self, path: str, **params: Any) -> Any:
        """``GET`` a JSON endpoint of the stand-in."""
        response = httpx.get(self.url + path, params=params, trust_env=False, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(self.url + path, json=body, trust_env=False, timeout=10)

    def queue(self) -> dict[str, list[Any]]:
        """``GET /queue``: ``queue_running`` and ``queue_pending`` items."""
        return self.get("/queue")

    def history(self, prompt_id: str | None = None) -> dict[str, Any]:
        """``GET /history`` or ``GET /history/{prompt_id}``."""
        return self.get(f"/history/{prompt_id}" if prompt_id else "/history")

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until nothing is running or pending; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while self.get("/prompt")["exec_info"]["queue_remaining"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"stand-in still busy after {timeout}s")
            time.sleep(0.02)


class StandinThread(_HttpHelpers):
    """A stand-in served from a background thread; ``standin`` is its live state."""

    def __init__(self, url: str, base_dir: Path, standin: Standin) -> None:
        self.url = url
        self.base_dir = base_dir
        self.standin = standin

    @property
    def input_dir(self) -> Path:
        return self.standin.dirs.input

    @property
    def output_dir(self) -> Path:
        return self.standin.dirs.output

    @property
    def temp_dir(self) -> Path:
        return self.standin.dirs.temp

    def set_node_delay(self, seconds: float) -> None:
        """Change the delay of every following ImageBlur execution."""
        self.standin.node_delay = seconds


@contextlib.contextmanager
def run_in_thread(
    base_dir: Path | None = None,
    *,
    object_info: CatalogFiles = None,
    node_delay: float = 0.0,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
) -> Iterator[StandinThread]:
    """Serve a stand-in from a daemon thread (port 0: a free one) until the block ends.

    Without ``base_dir`` the folders live in a temporary directory removed afterwards.
    """
    with contextlib.ExitStack() as cleanup:
        if base_dir is None:
            base_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="standin-")))
        app = create_app(StandinConfig(base_dir, object_info, node_delay))
        listener = cleanup.enter_context(socket.socket())
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        bound_port = listener.getsockname()[1]
        server = make_server(app, host, bound_port)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, name="standin-server", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError("the stand-in did not start")
            time.sleep(0.005)
        try:
            yield StandinThread(f"http://{host}:{bound_port}", base_dir, app.state.standin)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class StandinProcess(_HttpHelpers):
    """``python -m generator.standin`` as a child process on a fixed port and base directory.

    ``kill()`` simulates ComfyUI dying (SIGKILL); ``restart()`` starts it again on the same port
    and folders; ``stop()`` ends it with SIGTERM. ``output`` holds what it printed.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int | None = None,
        object_info: CatalogFiles = None,
        node_delay: float = 0.0,
        host: str = "127.0.0.1",
        startup_timeout: float = 30.0,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.object_info = [object_info] if isinstance(object_info, str | Path) else object_info
        self.node_delay = node_delay
        self.startup_timeout = startup_timeout
        self.output: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def temp_dir(self) -> Path:
        return self.base_dir / "temp"

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        """The command line that starts the stand-in."""
        command = [sys.executable, "-m", "generator.standin", "--host", self.host]
        command += ["--port", str(self.port), "--base-dir", str(self.base_dir)]
        command += ["--node-delay", str(self.node_delay)]
        for path in self.object_info or []:
            command += ["--object-info", str(path)]
        return command

    def start(self) -> StandinProcess:
        """Start the process and wait until it listens; raises RuntimeError if it does not."""
        if self.alive:
            raise RuntimeError("the stand-in process is already running")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._process = process
        ready = threading.Event()
        threading.Thread(target=self._read_output, args=(process, ready), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while not ready.wait(0.02):
            if process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                printed = "".join(self.output[-50:])
                raise RuntimeError(f"the stand-in process did not start:\n{printed}")
        return self

    def _read_output(self, process: subprocess.Popen[str], ready: threading.Event) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.output.append(line)
            if line.startswith(READY_MESSAGE):
                ready.set()

    def kill(self) -> None:
        """SIGKILL the process and reap it (the stand-in dies without any cleanup)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL after ``timeout``)."""
        if self._process is None:
            return 0
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._process.returncode

    stop = terminate

    def restart(self) -> StandinProcess:
        """Kill the process if it still runs, then start it again on the same port."""
        self.kill()
        return self.start()

    def __enter__(self) -> StandinProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.terminate()


class EventRecorder:
    """One ``/ws?clientId=...`` connection whose JSON messages are collected in a thread."""

    def __init__(self, ws_url: str, client_id: str | None = None) -> None:
        self.client_id = client_id or uuid.uuid4().hex
        self._url = f"{ws_url}?clientId={self.client_id}"
        self.messages: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._connection: ClientConnection | None = None
        self._thread: threading.Thread | None = None
        self._cleanup = contextlib.ExitStack()

    def __enter__(self) -> EventRecorder:
        opening = connect(self._url, proxy=None, compression=None, max_size=None)
        self._connection = self._cleanup.enter_context(opening)
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._cleanup.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _receive(self) -> None:
        assert self._connection is not None
        with contextlib.suppress(Exception):
            for raw in self._connection:
                if isinstance(raw, str):
                    with self._changed:
                        self.messages.append(json.loads(raw))
                        self._changed.notify_all()

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0, start: int = 0
    ) -> int:
        """Index of the first message from ``start`` on matching ``predicate``; waits for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(start, len(self.messages)):
                    if predicate(self.messages[index]):
                        return index
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching WebSocket message within {timeout}s")
                self._changed.wait(remaining)

    def wait_done(
        self, prompt_id: str, timeout: float = 10.0, start: int = 0
    ) -> list[dict[str, Any]]:
        """Messages from ``start`` up to the prompt's ``executing {node: null}``, included."""
        end = self.wait_for(
            lambda m: (
                m["type"] == "executing"
                and m["data"].get("node") is None
                and m["data"].get("prompt_id") == prompt_id
            ),
            timeout,
            start,
        )
        with self._changed:
            return list(self.messages[start : end + 1])
