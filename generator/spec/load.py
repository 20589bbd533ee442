"""Reading spec files: YAML with positions -> validated :class:`SpecFile` models.

Structural errors (unknown keys, wrong types, missing fields) are reported with the line and
column of the offending key or value, and loading carries on with the next file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..diagnostics import Diagnostics, Location, display_path
from .format import SpecFile
from .yamlpos import PositionedDocument, YamlError, load_positioned

SPEC_SUFFIXES = (".yaml", ".yml")
_SHAPE_MESSAGES = {
    "bind": "expected a mapping {node or title, input} or a list of them",
    "app": "expected the app's settings (a mapping) or the name of an app defined elsewhere",
    "from_training": "expected a training function's name or {training, output, folder}",
}


@dataclass
class LoadedSpec:
    """A parsed spec file with what is needed to point at its parts."""

    path: Path
    display: str
    spec: SpecFile
    doc: PositionedDocument

    def loc(self, *path: str | int, key: bool = False) -> Location:
        line, col = self.doc.position(tuple(path), key=key)
        return Location(self.display, line, col)


def find_spec_files(paths: list[Path]) -> list[Path]:
    """Spec files named on the command line: files as given, directories searched (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.suffix in SPEC_SUFFIXES)
        else:
            found.append(path)
    return found


def load_spec(path: Path, diags: Diagnostics, root: Path | None = None) -> LoadedSpec | None:
    display = display_path(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        diags.error(Location(display), "spec file not found")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        diags.error(Location(display), f"cannot read spec file: {exc}")
        return None
    try:
        doc = load_positioned(text)
    except YamlError as exc:
        diags.error(Location(display, exc.line, exc.col), exc.message)
        return None
    if not isinstance(doc.data, dict):
        diags.error(
            Location(display, 1, 1), "a spec file must be a mapping with 'version' and 'app'"
        )
        return None
    version = doc.data.get("version")
    if version is not None and (isinstance(version, bool) or version != 1):
        line, col = doc.position(("version",))
        diags.error(
            Location(display, line, col),
            f"unsupported spec version {version!r}; this ryla-gen reads version 1",
        )
        return None
    unknown: list[tuple[int, str, str]] = []
    try:
        spec = SpecFile.model_validate(doc.data, context={"unknown_keys": unknown})
    except ValidationError as exc:
        spec = None
        for error in exc.errors():
            _report(error, doc, display, diags)
    if unknown:
        paths = _mapping_paths(doc.data)
        for mapping_id, key, message in unknown:
            line, col = doc.position(paths[mapping_id] + (key,), key=True)
            diags.error(Location(display, line, col), message)
        return None
    return LoadedSpec(path, display, spec, doc) if spec is not None else None


def _mapping_paths(data: Any, path: tuple[str | int, ...] = ()) -> dict[int, tuple[str | int, ...]]:
    """id() of every mapping in the data -> its path (to place errors found by identity)."""
    found: dict[int, tuple[str | int, ...]] = {}
    if isinstance(data, dict):
        found[id(data)] = path
        for key, value in data.items():
            found.update(_mapping_paths(value, path + (key,)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.update(_mapping_paths(value, path + (i,)))
    return found


def _report(
    error: dict[str, Any], doc: PositionedDocument, display: str, diags: Diagnostics
) -> None:
    path = _data_path(doc.data, error["loc"])
    key = "[key]" in error["loc"]
    message = error["msg"]
    if error["type"] == "union_tag_invalid":
        message = _SHAPE_MESSAGES.get(str(path[-1]) if path else "", "unexpected value")
    elif error["type"] == "missing":
        message = f"missing required key '{error['loc'][-1]}'"
    elif error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    elif error["type"] == "literal_error" and path == ("version",):
        message = "missing or unsupported 'version' (this ryla-gen reads version: 1)"
    where = ".".join(str(p) for p in path)
    if where:
        message = f"{where}: {message}"
    line, col = doc.position(path, key=key)
    diags.error(Location(display, line, col), message)


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Keep only the parts of a pydantic error location that exist in the data.

    Pydantic adds union tags and validator names to locations; the user's file has none.
    """
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)
