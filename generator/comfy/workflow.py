"""API-format ComfyUI workflows: loading, format checks and node lookup."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class WorkflowError(Exception):
    """A workflow file that cannot be used; the message says why (``line``: where, if known)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


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
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WorkflowError(f"workflow file not found: {path}") from None
    except OSError as exc:
        raise WorkflowError(f"cannot read workflow file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise WorkflowError(f"not UTF-8 (line {line}, byte 0x{raw[exc.start]:02x})") from None
    return parse_workflow(parse_json(text))


class _DuplicateKey(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _NotANumber(ValueError):
    pass


def _not_a_number(constant: str) -> Any:
    """NaN and Infinity, which Python's json accepts and JSON has not; ComfyUI gets them wrong."""
    raise _NotANumber(constant)


def parse_json(text: str) -> Any:
    """JSON whose objects may not repeat a key (json.loads keeps the last silently)."""
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_not_a_number)
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"invalid JSON at line {exc.lineno} col {exc.colno}: {exc.msg}"
        ) from None
    except _NotANumber as exc:
        line = next((n + 1 for n, row in enumerate(text.splitlines()) if str(exc) in row), None)
        raise WorkflowError(f"{exc} is not a JSON number (numbers are finite)", line) from None
    except RecursionError:
        raise WorkflowError("JSON nested too deep") from None
    except _DuplicateKey as exc:
        key = str(exc)
        pattern = re.compile(r'"' + re.escape(key) + r'"\s*:')
        lines = [n + 1 for n, line in enumerate(text.splitlines()) if pattern.search(line)]
        shown = f" (lines {', '.join(map(str, lines))})" if len(lines) > 1 else ""
        line = lines[1] if len(lines) > 1 else None
        message = f'key "{key}" appears twice in one object{shown}; JSON keeps only the last'
        raise WorkflowError(message, line) from None


def graph_problems(workflow: Workflow) -> list[tuple[str, str]]:
    """(node id, message) for what breaks the graph itself, no node catalog needed: links to
    missing nodes or negative outputs, and cycles (ComfyUI refuses them at queue time)."""
    problems = []
    edges: dict[str, list[str]] = {nid: [] for nid in workflow.nodes}
    for nid in workflow.nodes:
        for name, value in workflow.inputs(nid).items():
            if not is_link(value):
                continue
            source, index = str(value[0]), value[1]
            if source not in workflow.nodes:
                problems.append((nid, f"input '{name}' links to missing node '{source}'"))
            elif index < 0:
                problems.append((nid, f"input '{name}' links to output {index} of node {source}"))
            else:
                edges[nid].append(source)
    cycle = _find_cycle(edges)
    if cycle:
        problems.append((cycle[0], "the graph has a cycle: nodes " + " -> ".join(cycle)))
    return problems


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    for start in edges:
        if start in state:
            continue
        stack = [(start, iter(edges[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child) :] + [child]
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(edges[child])))
                path.append(child)
    return None
