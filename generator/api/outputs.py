"""What ``ryla-gen build`` writes under generated/ besides the app modules: openapi/<app>.json
and clients/ (TypeScript, Python), all from the rendered modules as they are served.

Serving every app to read its OpenAPI costs seconds (FastAPI and pydantic build every schema),
so the result is kept by a digest of everything it depends on: the resolved apps, the rendered
modules, the workflows, the code that serves and renders them, the client templates and the
versions of Python, FastAPI, pydantic and ruff. Same digest, same files; ``RYLA_GEN_NO_CACHE=1``
turns it off.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path

from ..render.files import RenderedFile, templates_dir
from ..resolve.model import AppModel

OWNED_DIRS = ("openapi", "clients")  # under generated/: every file there is build's own
_PACKAGE = Path(__file__).resolve().parents[1]
_CODE_DIRS = ("api", "runtime", "render")  # what builds the served apps and the clients


def render_api(
    apps: list[AppModel], modules: list[RenderedFile], config_root: Path, generated_dir: Path
) -> list[RenderedFile]:
    """Files relative to ``generated_dir``; Python formatted with ``config_root``'s ruff."""
    key = _digest(apps, modules, generated_dir.parent / "comfy_workflows", config_root)
    cached = _cached(key)
    if cached is not None:
        return cached
    files = _render(apps, modules, config_root, generated_dir)
    _store(key, files)
    return files


def _render(
    apps: list[AppModel], modules: list[RenderedFile], config_root: Path, generated_dir: Path
) -> list[RenderedFile]:
    from .python_client import render_python
    from .served import served_app
    from .typescript import render_typescript

    by_module = {f.path.stem: f for f in modules}
    served = [served_app(a, by_module[a.module], generated_dir) for a in apps if a.endpoints]
    files = [RenderedFile(Path("openapi") / f"{a.module}.json", openapi_json(a)) for a in served]
    files += render_typescript(served, templates_dir() / "clients" / "typescript")
    files += render_python(served, templates_dir() / "clients" / "python", config_root)
    return files


def openapi_json(app) -> str:  # noqa: ANN001 - a ServedApp (imported lazily with FastAPI)
    """The document ``/openapi.json`` serves, with sorted keys (stable diffs)."""
    return json.dumps(app.fastapi.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _digest(
    apps: list[AppModel], modules: list[RenderedFile], workflows: Path, config_root: Path
) -> str | None:
    if os.environ.get("RYLA_GEN_NO_CACHE"):
        return None
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    try:
        versions = [importlib.metadata.version(d) for d in ("fastapi", "pydantic", "ruff")]
        add("versions", f"{sys.version}|{versions}".encode())
        add("apps", repr(apps).encode())
        for f in sorted(modules, key=lambda f: f.path):
            add(f"module:{f.path}", f.content.encode())
        for path in sorted(workflows.glob("*.json")) if workflows.is_dir() else ():
            add(f"workflow:{path.name}", path.read_bytes())
        for part in _CODE_DIRS:
            for path in sorted((_PACKAGE / part).rglob("*.py")):
                add(f"code:{path.relative_to(_PACKAGE)}", path.read_bytes())
        for path in sorted((templates_dir() / "clients").rglob("*")):
            if path.is_file():
                add(f"template:{path.relative_to(templates_dir())}", path.read_bytes())
        ruff_config = config_root / "pyproject.toml"
        if ruff_config.is_file():
            add("pyproject", ruff_config.read_bytes())
    except (OSError, importlib.metadata.PackageNotFoundError):
        return None
    return digest.hexdigest()


def _cache_file(key: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ryla-gen" / "api" / f"{key}.json"


def _cached(key: str | None) -> list[RenderedFile] | None:
    if key is None:
        return None
    try:
        entries = json.loads(_cache_file(key).read_text())
        return [RenderedFile(Path(e["path"]), e["content"]) for e in entries]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(key: str | None, files: list[RenderedFile]) -> None:
    if key is None:
        return
    target = _cache_file(key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps([{"path": str(f.path), "content": f.content} for f in files]))
        tmp.replace(target)
    except OSError:
        pass  # a cache that cannot be written only costs time
