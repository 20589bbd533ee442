"""Output cache of the stand-in, keyed like ComfyUI's default ("classic") cache.

A node's key is its class, its change marker (LoadImage: the file's hash), its literal inputs
and, for each link, the key of the linked node and the slot: the node id plays no part, so an
identical node anywhere in the next prompt reuses the result. Before each prompt the cache keeps
only the entries whose keys the new prompt uses, so results live from one prompt to the next,
not longer. That is why resubmitting an identical prompt re-reports the same saved files.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

CacheKey = Hashable


@dataclass(frozen=True)
class CacheEntry:
    """Output values by slot and the ``ui`` payload of one node execution."""

    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


class OutputCache:
    """Node results by :data:`CacheKey`; used only from the worker thread."""

    def __init__(self) -> None:
        self._entries: dict[CacheKey, CacheEntry] = {}

    def retain(self, keys: Iterable[CacheKey]) -> None:
        """Drop every entry whose key is not among ``keys``."""
        wanted = set(keys)
        self._entries = {k: v for k, v in self._entries.items() if k in wanted}

    def get(self, key: CacheKey) -> CacheEntry | None:
        return self._entries.get(key)

    def put(self, key: CacheKey, entry: CacheEntry) -> None:
        self._entries[key] = entry

    def clear(self) -> None:
        self._entries.clear()


def is_link(value: Any) -> bool:
    """``["node_id", slot]``: a reference to another node's output."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int | float)
    )


def cache_keys(
    prompt: dict[str, Any],
    change_marker: Callable[[str, dict[str, Any]], Any],
    keyed_by_id: Callable[[str], bool],
) -> dict[str, CacheKey]:
    """The cache key of every node of a (validated) prompt.

    ``change_marker(class_type, inputs)`` adds ComfyUI's ``IS_CHANGED`` value; classes for
    which ``keyed_by_id(class_type)`` holds (those taking their own node id) include the id.
    """
    keys: dict[str, CacheKey] = {}

    def key_of(node_id: str) -> CacheKey:
        if node_id not in keys:
            class_type = prompt[node_id]["class_type"]
            inputs = prompt[node_id].get("inputs") or {}  # unchecked if no output needs it
            parts: list[Any] = [class_type, change_marker(class_type, inputs)]
            if keyed_by_id(class_type):
                parts.append(node_id)
            for name in sorted(inputs):
                value = inputs[name]
                if is_link(value) and value[0] in prompt:
                    parts.append((name, "link", key_of(value[0]), value[1]))
                else:
                    parts.append((name, _hashable(value)))
            keys[node_id] = tuple(parts)
        return keys[node_id]

    for node_id in prompt:
        key_of(node_id)
    return keys


def _hashable(value: Any) -> Hashable:
    """Lists and dicts turned into tuples, recursively."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_hashable(item) for item in value)
    return value
