"""A node catalog: ComfyUI's ``GET /object_info``, used to check workflows before deploy."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class InputSpec:
    """One input of a node class as ComfyUI declares it."""

    name: str
    type: str  # INT, FLOAT, STRING, BOOLEAN, COMBO, or a link type such as IMAGE
    options: dict[str, Any]
    choices: tuple[Any, ...] | None
    required: bool

    @property
    def minimum(self) -> float | None:
        return self.options.get("min")

    @property
    def maximum(self) -> float | None:
        return self.options.get("max")


@dataclass(frozen=True)
class NodeClass:
    name: str
    inputs: dict[str, InputSpec]
    outputs: tuple[str, ...]
    output_node: bool


class Catalog:
    """Node classes by name, merged from one or more object_info documents."""

    def __init__(self, classes: dict[str, NodeClass] | None = None):
        self.classes: dict[str, NodeClass] = classes or {}

    def __contains__(self, name: str) -> bool:
        return name in self.classes

    def get(self, name: str) -> NodeClass | None:
        return self.classes.get(name)

    def merge(self, object_info: dict[str, Any]) -> None:
        for name, info in object_info.items():
            self.classes[name] = _parse_class(name, info)

    @classmethod
    def load(cls, sources: list[str]) -> Catalog:
        """Load object_info from files or ``http(s)://`` URLs of a running ComfyUI."""
        catalog = cls()
        for source in sources:
            catalog.merge(read_object_info(source))
        return catalog


def read_object_info(source: str) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        url = source.rstrip("/")
        if not url.endswith("/object_info"):
            url += "/object_info"
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (user-given)
            return json.load(response)
    return json.loads(Path(source).read_text(encoding="utf-8"))


def _parse_class(name: str, info: dict[str, Any]) -> NodeClass:
    inputs: dict[str, InputSpec] = {}
    for section in ("required", "optional"):
        for input_name, spec in (info.get("input", {}).get(section) or {}).items():
            inputs[input_name] = parse_input(input_name, spec, section == "required")
    outputs = tuple(str(o) for o in info.get("output", []))
    return NodeClass(name, inputs, outputs, bool(info.get("output_node")))


def parse_input(name: str, spec: Any, required: bool) -> InputSpec:
    head = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    options = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 else {}
    options = options if isinstance(options, dict) else {}
    if isinstance(head, list):
        return InputSpec(name, "COMBO", options, tuple(head), required)
    if head == "COMBO":
        return InputSpec(name, "COMBO", options, tuple(options.get("options", [])), required)
    return InputSpec(name, str(head), options, None, required)


def link_types_compatible(output_type: str, input_type: str) -> bool:
    """ComfyUI's rule: '*' matches anything; comma-separated types match any member."""
    if "*" in (output_type, input_type):
        return True
    outs = set(output_type.split(","))
    ins = set(input_type.split(","))
    return bool(outs & ins)
