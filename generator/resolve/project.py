"""Specs -> resolved :class:`AppModel` list: the parser layer between spec files and templates.

Collects every error with its place before anything is rendered (errors are data).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..comfy.catalog import Catalog
from ..diagnostics import Diagnostics, Location, SpecError
from ..spec.format import App, CustomNode, Endpoint, Model, WorkflowRoute
from ..spec.load import LoadedSpec, find_spec_files, load_spec
from .arch import ARCHITECTURES
from .endpoints import (
    EndpointContext,
    path_problem,
    resolve_endpoint,
    resolve_workflow_route,
    unique_names,
)
from .fleet import AppSpecs, resolve_fleet
from .gpus import parse_gpu
from .model import AppModel, ClassModel, CustomNodeModel, EndpointModel, ModelFileModel
from .plan import launch_args, plan_class
from .training import AppTraining, TrainingEntry, check_project_training, resolve_app_training

WORKSPACE_APP_LIMIT = 10
DEFAULT_CLASS = "ComfyUI"


@dataclass
class Project:
    """Where a project's inputs live (the repository layout)."""

    root: Path
    specs: list[Path]
    workflows_dir: Path

    @classmethod
    def at(cls, root: Path, specs: list[Path] | None = None) -> Project:
        root = root.resolve()
        return cls(root, specs or [root / "specs"], root / "comfy_workflows")


@dataclass
class _AppSources:
    definition: LoadedSpec | None = None
    spec_files: list[LoadedSpec] = field(default_factory=list)


def load_project(
    project: Project, catalog: Catalog | None = None
) -> tuple[list[AppModel], Diagnostics]:
    """Resolve every spec; raises :class:`SpecError` listing every error found."""
    diags = Diagnostics()
    files = find_spec_files(project.specs)
    if not files:
        where = ", ".join(str(p) for p in project.specs)
        diags.error(Location(where), "no spec files (*.yaml) found")
        raise SpecError(diags.sorted())
    loaded = [s for s in (load_spec(p, diags, project.root) for p in files) if s is not None]
    apps = _group_by_app(loaded, diags, all_loaded=len(loaded) == len(files))
    training = {name: _training_entries(src) for name, src in apps.items()}
    definitions = {name: _app_of(src) for name, src in apps.items()}
    check_project_training([e for es in training.values() for e in es], definitions, loaded, diags)
    declared = _all_endpoints(apps)
    models = [
        m
        for m in (
            _resolve_app(name, src, training[name], declared, project, catalog, diags)
            for name, src in apps.items()
        )
        if m
    ]
    _check_shared_models(models, diags)
    fleet_specs = {
        name: AppSpecs(_app_of(src), src.definition, tuple(src.spec_files))
        for name, src in apps.items()
        if src.definition is not None
    }
    models = resolve_fleet(models, fleet_specs, diags)
    if len(apps) > WORKSPACE_APP_LIMIT:
        diags.warning(
            Location(", ".join(str(p) for p in project.specs)),
            f"{len(apps)} apps: more than the {WORKSPACE_APP_LIMIT} the workspace plan allows",
        )
    if diags.errors:
        raise SpecError(diags.sorted())
    return sorted(models, key=lambda m: m.name), diags


def _group_by_app(
    loaded: list[LoadedSpec], diags: Diagnostics, *, all_loaded: bool
) -> dict[str, _AppSources]:
    """Spec files by app. An app missing while some file failed to load is not reported again:
    the failing file probably defines it, and its own errors say what to fix."""
    apps: dict[str, _AppSources] = {}
    for spec in loaded:
        app = spec.spec.app
        name = app.name if isinstance(app, App) else app
        sources = apps.setdefault(name, _AppSources())
        if isinstance(app, App):
            if sources.definition is not None:
                first = sources.definition.loc("app", "name")
                diags.error(
                    spec.loc("app", "name"),
                    f"app '{name}' is already defined at {first}; "
                    f"other files add endpoints with 'app: {name}'",
                )
                continue
            sources.definition = spec
        sources.spec_files.append(spec)
    for name, sources in apps.items():
        if sources.definition is None and all_loaded:
            for spec in sources.spec_files:
                diags.error(spec.loc("app"), f"app '{name}' is not defined in any spec file")
    return {n: s for n, s in apps.items() if s.definition is not None}


Declared = tuple[LoadedSpec, int, "Endpoint | WorkflowRoute", Location]


def _declared_endpoints(
    sources: _AppSources,
    declared: dict[tuple[str, str], tuple[LoadedSpec, int, Endpoint]],
    diags: Diagnostics,
) -> list[Declared]:
    """The app's routes: its own endpoints and workflow routes, then those it reuses."""
    found: list[Declared] = []
    for spec in sources.spec_files:
        for i, ep in enumerate(spec.spec.endpoints):
            found.append((spec, i, ep, spec.loc("endpoints", i, "path")))
        for i, route in enumerate(spec.spec.workflow_routes):
            found.append((spec, i, route, spec.loc("workflow_routes", i, "path")))
    for spec in sources.spec_files:
        for i, reuse in enumerate(spec.spec.reuse):
            origin = declared.get((reuse.app, reuse.path))
            if origin is None:
                paths = sorted(p for app, p in declared if app == reuse.app)
                known = ", ".join(paths) if paths else f"no app '{reuse.app}' with endpoints"
                diags.error(
                    spec.loc("reuse", i, "path"),
                    f"reuse: {reuse.app} has no endpoint {reuse.path} ({known})",
                )
                continue
            if reuse.run == "owner":
                if not _app_of(sources).fleet:
                    diags.error(
                        spec.loc("reuse", i, "run"),
                        "reuse run: owner forwards the route, which only the app with "
                        "'fleet: true' does; co-locate it here with run: here",
                    )
                continue  # the fleet's front door forwards it (resolve/fleet.py)
            origin_spec, index, endpoint = origin
            if reuse.as_path:
                endpoint = endpoint.model_copy(update={"path": reuse.as_path})
            found.append((origin_spec, index, endpoint, spec.loc("reuse", i)))
    return found


def _all_endpoints(
    apps: dict[str, _AppSources],
) -> dict[tuple[str, str], tuple[LoadedSpec, int, Endpoint]]:
    """Every declared endpoint by (app, path), for ``reuse``."""
    return {
        (name, ep.path): (spec, i, ep)
        for name, sources in apps.items()
        for spec in sources.spec_files
        for i, ep in enumerate(spec.spec.endpoints)
    }


def _app_of(sources: _AppSources) -> App:
    assert sources.definition is not None
    app = sources.definition.spec.app
    assert isinstance(app, App)
    return app


def _training_entries(sources: _AppSources) -> list[TrainingEntry]:
    app = _app_of(sources)
    return [
        TrainingEntry(spec, i, training, app)
        for spec in sources.spec_files
        for i, training in enumerate(spec.spec.training)
    ]


def _resolve_app(
    name: str,
    sources: _AppSources,
    training_entries: list[TrainingEntry],
    declared: dict[tuple[str, str], tuple[LoadedSpec, int, Endpoint]],
    project: Project,
    catalog: Catalog | None,
    diags: Diagnostics,
) -> AppModel | None:
    assert sources.definition is not None
    app = _app_of(sources)
    before = len(diags.errors)
    where = sources.definition.loc
    if app.auth == "bearer" and not app.auth_secret:
        diags.error(where("app", "auth"), "auth: bearer needs 'auth_secret' (a Modal Secret name)")
    if app.auth == "none" and app.max_containers is None and not training_entries:
        diags.error(
            where("app", "auth"),
            "auth: none needs an explicit 'max_containers': anyone with the URL can start "
            "containers",
        )
    if app.max_containers is not None and app.max_containers < app.min_containers:
        diags.error(
            where("app", "max_containers"),
            f"max_containers {app.max_containers} is below min_containers {app.min_containers}",
        )
    app_gpu = _gpu(app.gpu, where("app", "gpu"), diags)
    endpoints: list[EndpointModel] = []
    seen_paths: dict[str, Location] = {}
    custom_nodes: dict[str, tuple[CustomNode, Location]] = {}
    models: dict[tuple[str, str], tuple[Model, Location]] = {}
    for spec, i, ep, where_path in _declared_endpoints(sources, declared, diags):
        problem = path_problem(ep.path)
        if problem:
            diags.error(where_path, problem)
            continue
        if ep.path in seen_paths:
            diags.error(
                where_path,
                f"duplicate path {ep.path} in app '{name}' (first at {seen_paths[ep.path]})",
            )
            continue
        seen_paths[ep.path] = where_path
        gpu = _gpu(ep.gpu, spec.loc("endpoints", i, "gpu"), diags) if ep.gpu else app_gpu
        timeout = ep.timeout or app.timeout
        if isinstance(ep, WorkflowRoute):
            resolved = resolve_workflow_route(spec, i, ep, gpu=gpu or "", timeout=timeout)
            section = "workflow_routes"
        else:
            ctx = EndpointContext(spec, i, ep, diags, project.workflows_dir, project.root)
            resolved = resolve_endpoint(ctx, gpu=gpu or "", timeout=timeout, catalog=catalog)
            section = "endpoints"
        if resolved:
            endpoints.append(resolved)
        for j, node in enumerate(ep.custom_nodes):
            _merge_custom_node(node, spec.loc(section, i, "custom_nodes", j), custom_nodes, diags)
        for j, model in enumerate(ep.models):
            _merge_model(model, spec.loc(section, i, "models", j), models, diags)
            if model.arch is not None and model.arch not in ARCHITECTURES:
                diags.error(
                    spec.loc(section, i, "models", j, "arch"),
                    f"unknown architecture '{model.arch}'; known: {', '.join(ARCHITECTURES)}",
                )
    if models and app.models_volume not in app.volumes:
        diags.error(
            sources.definition.loc("app", "models_volume"),
            f"models_volume '{app.models_volume}' is not among the app's volumes "
            f"({', '.join(app.volumes) or 'none'}); its models need a volume to live in",
        )
    if not seen_paths and not training_entries:
        diags.error(sources.definition.loc("app"), f"app '{name}' has no endpoints or training")
    if seen_paths and training_entries:
        diags.error(
            training_entries[0].loc("function"),
            f"app '{name}' serves endpoints, so it cannot hold training too; put training "
            f"{training_entries[0].training.function} in an app of its own",
        )
    app_training = (
        resolve_app_training(training_entries, app, diags) if training_entries else AppTraining()
    )
    if len(diags.errors) > before or app_gpu is None:
        return None
    nodes = tuple(
        _custom_node_model(n) for n, _ in sorted(custom_nodes.values(), key=lambda x: x[0].key)
    )
    model_files = tuple(_model_file(m, w) for _, (m, w) in sorted(models.items()))
    return AppModel(
        name=name,
        module=name.replace("-", "_"),
        description=app.description or f"ComfyUI endpoints of {name}.",
        sources=tuple(sorted(s.display for s in sources.spec_files)),
        spec_version=sources.definition.spec.version,
        gpu=app_gpu,
        scaledown_window=app.scaledown_window,
        min_containers=app.min_containers,
        max_containers=app.max_containers,
        concurrent_inputs=app.concurrent_inputs,
        volumes=dict(sorted(app.volumes.items())),
        models_volume=app.models_volume,
        secrets=tuple(app.secrets),
        comfyui_version=app.comfyui_version,
        memory_snapshot=app.memory_snapshot,
        auth=app.auth,
        auth_secret=app.auth_secret,
        webhook_secret=app.webhook_secret,
        comfy_args=tuple(app.comfy_args),
        classes=_planned(
            name,
            model_files,
            _split_classes(app_gpu, unique_names(endpoints), app.cost_per_second),
            tuple(app.comfy_args),
            diags,
            sources.definition.loc("app", "gpu"),
        ),
        models=model_files,
        custom_nodes=nodes,
        apt_packages=tuple(sorted({"git", *(p for n in nodes for p in n.apt)})),
        pip_packages=tuple(dict.fromkeys(p for n in nodes for p in n.pip)),
        workflow_files=tuple(sorted({e.workflow_file for e in endpoints if e.workflow_file})),
        training=app_training.training,
        training_images=app_training.images,
        training_volume_sets=app_training.volume_sets,
        training_secret_sets=app_training.secret_sets,
        limits={
            "max_body_bytes": app.limits.max_body_mb * 1024 * 1024,
            "download_timeout": app.limits.download_timeout,
            "download_max_bytes": app.limits.download_max_mb * 1024 * 1024,
            "max_pending_jobs": app.limits.max_pending_jobs,
        },
        where=sources.definition.loc("app", "name"),
    )


def _check_shared_models(apps: list[AppModel], diags: Diagnostics) -> None:
    """Apps share model volumes: one file name in one folder of one volume is one file.

    Downloads skip files already present, so two sources for one name would silently give some
    app the other's weights.
    """
    seen: dict[tuple[str, str, str], tuple[AppModel, ModelFileModel]] = {}
    for app in apps:
        volume = app.volumes.get(app.models_volume, "")
        for model in app.models:
            key = (volume, model.folder, model.filename)
            if key not in seen:
                seen[key] = (app, model)
                continue
            first_app, first = seen[key]
            if first.source != model.source:
                file, line, col = (model.where.split(":") + ["0", "0"])[:3]
                diags.error(
                    Location(file, int(line), int(col)),
                    f"model {model.folder}/{model.filename} comes from {model.source}, but app "
                    f"'{first_app.name}' ({first.where}) stores {first.source} under the same "
                    f"name in volume '{volume}'; give one of them another 'name'",
                )


def _gpu(value: str, where: Location, diags: Diagnostics) -> str | None:
    try:
        return parse_gpu(value).spec
    except ValueError as exc:
        diags.error(where, str(exc))
        return None


def _split_classes(
    app_gpu: str, endpoints: list[EndpointModel], cost_override: float | None
) -> tuple[ClassModel, ...]:
    """One Modal class per GPU: a class has one GPU, so endpoints needing another get their own.

    The app's GPU keeps the class name ``ComfyUI`` (the URLs clients call today); others are
    ``ComfyUI<GPU>``, e.g. ``ComfyUIH100`` or ``ComfyUIA10080GBx2``. A class's Modal timeout is
    the longest of its endpoints'; each endpoint's own timeout is enforced per request.
    """
    groups: dict[str, list[EndpointModel]] = {}
    for ep in endpoints:
        groups.setdefault(ep.gpu, []).append(ep)
    classes = []
    for gpu in sorted(groups, key=lambda g: (g != app_gpu, g)):
        name = DEFAULT_CLASS if gpu == app_gpu else DEFAULT_CLASS + _class_suffix(gpu)
        eps = tuple(groups[gpu])
        usd = cost_override or parse_gpu(gpu).usd_per_second
        classes.append(ClassModel(name, gpu, max(e.timeout for e in eps), usd, eps))
    return tuple(classes)


def _planned(
    app_name: str,
    models: tuple[ModelFileModel, ...],
    classes: tuple[ClassModel, ...],
    overrides: tuple[str, ...],
    diags: Diagnostics,
    where: Location,
) -> tuple[ClassModel, ...]:
    """Each class with its ComfyUI launch flags from the residency plan; warns when it thrashes."""
    planned = []
    for cls in classes:
        plan = plan_class(app_name, models, cls)
        if plan.verdict == "does-not-fit":
            diags.warning(where, f"{app_name} class {cls.name}: {plan.notes[-1]}")
        note = f"residency plan: {plan.verdict}, {plan.total_gb:.1f} of {plan.usable_gb:.1f} GB"
        planned.append(
            dataclasses.replace(
                cls,
                comfy_args=launch_args(plan, overrides),
                plan_note=note,
                pin_models=plan.pinned,
                memory_mb=plan.memory_mb,
            )
        )
    return tuple(planned)


def _class_suffix(gpu: str) -> str:
    name, _, count = gpu.partition(":")
    suffix = re.sub(r"[^A-Za-z0-9]", "", name.replace("!", "Strict").replace("+", "Plus"))
    return suffix + (f"x{count}" if count else "")


def _merge_custom_node(
    node: CustomNode,
    where: Location,
    seen: dict[str, tuple[CustomNode, Location]],
    diags: Diagnostics,
) -> None:
    if node.key in seen:
        first, first_where = seen[node.key]
        if first.pin != node.pin:
            diags.error(
                where,
                f"custom node {node.key} is pinned at {node.pin} here and at {first.pin} "
                f"({first_where}); one app installs one version",
            )
        elif set(first.pip) != set(node.pip) or set(first.apt) != set(node.apt):
            diags.error(
                where, f"custom node {node.key} declares other pip/apt packages at {first_where}"
            )
        return
    seen[node.key] = (node, where)


def _merge_model(
    model: Model,
    where: Location,
    seen: dict[tuple[str, str], tuple[Model, Location]],
    diags: Diagnostics,
) -> None:
    key = (model.folder, model.filename)
    if key in seen:
        first, first_where = seen[key]
        fields = ("repo", "file", "revision", "repo_type", "url", "unpack", "sha256")
        if any(getattr(first, f) != getattr(model, f) for f in fields):
            diags.error(
                where,
                f"model {model.folder}/{model.filename} comes from another source at {first_where}",
            )
        return
    seen[key] = (model, where)


def _model_file(model: Model, where: Location) -> ModelFileModel:
    return ModelFileModel(
        folder=model.folder,
        filename=model.filename,
        repo=model.repo,
        file=model.file,
        revision=model.revision,
        url=model.url,
        sha256=model.sha256,
        size_gb=model.size_gb,
        repo_type=model.repo_type,
        where=str(where),
        arch=model.arch,
        unpack=model.unpack,
    )


def _custom_node_model(node: CustomNode) -> CustomNodeModel:
    directory = (
        (node.git or node.registry or "").rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
    )
    return CustomNodeModel(
        key=node.key,
        git=node.git,
        commit=node.commit,
        registry=node.registry,
        version=node.version,
        directory=directory,
        pip=tuple(node.pip),
        apt=tuple(node.apt),
    )
