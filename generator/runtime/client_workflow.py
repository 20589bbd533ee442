"""Workflows sent by the client (``/workflow``): checked before they reach the GPU.

The graph must be API format, within the route's size limit, and valid for the running
ComfyUI's own node catalog (classes, inputs, ranges, choices incl. model files, links) — the
same checks ``ryla-gen validate --object-info`` runs on committed workflows.
"""

from __future__ import annotations

from typing import Any

from ..comfy.catalog import Catalog
from ..comfy.checks import check_workflow
from ..comfy.workflow import Workflow, WorkflowError, parse_workflow


def check_client_workflow(
    data: Any, *, max_nodes: int, catalog: Catalog
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
    check_workflow(
        workflow,
        catalog,
        bound=set(),
        custom_classes=set(),
        model_files=set(),
        report=lambda node_id, message: problems.append({"node_id": node_id, "message": message}),
    )
    outputs = [
        n for n in workflow.nodes if (c := catalog.get(workflow.class_type(n))) and c.output_node
    ]
    if not problems and not outputs:
        problems.append({"node_id": None, "message": "the workflow has no output node"})
    return workflow, problems


def save_nodes(workflow: Workflow) -> tuple[str, ...]:
    """Nodes with a literal ``filename_prefix``: made unique per request like other routes."""
    return tuple(
        n for n in workflow.nodes if isinstance(workflow.inputs(n).get("filename_prefix"), str)
    )
