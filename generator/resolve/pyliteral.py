"""Python literals as generated code prints them."""

from __future__ import annotations

import dataclasses

FITS = 76  # a literal this long still fits a 100-column line at the deepest generated indent


def py_string(text: str, width: int = 64) -> str:
    """A string literal that fits generated lines: long text becomes implicitly joined parts."""
    if len(repr(text)) <= FITS:
        return repr(text)
    parts, current = [], ""
    for word in text.split(" "):
        if current and len(current) + len(word) + 1 > width:
            parts.append(current + " ")
            current = word
        else:
            current = f"{current} {word}" if current else word
    parts.append(current)
    chunks = [part[i : i + width] for part in parts for i in range(0, len(part), width)]
    return "(" + " ".join(repr(c) for c in chunks) + ")"


@dataclasses.dataclass(frozen=True)
class PyName:
    """A name printed as itself: a module constant standing in for its value."""

    name: str


def py_literal_named(value: object, names: dict[str, str]) -> str:
    """``py_literal``, with each string that ``names`` maps printed as that name instead."""

    def named(item: object) -> object:
        if isinstance(item, str) and item in names:
            return PyName(names[item])
        if isinstance(item, dict):
            return {k: named(v) for k, v in item.items()}
        if isinstance(item, list):
            return [named(v) for v in item]
        return item

    return py_literal(named(value))


def py_literal(value: object) -> str:
    """repr() for JSON-like values, with long strings split so generated lines stay short.

    A dataclass instance prints as its constructor call: fields without a default first
    (positionally when there are at most two, like ``Arg("steps", "int")``), the others by
    keyword when they differ from the default.
    """
    if isinstance(value, PyName):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _py_call(value)
    if isinstance(value, str):
        return py_string(value)
    if isinstance(value, dict):
        items = ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(py_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _py_call(value: object) -> str:
    fields = dataclasses.fields(value)  # type: ignore[arg-type]
    required = [f for f in fields if f.default is f.default_factory is dataclasses.MISSING]
    positional = len(required) <= 2
    args = []
    for f in fields:
        current = getattr(value, f.name)
        if f in required:
            text = py_literal(current)
            args.append(text if positional else f"{f.name}={text}")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if current != default:
            args.append(f"{f.name}={py_literal(current)}")
    return f"{type(value).__name__}({', '.join(args)})"
