"""JSON Schema (pydantic's, of one request model) -> type expressions and doc lines, for the
TypeScript and Python clients."""

from __future__ import annotations

import json
import re
from typing import Any

IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def _deref(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return defs[ref.rsplit("/", 1)[-1]] if ref else schema


def ts_type(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    schema = _deref(schema, defs)
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            parts = [ts_type(s, defs) for s in schema[key]]
            return " | ".join(dict.fromkeys(f"({p})" if "=>" in p else p for p in parts))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(ts_type({**schema, "type": k}, defs) for k in kind)
    if kind == "string":
        return "string"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        item = ts_type(schema.get("items", {}), defs)
        return f"Array<{item}>"
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", ()))
        fields = "; ".join(
            f"{ts_key(name)}{'' if name in required else '?'}: {ts_type(sub, defs)}"
            for name, sub in schema["properties"].items()
        )
        return "{ " + fields + " }"
    if kind == "object":
        extra = schema.get("additionalProperties")
        value = ts_type(extra, defs) if isinstance(extra, dict) else "unknown"
        return f"Record<string, {value}>"
    return "unknown"


def py_type(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    schema = _deref(schema, defs)
    if "const" in schema:
        return f"Literal[{schema['const']!r}]"
    if "enum" in schema:
        return "Literal[" + ", ".join(repr(v) for v in schema["enum"]) + "]"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(dict.fromkeys(py_type(s, defs) for s in schema[key]))
    kind = schema.get("type")
    simple = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
    if kind in simple:
        return simple[kind]
    if kind == "null":
        return "None"
    if kind == "array":
        return f"list[{py_type(schema.get('items', {}), defs)}]"
    if kind == "object":
        return "dict[str, Any]"
    return "Any"


def ts_key(name: str) -> str:
    return name if IDENTIFIER.match(name) else json.dumps(name)


def doc_text(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """One line: description, default, range, as the endpoint reference states them."""
    schema = _deref(schema, defs)
    parts = [schema["description"].strip()] if schema.get("description") else []
    bounds = schema
    for option in schema.get("anyOf", ()):
        if "minimum" in option or "maximum" in option:
            bounds = option
    low, high = bounds.get("minimum"), bounds.get("maximum")
    if low is not None or high is not None:
        parts.append(f"Range {'' if low is None else low}..{'' if high is None else high}.")
    if "default" in schema and schema["default"] is not None:
        parts.append(f"Default {json.dumps(schema['default'])}.")
    return " ".join(parts)
