"""Resolving one endpoint: workflow, bindings, request fields, outputs, examples.

Every check that needs the endpoint's workflow happens here, reported at the spec position of
the key that caused it (or at the node's line in the workflow file).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..comfy.catalog import Catalog
from ..comfy.checks import check_value, check_workflow, json_line_of_node
from ..comfy.workflow import Workflow, WorkflowError, is_link, load_workflow
from ..diagnostics import Diagnostics, Location, display_path
from ..spec.format import Endpoint, InputRef, Parameter, WorkflowRoute
from ..spec.load import LoadedSpec
from .fields import param_doc, param_model, request_field, warmup_request
from .model import EndpointModel, ParamDoc, ParamModel, RequestField
from .paramtypes import PARAM_TYPES
from .pyliteral import py_string


@dataclass
class EndpointContext:
    spec: LoadedSpec
    index: int
    endpoint: Endpoint
    diags: Diagnostics
    workflows_dir: Path
    root: Path

    def loc(self, *path: str | int, key: bool = False) -> Location:
        return self.spec.loc("endpoints", self.index, *path, key=key)

    def error(self, message: str, *path: str | int, key: bool = False) -> None:
        self.diags.error(self.loc(*path, key=key), f"{self.endpoint.path}: {message}")


def resolve_endpoint(
    ctx: EndpointContext, *, gpu: str, timeout: int, catalog: Catalog | None
) -> EndpointModel | None:
    ep = ctx.endpoint
    before = len(ctx.diags.errors)
    workflow_path = ctx.workflows_dir / ep.workflow
    try:
        workflow = load_workflow(workflow_path)
    except WorkflowError as exc:
        shown = display_path(workflow_path, ctx.root)
        ctx.error(f"{shown}: {exc}".replace(f"{workflow_path}", shown), "workflow")
        return None

    params: list[ParamModel] = []
    bound: set[tuple[str, str]] = set()
    names = set(ep.parameters)
    for name, param in ep.parameters.items():
        targets = _resolve_targets(ctx, workflow, name, param, catalog)
        bound.update(targets)
        _check_param(ctx, name, param, names, workflow, targets, catalog)
        params.append(param_model(name, param, targets))
    _check_aliases(ctx)
    _check_groups(ctx, names)
    outputs = _resolve_output(ctx, workflow, catalog)
    _check_headers(ctx, names)
    prefix_nodes = tuple(
        nid
        for nid in workflow.nodes
        if isinstance(workflow.inputs(nid).get("filename_prefix"), str)
        and (nid, "filename_prefix") not in bound
    )
    if catalog is not None:
        _check_catalog(ctx, workflow, workflow_path, bound, catalog)
    _check_examples(ctx)
    if isinstance(ep.warmup, dict):
        _check_request(ctx, ep.warmup, ("warmup",), "warm-up")
    if len(ctx.diags.errors) > before:
        return None
    return EndpointModel(
        path=ep.path,
        request_class=request_class_name(ep.path),
        summary=ep.summary or f"POST {ep.path}",
        description=ep.description,
        workflow_file=ep.workflow,
        fields=tuple(request_field(n, p) for n, p in ep.parameters.items()),
        params=tuple(params),
        outputs=outputs,
        response=ep.output.response,
        timeout=timeout,
        gpu=gpu,
        headers=dict(ep.headers),
        require_one_of=tuple(tuple(g) for g in ep.require_one_of),
        prefix_nodes=prefix_nodes,
        max_body_bytes=ep.max_body_mb * 1024 * 1024 if ep.max_body_mb else None,
        examples=tuple(ep.examples),
        source=ctx.spec.display,
        warmup=warmup_request(ep),
        docs=tuple(param_doc(n, p) for n, p in ep.parameters.items()),
        model_names=tuple(f"{m.folder}/{m.filename}" for m in ep.models),
        custom_node_names=tuple(f"{c.key}@{c.pin}" for c in ep.custom_nodes),
    )


def resolve_workflow_route(
    spec: LoadedSpec, route: WorkflowRoute, *, gpu: str, timeout: int
) -> EndpointModel:
    """A route running the client's own API-format graph: one field, ``workflow``."""
    description = (
        "An API-format ComfyUI workflow (Workflow > Export (API)); checked against the "
        "server's nodes before it is queued."
    )
    field = RequestField("workflow", "dict[str, Any]", f"description={py_string(description)}")
    return EndpointModel(
        path=route.path,
        request_class=request_class_name(route.path),
        summary=route.summary or f"POST {route.path}",
        description=None,
        workflow_file="",
        fields=(field,),
        params=(),
        outputs=(),
        response="raw",
        timeout=timeout,
        gpu=gpu,
        headers={},
        require_one_of=(),
        prefix_nodes=(),
        examples=tuple(route.examples),
        source=spec.display,
        warmup=None,
        docs=(
            ParamDoc("workflow", "object", "required", f"≤ {route.max_nodes} nodes", description),
        ),
        model_names=tuple(f"{m.folder}/{m.filename}" for m in route.models),
        custom_node_names=tuple(f"{c.key}@{c.pin}" for c in route.custom_nodes),
        client_workflow_max_nodes=route.max_nodes,
        max_body_bytes=route.max_body_mb * 1024 * 1024 if route.max_body_mb else None,
        max_output_pixels=route.max_output_pixels,
        input_files=tuple(route.input_files),
    )


def request_class_name(path: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", path)
    name = "".join(w[:1].upper() + w[1:] for w in words if w)
    if not name or name[0].isdigit():
        name = "Endpoint" + name
    return name + "Request"


# --- bindings -------------------------------------------------------------------------------


def _resolve_targets(
    ctx: EndpointContext, workflow: Workflow, name: str, param: Parameter, catalog: Catalog | None
) -> list[tuple[str, str]]:
    targets: list[tuple[str, str]] = []
    for i, ref in enumerate(param.bindings):
        where = ("parameters", name, "bind") + ((i,) if isinstance(param.bind, list) else ())
        node_id = _resolve_node(ctx, workflow, ref, where)
        if node_id is None:
            continue
        inputs = workflow.inputs(node_id)
        class_type = workflow.class_type(node_id)
        node_class = catalog.get(class_type) if catalog else None
        if ref.input not in inputs and not (node_class and ref.input in node_class.inputs):
            existing = ", ".join(inputs) or "none"
            ctx.error(
                f"parameter '{name}': node {node_id} ({class_type}) has no input "
                f"'{ref.input}'; its inputs: {existing}",
                *where,
                "input",
            )
            continue
        if is_link(inputs.get(ref.input)):
            source = inputs[ref.input][0]
            ctx.error(
                f"parameter '{name}': input '{ref.input}' of node {node_id} ({class_type}) is a "
                f"link from node {source}; bind a literal input instead",
                *where,
                "input",
            )
            continue
        targets.append((node_id, ref.input))
    return targets


def _resolve_node(
    ctx: EndpointContext, workflow: Workflow, ref: InputRef, where: tuple[str | int, ...]
) -> str | None:
    if ref.node is not None:
        if ref.node in workflow.nodes:
            return ref.node
        ctx.error(
            f"no node '{ref.node}' in {ctx.endpoint.workflow}; nodes: {workflow.describe_nodes()}",
            *where,
            "node",
        )
        return None
    ids = workflow.ids_with_title(ref.title or "")
    if len(ids) == 1:
        return ids[0]
    if not ids:
        titles = ", ".join(repr(t) for nid in workflow.nodes if (t := workflow.title(nid)))
        ctx.error(
            f"no node titled '{ref.title}' in {ctx.endpoint.workflow}; titles: {titles or 'none'}",
            *where,
            "title",
        )
    else:
        ctx.error(
            f"title '{ref.title}' is not unique in {ctx.endpoint.workflow} (nodes "
            f"{', '.join(ids)}); bind by node id",
            *where,
            "title",
        )
    return None


def _check_param(
    ctx: EndpointContext,
    name: str,
    param: Parameter,
    names: set[str],
    workflow: Workflow,
    targets: list[tuple[str, str]],
    catalog: Catalog | None,
) -> None:
    ptype = PARAM_TYPES[param.type]
    where = ("parameters", name)
    if param.min is not None and param.max is not None and param.min > param.max:
        ctx.error(
            f"parameter '{name}': min {param.min} is greater than max {param.max}", *where, "min"
        )
    if (param.min is not None or param.max is not None or param.multiple_of) and not ptype.numeric:
        ctx.error(f"parameter '{name}': min/max/multiple_of need a numeric type", *where, "type")
    if param.type == "enum" and not param.choices:
        ctx.error(f"parameter '{name}': type enum needs 'choices'", *where, "type")
    if param.choices and param.type != "enum":
        ctx.error(f"parameter '{name}': 'choices' is only for type enum", *where, "choices")
    if param.max_items is not None and not ptype.media:
        ctx.error(f"parameter '{name}': max_items is only for image, video and mask", *where)
    if param.required and param.default is not None:
        ctx.error(
            f"parameter '{name}': a required parameter cannot have a default", *where, "default"
        )
    _check_default(ctx, name, param)
    if param.blank_is_default and (param.type != "string" or not param.default):
        ctx.error(
            f"parameter '{name}': blank_is_default needs a string parameter with a non-empty "
            "default",
            *where,
            "blank_is_default",
        )
    if param.prepend_to is not None:
        target = ctx.endpoint.parameters.get(param.prepend_to)
        if target is None or target.type != "string":
            ctx.error(
                f"parameter '{name}': prepend_to '{param.prepend_to}' must name a string parameter",
                *where,
                "prepend_to",
            )
    if param.format is not None:
        unknown = _format_fields(param.format) - names
        if unknown:
            ctx.error(
                f"parameter '{name}': format uses unknown name(s) {', '.join(sorted(unknown))}",
                *where,
                "format",
            )
    if param.sets is not None:
        _check_sets(ctx, name, param, names)
    if param.map is not None:
        _check_map(ctx, name, param)
    uses = (param.bindings, param.prepend_to, param.sets, param.header)
    if param.ignored and any(u for u in uses):
        ctx.error(f"parameter '{name}' is 'ignored' but also used", *where, "ignored")
    elif not param.ignored and not any(u for u in uses):
        ctx.error(
            f"parameter '{name}' is bound to nothing: add 'bind', 'prepend_to' or 'sets', "
            "or mark it 'ignored: true' (accepted for compatibility, no effect)",
            *where,
        )
    for node_id, input_name in targets:
        current = workflow.inputs(node_id).get(input_name)
        _check_fit(ctx, name, param, node_id, input_name, current, workflow, catalog)


def _check_default(ctx: EndpointContext, name: str, param: Parameter) -> None:
    default = param.default
    if default is None:
        return
    where = ("parameters", name, "default")
    if param.type == "seed" and default == "random":
        return
    ptype = PARAM_TYPES[param.type]
    if param.max_items is not None:
        ctx.error(f"parameter '{name}': media lists cannot have a default", *where)
        return
    if not ptype.accepts(default):
        ctx.error(f"parameter '{name}': default {default!r} is not a valid {param.type}", *where)
        return
    if not ptype.numeric:
        if param.choices and default not in param.choices:
            ctx.error(f"parameter '{name}': default {default!r} is not among the choices", *where)
        return
    if param.min is not None and default < param.min:
        ctx.error(f"parameter '{name}': default {default!r} is below min {param.min}", *where)
    if param.max is not None and default > param.max:
        ctx.error(f"parameter '{name}': default {default!r} is above max {param.max}", *where)
    if param.choices and default not in param.choices:
        ctx.error(f"parameter '{name}': default {default!r} is not among the choices", *where)


def _check_sets(ctx: EndpointContext, name: str, param: Parameter, names: set[str]) -> None:
    where = ("parameters", name, "sets")
    for choice, values in (param.sets or {}).items():
        if param.choices and choice not in [str(c) for c in param.choices]:
            ctx.error(
                f"parameter '{name}': sets key {choice!r} is not among the choices", *where, choice
            )
        for other in values:
            if other not in names:
                ctx.error(f"parameter '{name}': sets unknown parameter '{other}'", *where, choice)


def _check_map(ctx: EndpointContext, name: str, param: Parameter) -> None:
    """Every value the request may send needs an entry: booleans both, enums every choice."""
    where = ("parameters", name, "map")
    if param.type == "bool":
        needed = {"true", "false"}
    elif param.choices:
        needed = {str(c) for c in param.choices}
    else:
        ctx.error(f"parameter '{name}': map needs a bool or enum parameter", *where)
        return
    missing = needed - set(param.map or {})
    extra = set(param.map or {}) - needed
    if missing:
        ctx.error(f"parameter '{name}': map has no value for {', '.join(sorted(missing))}", *where)
    if extra:
        ctx.error(f"parameter '{name}': map keys {', '.join(sorted(extra))} are never sent", *where)


def _check_fit(
    ctx: EndpointContext,
    name: str,
    param: Parameter,
    node_id: str,
    input_name: str,
    current: Any,
    workflow: Workflow,
    catalog: Catalog | None,
) -> None:
    ptype = PARAM_TYPES[param.type]
    class_type = workflow.class_type(node_id)
    where = ("parameters", name, "type")
    node_class = catalog.get(class_type) if catalog else None
    spec = node_class.inputs.get(input_name) if node_class else None
    label = f"input '{input_name}' of node {node_id} ({class_type})"
    if param.format is not None:
        if spec is not None and spec.type not in ("STRING", "COMBO"):
            ctx.error(
                f"parameter '{name}' has a format (a string) but {label} is {spec.type}", *where
            )
        return
    if param.map is not None:
        _check_map_values(ctx, name, param, spec, current, label)
        return
    if spec is not None:
        if spec.type not in ptype.input_types:
            ctx.error(
                f"parameter '{name}' of type {param.type} cannot set {label} of type {spec.type}",
                *where,
            )
            return
        _check_range(ctx, name, param, spec, label)
        return
    if current is not None and not ptype.media and not ptype.fits(current):
        ctx.error(
            f"parameter '{name}' ({param.type}) does not fit {label}, which holds {current!r}",
            *where,
        )
    if ptype.media and current is not None and not isinstance(current, str):
        ctx.error(
            f"parameter '{name}' ({param.type}) needs a file-name input; {label} holds {current!r}",
            *where,
        )


def _check_map_values(
    ctx: EndpointContext, name: str, param: Parameter, spec: Any, current: Any, label: str
) -> None:
    """A map's values are what the input receives: check them, not the request type."""
    where = ("parameters", name, "map")
    for value in (param.map or {}).values():
        if spec is not None:
            problem = check_value(spec, value)
        elif (
            current is None
            or isinstance(current, bool) == isinstance(value, bool)
            and (isinstance(current, (int, float)) == isinstance(value, (int, float)))
        ):
            problem = None
        else:
            problem = f"{value!r} does not fit the value it replaces ({current!r})"
        if problem:
            ctx.error(f"parameter '{name}': map value for {label}: {problem}", *where)


def _check_range(ctx: EndpointContext, name: str, param: Parameter, spec: Any, label: str) -> None:
    where = ("parameters", name)
    if spec.type in ("INT", "FLOAT"):
        low, high = spec.minimum, spec.maximum
        if param.min is not None and low is not None and param.min < low:
            ctx.error(
                f"parameter '{name}': min {param.min} is below the minimum {low} of {label}",
                *where,
                "min",
            )
        if param.max is not None and high is not None and param.max > high:
            ctx.error(
                f"parameter '{name}': max {param.max} is above the maximum {high} of {label}",
                *where,
                "max",
            )
        if isinstance(param.default, (int, float)) and not isinstance(param.default, bool):
            problem = check_value(spec, param.default)
            if problem:
                ctx.error(f"parameter '{name}': default for {label}: {problem}", *where, "default")
    if spec.type == "COMBO" and spec.choices:
        for choice in param.choices or []:
            if choice not in spec.choices:
                ctx.error(
                    f"parameter '{name}': choice {choice!r} is not accepted by {label}",
                    *where,
                    "choices",
                )
        if (
            param.type != "enum"
            and isinstance(param.default, str)
            and param.default not in spec.choices
        ):
            ctx.error(
                f"parameter '{name}': default {param.default!r} is not accepted by {label}",
                *where,
                "default",
            )


def _check_aliases(ctx: EndpointContext) -> None:
    seen: dict[str, str] = {n: n for n in ctx.endpoint.parameters}
    for name, param in ctx.endpoint.parameters.items():
        for alias in param.aliases:
            if alias in seen:
                ctx.error(
                    f"alias '{alias}' of parameter '{name}' is already used by '{seen[alias]}'",
                    "parameters",
                    name,
                    "aliases",
                )
            seen[alias] = name


def _check_groups(ctx: EndpointContext, names: set[str]) -> None:
    for i, group in enumerate(ctx.endpoint.require_one_of):
        for member in group:
            if member not in names:
                ctx.error(f"require_one_of names unknown parameter '{member}'", "require_one_of", i)
            elif ctx.endpoint.parameters[member].required:
                ctx.error(
                    f"require_one_of member '{member}' must not be required", "require_one_of", i
                )


def _check_headers(ctx: EndpointContext, names: set[str]) -> None:
    for header, value in ctx.endpoint.headers.items():
        unknown = _format_fields(value) - names
        if unknown:
            ctx.error(
                f"header {header} uses unknown parameter(s) {', '.join(sorted(unknown))}",
                "headers",
                header,
            )


def _format_fields(template: str) -> set[str]:
    """Names a format string uses; positional or malformed fields are reported as such."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return {f"<malformed format string: {exc}>"}
    names = {f.split(".")[0].split("[")[0] for f in fields}
    return {
        n if n and not n.isdigit() else "<positional {} field: name a parameter>" for n in names
    }


def _resolve_output(
    ctx: EndpointContext, workflow: Workflow, catalog: Catalog | None
) -> tuple[str, ...]:
    out = ctx.endpoint.output
    ref = InputRef(node=out.node, title=out.title, input="-")
    node_id = _resolve_node(ctx, workflow, ref, ("output",))
    if node_id is None:
        return ()
    node_class = catalog.get(workflow.class_type(node_id)) if catalog else None
    if node_class is not None and not node_class.output_node:
        ctx.error(
            f"output node {node_id} ({node_class.name}) is not an output node; "
            "return the files of a save or preview node",
            "output",
        )
    return (node_id,)


def _check_catalog(
    ctx: EndpointContext,
    workflow: Workflow,
    path: Path,
    bound: set[tuple[str, str]],
    catalog: Catalog,
) -> None:
    custom = ctx.endpoint.custom_nodes
    if not custom:
        provided: set[str] | None = set()
    elif all(c.nodes for c in custom):
        provided = {n for c in custom for n in c.nodes}
    else:
        provided = None
    text = path.read_text(encoding="utf-8")
    shown = display_path(path, ctx.root)

    def report(node_id: str, message: str) -> None:
        line = json_line_of_node(text, node_id)
        ctx.diags.error(Location(shown, line, 1), f"node {node_id}: {message}")

    files = {m.filename for m in ctx.endpoint.models}
    check_workflow(
        workflow, catalog, bound=bound, custom_classes=provided, model_files=files, report=report
    )


def _check_examples(ctx: EndpointContext) -> None:
    ep = ctx.endpoint
    if not ep.examples:
        ctx.diags.warning(ctx.loc("path"), f"{ep.path}: no 'examples:' request given")
    for i, example in enumerate(ep.examples):
        _check_request(ctx, example, ("examples", i), f"example {i + 1}")


def _check_request(
    ctx: EndpointContext, request: dict[str, Any], where: tuple[str | int, ...], label: str
) -> None:
    """A request written in the spec (example, warm-up) must be one the endpoint accepts."""
    ep = ctx.endpoint
    names = {alias: n for n, p in ep.parameters.items() for alias in (n, *p.aliases)}
    given = set()
    for key, value in request.items():
        name = names.get(key)
        if name is None:
            ctx.error(f"{label}: unknown field '{key}'", *where, key, key=True)
            continue
        given.add(name)
        problem = example_value_problem(ep.parameters[name], value)
        if problem:
            ctx.error(f"{label}: field '{key}': {problem}", *where, key)
    for name, param in ep.parameters.items():
        if param.required and name not in given:
            ctx.error(f"{label}: missing required field '{name}'", *where)
    for group in ep.require_one_of:
        if len(given & set(group)) != 1:
            ctx.error(f"{label}: give exactly one of {', '.join(group)}", *where)


def example_value_problem(param: Parameter, value: Any) -> str | None:
    ptype = PARAM_TYPES[param.type]
    if param.max_items is not None and isinstance(value, list):
        return None if all(isinstance(v, str) for v in value) else "expects media strings"
    if not ptype.accepts(value):
        return f"expects {param.type}, got {value!r}"
    if param.choices and value not in param.choices:
        return f"{value!r} is not among the choices"
    if not ptype.numeric:
        return None
    if param.min is not None and value < param.min:
        return f"{value!r} is below min {param.min}"
    if param.max is not None and value > param.max:
        return f"{value!r} is above max {param.max}"
    return None
