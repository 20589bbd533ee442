"""Checks of a workflow against a node catalog (ComfyUI's object_info), before any deploy.

Reports what ComfyUI's own prompt validation would reject at request time: unknown classes and
inputs, missing required inputs, values out of range or not among the choices, broken links.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .catalog import Catalog, InputSpec, link_types_compatible, parse_input
from .workflow import Workflow, is_link

Report = Callable[[str, str], None]  # (node id, message)


def check_value(spec: InputSpec, value: Any) -> str | None:
    """Why a literal ``value`` is invalid for ``spec``, or None when it is fine."""
    kind = spec.type
    if kind in ("INT", "FLOAT"):
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if kind == "INT" and not is_int:
            return f"expects an integer, got {value!r}"
        if kind == "FLOAT" and not (is_int or isinstance(value, float)):
            return f"expects a number, got {value!r}"
        if spec.minimum is not None and value < spec.minimum:
            return f"value {value!r} is below the minimum {spec.minimum}"
        if spec.maximum is not None and value > spec.maximum:
            return f"value {value!r} is above the maximum {spec.maximum}"
    elif kind == "BOOLEAN" and not isinstance(value, bool):
        return f"expects true or false, got {value!r}"
    elif kind == "STRING" and not isinstance(value, str):
        return f"expects a string, got {value!r}"
    elif kind == "COMBO" and spec.choices and value not in spec.choices:
        shown = ", ".join(repr(c) for c in spec.choices[:12])
        more = ", ..." if len(spec.choices) > 12 else ""
        return f"value {value!r} is not among the choices: {shown}{more}"
    return None


def check_workflow(
    workflow: Workflow,
    catalog: Catalog,
    *,
    bound: set[tuple[str, str]],
    custom_classes: set[str] | None,
    model_files: set[str],
    report: Report,
) -> None:
    """Check every node; ``bound`` inputs are set per request, so their literals are not checked.

    ``custom_classes``: classes declared custom nodes provide; None means "any unknown class may
    come from a declared custom node" (the spec did not list them). ``model_files``: file names
    the spec's models provide; loader choices list files, which a catalog recorded elsewhere lacks.
    """
    for node_id, node in workflow.nodes.items():
        class_type = node["class_type"]
        node_class = catalog.get(class_type)
        if node_class is None:
            if custom_classes is None or class_type in custom_classes:
                continue
            hint = " (declare the custom node that provides it)" if not custom_classes else ""
            report(node_id, f"unknown node class '{class_type}'{hint}")
            continue
        inputs = workflow.inputs(node_id)
        known = {**node_class.inputs, **_format_inputs(node_class.inputs, inputs)}
        for name, value in inputs.items():
            spec = known.get(name)
            if spec is None:
                listed = ", ".join(known) or "none"
                report(node_id, f"{class_type} has no input '{name}'; its inputs: {listed}")
                continue
            if is_link(value):
                _check_link(workflow, catalog, node_id, name, spec, value, report)
            elif (node_id, name) not in bound and not (
                spec.type == "COMBO" and value in model_files
            ):
                problem = check_value(spec, value)
                if problem:
                    report(node_id, f"input '{name}' of {class_type}: {problem}")
        for name, spec in node_class.inputs.items():
            if spec.required and name not in inputs and (node_id, name) not in bound:
                report(node_id, f"{class_type} is missing required input '{name}'")


def _format_inputs(specs: dict[str, InputSpec], values: dict[str, Any]) -> dict[str, InputSpec]:
    """Inputs a combo choice adds (VideoHelperSuite lists per-format inputs in ``formats``)."""
    extra: dict[str, InputSpec] = {}
    for name, spec in specs.items():
        per_choice = spec.options.get("formats")
        chosen = values.get(name)
        if spec.type != "COMBO" or not isinstance(per_choice, dict) or chosen not in per_choice:
            continue
        for entry in per_choice[chosen]:
            if isinstance(entry, list) and entry and isinstance(entry[0], str):
                extra[entry[0]] = parse_input(entry[0], entry[1:], required=False)
    return extra


def _check_link(
    workflow: Workflow,
    catalog: Catalog,
    node_id: str,
    name: str,
    spec: InputSpec,
    link: list[Any],
    report: Report,
) -> None:
    source_id, index = str(link[0]), link[1]
    if source_id not in workflow.nodes:
        report(node_id, f"input '{name}' links to missing node '{source_id}'")
        return
    source = catalog.get(workflow.class_type(source_id))
    if source is None:
        return
    if not 0 <= index < len(source.outputs):
        report(
            node_id,
            f"input '{name}' links to output {index} of node {source_id} ({source.name}), "
            f"which has {len(source.outputs)} output(s)",
        )
        return
    out_type, in_type = source.outputs[index], spec.type
    if in_type != "COMBO" and not link_types_compatible(out_type, in_type):
        report(
            node_id,
            f"input '{name}' expects {in_type} but node {source_id} ({source.name}) "
            f"output {index} is {out_type}",
        )


def json_line_of_node(text: str, node_id: str) -> int:
    """Line (1-based) where ``"<node_id>": {`` opens in an API-format JSON file; 1 if unknown."""
    match = re.search(r'^\s*"' + re.escape(node_id) + r'"\s*:\s*\{', text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else 1
