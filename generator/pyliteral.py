"""Python literals as generated code prints them."""

from __future__ import annotations


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


def py_literal(value: object) -> str:
    """repr() for JSON-like values, with long strings split so generated lines stay short."""
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
