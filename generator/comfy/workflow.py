"""API-format ComfyUI workflows: loading, format checks and node lookup."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class WorkflowError(Exception):
    """A workflow file that cannot be used; the message says why."""


def is_link(value: Any) -> bool:
    """A node input wired to another node's output: ``["<node id>", <output index>]``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


@dataclass(frozen=True)
class Workflow:
    """A parsed API-format workflow: node id -> {class_type, inputs, _meta}."""

    nodes: dict[str, dict[str, Any]]

    def class_type(self, node_id: str) -> str:
        return self.nodes[node_id]["class_type"]

    def inputs(self, node_id: str) -> dict[str, Any]:
        return self.nodes[node_id].get("inputs", {})

    def title(self, node_id: str) -> str | None:
        return (self.nodes[node_id].get("_meta") or {}).get("title")

    def ids_with_title(self, title: str) -> list[str]:
        return [nid for nid in self.nodes if self.title(nid) == title]

    def describe_nodes(self) -> str:
        """Every node as ``id (class "title")``, for error messages that list what exists."""
        parts = []
        for nid in self.nodes:
            title = self.title(nid)
            label = f'{self.class_type(nid)} "{title}"' if title else self.class_type(nid)
            parts.append(f"{nid} ({label})")
        return ", ".join(parts)


def cycle_nodes(workflow: Workflow) -> list[str]:
    """Nodes on a cycle of links (a self-loop included), in workflow order; [] for a DAG.

    Peels nodes whose inputs are all peeled (Kahn), then, from what is left, nodes that feed
    nothing left; what remains lies on a cycle or between two."""
    sources = {
        n: {str(v[0]) for v in workflow.inputs(n).values() if is_link(v)} & workflow.nodes.keys()
        for n in workflow.nodes
    }
    targets: dict[str, set[str]] = {n: set() for n in workflow.nodes}
    for node, linked in sources.items():
        for source in linked:
            targets[source].add(node)
    left = set(workflow.nodes)
    for forward, backward in ((sources, targets), (targets, sources)):
        pending = {n: len(forward[n] & left) for n in left}
        ready = [n for n, count in pending.items() if count == 0]
        while ready:
            node = ready.pop()
            left.discard(node)
            for other in backward[node] & left:
                pending[other] -= 1
                if pending[other] == 0:
                    ready.append(other)
    return [n for n in workflow.nodes if n in left]


def parse_workflow(data: Any) -> Workflow:
    """Check that ``data`` is an API-format prompt; raise :class:`WorkflowError` otherwise."""
    if isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data:
        raise WorkflowError(
            "this is a ComfyUI UI export, not API format: in ComfyUI use "
            "'Workflow > Export (API)' and commit that file"
        )
    if isinstance(data, dict) and set(data) == {"prompt"} and isinstance(data["prompt"], dict):
        data = data["prompt"]
    if not isinstance(data, dict) or not data:
        raise WorkflowError("not an API-format workflow: expected a non-empty JSON object of nodes")
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise WorkflowError(f"node {node_id!r} has no 'class_type': not API format")
        if not isinstance(node.get("inputs", {}), dict):
            raise WorkflowError(f"node {node_id!r}: 'inputs' must be an object")
    return Workflow({str(k): v for k, v in data.items()})


def load_workflow(path: Path) -> Workflow:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError(f"workflow file not found: {path}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"invalid JSON at line {exc.lineno} col {exc.colno}: {exc.msg}"
        ) from None
    return parse_workflow(data)
