"""Shared test fixtures.

Reference recordings live in ``../shared`` (read-only, never copied into the repository).
Tests that need them use the ``shared_dir`` fixture, which skips with a clear reason when the
folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

pytest_plugins = ["standin_fixtures"]


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The self-check remembers passes under $XDG_CACHE_HOME: the tests' own, not the user's."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "comfy" / "object_info.json").is_file():
        pytest.skip(f"reference recordings not found at {SHARED} (needs ../shared/comfy)")
    return SHARED


@pytest.fixture(scope="session")
def object_info_path(shared_dir: Path) -> Path:
    return shared_dir / "comfy" / "object_info.json"
