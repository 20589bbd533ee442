"""The prompt queue and history of the stand-in (thread-safe).

Pending prompts run in order of their ``number``; one runs at a time. Every change of the queue
calls ``on_change(queue_remaining)`` while the lock is held, so the ``status`` messages it
triggers come out in the order the changes happened. History entries are stored before the
worker announces the end of a prompt.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_HISTORY = 10_000
"""ComfyUI's history size limit; the oldest entries go first."""


@dataclass
class QueueItem:
    """One queued prompt; ``public()`` is the five-element list ComfyUI shows in queue/history."""

    number: int | float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    sensitive: dict[str, Any] = field(default_factory=dict)

    @property
    def client_id(self) -> str | None:
        return self.extra_data.get("client_id")

    def public(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue:
    """Pending and running prompts plus the history of finished ones."""

    def __init__(self, on_change: Callable[[int], None] = lambda remaining: None) -> None:
        self._on_change = on_change
        self._lock = threading.Condition()
        self._pending: list[QueueItem] = []
        self._running: dict[str, QueueItem] = {}
        self._history: dict[str, dict[str, Any]] = {}
        self._closed = False

    # ------------------------------------------------------------------ queue

    def put(self, item: QueueItem) -> None:
        with self._lock:
            self._pending.append(item)
            self._pending.sort(key=lambda queued: queued.number)
            self._changed()
            self._lock.notify_all()

    def take(self, timeout: float) -> QueueItem | None:
        """Move the first pending prompt to running; None on timeout or once closed."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._pending or self._closed, timeout):
                return None
            if self._closed:
                return None
            item = self._pending.pop(0)
            self._running[item.prompt_id] = item
            self._changed()
            return item

    def close(self) -> None:
        """Stop handing out prompts: ``take`` returns None from now on."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def finish(self, item: QueueItem, entry: dict[str, Any]) -> None:
        """Store the history entry of a finished prompt and drop it from running."""
        with self._lock:
            self._history[item.prompt_id] = entry
            while len(self._history) > MAX_HISTORY:
                del self._history[next(iter(self._history))]
            self._running.pop(item.prompt_id, None)
            self._changed()
            self._lock.notify_all()

    def delete(self, prompt_id: str) -> bool:
        """Remove a pending prompt; False when it is not pending."""
        with self._lock:
            kept = [item for item in self._pending if item.prompt_id != prompt_id]
            if len(kept) == len(self._pending):
                return False
            self._pending = kept
            self._changed()
            return True

    def clear(self) -> None:
        """Remove every pending prompt."""
        with self._lock:
            self._pending = []
            self._changed()

    def snapshot(self) -> tuple[list[QueueItem], list[QueueItem]]:
        """(running, pending) items."""
        with self._lock:
            return list(self._running.values()), list(self._pending)

    def remaining(self) -> int:
        """``queue_remaining``: pending plus running prompts."""
        with self._lock:
            return len(self._pending) + len(self._running)

    def is_running(self, prompt_id: str) -> bool:
        with self._lock:
            return prompt_id in self._running

    def _changed(self) -> None:
        self._on_change(len(self._pending) + len(self._running))

    # ---------------------------------------------------------------- history

    def history(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        """History entries in completion order: the last ``max_items``, or from ``offset``."""
        with self._lock:
            ids = list(self._history)
            if offset < 0 and max_items is not None:
                offset = len(ids) - max_items
            selected = ids[max(offset, 0) :]
            if max_items is not None:
                selected = selected[:max_items]
            return {pid: copy.deepcopy(self._history[pid]) for pid in selected}

    def history_item(self, prompt_id: str) -> dict[str, Any]:
        """``{prompt_id: entry}``, or ``{}`` when unknown."""
        with self._lock:
            if prompt_id not in self._history:
                return {}
            return {prompt_id: copy.deepcopy(self._history[prompt_id])}

    def delete_history(self, prompt_id: str) -> None:
        with self._lock:
            self._history.pop(prompt_id, None)

    def clear_history(self) -> None:
        with self._lock:
            self._history.clear()
