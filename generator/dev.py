"""``ryla-gen dev``: serve a generated app's FastAPI locally against any running ComfyUI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from fastapi import FastAPI

from .runtime.backends import RemoteComfy
from .runtime.server import create_app


class DevError(Exception):
    pass


def load_generated(module_path: Path) -> ModuleType:
    """Import a generated module from its file (it imports offline with the real ``modal``)."""
    if not module_path.is_file():
        raise DevError(f"{module_path} not found; run `ryla-gen build specs/` first")
    spec = importlib.util.spec_from_file_location(f"ryla_generated_{module_path.stem}", module_path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the request models' annotations there
    spec.loader.exec_module(module)
    return module


def dev_app(module_path: Path, comfy_url: str, comfy_dir: str | None = None) -> FastAPI:
    """The same FastAPI app the Modal class serves, with every endpoint of the app."""
    module = load_generated(module_path)
    comfy = RemoteComfy(comfy_url, base_dir=comfy_dir)
    return create_app(module.SETTINGS, module.ENDPOINTS, comfy, module.WORKFLOWS)
