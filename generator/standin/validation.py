"""Prompt validation against the catalog, with ComfyUI's error types, messages and body shapes.

``validate`` answers what ``POST /prompt`` needs: whether the prompt can be queued, the top-level
``error`` of a rejection, the output nodes to execute, and ``node_errors`` keyed by node id
(``errors``, ``dependent_outputs``, ``class_type``). Literal input values are converted in place
to their declared type (INT, FLOAT, STRING, BOOLEAN), so the queued prompt holds typed values.
Exceptions raised while following links (a missing node, an output slot out of range) are
reported as ``exception_during_validation`` / ``exception_during_inner_validation`` with the
exception's type and message, as ComfyUI does.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog, InputField
from .files import StandinDirs
from .nodes import INPUT_CHECKS, InputCheck

_CONVERTERS = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
_LONG_CHOICE_LIST = 20

Verdict = tuple[bool, list[dict[str, Any]]]
"""(valid, errors of this node) for one validated node."""


@dataclass
class ValidationResult:
    """Outcome of validating one prompt."""

    ok: bool
    error: dict[str, Any] | None = None
    outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, dict[str, Any]] = field(default_factory=dict)


def full_type_name(kind: type) -> str:
    """``KeyError`` for builtins, ``module.QualName`` otherwise."""
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _error(kind: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def types_compatible(received: Any, expected: Any) -> bool:
    """Whether an output of type ``received`` may feed an input of type ``expected``.

    Equal types match; otherwise both must be type names, compared as comma-separated unions,
    with ``*`` matching anything.
    """
    if received == expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    received_set = {part.strip() for part in received.split(",")}
    expected_set = {part.strip() for part in expected.split(",")}
    if "*" in received_set or "*" in expected_set:
        return True
    return bool(received_set & expected_set)


class PromptValidator:
    """Validates API-format prompts against a :class:`Catalog`."""

    def __init__(
        self,
        catalog: Catalog,
        dirs: StandinDirs,
        input_checks: Mapping[str, Mapping[str, InputCheck]] = INPUT_CHECKS,
    ) -> None:
        self._catalog = catalog
        self._dirs = dirs
        self._input_checks = input_checks

    def validate(
        self, prompt: dict[str, Any], targets: list[str] | None = None
    ) -> ValidationResult:
        """Validate ``prompt``; ``targets`` limits the output nodes to execute.

        Raises ``TypeError``/``AttributeError`` for a prompt that is not a mapping of node
        objects (the server answers those with HTTP 500, as ComfyUI does).
        """
        outputs = []
        for node_id, node in prompt.items():
            if "class_type" not in node:
                message = "Cannot execute because a node is missing the class_type property."
                return ValidationResult(
                    False, _error("invalid_prompt", message, f"Node ID '#{node_id}'")
                )
            class_type = node["class_type"]
            if class_type not in self._catalog:
                message = f"Cannot execute because node {class_type} does not exist."
                return ValidationResult(
                    False, _error("invalid_prompt", message, f"Node ID '#{node_id}'")
                )
            if self._catalog.is_output_node(class_type) and (targets is None or node_id in targets):
                outputs.append(node_id)
        if not outputs:
            return ValidationResult(False, _error("prompt_no_outputs", "Prompt has no outputs"))
        return self._validate_outputs(prompt, outputs)

    def _validate_outputs(self, prompt: dict[str, Any], outputs: list[str]) -> ValidationResult:
        """Validate each output node with its upstream nodes; collect node errors per output."""
        validated: dict[str, Verdict] = {}
        good_outputs: list[str] = []
        failures: list[list[dict[str, Any]]] = []
        node_errors: dict[str, dict[str, Any]] = {}
        for output in outputs:
            try:
                valid, reasons = self._validate_node(prompt, output, validated)
            except Exception as exc:
                valid = False
                reasons = [
                    _error(
                        "exception_during_validation",
                        "Exception when validating node",
                        str(exc),
                        exception_type=full_type_name(type(exc)),
                        traceback=traceback.format_tb(exc.__traceback__),
                    )
                ]
                validated[output] = (False, reasons)
            if valid:
                good_outputs.append(output)
                continue
            failures.append(reasons)
            # Like ComfyUI, every invalid node validated so far lists this output as dependent.
            for node_id, (node_valid, node_reasons) in validated.items():
                if node_valid or not node_reasons:
                    continue
                entry = node_errors.setdefault(
                    node_id,
                    {
                        "errors": node_reasons,
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    },
                )
                entry["dependent_outputs"].append(output)
        if not good_outputs:
            details = "\n".join(f"{r['message']}: {r['details']}" for rs in failures for r in rs)
            error = _error(
                "prompt_outputs_failed_validation", "Prompt outputs failed validation", details
            )
            return ValidationResult(False, error, [], node_errors)
        return ValidationResult(True, None, good_outputs, node_errors)

    def _validate_node(
        self, prompt: dict[str, Any], node_id: str, validated: dict[str, Verdict]
    ) -> Verdict:
        """Validate one node's inputs, recursing into linked nodes first."""
        if node_id in validated:
            return validated[node_id]
        node = prompt[node_id]
        inputs = node["inputs"]
        class_type = node["class_type"]
        checks = self._input_checks.get(class_type, {})
        errors: list[dict[str, Any]] = []
        upstream_valid = True
        for spec in self._catalog.input_fields(class_type):
            if spec.name not in inputs:
                if spec.category == "required":
                    errors.append(
                        _error(
                            "required_input_missing",
                            "Required input is missing",
                            spec.name,
                            input_name=spec.name,
                        )
                    )
                continue
            value = inputs[spec.name]
            if isinstance(value, list):
                error, linked_valid = self._check_link(prompt, spec, value, validated)
                upstream_valid = upstream_valid and linked_valid
            else:
                error = self._check_value(inputs, spec, checks)
            if error is not None:
                errors.append(error)
        errors += self._run_custom_checks(inputs, checks)
        verdict = (upstream_valid and not errors, errors)
        validated[node_id] = verdict
        return verdict

    def _check_link(
        self,
        prompt: dict[str, Any],
        spec: InputField,
        link: list[Any],
        validated: dict[str, Verdict],
    ) -> tuple[dict[str, Any] | None, bool]:
        """Check a ``[node_id, slot]`` link; return (error, whether the linked node is valid)."""
        if len(link) != 2:
            message = "Bad linked input, must be a length-2 list of [node_id, slot_index]"
            return _error(
                "bad_linked_input",
                message,
                spec.name,
                input_name=spec.name,
                input_config=spec.config,
                received_value=link,
            ), True
        source_id, slot = link
        source_class = prompt[source_id]["class_type"]
        received = self._catalog.output_types(source_class)[slot]
        if not types_compatible(received, spec.type):
            return _error(
                "return_type_mismatch",
                "Return type mismatch between linked nodes",
                f"{spec.name}, received_type({received}) mismatch input_type({spec.type})",
                input_name=spec.name,
                input_config=spec.config,
                received_type=received,
                linked_node=link,
            ), True
        try:
            linked_valid, _ = self._validate_node(prompt, source_id, validated)
        except Exception as exc:
            validated[source_id] = (
                False,
                [
                    _error(
                        "exception_during_inner_validation",
                        "Exception when validating inner node",
                        str(exc),
                        input_name=spec.name,
                        input_config=spec.config,
                        exception_message=str(exc),
                        exception_type=full_type_name(type(exc)),
                        traceback=traceback.format_tb(exc.__traceback__),
                        linked_node=link,
                    )
                ],
            )
            return None, False
        return None, linked_valid

    def _check_value(
        self, inputs: dict[str, Any], spec: InputField, checks: Mapping[str, InputCheck]
    ) -> dict[str, Any] | None:
        """Convert a literal to its declared type in place, then check range and choices."""
        value = inputs[spec.name]
        if isinstance(value, dict) and "__value__" in value:
            value = inputs[spec.name] = value["__value__"]
        converter = _CONVERTERS.get(spec.type) if isinstance(spec.type, str) else None
        if converter is not None:
            try:
                value = inputs[spec.name] = converter(value)
            except Exception as exc:
                return _error(
                    "invalid_input_type",
                    f"Failed to convert an input value to a {spec.type} value",
                    f"{spec.name}, {value}, {exc}",
                    input_name=spec.name,
                    input_config=spec.config,
                    received_value=value,
                    exception_message=str(exc),
                )
        if spec.name in checks:
            return None
        return _check_range(spec, value) or _check_choice(spec, value)

    def _run_custom_checks(
        self, inputs: dict[str, Any], checks: Mapping[str, InputCheck]
    ) -> list[dict[str, Any]]:
        """Run the class's custom checks on literal inputs (ComfyUI's ``VALIDATE_INPUTS``)."""
        errors = []
        for name, check in checks.items():
            if name not in inputs or isinstance(inputs[name], list):
                continue
            verdict = check(self._dirs, inputs[name])
            if verdict is True:
                continue
            details = name if verdict is False else f"{name} - {verdict}"
            errors.append(
                _error(
                    "custom_validation_failed",
                    "Custom validation failed for node",
                    details,
                    input_name=name,
                )
            )
        return errors


def _check_range(spec: InputField, value: Any) -> dict[str, Any] | None:
    """``value_smaller_than_min`` / ``value_bigger_than_max`` against the input's options."""
    if "min" in spec.options and value < spec.options["min"]:
        message = f"Value {value} smaller than min of {spec.options['min']}"
        return _range_error("value_smaller_than_min", message, spec, value)
    if "max" in spec.options and value > spec.options["max"]:
        message = f"Value {value} bigger than max of {spec.options['max']}"
        return _range_error("value_bigger_than_max", message, spec, value)
    return None


def _range_error(kind: str, message: str, spec: InputField, value: Any) -> dict[str, Any]:
    return _error(
        kind,
        message,
        spec.name,
        input_name=spec.name,
        input_config=spec.config,
        received_value=value,
    )


def _check_choice(spec: InputField, value: Any) -> dict[str, Any] | None:
    """``value_not_in_list`` for combo inputs (a list type, or ``COMBO`` with ``options``)."""
    if isinstance(spec.type, list):
        choices = spec.type
    elif spec.type == "COMBO":
        choices = spec.options.get("options", [])
    else:
        return None
    if value in choices:
        return None
    long_list = len(choices) > _LONG_CHOICE_LIST
    listing = f"(list of length {len(choices)})" if long_list else str(choices)
    return _error(
        "value_not_in_list",
        "Value not in list",
        f"{spec.name}: '{value}' not in {listing}",
        input_name=spec.name,
        input_config=None if long_list else spec.config,
        received_value=value,
    )
