"""The fleet's one URL: which app's front door answers every route, chains, retired routes.

Decided after every app is resolved, since a front door needs every app's endpoints:

- **Forward or co-locate.** The app declaring ``fleet: true`` answers every path of every app.
  A route it declares itself (its endpoints, workflow routes and ``reuse:`` entries) runs in
  its own class: that is how a spec asks to co-locate. Every other route is forwarded to the
  class of the app that owns it (no second copy of its models).
- **Chains** run on that front door (no GPU), so they may only be declared in the fleet app.
- **Retired** routes answer 410 on the fleet URL and on the URL of the app that retired them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..diagnostics import Diagnostics, Location
from ..spec.format import App, Chain, ChainParameter, Parameter
from ..spec.load import LoadedSpec
from .endpoints import example_value_problem, request_class_name
from .fields import param_doc, request_field
from .model import (
    AppModel,
    ChainModel,
    ChainStepModel,
    EndpointModel,
    FleetModel,
    ForwardModel,
    RetiredModel,
)

MAX_TIMEOUT = 86400  # Modal's longest function timeout
_GROUPS = ({"string", "enum"}, {"int", "float", "seed"}, {"bool"}, {"image", "video", "mask"})
MEDIA = {"image", "video", "mask"}


@dataclass(frozen=True)
class AppSpecs:
    """One app as the fleet sees it: its definition and every spec file adding to it."""

    app: App
    definition: LoadedSpec
    files: tuple[LoadedSpec, ...]


def resolve_fleet(
    apps: list[AppModel], specs: dict[str, AppSpecs], diags: Diagnostics
) -> list[AppModel]:
    """Each app with its retired routes; the fleet app with its front door."""
    retired = _retired(specs, diags)
    by_name = {a.name: a for a in apps}
    fleet_names = [name for name, s in sorted(specs.items()) if s.app.fleet]
    for name in fleet_names[1:]:
        diags.error(
            specs[name].definition.loc("app", "fleet"),
            f"only one app can be the fleet's URL; '{fleet_names[0]}' already is",
        )
    hint = f" ({fleet_names[0]})" if fleet_names else ""
    for name, app_specs in sorted(specs.items()):
        for spec in app_specs.files:
            if spec.spec.chains and not app_specs.app.fleet:
                diags.error(
                    spec.loc("chains", key=True),
                    "chains run on the fleet's front door: declare them in the app with "
                    f"'fleet: true'{hint}, not in '{name}'",
                )
    served = _served(apps)
    chain_paths = {c.path for s in specs.values() for f in s.files for c in f.spec.chains}
    _check_retired(retired, served, chain_paths, diags)
    result = []
    for app in apps:
        own = tuple(r for r, _ in retired if r.app == app.name)
        app = dataclasses.replace(app, retired=own)
        if fleet_names and app.name == fleet_names[0]:
            fleet = _front_door(app, by_name, specs[app.name], served, retired, diags)
            app = dataclasses.replace(app, fleet=fleet)
        result.append(app)
    return result


Served = dict[tuple[str, str], tuple[str, EndpointModel]]  # (app, path) -> (class, endpoint)


def _served(apps: list[AppModel]) -> Served:
    return {(a.name, e.path): (c.name, e) for a in apps for c in a.classes for e in c.endpoints}


def _retired(specs: dict[str, AppSpecs], diags: Diagnostics) -> list[tuple[RetiredModel, Location]]:
    found: list[tuple[RetiredModel, Location]] = []
    seen: dict[str, Location] = {}
    for name, app_specs in sorted(specs.items()):
        for spec in app_specs.files:
            for i, gone in enumerate(spec.spec.retired):
                where = spec.loc("retired", i, "path")
                if gone.path in seen:
                    diags.error(where, f"{gone.path} is already retired at {seen[gone.path]}")
                    continue
                seen[gone.path] = where
                model = RetiredModel(gone.path, gone.use, gone.reason, name, spec.display)
                found.append((model, spec.loc("retired", i)))
    return found


def _check_retired(
    retired: list[tuple[RetiredModel, Location]],
    served: Served,
    chain_paths: set[str],
    diags: Diagnostics,
) -> None:
    paths = {path: app for app, path in served}
    for gone, where in retired:
        if gone.path in paths:
            diags.error(
                where,
                f"retired {gone.path} is still served by app '{paths[gone.path]}'; "
                "remove the endpoint or the retired entry",
            )
        elif gone.path in chain_paths:
            diags.error(where, f"retired {gone.path} is still served as a chain")
        if gone.use not in paths and gone.use not in chain_paths:
            diags.error(where, f"retired {gone.path}: use {gone.use} is not served by any app")


def _front_door(
    app: AppModel,
    apps: dict[str, AppModel],
    app_specs: AppSpecs,
    served: Served,
    retired: list[tuple[RetiredModel, Location]],
    diags: Diagnostics,
) -> FleetModel:
    where = app_specs.definition.loc("app", "fleet")
    forwards: dict[str, ForwardModel] = {}
    for cls in app.classes:  # its own routes first: co-located ones run here
        for ep in cls.endpoints:
            forwards[ep.path] = ForwardModel(app.name, cls.name, ep, own=True)
    for spec in app_specs.files:  # routes it names to forward (reuse ... run: owner)
        for i, reuse in enumerate(spec.spec.reuse):
            target = served.get((reuse.app, reuse.path))
            if reuse.run != "owner" or target is None:
                continue  # run: here is its own; an unknown path is reported by project.py
            path = reuse.as_path or reuse.path
            if path in forwards:
                diags.error(spec.loc("reuse", i), f"{path} is already a route of '{app.name}'")
                continue
            cls, ep = target
            front = dataclasses.replace(ep, path=path, request_class=request_class_name(path))
            owner_path = reuse.path if path != reuse.path else ""
            forwards[path] = ForwardModel(reuse.app, cls, front, False, owner_path)
    owners: dict[str, str] = {}
    for other in sorted(apps.values(), key=lambda a: a.name):
        if other.name == app.name:
            continue
        for cls in other.classes:
            for ep in cls.endpoints:
                if ep.path in forwards:
                    if ep.path in owners:
                        diags.error(
                            where,
                            f"{ep.path} is served by apps '{owners[ep.path]}' and "
                            f"'{other.name}': the fleet URL can forward it to one only; rename "
                            f"one, or co-locate one in '{app.name}' with reuse:",
                        )
                    continue
                forwards[ep.path] = ForwardModel(other.name, cls.name, ep, own=False)
                owners[ep.path] = other.name
    chains = []
    for spec in app_specs.files:
        for i, chain in enumerate(spec.spec.chains):
            if chain.path in forwards:
                owner = forwards[chain.path].app
                diags.error(
                    spec.loc("chains", i, "path"),
                    f"chain {chain.path}: the path is already an endpoint of '{owner}'",
                )
                continue
            resolved = _chain(spec, i, chain, served, set(apps), diags)
            if resolved is not None:
                chains.append(resolved)
    timeouts = [f.endpoint.timeout for f in forwards.values()] + [c.timeout for c in chains]
    used = {f.app for f in forwards.values()} | {s.app for c in chains for s in c.steps}
    return FleetModel(
        label=f"{app.name}-{app.classes[0].url_label}",
        timeout=min(MAX_TIMEOUT, max(timeouts, default=60)),
        forwards=tuple(sorted(forwards.values(), key=lambda f: f.path)),
        chains=tuple(chains),
        retired=tuple(r for r, _ in retired),
        modules={name: apps[name].module for name in sorted(used)},
    )


def _as_parameter(param: ChainParameter) -> Parameter:
    return Parameter.model_validate(param.model_dump(exclude_unset=True))


def _chain(
    spec: LoadedSpec,
    index: int,
    chain: Chain,
    served: Served,
    app_names: set[str],
    diags: Diagnostics,
) -> ChainModel | None:
    before = len(diags.errors)

    def error(message: str, *path: str | int, key: bool = False) -> None:
        diags.error(spec.loc("chains", index, *path, key=key), f"{chain.path}: {message}")

    params = {name: _as_parameter(p) for name, p in chain.parameters.items()}
    used: set[str] = set()
    done: list[str] = []
    steps: list[ChainStepModel] = []
    timeout = 0
    for j, step in enumerate(chain.steps):
        at = ("steps", j)
        if step.name in done:
            error(f"step name '{step.name}' is used twice", *at, "name")
            continue
        target = served.get((step.app, step.path))
        if target is None:
            paths = sorted(p for a, p in served if a == step.app)
            known = (
                f"its endpoints: {', '.join(paths)}"
                if paths
                else ("it serves no endpoints" if step.app in app_names else "no such app")
            )
            error(
                f"step {step.name}: app '{step.app}' has no endpoint {step.path} ({known})",
                *at,
                "path",
            )
            done.append(step.name)
            continue
        cls, endpoint = target
        timeout += endpoint.timeout
        fields = {d.name: d.type.split("[")[0] for d in endpoint.docs}
        listed = ", ".join(fields)
        inputs: dict[str, str] = {}
        outputs: dict[str, str] = {}
        for field, source in step.inputs.items():
            if field not in fields:
                error(
                    f"step {step.name}: {step.path} has no field '{field}' ({listed})",
                    *at,
                    "inputs",
                    field,
                    key=True,
                )
                continue
            if source.endswith(".output"):
                earlier = source.removesuffix(".output")
                if earlier not in done:
                    error(
                        f"step {step.name}: '{source}' names no earlier step", *at, "inputs", field
                    )
                elif fields[field] not in MEDIA:
                    error(
                        f"step {step.name}: field '{field}' is {fields[field]}, but a step's "
                        "output is a media file",
                        *at,
                        "inputs",
                        field,
                    )
                outputs[field] = earlier
                continue
            if source not in params:
                error(
                    f"step {step.name}: '{source}' is not a parameter of the chain "
                    f"({', '.join(params) or 'none'})",
                    *at,
                    "inputs",
                    field,
                )
                continue
            used.add(source)
            if not _compatible(params[source].type, fields[field]):
                error(
                    f"step {step.name}: parameter '{source}' is {params[source].type}, but "
                    f"{step.path} field '{field}' is {fields[field]}",
                    *at,
                    "inputs",
                    field,
                )
            inputs[field] = source
        for field in step.values:
            if field not in fields:
                error(
                    f"step {step.name}: {step.path} has no field '{field}' ({listed})",
                    *at,
                    "values",
                    field,
                    key=True,
                )
            elif field in step.inputs:
                error(
                    f"step {step.name}: field '{field}' is set by both inputs and values",
                    *at,
                    "values",
                    field,
                    key=True,
                )
        required = {d.name for d in endpoint.docs if d.default == "required"}
        for field in sorted(required - set(step.inputs) - set(step.values)):
            error(f"step {step.name}: {step.path} needs field '{field}'; map it in inputs", *at)
        for field in sorted(required & set(inputs)):
            source = params[inputs[field]]
            if not source.required and source.default is None:
                error(
                    f"step {step.name}: {step.path} needs '{field}', but chain parameter "
                    f"'{inputs[field]}' is optional without a default",
                    *at,
                    "inputs",
                    field,
                )
        steps.append(
            ChainStepModel(step.name, step.app, cls, step.path, inputs, outputs, dict(step.values))
        )
        done.append(step.name)
    for name in chain.parameters:
        if name not in used:
            diags.warning(
                spec.loc("chains", index, "parameters", name, key=True),
                f"{chain.path}: parameter '{name}' feeds no step",
            )
    _check_examples(chain, params, error)
    if len(diags.errors) > before:
        return None
    return ChainModel(
        path=chain.path,
        request_class=request_class_name(chain.path),
        summary=chain.summary or f"POST {chain.path}",
        description=chain.description,
        fields=tuple(request_field(n, p) for n, p in params.items()),
        docs=tuple(param_doc(n, p) for n, p in params.items()),
        steps=tuple(steps),
        timeout=min(MAX_TIMEOUT, timeout),
        source=spec.display,
        examples=tuple(chain.examples),
    )


def _compatible(chain_type: str, step_type: str) -> bool:
    return any(chain_type in g and step_type in g for g in _GROUPS)


def _check_examples(chain: Chain, params: dict[str, Parameter], error) -> None:  # noqa: ANN001
    names = {alias: n for n, p in params.items() for alias in (n, *p.aliases)}
    for i, example in enumerate(chain.examples):
        given = set()
        for key, value in example.items():
            name = names.get(key)
            if name is None:
                error(f"example {i + 1}: unknown field '{key}'", "examples", i, key, key=True)
                continue
            given.add(name)
            problem = example_value_problem(params[name], value)
            if problem:
                error(f"example {i + 1}: field '{key}': {problem}", "examples", i, key)
        for name, param in params.items():
            if param.required and name not in given:
                error(f"example {i + 1}: missing required field '{name}'", "examples", i)
