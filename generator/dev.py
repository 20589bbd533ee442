"""``ryla-gen dev``: serve a generated app's FastAPI locally against any running ComfyUI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from fastapi import FastAPI

from .runtime.backends import RemoteComfy
from .runtime.config import load_workflows
from .runtime.fleet import LocalOwners, OwnerClass, create_fleet_app
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
    """The same FastAPI app the Modal class serves, with every endpoint of the app.

    The fleet app serves its front door: every app it forwards to runs in this process, against
    the same ComfyUI (their generated modules are loaded from the same folder)."""
    module = load_generated(module_path)
    comfy = RemoteComfy(comfy_url, base_dir=comfy_dir)
    if not hasattr(module, "FORWARDS"):
        return create_app(
            module.SETTINGS, module.ENDPOINTS, comfy, module.WORKFLOWS, retired=module.RETIRED
        )
    owners = LocalOwners(fleet_owners(module, module_path.parent), comfy)
    return create_fleet_app(module.SETTINGS, module.FORWARDS, module.CHAINS, module.RETIRED, owners)


def fleet_owners(fleet: ModuleType, folder: Path) -> dict[tuple[str, str], OwnerClass]:
    """Every class of every app the fleet module forwards to, loaded for in-process runs."""
    owners = {}
    for app, name in fleet.FLEET_MODULES.items():
        module = fleet if app == fleet.APP_NAME else load_generated(folder / f"{name}.py")
        for cls, (settings, endpoints) in module.CLASSES.items():
            workflows = load_workflows(module.WORKFLOWS, endpoints)
            owners[(app, cls)] = OwnerClass(settings, tuple(endpoints), workflows)
    return owners
