"""Keep the models the residency plan says fit loaded, whatever mix of requests comes.

ComfyUI keeps a loaded model only while its loader node's output sits in the output cache;
with ``--cache-lru N`` that output falls out once N newer node outputs arrived (an endpoint not
called for a few dozen requests reloads its weights). This patch makes the LRU skip entries whose
node names a pinned model file (``RYLA_PIN_MODELS``, file names separated by ``os.pathsep``) in
its own inputs (``CheckpointLoaderSimple``, ``UNETLoader``, ``VAELoader``...): those stay, every
other output is still bounded by N. Loaded by ComfyUI with the helper node; imports no torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

PIN_ENV = "RYLA_PIN_MODELS"
# The input the runtime gives a private endpoint's loaders (``runtime.config.PRIVATE_INPUT``;
# this helper imports nothing of ryla-gen): their entries are that endpoint's copy, never pinned.
PRIVATE_INPUT = "ryla_private"


def pinned_names(environ: dict[str, str] | None = None) -> frozenset[str]:
    """The model file names to keep loaded, from ``RYLA_PIN_MODELS``."""
    raw = (os.environ if environ is None else environ).get(PIN_ENV, "")
    return frozenset(name for name in raw.split(os.pathsep) if name)


def own_inputs(key: Any) -> Iterator[tuple[Any, Any]]:
    """``(input, value)`` of the cached node itself (not its ancestors) from an output-cache key.

    The key is ComfyUI's hashable input signature: a frozenset of ``(position, signature)``
    pairs, position 0 being the node's own ``[class_type, is_changed, (input, value)...]``.
    """
    if not isinstance(key, frozenset):
        return
    for position, signature in _pairs(key):
        if position != 0 or not isinstance(signature, frozenset):
            continue
        for _, item in _pairs(signature):
            if isinstance(item, frozenset):
                pair = dict(_pairs(item))
                yield pair.get(0), pair.get(1)


def _pairs(items: frozenset) -> Iterator[tuple[Any, Any]]:
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:
            yield item


class Pins:
    """Which output-cache keys hold a pinned model (decided once per key)."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names | {os.path.basename(name) for name in names}
        self._known: dict[Any, bool] = {}

    def __contains__(self, key: Any) -> bool:
        try:
            return self._known[key]
        except KeyError:
            inputs = list(own_inputs(key))
            pinned = not any(name == PRIVATE_INPUT for name, _ in inputs) and any(
                isinstance(value, str) and value in self.names for _, value in inputs
            )
            self._known[key] = pinned
            return pinned
        except TypeError:  # an unhashable key is never pinned
            return False

    def forget_missing(self, live: dict) -> None:
        for key in [k for k in self._known if k not in live]:
            del self._known[key]


def install(lru_class: type, names: frozenset[str]) -> Pins | None:
    """Make ``lru_class.clean_unused`` keep pinned entries; None when the class is not as known.

    Other entries go as in ComfyUI's LRU: oldest generation first, while more than
    ``max_size`` unpinned entries remain.
    """
    needed = ("clean_unused", "_clean_subcaches")
    if not names or not all(hasattr(lru_class, name) for name in needed):
        return None
    pins = Pins(names)

    def clean_unused(self) -> None:
        cache = self.cache
        pinned = sum(1 for key in cache if key in pins)
        while len(cache) - pinned > self.max_size and self.min_generation < self.generation:
            self.min_generation += 1
            old = [
                key
                for key in cache
                if self.used_generation[key] < self.min_generation and key not in pins
            ]
            for key in old:
                del cache[key]
                self.used_generation.pop(key, None)
                self.children.pop(key, None)
        pins.forget_missing(cache)
        self._clean_subcaches()

    lru_class.clean_unused = clean_unused
    return pins
