"""Runs queued prompts one at a time and reports each step the way ComfyUI does.

Per prompt, the client that submitted it receives ``execution_start``, ``execution_cached``
(nodes whose results are reused), then per node ``progress_state``/``executing``/(``progress``)/
``executed``, and finally ``execution_success``, ``execution_error`` or
``execution_interrupted`` (the latter goes to every socket when the prompt has no client id).
The worker then stores the history entry, which broadcasts a ``status``, and sends
``executing {node: null}``.

An interrupt takes effect when the next node starts (after its ``executing`` message), as in
ComfyUI; a delayed ``ImageBlur`` stops waiting as soon as the interrupt arrives, so the prompt
ends promptly.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .caching import CacheEntry, CacheKey, OutputCache, cache_keys, is_link
from .catalog import Catalog
from .files import StandinDirs
from .nodes import NodeContext, change_marker, run_node
from .prompt_queue import PromptQueue, QueueItem
from .scheduler import ExecutionPlan
from .validation import full_type_name

log = logging.getLogger(__name__)

Send = Callable[[str, dict[str, Any], str | None], None]
"""``send(event_type, data, client_id)``; a ``None`` client id broadcasts to every socket."""


class PromptInterrupted(Exception):
    """The prompt was interrupted before a node started."""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class ExecutionOutcome:
    """What the history keeps of one execution."""

    success: bool
    messages: list[list[Any]]
    outputs: dict[str, Any]
    meta: dict[str, Any]

    def history_entry(self, item: QueueItem) -> dict[str, Any]:
        return {
            "prompt": item.public(),
            "outputs": self.outputs,
            "status": {
                "status_str": "success" if self.success else "error",
                "completed": self.success,
                "messages": self.messages,
            },
            "meta": self.meta,
        }


class ProgressTracker:
    """Per-node progress of one prompt, sent whole as ``progress_state`` after each change."""

    def __init__(self, prompt_id: str, send: Callable[[str, dict[str, Any]], None]) -> None:
        self._prompt_id = prompt_id
        self._send = send
        self._nodes: dict[str, dict[str, Any]] = {}

    def start(self, node_id: str) -> None:
        self._set(node_id, 0.0, 1.0, "running")

    def update(self, node_id: str, value: int, total: int) -> None:
        self._set(node_id, value, total, "running")
        data = {"value": value, "max": total, "prompt_id": self._prompt_id, "node": node_id}
        self._send("progress", data)

    def finish(self, node_id: str) -> None:
        total = self._nodes.get(node_id, {}).get("max", 1)
        self._set(node_id, total, total, "finished")

    def _set(self, node_id: str, value: float, total: float, state: str) -> None:
        self._nodes[node_id] = {
            "value": value,
            "max": total,
            "state": state,
            "node_id": node_id,
            "prompt_id": self._prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }
        nodes = {key: dict(value) for key, value in self._nodes.items()}
        self._send("progress_state", {"prompt_id": self._prompt_id, "nodes": nodes})


class PromptExecutor:
    """Executes one prompt at a time against the catalog, the node implementations and the cache.

    ``interrupt`` is set by ``POST /interrupt`` and cleared when a prompt starts;
    ``node_delay()`` gives the current artificial delay of ``ImageBlur``.
    """

    def __init__(
        self,
        catalog: Catalog,
        dirs: StandinDirs,
        send: Send,
        interrupt: threading.Event,
        node_delay: Callable[[], float],
    ) -> None:
        self.catalog = catalog
        self.dirs = dirs
        self.send = send
        self.interrupt = interrupt
        self.node_delay = node_delay
        self.cache = OutputCache()
        self.drop_cache = False

    def execute(self, item: QueueItem) -> ExecutionOutcome:
        """Run the prompt's output nodes and everything they need; node failures are reported."""
        self.interrupt.clear()
        if self.drop_cache:
            self.drop_cache = False
            self.cache.clear()
        return _PromptRun(self, item).execute()

    def node_context(self, node_id: str, progress: Callable[[int, int], None]) -> NodeContext:
        return NodeContext(node_id, self.dirs, self.node_delay(), self.interrupt, progress)


class _PromptRun:
    """State of one prompt execution: messages, executed nodes, ui outputs."""

    def __init__(self, executor: PromptExecutor, item: QueueItem) -> None:
        self._executor = executor
        self._catalog = executor.catalog
        self._item = item
        self._prompt = item.prompt
        self._client_id = item.client_id
        self._messages: list[list[Any]] = []
        self._executed: list[str] = []
        self._ui: dict[str, Any] = {}
        self._meta: dict[str, Any] = {}
        self._current_inputs: dict[str, Any] = {}
        self._progress = ProgressTracker(item.prompt_id, self._to_client)

    def execute(self) -> ExecutionOutcome:
        prompt_id = self._item.prompt_id
        self._add_message("execution_start", {"prompt_id": prompt_id})
        keys = cache_keys(self._prompt, self._change_marker, self._keyed_by_id)
        cache = self._executor.cache
        cache.retain(keys.values())
        cached = [node_id for node_id in self._prompt if cache.get(keys[node_id]) is not None]
        self._add_message("execution_cached", {"nodes": cached, "prompt_id": prompt_id})
        success = self._run_nodes(keys, set(cached))
        if success:
            self._add_message("execution_success", {"prompt_id": prompt_id})
        return ExecutionOutcome(success, self._messages, self._ui, self._meta)

    def _run_nodes(self, keys: dict[str, CacheKey], cached: set[str]) -> bool:
        """Execute the plan; on failure report it and return False."""
        plan = ExecutionPlan(self._prompt, cached.__contains__, self._is_output)
        for output in self._item.outputs:
            plan.add(output)
        while plan:
            node_id = plan.next_node()
            entry = self._executor.cache.get(keys[node_id])
            if entry is not None:
                self._report_cached(node_id, entry)
            else:
                try:
                    self._run_node(node_id, keys)
                except PromptInterrupted:
                    self._report_interrupted(node_id)
                    return False
                except Exception as exc:
                    self._report_error(node_id, exc)
                    return False
            plan.complete(node_id)
        return True

    def _run_node(self, node_id: str, keys: dict[str, CacheKey]) -> None:
        """Announce, check for an interrupt, execute, cache and report one node."""
        prompt_id = self._item.prompt_id
        self._current_inputs = {}  # reported with an error raised before inputs are gathered
        self._progress.start(node_id)
        executing = {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}
        self._to_client("executing", executing)
        if self._executor.interrupt.is_set():
            raise PromptInterrupted
        inputs = self._current_inputs = self._gather_inputs(node_id, keys)
        context = self._executor.node_context(
            node_id, lambda value, total: self._progress.update(node_id, value, total)
        )
        result = run_node(self._prompt[node_id]["class_type"], context, inputs)
        self._executor.cache.put(keys[node_id], CacheEntry(tuple(result.outputs), result.ui))
        if result.ui:
            self._record_ui(node_id, result.ui)
            executed = {"node": node_id, "display_node": node_id, "output": result.ui}
            self._to_client("executed", executed | {"prompt_id": prompt_id})
        self._progress.finish(node_id)
        self._executed.append(node_id)

    def _report_cached(self, node_id: str, entry: CacheEntry) -> None:
        """A node whose result is reused: re-send its ``executed`` without running it."""
        data = {"node": node_id, "display_node": node_id, "output": entry.ui}
        self._to_client("executed", data | {"prompt_id": self._item.prompt_id})
        if entry.ui is not None:
            self._record_ui(node_id, entry.ui)
        self._progress.finish(node_id)

    def _record_ui(self, node_id: str, ui: dict[str, Any]) -> None:
        self._ui[node_id] = ui
        self._meta[node_id] = {
            "node_id": node_id,
            "display_node": node_id,
            "parent_node": None,
            "real_node_id": node_id,
        }

    def _report_interrupted(self, node_id: str) -> None:
        data = {
            "prompt_id": self._item.prompt_id,
            "node_id": node_id,
            "node_type": self._prompt[node_id]["class_type"],
            "executed": list(self._executed),
        }
        self._add_message("execution_interrupted", data, broadcast=True)

    def _report_error(self, node_id: str, exc: Exception) -> None:
        """``execution_error`` with ComfyUI's fields (the message ends with a newline)."""
        inputs = self._current_inputs
        hidden = self._catalog.hidden_inputs(self._prompt[node_id]["class_type"])
        data = {
            "prompt_id": self._item.prompt_id,
            "node_id": node_id,
            "node_type": self._prompt[node_id]["class_type"],
            "executed": list(self._executed),
            "exception_message": f"{exc}\n",
            "exception_type": full_type_name(type(exc)),
            "traceback": traceback.format_tb(exc.__traceback__),
            "current_inputs": {
                name: [_describe(value)] for name, value in inputs.items() if name not in hidden
            },
            "current_outputs": list(self._prompt),
        }
        self._add_message("execution_error", data)

    def _gather_inputs(self, node_id: str, keys: dict[str, CacheKey]) -> dict[str, Any]:
        """Declared inputs (links resolved from the cache) plus the hidden ones."""
        node = self._prompt[node_id]
        class_type = node["class_type"]
        values: dict[str, Any] = {}
        for spec in self._catalog.input_fields(class_type):
            if spec.name not in node["inputs"]:
                continue
            value = node["inputs"][spec.name]
            if is_link(value):
                source_id, slot = value
                entry = self._executor.cache.get(keys[source_id])
                if entry is None:
                    raise RuntimeError(f"output of node {source_id} is not available")
                value = entry.outputs[int(slot)]
            values[spec.name] = value
        for name, kind in self._catalog.hidden_inputs(class_type).items():
            values[name] = self._hidden_value(kind, node_id)
        return values

    def _hidden_value(self, kind: str, node_id: str) -> Any:
        if kind == "PROMPT":
            return self._prompt
        if kind == "EXTRA_PNGINFO":
            return self._item.extra_data.get("extra_pnginfo")
        if kind == "UNIQUE_ID":
            return node_id
        return self._item.sensitive.get(kind.lower())

    def _change_marker(self, class_type: str, inputs: dict[str, Any]) -> Any:
        return change_marker(class_type, self._executor.dirs, inputs)

    def _keyed_by_id(self, class_type: str) -> bool:
        return "UNIQUE_ID" in self._catalog.hidden_inputs(class_type).values()

    def _is_output(self, node_id: str) -> bool:
        return self._catalog.is_output_node(self._prompt[node_id]["class_type"])

    def _add_message(self, event: str, data: dict[str, Any], broadcast: bool = False) -> None:
        """Record a status message in history; send it to the client (or to all if broadcast)."""
        data = data | {"timestamp": now_ms()}
        self._messages.append([event, data])
        if self._client_id is not None or broadcast:
            self._executor.send(event, data, self._client_id)

    def _to_client(self, event: str, data: dict[str, Any]) -> None:
        """Send to the submitting client only; nothing when the prompt has no client id."""
        if self._client_id is not None:
            self._executor.send(event, data, self._client_id)


def _describe(value: Any) -> Any:
    """An input value as ComfyUI lists it in ``current_inputs`` (objects as short text)."""
    if value is None or isinstance(value, int | float | bool | str):
        return value
    if isinstance(value, list) and value and all(hasattr(v, "size") for v in value):
        width, height = value[0].size
        return f"<batch of {len(value)} {value[0].mode} images, {width}x{height}>"
    return str(value)


class PromptWorker:
    """The single thread taking prompts from the queue and executing them in order."""

    def __init__(self, queue: PromptQueue, executor: PromptExecutor, send: Send) -> None:
        self._queue = queue
        self._executor = executor
        self._send = send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="standin-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current prompt (interrupting it)."""
        self._stop.set()
        self._queue.close()
        self._executor.interrupt.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            item = self._queue.take(timeout=1.0)
            if item is None:
                continue
            try:
                outcome = self._executor.execute(item)
            except Exception as exc:  # a bug of the stand-in: keep serving, record it
                log.exception("stand-in failed executing prompt %s", item.prompt_id)
                error = {"prompt_id": item.prompt_id, "exception_message": repr(exc)}
                outcome = ExecutionOutcome(False, [["execution_error", error]], {}, {})
            self._queue.finish(item, outcome.history_entry(item))
            if item.client_id is not None:
                done = {"node": None, "prompt_id": item.prompt_id}
                self._send("executing", done, item.client_id)
