"""Rendered app modules as served: import one from its (in-memory) source, build its FastAPI
app exactly as ``ryla-gen dev`` and the container do, and read what the clients need."""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import AliasChoices, BaseModel

from ..render.files import RenderedFile
from ..resolve.model import AppModel, ClassModel
from ..runtime.backends import RemoteComfy
from ..runtime.fleet import LocalOwners, create_fleet_app
from ..runtime.server import create_app

UNUSED_COMFY = "http://127.0.0.1:9"  # never called: building the app and its schema sends nothing


@dataclass(frozen=True)
class ServedEndpoint:
    path: str
    summary: str
    request_class: str  # e.g. InvertRequest
    schema: dict[str, Any]  # JSON Schema of the request body (pydantic, validation mode)
    legacy: dict[str, tuple[str, ...]]  # field -> older names it also accepts (deprecated)
    headers: tuple[str, ...]  # X-* headers it reports besides the common ones
    url_label: str  # Modal URL label of the class serving it


@dataclass(frozen=True)
class ServedApp:
    name: str  # ryla-demo
    module: str  # ryla_demo
    description: str
    endpoints: tuple[ServedEndpoint, ...]
    fastapi: FastAPI
    jobs: bool  # serves POST /jobs/<path> (the fleet's front door does not)

    @property
    def camel(self) -> str:
        return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", self.name))

    @property
    def identifier(self) -> str:
        return self.camel[:1].lower() + self.camel[1:]


def load_rendered(rendered: RenderedFile, generated_dir: Path) -> types.ModuleType:
    """Execute a rendered module's source as if imported from generated/ (its ``__file__``
    there, so it finds comfy_workflows/ as the deployed module does)."""
    path = generated_dir / rendered.path
    name = f"ryla_rendered_{rendered.path.stem}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # pydantic resolves the request models' annotations there
    exec(compile(rendered.content, str(path), "exec"), module.__dict__)
    return module


def _legacy_names(model: type[BaseModel]) -> dict[str, tuple[str, ...]]:
    legacy = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            older = tuple(c for c in alias.choices if isinstance(c, str) and c != name)
            if older:
                legacy[name] = older
    return legacy


def _class_of(app: AppModel, path: str) -> ClassModel:
    return next(c for c in app.classes if any(e.path == path for e in c.endpoints))


def _endpoint(
    model: type[BaseModel], path: str, summary: str, headers: set[str], url_label: str
) -> ServedEndpoint:
    return ServedEndpoint(
        path=path,
        summary=summary,
        request_class=model.__name__,
        schema=model.model_json_schema(mode="validation"),
        legacy=_legacy_names(model),
        headers=tuple(sorted(headers)),
        url_label=url_label,
    )


def served_app(app: AppModel, rendered: RenderedFile, generated_dir: Path) -> ServedApp:
    """The app as ``ryla-gen dev`` and the container serve it (``dev.dev_app``): the fleet app
    (``FORWARDS``) is its front door, every other app ``create_app`` of its endpoints."""
    module = load_rendered(rendered, generated_dir)
    comfy = RemoteComfy(UNUSED_COMFY)
    if hasattr(module, "FORWARDS"):
        owners = LocalOwners({}, comfy)
        fastapi = create_fleet_app(
            module.SETTINGS, module.FORWARDS, module.CHAINS, module.RETIRED, owners
        )
        label = app.classes[0].url_label  # the front door answers at the default class's URL
        routes = [*module.FORWARDS, *module.CHAINS]
        endpoints = [_endpoint(r.request_model, r.path, r.summary, set(), label) for r in routes]
        return ServedApp(
            app.name, app.module, app.description, tuple(endpoints), fastapi, jobs=False
        )
    fastapi = create_app(
        module.SETTINGS, module.ENDPOINTS, comfy, module.WORKFLOWS, retired=module.RETIRED
    )
    endpoints = [
        _endpoint(
            e.request_model,
            e.path,
            e.summary,
            {p.header for p in e.params if p.header} | set(e.headers),
            _class_of(app, e.path).url_label,
        )
        for e in module.ENDPOINTS
    ]
    return ServedApp(app.name, app.module, app.description, tuple(endpoints), fastapi, jobs=True)
