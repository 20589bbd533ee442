"""Resolving one endpoint: workflow, bindings, request fields, outputs, examples.

Every check that needs the endpoint's workflow happens here, reported at the spec position of
the key that caused it (or at the node's line in the workflow file).
"""

from __future__ import annotations

import dataclasses
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..comfy.catalog import Catalog
from ..comfy.checks import check_value, check_workflow, json_line_of_node
from ..comfy.workflow import Workflow, WorkflowError, graph_problems, is_link, load_workflow
from ..diagnostics import Diagnostics, Location, display_path
from ..spec.format import Endpoint, InputRef, Parameter, WorkflowRoute
from ..spec.load import LoadedSpec
from .arch import MODEL_FILE_INPUTS
from .fields import param_doc, param_model, python_names, request_field, warmup_request
from .model import EndpointModel, ParamDoc, ParamModel, RequestField, SpecPlaces
from .paramtypes import PARAM_TYPES, SEED_MAX
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
    problem = _workflow_path_problem(ep.workflow, workflow_path, ctx.workflows_dir)
    if problem:
        ctx.error(problem, "workflow")
        return None
    shown = display_path(workflow_path, ctx.root)
    try:
        workflow = load_workflow(workflow_path)
    except WorkflowError as exc:
        if exc.line is not None:
            ctx.diags.error(Location(shown, exc.line, 1), str(exc))
        else:
            ctx.error(f"{shown}: {exc}".replace(f"{workflow_path}", shown), "workflow")
        return None
    graph = graph_problems(workflow)
    if graph:
        text = workflow_path.read_text(encoding="utf-8")
        for node_id, message in graph:
            line = json_line_of_node(text, node_id)
            ctx.diags.error(Location(shown, line, 1), f"node {node_id}: {message}")

    params: list[ParamModel] = []
    bound: set[tuple[str, str]] = set()
    bound_by: dict[tuple[str, str], str] = {}
    names = set(ep.parameters)
    for name, param in ep.parameters.items():
        targets = _resolve_targets(ctx, workflow, name, param, catalog)
        for target in targets:
            first = bound_by.get(target)
            if first is not None and first != name and not _exclusive(ep, name, first):
                ctx.error(
                    f"parameter '{name}': input '{target[1]}' of node {target[0]} is already "
                    f"bound to parameter '{first}'; one input takes one parameter (unless "
                    "require_one_of makes them exclusive; use 'sets' or 'map' to derive it)",
                    "parameters",
                    name,
                    "bind",
                )
            bound_by.setdefault(target, name)
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
    private_nodes, private_files = _private_models(ctx, workflow, bound)
    if catalog is not None:
        _check_catalog(ctx, workflow, workflow_path, bound, catalog)
    _check_examples(ctx)
    if isinstance(ep.warmup, dict):
        _check_request(ctx, ep.warmup, ("warmup",), "warm-up")
    if len(ctx.diags.errors) > before:
        return None
    py_names = python_names(list(ep.parameters))
    return EndpointModel(
        path=ep.path,
        request_class=request_class_name(ep.path),
        summary=ep.summary or f"POST {ep.path}",
        description=ep.description,
        workflow_file=ep.workflow,
        fields=tuple(request_field(n, p, py_names[n]) for n, p in ep.parameters.items()),
        params=tuple(params),
        outputs=outputs,
        response=ep.output.response,
        timeout=timeout,
        gpu=gpu,
        headers=dict(ep.headers),
        require_one_of=tuple(tuple(g) for g in ep.require_one_of),
        prefix_nodes=prefix_nodes,
        max_body_bytes=ep.max_body_mb * 1024 * 1024 if ep.max_body_mb else None,
        activation_gb=ep.activation_gb,
        examples=tuple(ep.examples),
        source=ctx.spec.display,
        warmup=warmup_request(ep),
        docs=tuple(param_doc(n, p) for n, p in ep.parameters.items()),
        model_names=tuple(f"{m.folder}/{m.filename}" for m in ep.models),
        custom_node_names=tuple(f"{c.key}@{c.pin}" for c in ep.custom_nodes),
        private_nodes=private_nodes,
        private_files=private_files,
        places=SpecPlaces(
            endpoint=ctx.loc("path"),
            params={n: ctx.loc("parameters", n, key=True) for n in ep.parameters},
            examples=tuple(ctx.loc("examples", i) for i in range(len(ep.examples))),
            warmup=ctx.loc("warmup"),
        ),
    )


def resolve_workflow_route(
    spec: LoadedSpec, index: int, route: WorkflowRoute, *, gpu: str, timeout: int
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
        places=SpecPlaces(
            endpoint=spec.loc("workflow_routes", index, "path"),
            examples=tuple(
                spec.loc("workflow_routes", index, "examples", i)
                for i in range(len(route.examples))
            ),
        ),
    )


BUILTIN_ROUTES = ("/health", "/ready", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")
"""Routes every generated app serves itself (runtime/server.py and FastAPI)."""
JOBS_PREFIX = "/jobs"
"""Job routes: POST /jobs/<path>, GET/DELETE /jobs/{id}; an endpoint below it would shadow them."""


def path_problem(path: str) -> str | None:
    """Why an endpoint path cannot be served as written, or None."""
    segments = path.split("/")[1:]
    if path != "/" and path.endswith("/"):
        return f"path {path} ends with '/'; write it without (routes match exactly)"
    if any(seg == "" for seg in segments):
        return f"path {path} has an empty segment ('//')"
    if any(seg in (".", "..") for seg in segments):
        return f"path {path} has a '.' or '..' segment; clients' URLs normalise it away"
    if not re.fullmatch(r"(/[A-Za-z0-9][A-Za-z0-9._-]*)+", path):
        return f"path {path}: each segment is letters, digits, '.', '_', '-', starting alnum"
    lowered = path.lower()
    if lowered in BUILTIN_ROUTES:
        return f"path {path} is a built-in route of every app ({', '.join(BUILTIN_ROUTES)})"
    if lowered == JOBS_PREFIX or lowered.startswith(JOBS_PREFIX + "/"):
        return f"path {path}: {JOBS_PREFIX}/ holds the job routes (POST {JOBS_PREFIX}/<path>)"
    return None


def _workflow_path_problem(name: str, path: Path, workflows_dir: Path) -> str | None:
    """A workflow is a .json file inside comfy_workflows/ (it is shipped into the image)."""
    if not name.endswith(".json"):
        return f"workflow '{name}' must be a .json file in comfy_workflows/"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return f"workflow {name!r} contains a control character"
    if Path(name).is_absolute() or ".." in Path(name).parts or "\\" in name:
        return f"workflow '{name}' must be a path inside comfy_workflows/ (no '..', not absolute)"
    if path.exists() and not path.is_file():
        return f"workflow '{name}' is not a file"
    return None


MODULE_NAMES = frozenset(
    {
        "APP_NAME", "CHAINS", "CLASSES", "COMFYUI_VERSION", "ENDPOINTS", "FLEET_MODULES",
        "FORWARDS", "MODELS", "MODELS_DIR", "REMOTE_WORKFLOWS", "RETIRED", "SETTINGS", "WORKFLOWS",
    }
)  # fmt: skip
"""Upper-case names templates/app.py.j2 defines besides the endpoints' own."""
CLASS_SUFFIXES = ("_ENDPOINTS", "_SETTINGS", "_COMFY_ARGS")  # a class's constants


def unique_names(endpoints: list[EndpointModel]) -> list[EndpointModel]:
    """Endpoints whose derived Python names (constant, request class) are unique in their
    module and clear of the module's own names: paths are free (``/a-b`` and ``/a_b``,
    ``/models-dir``), the names are derived."""
    taken: set[str] = set(MODULE_NAMES)
    out = []
    for ep in endpoints:
        constant, request_class = ep.constant, ep.request_class
        while (
            constant in taken or constant.endswith(CLASS_SUFFIXES) or constant.startswith("CHAIN_")
        ):
            constant += "_E"
        while request_class in taken:
            request_class = request_class.removesuffix("Request") + "_Request"
        taken.update({constant, request_class})
        if (constant, request_class) != (ep.constant, ep.request_class):
            ep = dataclasses.replace(ep, constant_name=constant, request_class=request_class)
        out.append(ep)
    return out


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
    if param.choices:
        seen = [repr(c) for c in param.choices]
        twice = sorted({c for c in seen if seen.count(c) > 1})
        if twice:
            ctx.error(
                f"parameter '{name}': choice {', '.join(twice)} given twice", *where, "choices"
            )
    if param.type == "seed":
        for bound_key in ("min", "max"):
            value = getattr(param, bound_key)
            if value is not None and not 0 <= value <= SEED_MAX:
                ctx.error(
                    f"parameter '{name}': a seed's {bound_key} must be within 0..{SEED_MAX}",
                    *where,
                    bound_key,
                )
    for wire in (name, *param.aliases):
        if wire in RESERVED_FIELDS:
            ctx.error(
                f"parameter '{name}': field name '{wire}' is reserved ({RESERVED_FIELDS[wire]})",
                *where,
                key=wire == name,
            )
    if param.choices and param.type != "enum":
        ctx.error(f"parameter '{name}': 'choices' is only for type enum", *where, "choices")
    if param.max_items is not None and not ptype.media:
        ctx.error(f"parameter '{name}': max_items is only for image, video and mask", *where)
    for key in ("min_side", "max_pixels"):
        if getattr(param, key) is not None and param.type not in ("image", "mask"):
            ctx.error(f"parameter '{name}': {key} is only for image and mask", *where, key)
    if param.required and param.default is not None:
        ctx.error(
            f"parameter '{name}': a required parameter cannot have a default", *where, "default"
        )
    for key in ("node_errors", "node_warnings"):
        said = getattr(param, key)
        if said is None:
            continue
        if param.ignored:
            ctx.error(
                f"parameter '{name}': an ignored parameter reaches no node ({key})", *where, key
            )
        for part, message in said.items():
            if not part.strip() or not message.strip():
                ctx.error(
                    f"parameter '{name}': {key} needs a message part and a message "
                    f"(got {part!r}: {message!r})",
                    *where,
                    key,
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
        for problem in _format_problems(param.format, names):
            ctx.error(f"parameter '{name}': format {problem}", *where, "format")
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
    problem = _number_problem(param, default)
    if problem:
        ctx.error(f"parameter '{name}': default {problem}", *where)


def _check_sets(ctx: EndpointContext, name: str, param: Parameter, names: set[str]) -> None:
    where = ("parameters", name, "sets")
    for choice, values in (param.sets or {}).items():
        if param.choices and choice not in [str(c) for c in param.choices]:
            ctx.error(
                f"parameter '{name}': sets key {choice!r} is not among the choices", *where, choice
            )
        for other, value in values.items():
            if other not in names:
                ctx.error(f"parameter '{name}': sets unknown parameter '{other}'", *where, choice)
                continue
            problem = example_value_problem(ctx.endpoint.parameters[other], value)
            if problem:
                message = f"parameter '{name}': sets '{other}' to a value it refuses: {problem}"
                ctx.error(message, *where, choice, other)


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
    declared = {m.filename for m in ctx.endpoint.models}
    for value in (param.map or {}).values():
        if spec is not None and spec.type == "COMBO" and value in declared:
            problem = None
        elif spec is not None:
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
        declared = {m.filename for m in ctx.endpoint.models}  # present once the image is built
        for choice in param.choices or []:
            if choice not in spec.choices and choice not in declared:
                ctx.error(
                    f"parameter '{name}': choice {choice!r} is not accepted by {label}",
                    *where,
                    "choices",
                )
        if (
            param.type != "enum"
            and isinstance(param.default, str)
            and param.default not in spec.choices
            and param.default not in declared
        ):
            ctx.error(
                f"parameter '{name}': default {param.default!r} is not accepted by {label}",
                *where,
                "default",
            )


def _exclusive(ep: Endpoint, a: str, b: str) -> bool:
    """Whether a request gives at most one of two parameters (a require_one_of group)."""
    return any(a in group and b in group for group in ep.require_one_of)


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


RUNTIME_HEADERS = frozenset(
    h.lower()
    for h in (
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Content-Disposition",
        "Transfer-Encoding",
        "Connection",
        "Date",
        "Server",
        "Set-Cookie",
        "Location",
        "WWW-Authenticate",
        "X-Execution-Time-Sec",
        "X-GPU-Type",
        "X-Cost-USD",
        "X-Queue-Time-Sec",
        "X-Request-Id",
        "X-Ryla-Signature",
    )
)
"""Response headers the runtime (or HTTP itself) sets; a spec may not replace them."""

SEED_HEADER = "x-seed"
"""Reports the seed a request ran with: only a seed parameter's ``header:`` may set it."""

RESERVED_FIELDS = {
    "webhook_url": "the job route POST /jobs/<path> adds it for the webhook",
}
"""Request field names the runtime adds to an endpoint's request model."""

_HTTP_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token


def _header_problem(header: str) -> str | None:
    if not _HTTP_TOKEN.match(header):
        return f"'{header}' is not a valid HTTP header name (RFC 9110 token)"
    if header.lower() in RUNTIME_HEADERS:
        return f"response header {header} is set by the runtime; choose another name"
    return None


def _private_models(
    ctx: EndpointContext, workflow: Workflow, bound: set[tuple[str, str]]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """With ``private_models``: the loaders of a diffusion model (a constant ``ckpt_name`` or
    ``unet_name``) and the declared files they load. The runtime gives those nodes an input of
    the endpoint's own, so ComfyUI caches their outputs (and so everything built on them) apart
    from every other endpoint's."""
    ep = ctx.endpoint
    if not ep.private_models:
        return (), ()
    bound_loaders = False
    nodes: list[str] = []
    files: list[str] = []
    declared = {m.filename: f"{m.folder}/{m.filename}" for m in ep.models}
    for node_id in workflow.nodes:
        inputs = workflow.inputs(node_id)
        for name in MODEL_FILE_INPUTS:
            value = inputs.get(name)
            if (node_id, name) in bound:
                bound_loaders = True
                ctx.error(
                    f"private_models: node {node_id}'s {name} is bound to a parameter; a model "
                    "the client picks cannot be loaded apart (each value would be its own copy)",
                    "private_models",
                )
            elif isinstance(value, str) and not is_link(value):
                nodes.append(node_id)
                if value in declared:
                    files.append(declared[value])
    if not nodes and not bound_loaders:
        ctx.error(
            "private_models: the workflow has no node that loads a diffusion model (an input "
            + " or ".join(MODEL_FILE_INPUTS)
            + "); there is nothing to load apart",
            "private_models",
        )
    return tuple(dict.fromkeys(nodes)), tuple(dict.fromkeys(files))


def _check_headers(ctx: EndpointContext, names: set[str]) -> None:
    seen: dict[str, str] = {}
    for name, param in ctx.endpoint.parameters.items():
        if param.header is None:
            continue
        problem = _header_problem(param.header)
        if problem is None and param.header.lower() == SEED_HEADER and param.type != "seed":
            problem = f"{param.header} reports the seed used; only a seed parameter sets it"
        first = seen.get(param.header.lower())
        if problem is None and first is not None and not _exclusive(ctx.endpoint, name, first):
            problem = f"response header {param.header} is already reported by parameter '{first}'"
        if problem:
            ctx.error(f"parameter '{name}': {problem}", "parameters", name, "header")
        seen.setdefault(param.header.lower(), name)
    for header, value in ctx.endpoint.headers.items():
        problem = _header_problem(header)
        if problem is None and header.lower() == SEED_HEADER:
            problem = f"{header} reports the seed used; set it with a seed parameter's 'header:'"
        if problem is None and header.lower() in seen:
            first = seen[header.lower()]
            problem = f"response header {header} is already reported by parameter '{first}'"
        if problem:
            ctx.error(problem, "headers", header, key=True)
            continue
        seen[header.lower()] = "headers"
        for problem in _format_problems(value, names, "parameter(s)"):
            ctx.error(f"header {header} {problem}", "headers", header)
        if not value.isprintable() or not is_latin1(value):
            ctx.error(f"header {header}: HTTP cannot send {value!r}", "headers", header)


def is_latin1(text: str) -> bool:
    """Whether HTTP/1.1 can carry ``text`` in a header value (ISO-8859-1)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _format_problems(template: str, names: set[str], unknown_noun: str = "name(s)") -> list[str]:
    """What is wrong with a format string: only ``{parameter}`` fields are allowed, no
    attribute, index, conversion or format spec (``{name.__class__}`` prints internals)."""
    try:
        parts = [(f, c, sp) for _, f, sp, c in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return [f"malformed format string: {exc}"]
    problems, unknown = [], set()
    for field, conversion, spec in parts:
        if not field or field.isdigit():
            problems.append("uses a positional {} field: name a parameter")
        elif conversion or spec or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field):
            shown = field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            problems.append(f"field {{{shown}}} must be a plain {{parameter}} name")
        elif field not in names:
            unknown.add(field)
    if unknown:
        problems.append(f"uses unknown {unknown_noun} {', '.join(sorted(unknown))}")
    return problems


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
    if catalog.live:
        _check_custom_nodes_loaded(ctx, workflow, catalog)
    check_workflow(
        workflow, catalog, bound=bound, custom_classes=provided, model_files=files, report=report
    )


def _check_custom_nodes_loaded(ctx: EndpointContext, workflow: Workflow, catalog: Catalog) -> None:
    """On a running server, a declared pack whose classes are absent did not import."""
    used = {workflow.class_type(nid) for nid in workflow.nodes}
    for j, pack in enumerate(ctx.endpoint.custom_nodes):
        missing = sorted(n for n in pack.nodes if n not in catalog)
        if missing:
            ctx.error(
                f"custom node {pack.key}@{pack.pin}: the server has no {', '.join(missing)} "
                f"(its import failed, or it is not installed there)"
                + ("; the workflow uses them" if used & set(missing) else ""),
                "custom_nodes",
                j,
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
    return _number_problem(param, value)


def _number_problem(param: Parameter, value: int | float) -> str | None:
    """Why a number breaks the parameter's range or step (what the request model checks)."""
    low, high = param.min, param.max
    if param.type == "seed":
        low = 0 if low is None else low
        high = SEED_MAX if high is None else high
    if low is not None and value < low:
        return f"{value!r} is below min {low}"
    if high is not None and value > high:
        return f"{value!r} is above max {high}"
    if param.multiple_of and not _is_multiple(value, param.multiple_of):
        return f"{value!r} is not a multiple of {param.multiple_of}"
    if param.choices and value not in param.choices:
        return f"{value!r} is not among the choices"
    return None


def _is_multiple(value: int | float, step: int | float) -> bool:
    if isinstance(value, int) and isinstance(step, int):
        return value % step == 0
    quotient = value / step
    return abs(quotient - round(quotient)) <= 1e-9 * max(1.0, abs(quotient))
