"""Trainer command lines checked against the argument rules of the pinned trainer scripts.

The rules are data (``catalog/trainer-args.json``): per trainer repository and commit, per
script, which options exist, whether each takes a value (``none``: a flag; ``one``; ``many``:
nargs '+'), its type and choices, which are required, which must be written as two argv
elements, and which make the script exit without training. They were read from each script's
source at the pinned commit; this module only applies them to a rendered argv.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..shipped import shipped_dir

RULES_FILE = shipped_dir("catalog") / "trainer-args.json"


@dataclass(frozen=True)
class ScriptRules:
    """The command-line rules of one trainer script at one commit."""

    git: str
    commit: str
    script: str  # path inside the repository
    options: dict[str, dict[str, Any]]
    separate_value: dict[str, str] = field(default_factory=dict)  # option -> why
    exits_without_training: dict[str, str] = field(default_factory=dict)
    unknown_options: str = ""

    @property
    def label(self) -> str:
        return f"{self.git.rsplit('/', 1)[-1]}@{self.commit[:7]} {self.script}"


def load_rules(path: Path = RULES_FILE) -> list[ScriptRules]:
    """Every script's rules; none when the rules file is absent (an installed package)."""
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        ScriptRules(
            git=trainer["git"],
            commit=trainer["commit"],
            script=script,
            options=rules["options"],
            separate_value=rules.get("separate_value", {}),
            exits_without_training=rules.get("exits_without_training", {}),
            unknown_options=rules.get("unknown_options", ""),
        )
        for trainer in data["trainers"]
        for script, rules in trainer["scripts"].items()
    ]


def script_arguments(
    argv: Sequence[str], trainer_dir: str, rules: Sequence[ScriptRules], git: str, commit: str
) -> tuple[ScriptRules, list[str]] | None:
    """The rules of the script ``argv`` runs (``{trainer_dir}/<script>`` among its items) and
    the items after it; None when the command runs no script these rules know."""
    for index, item in enumerate(argv):
        for rule in rules:
            if (rule.git, rule.commit) == (git, commit) and item == f"{trainer_dir}/{rule.script}":
                return rule, list(argv[index + 1 :])
    return None


def check_arguments(arguments: Sequence[str], rules: ScriptRules) -> list[str]:
    """Every way ``arguments`` (what follows the script path) breaks the script's rules."""
    return [message for _, message in located_problems(arguments, rules)]


def located_problems(arguments: Sequence[str], rules: ScriptRules) -> list[tuple[int | None, str]]:
    """Like :func:`check_arguments`, each message with the index of the item at fault (None for
    a missing required option)."""
    problems: list[tuple[int | None, str]] = []
    seen: set[str] = set()
    i = 0
    while i < len(arguments):
        at, item = i, arguments[i]
        i += 1
        if not item.startswith("--"):
            problems.append(
                (at, f"{item!r}: a stray value (the script takes no positional arguments)")
            )
            continue
        name, has_inline, inline = item.partition("=")
        if name in rules.exits_without_training:
            problems.append((at, f"{name}: {rules.exits_without_training[name]}"))
            continue
        spec = rules.options.get(name)
        if spec is None:
            problems.append((at, f"{name}: no such option ({rules.unknown_options or 'unknown'})"))
            continue
        seen.add(name)
        kind = spec["value"]
        if kind == "none":
            if has_inline:
                problems.append((at, f"{item!r}: {name} is a flag and takes no value"))
            continue
        if has_inline:
            if name in rules.separate_value:
                problems.append(
                    (
                        at,
                        f"{item!r}: write {name} and its value as two argv items "
                        f"({rules.separate_value[name]})",
                    )
                )
            values = [inline]
        else:
            values = []
            while i < len(arguments) and not arguments[i].startswith("--"):
                values.append(arguments[i])
                i += 1
                if kind == "one":
                    break
            if not values:
                problems.append((at, f"{name}: expects a value"))
                continue
        problems.extend((at, message) for message in _check_values(name, spec, values))
    for name, spec in rules.options.items():
        if spec.get("required") and name not in seen:
            problems.append((None, f"{name}: required by the script, missing"))
    return problems


def _check_values(name: str, spec: dict[str, Any], values: list[str]) -> list[str]:
    problems = []
    convert = {"int": int, "float": float}.get(spec.get("type", "str"))
    for value in values:
        if convert is not None:
            try:
                convert(value)
            except ValueError:
                problems.append(f"{name}={value!r}: not a valid {spec['type']}")
                continue
        choices = spec.get("choices")
        if choices is not None and value not in [str(c) for c in choices]:
            problems.append(f"{name}={value!r}: not one of {', '.join(map(str, choices))}")
    return problems


def sample_context(training: Any) -> dict[str, Any]:
    """Template values of a call with default settings (required values made up), to render a
    training function's command for checking."""
    values: dict[str, Any] = {}
    for arg in training.arguments:
        if arg.type == "options":
            values[arg.name] = {f.name: f.default for f in arg.fields}
        elif arg.type == "url_list":
            values[arg.name] = [f"https://example.com/{i}" for i in range(arg.min_items or 1)]
        elif arg.default is not None:
            values[arg.name] = arg.default
        else:
            values[arg.name] = {"string": "x", "int": 1, "float": 1.0, "bool": False}[arg.type]
    return {
        **values,
        "inputs": {a.name: f"/work/{a.name}" for a in training.arguments if a.type == "url_list"},
        "work_dir": "/work",
        "output_dir": "/work/output",
        "trainer_dir": training.trainer_dir,
        "python": "python",
    }
