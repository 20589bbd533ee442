"""Rendering: resolved app models -> formatted Python modules (the template layer's driver).

Output is deterministic: same specs and workflows give the same bytes. Formatting is a
post-step (``ruff format``), so templates need not align whitespace by hand.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2
from ruff.__main__ import find_ruff_bin

from ..diagnostics import Location
from ..resolve import container
from ..resolve.model import AppModel
from ..resolve.plan import HEADROOM, plan_app
from ..resolve.pyliteral import py_literal, py_literal_named, py_string
from ..shipped import shipped_dir
from .selfcheck import Problem, check_apps

GENERATED_SUFFIX = ".py"


def templates_dir() -> Path:
    """The Jinja templates: the checkout's ``templates/`` or the wheel's copy (``shipped``)."""
    found = shipped_dir("templates")
    if not (found / "app.py.j2").is_file():
        raise RuntimeError(
            f"templates not found at {found}; reinstall ryla-gen (`pip install .` ships them)"
        )
    return found


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["pyrepr"] = repr
    env.filters["pystr"] = py_string
    env.filters["pylit"] = py_literal
    env.filters["pylit_named"] = py_literal_named
    return env


def format_python(source: str, filename: str, config_root: Path) -> str:
    """Format with ruff, using the project's ruff settings (pyproject.toml at config_root)."""
    result = subprocess.run(
        [find_ruff_bin(), "format", "--stdin-filename", filename, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=config_root,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"ruff could not format the module rendered for {filename}:\n{result.stderr}"
        )
    return result.stdout


@dataclass(frozen=True)
class RenderedFile:
    path: Path  # relative to the output directory
    content: str


def render_apps(apps: list[AppModel], config_root: Path) -> list[RenderedFile]:
    env = _lazy_environment()
    files = []
    for app in apps:
        name = f"{app.module}{GENERATED_SUFFIX}"
        source = _render_module(env, app)
        files.append(
            RenderedFile(Path(name), format_python(source, f"generated/{name}", config_root))
        )
    return files


def _render_module(env: Callable[[], jinja2.Environment], app: AppModel) -> str:
    return env().get_template(app.template).render(app=app, container=container)


def _lazy_environment() -> Callable[[], jinja2.Environment]:
    """The Jinja environment, made on first use (self-checks served from the cache need none)."""
    made: list[jinja2.Environment] = []
    return lambda: made[0] if made else made.append(_environment()) or made[0]


def self_check(apps: list[AppModel], workflows_dir: Path, fallback: Location) -> list[Problem]:
    """Each app's module rendered (unformatted: the same code), imported in isolation, and its
    examples and warm-ups served through it; problems at the spec keys responsible."""
    env = _lazy_environment()
    return check_apps(
        apps, lambda app: _render_module(env, app), workflows_dir, fallback, templates_dir()
    )


def render_docs(apps: list[AppModel]) -> list[RenderedFile]:
    """docs/: the endpoint reference (ENDPOINTS.md) and the residency plan (PLAN.md)."""
    env = _environment()
    plans = [plan for app in apps for plan in plan_app(app)]
    return [
        RenderedFile(Path("ENDPOINTS.md"), env.get_template("endpoints.md.j2").render(apps=apps)),
        RenderedFile(
            Path("PLAN.md"),
            env.get_template("plan.md.j2").render(plans=plans, headroom_pct=round(HEADROOM * 100)),
        ),
    ]


@dataclass(frozen=True)
class Drift:
    """How generated/ differs from what the specs render."""

    stale: list[Path]  # differ from the rendering (hand-edited or out of date)
    missing: list[Path]
    orphans: list[Path]  # present but rendered from no spec

    @property
    def clean(self) -> bool:
        return not (self.stale or self.missing or self.orphans)


IGNORED_PARTS = ("node_modules", "dist", "__pycache__")  # installs and builds of the clients


def compare(
    files: list[RenderedFile],
    out_dir: Path,
    owned_suffixes: tuple[str, ...],
    owned_dirs: tuple[str, ...] = (),
) -> Drift:
    """Stale, missing and orphan files. Owned: top-level files of ``out_dir`` with one of
    ``owned_suffixes``, and every file under its ``owned_dirs`` (at any depth, except installs
    and builds: ``IGNORED_PARTS``)."""
    stale, missing = [], []
    for f in files:
        target = out_dir / f.path
        if not target.exists():
            missing.append(target)
        elif target.read_text(encoding="utf-8") != f.content:
            stale.append(target)
    expected = {out_dir / f.path for f in files}
    orphans = sorted(
        p
        for p in out_dir.glob("*")
        if p.is_file()
        and p.suffix in owned_suffixes
        and p not in expected
        and p.name != "__init__.py"
    )
    orphans += sorted(
        p
        for folder in owned_dirs
        for p in (out_dir / folder).rglob("*")
        if p.is_file()
        and p not in expected
        and not set(p.relative_to(out_dir).parts) & set(IGNORED_PARTS)
    )
    return Drift(stale, missing, orphans)


def write(files: list[RenderedFile], out_dir: Path, drift: Drift) -> list[Path]:
    """Write changed files and remove orphans; returns the paths touched."""
    out_dir.mkdir(parents=True, exist_ok=True)
    touched = []
    for f in files:
        target = out_dir / f.path
        if target in drift.stale or target in drift.missing:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.content, encoding="utf-8")
            touched.append(target)
    for orphan in drift.orphans:
        orphan.unlink()
        touched.append(orphan)
    return touched
