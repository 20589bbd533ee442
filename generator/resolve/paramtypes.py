"""Parameter types: one small class each, saying how the type is declared and checked.

Adding a type is adding a class here and naming it in ``PARAM_TYPES``; the resolver and the
templates ask the type, never switch on its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


@dataclass(frozen=True)
class ParamType:
    name: str
    annotation: str  # Python annotation in the generated request model
    input_types: frozenset[str]  # ComfyUI input types it may be bound to
    numeric: bool = False
    media: bool = False

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is a valid value of this type (defaults, examples)."""
        raise NotImplementedError

    def fits(self, current: Any) -> bool:
        """Whether a node input now holding ``current`` can take values of this type."""
        return self.accepts(current) or ("FLOAT" in self.input_types and _is_number(current))


class _String(ParamType):
    def accepts(self, value: Any) -> bool:
        return isinstance(value, str)


class _Int(ParamType):
    def accepts(self, value: Any) -> bool:
        return _is_int(value)


class _Float(ParamType):
    def accepts(self, value: Any) -> bool:
        return _is_number(value)


class _Bool(ParamType):
    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


class _Enum(ParamType):
    def accepts(self, value: Any) -> bool:
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)


PARAM_TYPES: dict[str, ParamType] = {
    t.name: t
    for t in (
        _String("string", "str", frozenset({"STRING", "COMBO"})),
        _Int("int", "int", frozenset({"INT", "FLOAT"}), numeric=True),
        _Float("float", "float", frozenset({"FLOAT"}), numeric=True),
        _Bool("bool", "bool", frozenset({"BOOLEAN"})),
        _Enum("enum", "str", frozenset({"COMBO", "STRING", "INT", "FLOAT"})),
        _Int("seed", "int", frozenset({"INT"}), numeric=True),
        _String("image", "str", frozenset({"COMBO", "STRING"}), media=True),
        _String("video", "str", frozenset({"COMBO", "STRING"}), media=True),
        _String("mask", "str", frozenset({"COMBO", "STRING"}), media=True),
    )
}

SEED_MAX = 2**64 - 1
