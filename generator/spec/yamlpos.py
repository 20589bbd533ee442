"""YAML loading that keeps the position of every key and value.

PyYAML's composer gives nodes with marks; we build plain Python values from them and a map from
each value's path (tuple of keys/indices) to its line and column, so later stages can report
``file:line:col`` for any problem. Duplicate keys, which PyYAML silently overwrites, are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass
class PositionedDocument:
    """A loaded YAML document: its data and where each part of it stands."""

    data: Any
    value_pos: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_pos: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Line/col of ``path``; for a missing path, the nearest existing parent."""
        table = self.key_pos if key else self.value_pos
        if path in table:
            return table[path]
        if path in self.value_pos:
            return self.value_pos[path]
        while path:
            path = path[:-1]
            if path in self.value_pos:
                return self.value_pos[path]
        return (1, 1)


class YamlError(Exception):
    def __init__(self, message: str, line: int, col: int):
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def load_positioned(text: str) -> PositionedDocument:
    """Parse one YAML document; raises :class:`YamlError` with a position on bad YAML."""
    try:
        root = yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        root = None  # parse again below for PyYAML's own message and position
    else:
        return _document(root)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlError(f"invalid YAML: {exc.problem or exc}", line, col) from None
    return _document(root)


MAX_NODES = 100_000
"""Values a spec may expand to, aliases counted at each use (the largest spec has ~1,300):
an alias bomb (``&a [*b, *b, …]`` nested) would otherwise expand for minutes."""


class _Walk:
    """Guards one document's build: aliases that contain themselves, expansion past MAX_NODES."""

    def __init__(self) -> None:
        self.built = 0
        self.open: set[int] = set()

    def enter(self, node: yaml.Node) -> None:
        self.built += 1
        if self.built > MAX_NODES:
            raise YamlError(
                f"the document expands to more than {MAX_NODES} values (aliases nested too deep)",
                *_mark(node),
            )
        if id(node) in self.open:
            raise YamlError("an alias refers to a node that contains it", *_mark(node))
        self.open.add(id(node))


def _document(root: yaml.Node | None) -> PositionedDocument:
    doc = PositionedDocument(data=None)
    if root is None:
        return doc
    doc.data = _build(root, (), doc, _Walk())
    return doc


def _build(node: yaml.Node, path: Path_, doc: PositionedDocument, walk: _Walk) -> Any:
    doc.value_pos[path] = _mark(node)
    walk.enter(node)
    try:
        if isinstance(node, yaml.MappingNode):
            return _build_mapping(node, path, doc, walk)
        if isinstance(node, yaml.SequenceNode):
            return [_build(item, path + (i,), doc, walk) for i, item in enumerate(node.value)]
        return _scalar(node)
    finally:
        walk.open.discard(id(node))


def _scalar(node: yaml.Node) -> Any:
    value = _CONSTRUCTOR.construct_object(node, deep=True)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            char = f"U+{ord(value[exc.start]):04X}"
            raise YamlError(f"{char} is not a character (a lone surrogate)", *_mark(node)) from None
    return value


def _build_mapping(
    node: yaml.MappingNode, path: Path_, doc: PositionedDocument, walk: _Walk
) -> dict:
    """A mapping; ``<<: *anchor`` merge keys supply defaults that explicit keys override."""
    merged: dict[Any, Any] = {}
    merged_doc = PositionedDocument(data=None)  # positions of merged keys, used if not overridden
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    # an alias resolves to the anchored node: report at the merge, not the anchor
                    raise YamlError("'<<' merges only mappings", *_mark(key_node))
                walk.enter(source)
                try:
                    for key, value in _build_mapping(source, path, merged_doc, walk).items():
                        merged.setdefault(key, value)
                finally:
                    walk.open.discard(id(source))
            continue
        key = _scalar(key_node)
        if isinstance(key, bool):
            key = str(key).lower()
        elif isinstance(key, (int, float)):
            key = str(key)
        if key in out:
            line, col = _mark(key_node)
            first = doc.key_pos[path + (key,)]
            raise YamlError(f"duplicate key '{key}' (first defined at line {first[0]})", line, col)
        doc.key_pos[path + (key,)] = _mark(key_node)
        out[key] = _build(value_node, path + (key,), doc, walk)
    for table, merged_table in (
        (doc.value_pos, merged_doc.value_pos),
        (doc.key_pos, merged_doc.key_pos),
    ):
        for sub, pos in merged_table.items():
            if len(sub) > len(path) and sub[len(path)] not in out:
                table.setdefault(sub, pos)
    return {**merged, **out}


_CONSTRUCTOR = yaml.SafeLoader("")
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml when PyYAML has it (several times faster); errors are re-read by the Python parser."""
