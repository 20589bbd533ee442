"""The ``ryla-gen`` command line."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import click

from .catalog import Catalog
from .diagnostics import Diagnostics, SpecError, display_path
from .model import AppModel
from .render import compare, render_apps, write
from .resolve import Project, load_project
from .spec.format import json_schema

EXIT_INVALID = 2
GENERATED_DIR = "generated"


def _project(specs: tuple[str, ...]) -> Project:
    return Project.at(Path.cwd(), [Path(s) for s in specs] or None)


def _catalog(sources: tuple[str, ...]) -> Catalog | None:
    if not sources:
        return None
    try:
        return Catalog.load(list(sources))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read node catalog: {exc}") from None


def _print_diagnostics(diags: list) -> None:
    for d in diags:
        click.echo(str(d), err=True)


def _load(specs: tuple[str, ...], object_info: tuple[str, ...]) -> list[AppModel]:
    """Resolve specs or exit 2 with every error as file:line:col (no traceback)."""
    try:
        apps, diags = load_project(_project(specs), _catalog(object_info))
    except SpecError as exc:
        _print_diagnostics(exc.diagnostics)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        click.echo(f"{errors} error(s); nothing was generated.", err=True)
        sys.exit(EXIT_INVALID)
    _print_diagnostics(Diagnostics(diags.warnings).sorted())
    return apps


specs_argument = click.argument("specs", nargs=-1, type=click.Path())
object_info_option = click.option(
    "--object-info",
    multiple=True,
    metavar="FILE|URL",
    help="Node catalog (ComfyUI /object_info) to check workflows against; repeatable.",
)


@click.group()
@click.version_option(package_name="ryla-gen")
def main() -> None:
    """Generate Modal apps serving ComfyUI workflows from YAML specs."""


@main.command()
@specs_argument
@object_info_option
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if generated/ is stale.")
def build(specs: tuple[str, ...], object_info: tuple[str, ...], check: bool) -> None:
    """Render one Modal app module per app into generated/."""
    apps = _load(specs, object_info)
    out_dir = Path.cwd() / GENERATED_DIR
    files = render_apps(apps, Path.cwd())
    drift = compare(files, out_dir, (".py",))
    if check:
        if drift.clean:
            click.echo(f"{GENERATED_DIR}/ is up to date ({len(files)} module(s)).")
            return
        for path in drift.stale:
            click.echo(f"{display_path(path)}: differs from what the specs render", err=True)
        for path in drift.missing:
            click.echo(f"{display_path(path)}: missing; run `ryla-gen build`", err=True)
        for path in drift.orphans:
            click.echo(f"{display_path(path)}: rendered from no spec (orphan)", err=True)
        click.echo(
            "generated/ is stale: run `ryla-gen build specs/` and commit the result.", err=True
        )
        sys.exit(1)
    touched = write(files, out_dir, drift)
    for path in touched:
        click.echo(
            f"wrote {display_path(path)}" if path.exists() else f"removed {display_path(path)}"
        )
    n_endpoints = sum(len(a.endpoints) for a in apps)
    click.echo(f"{len(apps)} app(s), {n_endpoints} endpoint(s); {len(touched)} file(s) changed.")


@main.command()
@specs_argument
@object_info_option
def validate(specs: tuple[str, ...], object_info: tuple[str, ...]) -> None:
    """Check specs and workflows without writing anything."""
    apps = _load(specs, object_info)
    n_endpoints = sum(len(a.endpoints) for a in apps)
    click.echo(f"ok: {len(apps)} app(s), {n_endpoints} endpoint(s)")


@main.command("list")
@specs_argument
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--workspace",
    default=lambda: os.environ.get("MODAL_WORKSPACE", "<workspace>"),
    help="Modal workspace used to form URLs (default: $MODAL_WORKSPACE).",
)
def list_(specs: tuple[str, ...], as_json: bool, workspace: str) -> None:
    """List apps, endpoints, GPUs and URLs."""
    apps = _load(specs, ())
    rows = [
        {
            "app": app.name,
            "class": cls.name,
            "path": ep.path,
            "gpu": cls.gpu,
            "timeout": ep.timeout,
            "url": app.url(cls, workspace) + ep.path,
            "spec": ep.source,
        }
        for app in apps
        for cls in app.classes
        for ep in cls.endpoints
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(r["path"]) for r in rows), default=4)
    for app in apps:
        click.echo(f"{app.name}  ({', '.join(app.sources)})")
        for r in (r for r in rows if r["app"] == app.name):
            click.echo(f"  {r['path']:<{width}}  {r['gpu']:<10} {r['url']}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of spec files (for editors)."""
    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


@main.command()
@click.argument("name")
@specs_argument
@click.option("--env", "-e", help="Modal environment.")
@click.option("--name", "deployment_name", help="Deployment name (default: the app name).")
@click.option("--tag", help="Tag the deployment with a version.")
@click.option("--dry-run", is_flag=True, help="Print the modal command instead of running it.")
def deploy(
    name: str,
    specs: tuple[str, ...],
    env: str | None,
    deployment_name: str | None,
    tag: str | None,
    dry_run: bool,
) -> None:
    """Build, then `modal deploy` the app named NAME (an app, endpoint path or spec file)."""
    apps = _load(specs, ())
    app = _find_app(apps, name)
    files = render_apps(apps, Path.cwd())
    out_dir = Path.cwd() / GENERATED_DIR
    if not dry_run:
        write(files, out_dir, compare(files, out_dir, (".py",)))
    command = [sys.executable, "-m", "modal", "deploy"]
    for flag, value in (("--env", env), ("--name", deployment_name), ("--tag", tag)):
        if value:
            command += [flag, value]
    command.append(f"{GENERATED_DIR}/{app.module}.py")
    if dry_run:
        click.echo(shlex.join(command))
        return
    result = subprocess.run(command, check=False)
    sys.exit(result.returncode)


@main.command()
@click.argument("name")
@click.option("--comfy-url", default="http://127.0.0.1:8188", show_default=True)
@click.option("--comfy-dir", help="ComfyUI base dir on this machine: request files get removed.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def dev(name: str, comfy_url: str, comfy_dir: str | None, host: str, port: int) -> None:
    """Serve app NAME's endpoints locally (uvicorn) against a running ComfyUI."""
    import uvicorn

    from .dev import DevError, dev_app

    app = _find_app(_load((), ()), name)
    try:
        asgi = dev_app(Path.cwd() / GENERATED_DIR / f"{app.module}.py", comfy_url, comfy_dir)
    except DevError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{app.name}: http://{host}:{port}/docs  (ComfyUI at {comfy_url})")
    uvicorn.run(asgi, host=host, port=port, log_level="info")


def _find_app(apps: list[AppModel], name: str) -> AppModel:
    for app in apps:
        stems = {Path(s).stem for s in app.sources}
        paths = {e.path for e in app.endpoints} | {e.path.lstrip("/") for e in app.endpoints}
        if name in ({app.name, app.module} | stems | paths):
            return app
    known = ", ".join(a.name for a in apps)
    raise click.ClickException(f"no app, endpoint or spec named '{name}'; apps: {known}")


if __name__ == "__main__":
    main()
