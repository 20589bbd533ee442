"""Pytest fixtures starting the ComfyUI stand-in (a plugin registered by ``tests/conftest.py``).

- ``standin``: an in-process stand-in (background thread, free port, folders under
  ``tmp_path``) — a :class:`generator.standin.StandinThread` with ``url``, ``ws_url``,
  ``base_dir``, ``input_dir``/``output_dir``/``temp_dir``, ``queue()``, ``history()``,
  ``wait_idle()``, ``set_node_delay()`` and the live ``standin`` state.
- ``slow_standin``: the same with every ImageBlur taking :data:`SLOW_NODE_DELAY` seconds.
- ``standin_process``: ``python -m generator.standin`` as a child process
  (:class:`generator.standin.StandinProcess`: ``url``, ``kill()``, ``restart()``, ``stop()``),
  slow like ``slow_standin`` so a test can kill it while a prompt runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from generator.standin import StandinProcess, StandinThread, run_in_thread

SLOW_NODE_DELAY = 0.5
"""Seconds each ImageBlur takes in ``slow_standin`` and ``standin_process``."""


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[StandinThread]:
    """A fresh in-process stand-in with the built-in catalog and no delay."""
    with run_in_thread(tmp_path / "standin") as handle:
        yield handle


@pytest.fixture
def slow_standin(tmp_path: Path) -> Iterator[StandinThread]:
    """An in-process stand-in whose ImageBlur nodes take ``SLOW_NODE_DELAY`` seconds."""
    with run_in_thread(tmp_path / "slow-standin", node_delay=SLOW_NODE_DELAY) as handle:
        yield handle


@pytest.fixture
def standin_process(tmp_path: Path) -> Iterator[StandinProcess]:
    """A stand-in child process (slow ImageBlur), stopped after the test."""
    process = StandinProcess(tmp_path / "standin-process", node_delay=SLOW_NODE_DELAY)
    process.start()
    try:
        yield process
    finally:
        process.stop()
