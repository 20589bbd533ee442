"""Workflows sent by the client (``/workflow``): checked before they reach the GPU.

The graph must be API format, within the route's size limit, free of cycles, valid for the
running ComfyUI's own node catalog (classes, inputs, ranges, choices incl. model files, links)
— the same checks ``ryla-gen validate --object-info`` runs on committed workflows — and within
the route's output budget (pixels x frames x batch of every node, estimated from its literal
inputs). It may load only the input files the route declares (``input_files``): never another
request's upload or output, and no error lists what ComfyUI's input folder holds.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from typing import Any

from ..comfy.catalog import Catalog, InputSpec
from ..comfy.checks import check_workflow
from ..comfy.workflow import Workflow, WorkflowError, cycle_nodes, is_link, parse_workflow

# Inputs that name a file in ComfyUI's folders without saying so in their options.
FILE_INPUTS = {
    ("VHS_LoadVideo", "video"),
    ("VHS_LoadVideoFFmpeg", "video"),
    ("VHS_LoadAudioUpload", "audio"),
    ("VHS_LoadImages", "directory"),
}
_FILE_OPTIONS = ("image_folder", "upload", "vhs_path_extensions")
MAX_DEPTH = 16  # lists and objects inside an input
_HUGE = 1e18  # sizes are capped here, so inf or 1e308 never overflow
_COUNT_INPUTS = ("batch_size", "length", "frames", "num_frames", "video_frames", "amount")


def check_client_workflow(
    data: Any,
    *,
    max_nodes: int,
    catalog: Catalog,
    max_output_pixels: int = 0,
    input_files: tuple[str, ...] = (),
) -> tuple[Workflow | None, list[dict[str, Any]]]:
    """The parsed workflow and its problems (``[]`` when it may be queued)."""
    try:
        workflow = parse_workflow(data)
    except WorkflowError as exc:
        return None, [{"node_id": None, "message": str(exc)}]
    if len(workflow.nodes) > max_nodes:
        message = f"{len(workflow.nodes)} nodes; this route accepts at most {max_nodes}"
        return None, [{"node_id": None, "message": message}]
    problems: list[dict[str, Any]] = []

    def report(node_id: str | None, message: str) -> None:
        problems.append({"node_id": node_id, "message": message})

    for node_id in workflow.nodes:
        problem = _odd_value(workflow.inputs(node_id))
        if problem:
            report(node_id, problem)
    if problems:
        return workflow, problems
    looped = cycle_nodes(workflow)
    for node_id in looped:
        report(node_id, f"node {node_id} is part of a cycle (its inputs lead back to it)")
    if looped:
        return workflow, problems
    restricted = _restricted(catalog, input_files)
    _check_files(workflow, restricted, input_files, report)
    check_workflow(
        workflow,
        restricted,
        bound=set(),
        custom_classes=set(),
        model_files=set(),
        report=report,
    )
    outputs = [
        n for n in workflow.nodes if (c := catalog.get(workflow.class_type(n))) and c.output_node
    ]
    if not problems and not outputs:
        report(None, "the workflow has no output node")
    if not problems and max_output_pixels:
        for node_id, size in output_sizes(workflow).items():
            if size > max_output_pixels:
                report(
                    node_id,
                    f"node {node_id} ({workflow.class_type(node_id)}) would make about {size} "
                    f"pixels (width x height x frames x batch); this route allows "
                    f"{max_output_pixels}",
                )
    return workflow, problems


def _odd_value(inputs: dict[str, Any]) -> str | None:
    """Values no node takes: NaN or infinite numbers, nesting deeper than ``MAX_DEPTH``."""
    stack: list[tuple[Any, int]] = [(inputs, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"an input nests deeper than {MAX_DEPTH} levels"
        if isinstance(value, float) and not math.isfinite(value):
            return "an input is NaN or infinite"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return None


def is_file_input(class_type: str, spec: InputSpec) -> bool:
    """An input naming a file of ComfyUI's input (or output) folder."""
    if (class_type, spec.name) in FILE_INPUTS:
        return True
    return any(key.endswith(_FILE_OPTIONS) for key in spec.options)


_RESTRICTED: weakref.WeakKeyDictionary[Catalog, dict[tuple[str, ...], Catalog]] = (
    weakref.WeakKeyDictionary()
)


def _restricted(catalog: Catalog, input_files: tuple[str, ...]) -> Catalog:
    """:func:`restrict_file_inputs`, once per catalog and route files (a container reads its
    catalog once; rebuilding every class per request cost ~1.7 ms on the real catalog)."""
    per_catalog = _RESTRICTED.setdefault(catalog, {})
    if input_files not in per_catalog:
        per_catalog[input_files] = restrict_file_inputs(catalog, input_files)
    return per_catalog[input_files]


def restrict_file_inputs(catalog: Catalog, input_files: tuple[str, ...]) -> Catalog:
    """The catalog with every file input's choices replaced by the route's own files (and typed
    ``FILE``, which :func:`_check_files` checks: no listing of ComfyUI's folders in errors)."""
    classes = dict(catalog.classes)
    for name, node in catalog.classes.items():
        files = {k for k, spec in node.inputs.items() if is_file_input(name, spec)}
        if files:
            inputs = {
                k: dataclasses.replace(spec, type="FILE", choices=tuple(input_files))
                if k in files
                else spec
                for k, spec in node.inputs.items()
            }
            classes[name] = dataclasses.replace(node, inputs=inputs)
    return Catalog(classes)


def _check_files(workflow: Workflow, catalog: Catalog, allowed: tuple[str, ...], report) -> None:
    shown = ", ".join(allowed) or "none"
    for node_id, node in workflow.nodes.items():
        node_class = catalog.get(node["class_type"])
        if node_class is None:
            continue
        for name, value in workflow.inputs(node_id).items():
            spec = node_class.inputs.get(name)
            if spec is None or spec.type != "FILE":
                continue
            if is_link(value) or value not in allowed:
                report(
                    node_id,
                    f"input '{name}' of {node_class.name}: this route loads only the files it "
                    f"ships, named literally ({shown}); send images to a route with an image "
                    "field",
                )


def output_sizes(workflow: Workflow) -> dict[str, int]:
    """Per node, an estimate of the pixels it makes: width x height (its own literal inputs, or
    its inputs' largest, scaled by ``scale_by``/``megapixels``) x frames x batch."""
    sizes: dict[str, tuple[float, float]] = {}

    def number(inputs: dict[str, Any], name: str) -> float | None:
        value = inputs.get(name)
        if is_link(value) and str(value[0]) in workflow.nodes:  # a primitive node's value
            value = workflow.inputs(str(value[0])).get("value")
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return min(float(value), _HUGE) if ok and value > 0 else None  # inf capped, nan ignored

    for node_id in _topological(workflow):
        inputs = workflow.inputs(node_id)

        upstream = [sizes[str(v[0])] for v in inputs.values() if is_link(v) and str(v[0]) in sizes]
        area, count = max(upstream, key=lambda s: s[0] * s[1], default=(0.0, 1.0))
        width, height = number(inputs, "width"), number(inputs, "height")
        if width and height:
            area = width * height
        if scale := number(inputs, "scale_by"):
            area *= scale * scale
        if megapixels := number(inputs, "megapixels"):
            area = megapixels * 1024 * 1024
        for name in _COUNT_INPUTS:
            if factor := number(inputs, name):
                count *= factor
        sizes[node_id] = (area, count)
    return {n: int(min(area * count, _HUGE)) for n, (area, count) in sizes.items()}


def _topological(workflow: Workflow) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()
    for start in workflow.nodes:
        stack = [(start, False)]
        while stack:
            node_id, done = stack.pop()
            if done:
                order.append(node_id)
                continue
            if node_id in seen:
                continue
            seen.add(node_id)
            stack.append((node_id, True))
            for value in workflow.inputs(node_id).values():
                if is_link(value) and str(value[0]) in workflow.nodes:
                    stack.append((str(value[0]), False))
    return order


def save_nodes(workflow: Workflow) -> tuple[str, ...]:
    """Nodes with a literal ``filename_prefix``: made unique per request like other routes."""
    return tuple(
        n for n in workflow.nodes if isinstance(workflow.inputs(n).get("filename_prefix"), str)
    )
