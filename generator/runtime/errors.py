"""Typed errors raised by the ComfyUI client and process manager.

Every error derives from :class:`ComfyError`, so callers can catch the whole family at once and
map each subclass to its own HTTP answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_NODE_ID_IN_DETAILS = re.compile(r"Node ID '#([^']+)'")


class ComfyError(Exception):
    """Base class of every ComfyUI-related failure."""


class GpuUnavailable(ComfyError):
    """No CUDA device computes for ComfyUI (after a memory-snapshot restore)."""


@dataclass(frozen=True, slots=True)
class NodeErrorEntry:
    """One validation error of one node input, flattened from ComfyUI's ``node_errors``."""

    node_id: str | None
    class_type: str | None
    input_name: str | None
    error_type: str
    message: str
    details: str

    def __str__(self) -> str:
        where = f"node {self.node_id}" if self.node_id else "prompt"
        if self.class_type:
            where += f" ({self.class_type})"
        if self.input_name:
            where += f" input '{self.input_name}'"
        tail = f": {self.details}" if self.details else ""
        return f"{where}: {self.error_type}: {self.message}{tail}"


class PromptRejected(ComfyError):
    """``POST /prompt`` refused the workflow (validation failed, nothing was queued).

    ``error`` is ComfyUI's top-level ``{type, message, details, extra_info}`` dict and
    ``node_errors`` maps node id to ``{errors: [...], dependent_outputs, class_type}``.
    """

    def __init__(self, error: dict[str, Any], node_errors: dict[str, Any]) -> None:
        self.error = error
        self.node_errors = node_errors
        super().__init__(self._summary())

    def entries(self) -> Iterator[NodeErrorEntry]:
        """Yield one flat entry per node error; the top-level error if no node is named."""
        for node_id, node in self.node_errors.items():
            for err in node.get("errors", []):
                yield _entry(err, str(node_id), node.get("class_type"))
        if not self.node_errors:
            yield self._top_level_entry()

    def _top_level_entry(self) -> NodeErrorEntry:
        """Entry for errors such as an unknown node class, where ``node_errors`` is empty."""
        extra = self.error.get("extra_info") or {}
        node_id = extra.get("node_id")
        if node_id is None:
            match = _NODE_ID_IN_DETAILS.search(str(self.error.get("details", "")))
            node_id = match.group(1) if match else None
        return _entry(self.error, node_id, extra.get("class_type"))

    def _summary(self) -> str:
        head = str(self.error.get("message") or self.error.get("type") or "prompt rejected")
        lines = [str(entry) for entry in self.entries()]
        return "; ".join([head, *lines]) if lines else head


def _entry(err: dict[str, Any], node_id: str | None, class_type: str | None) -> NodeErrorEntry:
    """Build a :class:`NodeErrorEntry` from one ComfyUI error dict."""
    extra = err.get("extra_info") or {}
    return NodeErrorEntry(
        node_id=None if node_id is None else str(node_id),
        class_type=class_type,
        input_name=extra.get("input_name"),
        error_type=str(err.get("type", "")),
        message=str(err.get("message", "")),
        details=str(err.get("details", "")),
    )


class ExecutionFailed(ComfyError):
    """A node raised while the prompt ran (WebSocket ``execution_error``)."""

    def __init__(
        self,
        *,
        prompt_id: str,
        node_id: str | None,
        node_type: str | None,
        exception_type: str,
        exception_message: str,
        traceback: list[str],
    ) -> None:
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message
        self.traceback = traceback
        super().__init__(
            f"node {node_id} ({node_type}) raised {exception_type}: {exception_message.strip()}"
        )

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> ExecutionFailed:
        """Build from the ``data`` of an ``execution_error`` event."""
        return cls(
            prompt_id=str(data.get("prompt_id", "")),
            node_id=data.get("node_id"),
            node_type=data.get("node_type"),
            exception_type=str(data.get("exception_type", "")),
            exception_message=str(data.get("exception_message", "")),
            traceback=list(data.get("traceback") or []),
        )


class RunInterrupted(ComfyError):
    """The prompt was interrupted by someone else (WebSocket ``execution_interrupted``)."""

    def __init__(self, *, prompt_id: str, node_id: str | None, node_type: str | None) -> None:
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        super().__init__(f"prompt {prompt_id} interrupted at node {node_id} ({node_type})")


class RunTimeout(ComfyError):
    """The run exceeded its time budget; the prompt was interrupted or removed from the queue.

    ``state`` is what the prompt was doing when the budget ran out: ``"running"``,
    ``"pending"`` or ``"gone"`` (it had already left the queue).
    """

    def __init__(self, *, prompt_id: str, timeout: float, state: str) -> None:
        self.prompt_id = prompt_id
        self.timeout = timeout
        self.state = state
        super().__init__(f"prompt {prompt_id} exceeded {timeout:g}s (was {state})")


class ComfyUnavailable(ComfyError):
    """ComfyUI cannot be reached or dropped the connection: the process is down."""


class ComfyStartFailed(ComfyUnavailable):
    """The ComfyUI process exited during start-up or did not become ready in time."""

    def __init__(self, message: str, *, returncode: int | None, log_tail: str) -> None:
        self.returncode = returncode
        self.log_tail = log_tail
        super().__init__(f"{message}\n--- last log lines ---\n{log_tail}" if log_tail else message)
