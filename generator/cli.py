"""The ``ryla-gen`` command line."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .diagnostics import Diagnostics, Location, SpecError, display_path
from .resolve.project import Project, load_project

if TYPE_CHECKING:  # the commands import what they use, so each starts fast (bench/cli_speed.py)
    from .comfy.catalog import Catalog
    from .render.files import Drift, RenderedFile
    from .resolve.model import AppModel, TrainingModel
    from .runtime.training import TrainingFunction

EXIT_INVALID = 2
GENERATED_DIR = "generated"
DOCS_DIR = "docs"


def _outputs(
    apps: list[AppModel], specs: tuple[str, ...]
) -> list[tuple[list[RenderedFile], Path, Drift]]:
    """Everything build owns: generated modules, their OpenAPI documents and clients
    (generated/openapi/, generated/clients/) and the endpoint reference, with their drift.

    Modules no spec renders are orphans only when whole spec folders were built: building
    single files must not delete the other apps' modules. The reference lists only what was
    built, so it is written and checked only for whole folders too.
    """
    from .api import OWNED_DIRS, render_api
    from .render.files import compare, render_apps, render_docs

    root = Path.cwd()
    whole = all(Path(s).is_dir() for s in specs) if specs else True
    modules = render_apps(apps, root)
    suffixes = (".py",) if whole else ()
    outputs = [(modules, root / GENERATED_DIR, compare(modules, root / GENERATED_DIR, suffixes))]
    if whole:
        out = root / GENERATED_DIR
        api = render_api(apps, modules, root, out)
        outputs.append((api, out, compare(api, out, (), OWNED_DIRS)))
        docs = render_docs(apps)
        outputs.append((docs, root / DOCS_DIR, compare(docs, root / DOCS_DIR, ())))
    return outputs


def _rendered(
    apps: list[AppModel], specs: tuple[str, ...]
) -> list[tuple[list[RenderedFile], Path, Drift]]:
    """:func:`_outputs`, or exit 2 naming what could not be rendered (never a traceback: the
    self-check passed, so this is ryla-gen's fault; the message says which output)."""
    try:
        return _outputs(apps, specs)
    except (RuntimeError, ValueError, OSError) as exc:
        click.echo(f"error: cannot render the outputs of these specs: {exc}", err=True)
        click.echo("nothing was written.", err=True)
        sys.exit(EXIT_INVALID)


def _project(specs: tuple[str, ...]) -> Project:
    return Project.at(Path.cwd(), [Path(s) for s in specs] or None)


def _catalog(sources: tuple[str, ...]) -> Catalog | None:
    if not sources:
        return None
    from .comfy.catalog import Catalog

    try:
        return Catalog.load(list(sources))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read node catalog: {exc}") from None


def _print_diagnostics(diags: list) -> None:
    for d in diags:
        click.echo(str(d), err=True)


def _load(
    specs: tuple[str, ...],
    object_info: tuple[str, ...],
    *,
    warnings: bool = False,
    self_check: bool | None = None,
) -> list[AppModel]:
    """Resolve specs or exit 2 with every error as file:line:col (no traceback).

    The commands that check (build, validate) print warnings (residency, app count); they and
    deploy run the self-check (default: with the warnings): each module rendered, imported
    and serving its examples and warm-ups."""
    project = _project(specs)
    try:
        apps, diags = load_project(project, _catalog(object_info))
        if warnings if self_check is None else self_check:
            _self_check(apps, project, diags)
    except SpecError as exc:
        _print_diagnostics(exc.diagnostics)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        click.echo(f"{errors} error(s); nothing was generated.", err=True)
        sys.exit(EXIT_INVALID)
    if warnings:
        _print_diagnostics(Diagnostics(diags.warnings).sorted())
    return apps


def _self_check(apps: list[AppModel], project: Project, diags: Diagnostics) -> None:
    from .render.files import self_check

    fallback = Location(", ".join(display_path(p) for p in project.specs))
    problems = self_check(apps, project.workflows_dir, fallback)
    if problems:
        for where, message in problems:
            diags.error(where, message)
        raise SpecError(diags.sorted())


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
    apps = _load(specs, object_info, warnings=True)
    outputs = _rendered(apps, specs)
    if check:
        drifts = [drift for _, _, drift in outputs]
        if all(d.clean for d in drifts):
            click.echo(f"{GENERATED_DIR}/ and {DOCS_DIR}/ are up to date.")
            return
        for drift in drifts:
            for path in drift.stale:
                click.echo(f"{display_path(path)}: differs from what the specs render", err=True)
            for path in drift.missing:
                click.echo(f"{display_path(path)}: missing; run `ryla-gen build`", err=True)
            for path in drift.orphans:
                click.echo(f"{display_path(path)}: rendered from no spec (orphan)", err=True)
        click.echo("stale: run `ryla-gen build specs/` and commit the result.", err=True)
        sys.exit(1)
    from .render.files import write

    touched = [path for files, out_dir, drift in outputs for path in write(files, out_dir, drift)]
    for path in touched:
        click.echo(
            f"wrote {display_path(path)}" if path.exists() else f"removed {display_path(path)}"
        )
    click.echo(f"{_counts(apps)}; {len(touched)} file(s) changed.")


@main.command()
@click.argument("app_name", required=False)
@specs_argument
def plan(app_name: str | None, specs: tuple[str, ...]) -> None:
    """Print the residency plan: per app class, GPU memory, models, fit, launch flags."""
    from .resolve.plan import plan_app

    apps = _load(specs, ())
    for app in [_find_app(apps, app_name)] if app_name else apps:
        for p in plan_app(app):
            click.echo(f"{p.app} / {p.cls} on {p.gpu}: {p.verdict}")
            click.echo(f"  memory  {p.vram_gb:.1f} GB per device, {p.usable_gb:.1f} GB usable")
            for name, size in p.models:
                click.echo(f"  model   {name}: {'unknown' if size is None else f'{size:.2f} GB'}")
            click.echo(f"  total   {p.total_gb:.1f} GB")
            click.echo(f"  flags   {' '.join(p.flags) or '(ComfyUI defaults)'}")
            if p.pinned:
                click.echo(f"  pinned  {', '.join(p.pinned)}")
            if p.memory_mb:
                click.echo(f"  host    memory={p.memory_mb} MiB")
            for note in p.notes:
                click.echo(f"  note    {note}")


@main.command()
@specs_argument
def docs(specs: tuple[str, ...]) -> None:
    """Write docs/ENDPOINTS.md (endpoint reference) and docs/PLAN.md (residency plan)."""
    from .render.files import compare, render_docs, write

    apps = _load(specs, ())
    files = render_docs(apps)
    out_dir = Path.cwd() / DOCS_DIR
    for path in write(files, out_dir, compare(files, out_dir, ())):
        click.echo(f"wrote {display_path(path)}")


@main.command()
@specs_argument
@object_info_option
def validate(specs: tuple[str, ...], object_info: tuple[str, ...]) -> None:
    """Check specs and workflows without writing anything."""
    apps = _load(specs, object_info, warnings=True)
    click.echo(f"ok: {_counts(apps)}")


def _counts(apps: list[AppModel]) -> str:
    n_endpoints = sum(len(a.endpoints) for a in apps)
    n_training = sum(len(a.training) for a in apps)
    training = f", {n_training} training function(s)" if n_training else ""
    n_chains = sum(len(a.fleet.chains) for a in apps if a.fleet)
    chains = f", {n_chains} chain(s)" if n_chains else ""
    n_retired = sum(len(a.retired) for a in apps)
    retired = f", {n_retired} retired route(s)" if n_retired else ""
    return f"{len(apps)} app(s), {n_endpoints} endpoint(s){chains}{training}{retired}"


@main.command("list")
@specs_argument
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--workspace",
    default=lambda: os.environ.get("MODAL_WORKSPACE", "<workspace>"),
    help="Modal workspace used to form URLs (default: $MODAL_WORKSPACE).",
)
def list_(specs: tuple[str, ...], as_json: bool, workspace: str) -> None:
    """List apps, endpoints (GPU and URL) and training (GPU and timeout)."""
    apps = _load(specs, ())
    rows = [
        {
            "kind": "endpoint",
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
    ] + [
        {
            "kind": "training",
            "app": app.name,
            "function": training.function,
            "path": None,
            "gpu": training.gpu,
            "timeout": training.timeout,
            "url": None,
            "spec": training.source,
        }
        for app in apps
        for training in app.training
    ]
    rows += [
        {
            "kind": "forward",
            "app": app.name,
            "path": fw.path,
            "gpu": None,
            "timeout": fw.endpoint.timeout,
            "url": app.fleet_url(workspace) + fw.path,
            "spec": app.sources[0],
            "runs_in": f"{fw.app}{fw.owner_path}",
        }
        for app in apps
        if app.fleet
        for fw in app.fleet.forwards
        if fw.owner_path
    ]
    rows += [
        {
            "kind": "chain",
            "app": app.name,
            "path": chain.path,
            "gpu": None,
            "timeout": chain.timeout,
            "url": app.fleet_url(workspace) + chain.path,
            "spec": chain.source,
            "steps": [f"{step.app}{step.path}" for step in chain.steps],
        }
        for app in apps
        if app.fleet
        for chain in app.fleet.chains
    ]
    rows += [
        {
            "kind": "retired",
            "app": app.name,
            "path": gone.path,
            "gpu": None,
            "timeout": None,
            "url": None,
            "spec": gone.source,
            "use": gone.use,
        }
        for app in apps
        for gone in app.retired
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(r["path"] or r["function"]) for r in rows), default=4)
    for app in apps:
        click.echo(f"{app.name}  ({', '.join(app.sources)})")
        if app.fleet:
            click.echo(
                f"  fleet URL (every route below and of every app): {app.fleet_url(workspace)}"
            )
        for r in (r for r in rows if r["app"] == app.name):
            if r["kind"] == "training":
                where = f"training (timeout {r['timeout']} s)"
                click.echo(f"  {r['function']:<{width}}  {r['gpu']:<10} {where}")
            elif r["kind"] == "forward":
                click.echo(f"  {r['path']:<{width}}  {'forward':<10} runs as {r['runs_in']}")
            elif r["kind"] == "chain":
                click.echo(f"  {r['path']:<{width}}  {'chain':<10} {' -> '.join(r['steps'])}")
            elif r["kind"] == "retired":
                click.echo(f"  {r['path']:<{width}}  {'retired':<10} 410, use {r['use']}")
            else:
                click.echo(f"  {r['path']:<{width}}  {r['gpu']:<10} {r['url']}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of spec files (for editors)."""
    from .spec.format import json_schema

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
    apps = _load(specs, (), self_check=True)
    app = _find_app(apps, name)
    if not dry_run:
        from .render.files import write

        for files, out_dir, drift in _rendered(apps, specs):
            write(files, out_dir, drift)
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
    if not app.endpoints:
        raise click.ClickException(
            f"app '{app.name}' has no endpoints to serve (only training functions)"
        )
    try:
        asgi = dev_app(Path.cwd() / GENERATED_DIR / f"{app.module}.py", comfy_url, comfy_dir)
    except DevError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{app.name}: http://{host}:{port}/docs  (ComfyUI at {comfy_url})")
    uvicorn.run(asgi, host=host, port=port, log_level="info")


@main.command()
@click.option("--workspace", help="Deployed apps: Modal workspace forming the URLs.")
@click.option("--base-url", help="One served app, e.g. `ryla-gen dev`: http://127.0.0.1:8000.")
@click.option("--app", "apps", multiple=True, help="Measure this app's endpoints; repeatable.")
@click.option("--endpoint", "endpoints", multiple=True, help="Endpoint path; repeatable.")
@click.option("--runs", default=5, show_default=True, type=click.IntRange(min=0))
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--cold", is_flag=True, help="Stop the app's containers before the first request.")
@click.option("--out", default="reports", show_default=True, type=click.Path(path_type=Path))
@click.option("--max-cold", type=float, help="Gate: first/cold request at most this (s).")
@click.option("--max-p50", type=float, help="Gate: warm p50 at most this many seconds.")
@click.option("--min-success", type=float, help="Gate: success rate at least this (0.95).")
@click.option("--header", "headers", multiple=True, help="'Name: value' sent with every request.")
@click.option("--env", "-e", help="Modal environment (for --cold).")
def bench(**options: object) -> None:
    """Send endpoints' examples and report latency, success, outputs and cost (reports/)."""
    from .quality import BenchArgs, BenchUsageError, run_command

    try:
        status = run_command(_load((), ()), BenchArgs(**options))  # type: ignore[arg-type]
    except BenchUsageError as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(status)


@main.command()
@click.argument("names", nargs=-1, metavar="APP|PATH...")
@click.option("--comfy-dir", type=click.Path(path_type=Path, file_okay=False), help="ComfyUI tree.")
@click.option("--comfy-url", help="Use this running ComfyUI instead of starting one.")
@click.option("--models-dir", type=click.Path(path_type=Path), help="Synthetic files go here.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Results file (JSON); endpoints measured at this commit there are skipped. Default:"
    " docs/gpu-smoke-results.json; docs/gpu-smoke-defaults.json with --at-defaults;"
    " docs/tiny-smoke-results.json with --tiny.",
)
@click.option("--scratch", type=click.Path(path_type=Path), help="Base directory ComfyUI runs in.")
@click.option("--python", "python_", help="ComfyUI's Python (default: a venv beside the tree).")
@click.option("--port", default=8190, show_default=True, type=int)
@click.option("--device", default="cuda", show_default=True, type=click.Choice(["cuda", "cpu"]))
@click.option("--commit", help="Commit the results are keyed by (default: git HEAD).")
@click.option("--force", is_flag=True, help="Measure again what this commit measured already.")
@click.option("--clean", is_flag=True, help="Remove each app's synthetic files after its run.")
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    help="Run examples with at most this many steps (their `steps` parameter); the table says"
    " so. The same nodes execute, in less time.",
)
@click.option(
    "--at-defaults",
    is_flag=True,
    help="Send each endpoint's first example with only its required fields, once: the run"
    " measures what a bare call costs (memory at the default frames and size).",
)
@click.option(
    "--after-others",
    type=click.Choice(["packs", "all", "none"]),
    default="packs",
    show_default=True,
    help="Run each endpoint right after another endpoint of its class that loads one of its"
    " files, and report one that then fails or draws another picture: after those with"
    " custom-node packs (which may change a shared model in place), after every one (n x n-1"
    " pairs), or never.",
)
@click.option(
    "--tiny",
    is_flag=True,
    help="Build the diffusion models of families with a tiny size (Wan) at it: the same graph"
    " runs on a CPU in minutes (wiring, shapes, decode, whether inputs matter; no timings).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Send FIELD=VALUE (JSON, else a string) in every example of endpoints that have the"
    " field: fewer frames for a CPU run, the most frames for a memory figure. Needs its own"
    " --out unless --tiny.",
)
@click.option(
    "--set-node",
    "node_sets",
    multiple=True,
    metavar="NODE.INPUT=VALUE",
    help="Run workflows with a node's input changed (NODE: its id or title; VALUE: JSON, else a"
    " string), where the workflow has that node: a pack's fp16 graph in fp32 on a CPU. The"
    " table says so. Needs its own --out.",
)
@click.option(
    "--max-model-gb",
    type=click.FloatRange(min=1),
    help="Disk for synthetic files at a time (default: the free space); an app that needs more"
    " runs in rounds, removing files no later round uses.",
)
@click.option(
    "--markdown",
    type=click.Path(path_type=Path),
    help="Also write a Markdown table (alone: the table of every endpoint's newest result).",
)
@click.option(
    "--custom-nodes",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Folder of custom-node pack checkouts, each under the name the image clones it as "
    "(ComfyUI-GGUF, ComfyUI-VideoHelperSuite): endpoints whose packs are all there run.",
)
def smoke(names: tuple[str, ...], **options: Any) -> None:
    """Run endpoints' examples on ComfyUI with synthetic weights of the real architectures.

    With no APP|PATH, --markdown F writes the newest result of every endpoint from --out.
    """
    import asyncio

    from .dev import DevError, load_generated
    from .smoke.modal_stub import install as install_modal_stub
    from .smoke.report import line, markdown
    from .smoke.run import (
        SmokeError,
        SmokeOptions,
        default_python,
        results_name,
        scratch_default,
        smoke_app,
    )
    from .smoke.store import ResultStore, StoreError, commit_depth, current_commit

    overrides = tuple(_field_value(text) for text in options["sets"])
    if overrides and options["out"] is None and not options["tiny"]:
        raise click.UsageError("--set changes the requests: give --out, a results file of its own")
    node_sets = tuple(_node_value(text) for text in options["node_sets"])
    if node_sets and options["out"] is None:
        raise click.UsageError(
            "--set-node changes the graphs: give --out, a results file of its own"
        )
    if options["out"] is None:
        options["out"] = Path("docs") / results_name(options["at_defaults"], options["tiny"])
    if not names:  # the table of what the results file holds, newest per endpoint
        if not options["markdown"]:
            raise click.UsageError("name apps or paths to run, or give --markdown for the table")
        try:
            rows = ResultStore(options["out"]).latest(commit_depth(Path.cwd()))
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        options["markdown"].write_text(markdown(rows))
        click.echo(f"{len(rows)} endpoints from {options['out']} -> {options['markdown']}")
        return
    if bool(options["comfy_dir"]) == bool(options["comfy_url"]) and not options["comfy_dir"]:
        raise click.UsageError("give --comfy-dir (start ComfyUI) or --comfy-url (a running one)")
    install_modal_stub()
    apps = _load((), ())
    selected: dict[str, tuple[AppModel, set[str] | None]] = {}  # app name -> paths (None: all)
    for name in names:
        app = _find_app(apps, name)
        path = "/" + name.lstrip("/")
        paths = {path} if any(e.path == path for e in app.endpoints) else None
        _, before = selected.get(app.name, (app, set()))
        selected[app.name] = (app, None if before is None or paths is None else before | paths)
    comfy_dir = options["comfy_dir"].resolve() if options["comfy_dir"] else None
    scratch = (options["scratch"] or scratch_default()).resolve()
    try:
        store = ResultStore(options["out"])
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    commit = options["commit"] or current_commit(Path.cwd())
    rows: list[dict[str, Any]] = []
    for app, paths in selected.values():  # one run per app: its paths share files and ComfyUI
        opts = SmokeOptions(
            comfy_dir=comfy_dir,
            comfy_url=options["comfy_url"],
            models_dir=options["models_dir"].resolve() if options["models_dir"] else None,
            scratch=scratch,
            python=options["python_"] or default_python(comfy_dir),
            port=options["port"],
            commit=commit,
            force=options["force"],
            clean=options["clean"],
            only=frozenset(paths) if paths is not None else None,
            device=options["device"],
            max_model_gb=options["max_model_gb"],
            max_steps=options["max_steps"],
            at_defaults=options["at_defaults"],
            after_others=options["after_others"],
            tiny=options["tiny"],
            overrides=overrides,
            node_overrides=node_sets,
            custom_nodes=options["custom_nodes"].resolve() if options["custom_nodes"] else None,
        )
        try:
            module = load_generated(Path.cwd() / GENERATED_DIR / f"{app.module}.py")
            with _interrupt_on_sigterm():  # a time limit stops the builder and ComfyUI too
                found = asyncio.run(smoke_app(app, module, opts, store, click.echo))
            rows += [{**row, "commit": commit} for row in found]
        except (DevError, SmokeError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"\nsmoke results at {commit} ({options['out']}):")
    for row in rows:
        click.echo(line(row))
    if options["markdown"]:
        options["markdown"].write_text(markdown(rows))
    failed = ("failed", "output-mismatch", "ignores-input")
    sys.exit(1 if any(r.get("status") in failed for r in rows) else 0)


def _field_value(text: str) -> tuple[str, Any]:
    """``--set``'s FIELD=VALUE: the value as JSON (5, true, "x"), else as the string given."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise click.BadParameter(f"{text!r}: expected FIELD=VALUE", param_hint="--set")
    try:
        return name.strip(), json.loads(raw)
    except ValueError:
        return name.strip(), raw


def _node_value(text: str) -> tuple[str, str, Any]:
    """``--set-node``'s NODE.INPUT=VALUE (NODE may be a title with spaces or dots: the input is
    the part after the last dot before ``=``)."""
    target, sep, raw = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not sep or not dot or not node.strip() or not name.strip():
        raise click.BadParameter(f"{text!r}: expected NODE.INPUT=VALUE", param_hint="--set-node")
    _, value = _field_value(f"x={raw}")
    return node.strip(), name.strip(), value


@contextlib.contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt meanwhile: child processes are then stopped on the way
    out (``subprocess.run`` kills its child, ComfyUI's context stops it), not left running."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _find_app(apps: list[AppModel], name: str) -> AppModel:
    for app in apps:
        stems = {Path(s).stem for s in app.sources}
        paths = {e.path for e in app.endpoints} | {e.path.lstrip("/") for e in app.endpoints}
        functions = {j.function for j in app.training}
        if name in ({app.name, app.module} | stems | paths | functions):
            return app
    known = ", ".join(a.name for a in apps)
    raise click.ClickException(f"no app, endpoint or spec named '{name}'; apps: {known}")


@main.command()
@click.argument("function")
@click.option(
    "--arg",
    "args",
    multiple=True,
    metavar="NAME=VALUE",
    help="An argument, parsed by its declared type; repeat for more (and for more URLs of a "
    "url_list). url_list also takes a JSON list, options a JSON object or NAME.FIELD=VALUE.",
)
@click.option("--env", "-e", help="Modal environment.")
def run(function: str, args: tuple[str, ...], env: str | None) -> None:
    """Spawn the deployed training function FUNCTION with arguments; print its call id."""
    from .runtime.training import TrainingError

    app, model = _find_training(_load((), ()), function)
    try:
        kwargs = _training_arguments(model.runtime, args)
        model.runtime.check_arguments(kwargs)
    except TrainingError as exc:
        raise click.UsageError(str(exc)) from None
    import modal

    try:
        function = modal.Function.from_name(app.name, model.function, environment_name=env)
        call = function.spawn(**kwargs)
    except modal.exception.Error as exc:
        raise click.ClickException(f"{app.name}/{model.function}: {exc}") from None
    click.echo(call.object_id)


@main.command()
@click.argument("call_id")
def status(call_id: str) -> None:
    """Report a spawned call: running, its result (JSON), or its error. Exit 1 when it failed."""
    import modal

    try:
        result = modal.FunctionCall.from_id(call_id).get(timeout=0)
    except modal.exception.OutputExpiredError:
        raise click.ClickException(f"{call_id}: its result has expired") from None
    except TimeoutError:
        click.echo(json.dumps({"call_id": call_id, "state": "running"}))
        return
    except modal.exception.Error as exc:
        raise click.ClickException(f"{call_id}: {exc}") from None
    except Exception as exc:  # the remote function raised: Modal re-raises it here
        click.echo(json.dumps({"call_id": call_id, "state": "error", "error": str(exc)}))
        sys.exit(1)
    click.echo(json.dumps({"call_id": call_id, "state": "finished", "result": result}, indent=2))
    if isinstance(result, dict) and result.get("status") == "failed":
        sys.exit(1)


def _find_training(apps: list[AppModel], name: str) -> tuple[AppModel, TrainingModel]:
    for app in apps:
        for training in app.training:
            if name in (training.function, f"{app.name}/{training.function}"):
                return app, training
    known = ", ".join(j.function for a in apps for j in a.training) or "none"
    raise click.ClickException(f"no training function named '{name}'; training functions: {known}")


def _training_arguments(training: TrainingFunction, texts: tuple[str, ...]) -> dict[str, Any]:
    """``--arg`` values by the declared types: url_list items accumulate, options fields merge."""
    from .runtime.training import TrainingError

    values: dict[str, Any] = {}
    for text in texts:
        name, sep, raw = text.partition("=")
        if not sep:
            raise TrainingError(f"--arg {text!r}: expected NAME=VALUE")
        name, _, field = name.strip().partition(".")
        arg = training.argument(name)
        if field:
            if arg.type != "options":
                raise TrainingError(f"--arg {text!r}: '{name}' has no fields")
            values.setdefault(name, {})[field] = arg.field(field).parse_text(raw)
        elif arg.type == "url_list":
            values.setdefault(name, []).extend(arg.parse_text(raw))
        elif arg.type == "options":
            values.setdefault(name, {}).update(arg.parse_text(raw))
        else:
            values[name] = arg.parse_text(raw)
    return values


if __name__ == "__main__":
    main()
