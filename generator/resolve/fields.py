"""What an endpoint renders to: request model fields, runtime parameters, docs rows, warm-up.

Decided from a validated spec parameter; :mod:`generator.endpoints` checks, this module shapes.
"""

from __future__ import annotations

import keyword
from typing import Any

from pydantic import BaseModel

from ..spec.format import Endpoint, Parameter
from .model import ParamDoc, ParamModel, RequestField
from .paramtypes import PARAM_TYPES, SEED_MAX
from .pyliteral import py_string

MEDIA_DESCRIPTION = "data URL, bare base64, or http(s) URL"


CHEAP_INPUTS = {"steps": 1}
"""Bound node inputs a default warm-up sets low (to at least these, within the field's range).

Only inputs that change how long the work runs, not the shapes it runs on: a warm-up at the
request's real size (width, height, frames) loads every model and runs the GPU's one-time work
for those shapes (kernel selection, allocator growth), so the first real request runs as fast as
the next ones; a smaller warm-up left that work to the first user (3.77x warm p50 on an H200).
"""


def warmup_request(ep: Endpoint) -> dict[str, Any] | None:
    """The warm-up request: given, none, or the first example (or the defaults) at its real
    size with the cheapest settings (one step)."""
    if ep.warmup is False or (ep.warmup is True and not ep.examples):
        return None
    if isinstance(ep.warmup, dict):
        return dict(ep.warmup)
    request = dict(ep.examples[0])
    for name, param in ep.parameters.items():
        inputs = {ref.input for ref in param.bindings}
        floors = [CHEAP_INPUTS[i] for i in inputs if i in CHEAP_INPUTS]
        if param.type != "int" or not floors or param.format or param.map:
            continue
        value = max([*floors, param.min or 0])
        step = param.multiple_of or 1
        value = -(-value // step) * step
        if param.max is not None and value > param.max:
            continue
        for key in (name, *param.aliases):
            request.pop(key, None)
        request[name] = int(value)
    return request


def param_doc(name: str, param: Parameter) -> ParamDoc:
    kind = param.type + (f"[≤{param.max_items}]" if param.max_items else "")
    if param.required:
        default = "required"
    elif param.type == "seed" and param.default in (None, "random"):
        default = "random"
    elif param.default is None:
        default = "(workflow)" if param.bindings else "—"
    else:
        default = repr(param.default) if isinstance(param.default, str) else str(param.default)
    constraints = limits(param.min, param.max, param.multiple_of, param.choices)
    for said in (image_limits(param), refusals(param)):
        if said:
            constraints.append(said)
    if param.aliases:
        constraints.append("alias " + ", ".join(param.aliases))
    description = table_text(param.description)
    if param.ignored:
        description = f"{description} (accepted, no effect)".strip()
    return ParamDoc(name, kind, default, "; ".join(constraints), description)


def image_limits(param: Parameter) -> str:
    """An image parameter's size limits as the docs and the OpenAPI description say them."""
    said = []
    if param.min_side is not None:
        said.append(f"each side ≥ {param.min_side} px")
    if param.max_pixels is not None:
        said.append(f"≤ {param.max_pixels:,} pixels")
    return "; ".join(said)


def refusals(param: Parameter) -> str:
    """What a node refuses in this field's value, as the docs and OpenAPI say it ("": none)."""
    said = {**(param.node_errors or {}), **(param.node_warnings or {})}.values()
    return "422 when " + " or ".join(dict.fromkeys(said)) if said else ""


def limits(
    low: float | None, high: float | None, step: float | None, choices: list[Any] | None
) -> list[str]:
    """A field's range, step and choices as the docs tables print them."""
    shown = []
    if low is not None or high is not None:
        shown.append(f"{'' if low is None else low}–{'' if high is None else high}")
    if step:
        shown.append(f"×{step}")
    if choices:
        shown.append(" \\| ".join(str(c) for c in choices))
    return shown


def table_text(text: str | None) -> str:
    """Text safe inside a Markdown table cell."""
    return (text or "").replace("|", "\\|").replace("\n", " ")


def param_model(name: str, param: Parameter, targets: list[tuple[str, str]]) -> ParamModel:
    media_or_seed = param.type in ("seed", "image", "video", "mask") and not param.ignored
    kind = param.type if media_or_seed else "value"
    return ParamModel(
        name=name,
        kind=kind,
        targets=tuple(targets),
        format=param.format,
        map=param.map,
        prepend_to=param.prepend_to,
        separator=param.separator,
        sets=param.sets,
        header=param.header,
        many=param.max_items is not None,
        volume_file=_volume_file(param),
        blank_default=param.default if param.blank_is_default else None,
        min_side=param.min_side,
        max_pixels=param.max_pixels,
        node_errors=param.node_errors,
        node_warnings=param.node_warnings,
    )


def _volume_file(param: Parameter) -> str | None:
    """The models-volume file a training-linked parameter loads (checked to exist per request)."""
    link = param.from_training
    if link is None or param.format is None:
        return None
    folder = "loras" if isinstance(link, str) else link.folder
    return f"{folder.strip('/')}/{param.format}"


RESERVED_PY_NAMES = frozenset(
    {n for n in dir(BaseModel) if not n.startswith("__")}
    | {"str", "int", "float", "bool", "dict", "list"}
    | {"Any", "AliasChoices", "ConfigDict", "Field", "Literal", "OneOrMany"}
)
"""Names a request-model field must not take: BaseModel's attributes, and names the class body
itself uses in annotations and defaults (a field ``str`` would shadow the type of the next)."""


def python_names(wire_names: list[str]) -> dict[str, str]:
    """The request model's Python attribute per wire name: derived, unique, never a keyword,
    a builtin, a BaseModel attribute or pydantic-private (``_x``) or protected (``model_x``).

    The wire name stays what clients send (the field's alias)."""
    taken: set[str] = set()
    wanted = [(w, _identifier(w)) for w in wire_names]
    plain = {py for w, py in wanted if py == w and not _reserved(py)}
    names = {}
    for wire, py in wanted:
        if py == wire and py in plain and py not in taken:
            names[wire] = py
            taken.add(py)
    for wire, py in wanted:
        if wire in names:
            continue
        while _reserved(py) or py in taken or py in plain:
            py += "_"
        names[wire] = py
        taken.add(py)
    return names


def _identifier(wire: str) -> str:
    text = "".join(c if c.isalnum() or c == "_" else "_" for c in wire).lstrip("_")
    if not text or not text.isidentifier() or text.startswith("model_"):
        text = "field_" + text  # pydantic keeps model_* for itself
    return text


def _reserved(name: str) -> bool:
    return keyword.iskeyword(name) or name in RESERVED_PY_NAMES or name.startswith(("_", "model_"))


def request_field(name: str, param: Parameter, py_name: str | None = None) -> RequestField:
    py_name = py_name or name
    ptype = PARAM_TYPES[param.type]
    if param.type == "enum":
        annotation = "Literal[" + ", ".join(repr(c) for c in param.choices or []) + "]"
    elif param.max_items is not None:
        annotation = "OneOrMany"
    else:
        annotation = ptype.annotation
    args: list[str] = []
    description = param.description or ""
    if param.ignored:
        description = f"{description} Accepted for compatibility; has no effect.".strip()
    if ptype.media:
        description = f"{description} ({param.type}: {MEDIA_DESCRIPTION})".strip()
    size = image_limits(param)
    if size:
        description = f"{description} {size.capitalize()}.".strip()
    refused = refusals(param)
    if refused:
        description = f"{description} {refused}.".strip()
    if param.required:
        pass
    elif param.type == "seed" and param.default in (None, "random"):
        annotation += " | None"
        args.append("None")
        description = f"{description} Random when omitted.".strip()
    elif param.default is None:
        annotation += " | None"
        args.append("None")
    else:
        args.append(repr(param.default))
    if py_name != name:
        args.append(f"alias={name!r}")
    if param.aliases:
        choices = ", ".join(repr(a) for a in (name, *param.aliases))
        args.append(f"validation_alias=AliasChoices({choices})")
    low, high = param.min, param.max
    if param.type == "seed":
        low = 0 if low is None else low
        high = SEED_MAX if high is None else high
    if low is not None:
        args.append(f"ge={low!r}")
    if high is not None:
        args.append(f"le={high!r}")
    if param.multiple_of is not None:
        args.append(f"multiple_of={param.multiple_of!r}")
    if param.max_items is not None:
        args.append("min_length=1")
        args.append(f"max_length={param.max_items}")
    if description:
        args.append(f"description={py_string(description)}")
    return RequestField(py_name, annotation, ", ".join(args))
