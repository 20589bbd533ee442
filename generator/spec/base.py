"""Building blocks shared by the spec format's models (apps, endpoints, training)."""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*[a-z0-9]$", max_length=60)]
Identifier = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")]
Commit = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def unknown_key_message(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}'{hint}; expected one of: {', '.join(allowed)}"


def shape(value: Any) -> str:
    """Discriminates the 'one or many' and 'mapping or name' unions by the value's shape."""
    if isinstance(value, list):
        return "many"
    if isinstance(value, dict):
        return "mapping"
    return "scalar"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any, info: ValidationInfo) -> Any:
        """Unknown keys, with a did-you-mean. With a ``unknown_keys`` list in the validation
        context they are collected there (so every other error is still found) and dropped."""
        if not isinstance(data, dict):
            return data
        allowed = [field.alias or name for name, field in cls.model_fields.items()]
        unknown = [key for key in data if key not in allowed]
        if not unknown:
            return data
        sink = (info.context or {}).get("unknown_keys")
        messages = [unknown_key_message(str(key), allowed) for key in unknown]
        if sink is None:
            raise PydanticCustomError("unknown_key", "{message}", {"message": messages[0]})
        sink.extend(
            (id(data), key, message) for key, message in zip(unknown, messages, strict=True)
        )
        return {k: v for k, v in data.items() if k not in unknown}
