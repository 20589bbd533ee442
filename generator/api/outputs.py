"""What ``ryla-gen build`` writes under generated/ besides the app modules: openapi/<app>.json
and clients/ (TypeScript, Python), all from the rendered modules as they are served."""

from __future__ import annotations

import json
from pathlib import Path

from ..render.files import RenderedFile, templates_dir
from ..resolve.model import AppModel
from .python_client import render_python
from .served import ServedApp, served_app
from .typescript import render_typescript

OWNED_DIRS = ("openapi", "clients")  # under generated/: every file there is build's own


def openapi_json(app: ServedApp) -> str:
    """The document ``/openapi.json`` serves, with sorted keys (stable diffs)."""
    return json.dumps(app.fastapi.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_api(
    apps: list[AppModel], modules: list[RenderedFile], config_root: Path, generated_dir: Path
) -> list[RenderedFile]:
    """Files relative to ``generated_dir``; Python formatted with ``config_root``'s ruff."""
    by_module = {f.path.stem: f for f in modules}
    served = [served_app(a, by_module[a.module], generated_dir) for a in apps if a.endpoints]
    files = [RenderedFile(Path("openapi") / f"{a.module}.json", openapi_json(a)) for a in served]
    files += render_typescript(served, templates_dir() / "clients" / "typescript")
    files += render_python(served, templates_dir() / "clients" / "python", config_root)
    return files
