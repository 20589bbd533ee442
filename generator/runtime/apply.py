"""Request -> workflow: apply a validated request to a copy of the endpoint's workflow."""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .config import PRIVATE_INPUT, Endpoint, Param, choice_key

SEED_MAX = 2**64 - 1


@dataclass
class Applied:
    """The prompt to submit and what the response reports about it."""

    prompt: dict[str, Any]
    values: dict[str, Any]  # every parameter's final value (after defaults, seeds, sets)
    headers: dict[str, str] = field(default_factory=dict)


def resolve_values(endpoint: Endpoint, request: dict[str, Any]) -> dict[str, Any]:
    """Final parameter values: request values, random seeds, choice-derived values."""
    values = dict(request)
    for param in endpoint.params:
        blank = values.get(param.name)
        if param.blank_default is not None and isinstance(blank, str) and not blank.strip():
            values[param.name] = param.blank_default
    for param in endpoint.params:
        if param.kind == "seed" and values.get(param.name) is None:
            values[param.name] = random.randint(0, SEED_MAX)
    for param in endpoint.params:
        chosen = values.get(param.name)
        if param.sets and chosen is not None and choice_key(chosen) in param.sets:
            values.update(param.sets[choice_key(chosen)])
    for param in endpoint.params:
        prefix = values.get(param.name)
        if param.prepend_to and prefix:
            target = values.get(param.prepend_to) or ""
            if not target:
                values[param.prepend_to] = prefix
            elif not starts_with_phrase(target, prefix):
                values[param.prepend_to] = f"{prefix}{param.separator}{target}"
    return values


def starts_with_phrase(text: str, phrase: str) -> bool:
    """Whether ``text`` already begins with ``phrase`` as a whole word or words (case and
    surrounding spaces ignored): a trigger word is not prepended twice, but ``ryla_ab`` is not
    taken for the start of ``ryla_abc walking``."""
    head, phrase = text.lstrip().casefold(), phrase.strip().casefold()
    if not phrase or not head.startswith(phrase):
        return False
    rest = head[len(phrase) :]
    return not rest or not (rest[0].isalnum() or rest[0] == "_")


def apply_request(
    endpoint: Endpoint,
    workflow: dict[str, Any],
    request: dict[str, Any],
    uploads: dict[str, list[str]],
    prefix: str | None = None,
) -> Applied:
    """Build the prompt; ``uploads`` maps media parameters to the names ComfyUI stored;
    ``prefix``: the ``filename_prefix`` of its save nodes (default: a fresh unique one)."""
    values = resolve_values(endpoint, request)
    prompt = copy.deepcopy(workflow)
    for param in endpoint.params:
        _set_targets(prompt, param, values, uploads)
    prefix = prefix or f"ryla/{uuid.uuid4().hex}"
    for node_id in endpoint.prefix_nodes:
        prompt[node_id]["inputs"]["filename_prefix"] = prefix
    for node_id in endpoint.private_nodes:
        prompt[node_id]["inputs"][PRIVATE_INPUT] = endpoint.path
    headers = {}
    for param in endpoint.params:
        if param.header and values.get(param.name) is not None:
            headers[param.header] = header_value(str(values[param.name]))
    for name, template in endpoint.headers.items():
        headers[name] = header_value(template.format_map(_Blank(values)))
    return Applied(prompt, values, headers)


def _set_targets(
    prompt: dict[str, Any], param: Param, values: dict[str, Any], uploads: dict[str, list[str]]
) -> None:
    if param.name in uploads:
        names = uploads[param.name]
        for i, target in enumerate(param.targets):
            prompt[target.node]["inputs"][target.input] = names[min(i, len(names) - 1)]
        return
    value = values.get(param.name)
    if value is None:
        return  # not given and no default: the workflow's own value stays
    if param.format is not None:
        value = param.format.format_map(_Blank(values))
    elif param.map is not None:
        value = param.map[choice_key(value)]
    for target in param.targets:
        prompt[target.node]["inputs"][target.input] = value


def header_value(text: str) -> str:
    """A request value made safe for a response header: printable ASCII kept, the rest
    percent-encoded (a newline or a non-Latin-1 character would otherwise break the answer)."""
    return quote(text, safe="".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%"))


class _Blank(dict):
    """format_map mapping in which absent values print as empty strings."""

    def __missing__(self, key: str) -> str:
        return ""
