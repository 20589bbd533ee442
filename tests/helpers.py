"""Helpers shared by tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType

import modal

from generator.dev import load_generated

REPO = Path(__file__).resolve().parents[1]


def import_generated(path: Path) -> ModuleType:
    """Import a generated module from its file, the way `modal deploy` does."""
    return load_generated(path)


def class_function(app: modal.App, class_name: str) -> modal.Function:
    """The Modal function behind a class (its settings live there)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return app.registered_functions[f"{class_name}.*"]


def app_function(app: modal.App, name: str) -> modal.Function:
    """A plain Modal function of an app (e.g. the fleet's front door)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return app.registered_functions[name]
