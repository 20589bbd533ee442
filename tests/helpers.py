"""Helpers shared by tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

import modal

REPO = Path(__file__).resolve().parents[1]


def import_generated(path: Path) -> ModuleType:
    """Import a generated module from its file, the way `modal deploy` does."""
    spec = importlib.util.spec_from_file_location(f"gen_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the request models' annotations there
    spec.loader.exec_module(module)
    return module


def class_function(app: modal.App, class_name: str) -> modal.Function:
    """The Modal function behind a class (its settings live there)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return app.registered_functions[f"{class_name}.*"]
