"""ComfyProcess: start, readiness, restart, stop, fail-fast; the stand-in plays ComfyUI."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from generator.runtime.comfy_process import ComfyProcess, comfy_launch_command
from generator.runtime.errors import ComfyStartFailed

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.fixture
def processes() -> Iterator[list[ComfyProcess]]:
    """Collects the processes a test creates and stops them afterwards."""
    created: list[ComfyProcess] = []
    yield created
    for proc in created:
        asyncio.run(proc.stop(grace=1.0))


def _make(processes: list[ComfyProcess], tmp_path: Path, command: list[str], port: int = 9):
    proc = ComfyProcess(
        command, cwd=REPO, url=f"http://127.0.0.1:{port}", log_path=tmp_path / "logs" / "comfy.log"
    )
    processes.append(proc)
    return proc


def _standin_command(port: int, base_dir: Path) -> list[str]:
    return [
        *[sys.executable, "-m", "generator.standin", "--host", "127.0.0.1", "--port", str(port)],
        *["--base-dir", str(base_dir)],
    ]


def test_launch_command_is_the_real_comfyui_command_line() -> None:
    cmd = comfy_launch_command("/root/comfy/ComfyUI", 8188, ["--cpu"], python="python")
    assert cmd == [
        "python",
        "/root/comfy/ComfyUI/main.py",
        "--listen",
        "127.0.0.1",
        "--port",
        "8188",
        "--disable-auto-launch",
        "--cpu",
    ]
    assert comfy_launch_command("/c", 1)[0] == sys.executable


def test_start_ready_restart_stop_with_standin(processes, tmp_path: Path) -> None:
    port = _free_port()
    proc = _make(processes, tmp_path, _standin_command(port, tmp_path / "comfy"), port)
    assert not proc.alive
    proc.start()
    assert proc.alive
    waited = asyncio.run(proc.wait_ready(30))
    assert 0 < waited < 30
    assert httpx.get(f"{proc.url}/system_stats", trust_env=False).status_code == 200

    asyncio.run(proc.restart(30))
    assert proc.alive
    assert httpx.get(f"{proc.url}/system_stats", trust_env=False).status_code == 200
    assert proc.log_tail(1000).count("--- starting:") == 2

    asyncio.run(proc.stop())
    assert not proc.alive
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{proc.url}/system_stats", trust_env=False)


def test_start_twice_is_refused(processes, tmp_path: Path) -> None:
    proc = _make(processes, tmp_path, _python("import time; time.sleep(30)"))
    proc.start()
    with pytest.raises(RuntimeError):
        proc.start()


def test_wait_ready_fails_fast_with_log_when_process_exits(processes, tmp_path: Path) -> None:
    code = "import sys; print('loading nodes'); print('boom: no module', file=sys.stderr); exit(3)"
    proc = _make(processes, tmp_path, _python(code), _free_port())
    proc.start()
    started = time.monotonic()
    with pytest.raises(ComfyStartFailed) as info:
        asyncio.run(proc.wait_ready(30))
    assert time.monotonic() - started < 5
    assert info.value.returncode == 3
    assert "loading nodes" in info.value.log_tail
    assert "boom: no module" in str(info.value)


def test_wait_ready_times_out_when_nothing_answers(processes, tmp_path: Path) -> None:
    proc = _make(processes, tmp_path, _python("import time; time.sleep(30)"), _free_port())
    proc.start()
    with pytest.raises(ComfyStartFailed) as info:
        asyncio.run(proc.wait_ready(0.3))
    assert info.value.returncode is None
    assert proc.alive


def test_wait_ready_before_start_fails(processes, tmp_path: Path) -> None:
    proc = _make(processes, tmp_path, _python("pass"))
    with pytest.raises(ComfyStartFailed):
        asyncio.run(proc.wait_ready(1))


def test_stop_escalates_to_sigkill(processes, tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('armed', flush=True); time.sleep(60)"
    )
    proc = _make(processes, tmp_path, _python(code))
    proc.start()
    deadline = time.monotonic() + 10
    while "armed" not in proc.log_tail() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    asyncio.run(proc.stop(grace=0.3))
    assert not proc.alive
    assert time.monotonic() - started < 5


def test_log_tail_returns_last_lines(processes, tmp_path: Path) -> None:
    proc = _make(processes, tmp_path, _python("for i in range(5000): print('line', i)"))
    assert proc.log_tail() == ""
    proc.start()
    deadline = time.monotonic() + 60  # a safety net: it ends in well under a second unloaded
    while proc.alive and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.log_tail(3).splitlines() == ["line 4997", "line 4998", "line 4999"]


def test_start_refuses_a_port_another_process_listens_on(processes, tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        proc = _make(processes, tmp_path, _standin_command(port, tmp_path / "comfy"), port)
        with pytest.raises(ComfyStartFailed) as info:
            proc.start()
    assert f"port {port} is already taken" in str(info.value)
    assert not proc.alive


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_ready_only_when_the_answering_server_is_our_child(processes, tmp_path: Path) -> None:
    """A server that grabbed the port after the check answers 200: not taken for ours."""
    port = _free_port()
    foreign = _make(processes, tmp_path, _standin_command(port, tmp_path / "other"), port)
    proc = _make(processes, tmp_path, _python("import time; time.sleep(30)"), port)
    proc.start()  # the port is still free here
    foreign.start()
    with pytest.raises(ComfyStartFailed) as info:
        asyncio.run(proc.wait_ready(30))
    assert "another process answers" in str(info.value)


def test_output_is_copied_to_the_log_and_echoed(processes, tmp_path: Path) -> None:
    proc = _make(processes, tmp_path, _python("print('hello from comfy')"))
    echoed = tmp_path / "echo"
    with echoed.open("wb") as echo:
        proc.echo = echo
        proc.start()
        with pytest.raises(ComfyStartFailed):
            asyncio.run(proc.wait_ready(5))
    assert "hello from comfy" in proc.log_tail()
    assert echoed.read_bytes() == b"[comfyui] hello from comfy\n"
