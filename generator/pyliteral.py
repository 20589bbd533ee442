"""Python literals as generated code prints them."""

from __future__ import annotations


def py_string(text: str, width: int = 64) -> str:
    """A string literal that fits generated lines: long text becomes implicitly joined parts."""
    if len(text) <= width:
        return repr(text)
    parts, current = [], ""
    for word in text.split(" "):
        if current and len(current) + len(word) + 1 > width:
            parts.append(current + " ")
            current = word
        else:
            current = f"{current} {word}" if current else word
    parts.append(current)
    return "(" + " ".join(repr(p) for p in parts) + ")"
