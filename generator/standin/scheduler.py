"""Execution order of a prompt, following ComfyUI's scheduling rules.

Starting from the output nodes (in the given order), the plan gathers every node they need that
is not already cached, walking inputs depth-first. A node becomes ready once the nodes it reads
from have run. Among ready nodes the pick favours the user's view: an output node first, then a
node feeding an output node directly, then one feeding it through one more node, else the ready
node gathered first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .caching import is_link


class DependencyCycleError(RuntimeError):
    """The remaining nodes wait on each other."""


class ExecutionPlan:
    """Pending nodes of one prompt and who waits on whom."""

    def __init__(
        self,
        prompt: dict[str, Any],
        is_cached: Callable[[str], bool],
        is_output: Callable[[str], bool],
    ) -> None:
        self._prompt = prompt
        self._is_cached = is_cached
        self._is_output = is_output
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self._waiting_on: dict[str, int] = {}
        self._feeds: dict[str, dict[str, None]] = {}

    def add(self, node_id: str) -> None:
        """Add a node and, depth-first, the uncached nodes it reads from."""
        stack = [node_id]
        links: list[tuple[str, str]] = []
        while stack:
            current = stack.pop()
            if current in self._pending:
                continue
            self._pending[current] = None
            self._waiting_on[current] = 0
            self._feeds[current] = {}
            for value in self._prompt[current]["inputs"].values():
                if not is_link(value) or value[0] not in self._prompt:
                    continue
                if not self._is_cached(value[0]):
                    stack.append(value[0])
                    links.append((value[0], current))
        for source, target in links:
            if target not in self._feeds[source]:
                self._feeds[source][target] = None
                self._waiting_on[target] += 1

    def __bool__(self) -> bool:
        return bool(self._pending)

    def next_node(self) -> str:
        """The node to run next; raises :class:`DependencyCycleError` when none is ready."""
        ready = [node for node in self._pending if self._waiting_on[node] == 0]
        if not ready:
            raise DependencyCycleError(f"Dependency cycle detected among {list(self._pending)}")
        for node in ready:
            if self._is_output(node):
                return node
        for node in ready:
            if any(self._is_output(fed) for fed in self._feeds[node]):
                return node
        for node in ready:
            if any(
                self._is_output(after) for fed in self._feeds[node] for after in self._feeds[fed]
            ):
                return node
        return ready[0]

    def complete(self, node_id: str) -> None:
        """Mark a node done, releasing the nodes it feeds."""
        del self._pending[node_id]
        for target in self._feeds[node_id]:
            self._waiting_on[target] -= 1
