"""Every trainer command the shipped job specs render obeys the argument rules of the script it
runs, as read from that script's source at the pinned commit (catalog/trainer-args.json)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import REPO, import_generated

from generator.cli import main
from generator.resolve.project import Project, load_project
from generator.resolve.trainer_args import check_arguments, load_rules, script_arguments
from generator.runtime.training import render_command

TRAINING = import_generated(REPO / "generated" / "ryla_lora_training.py")
(MODEL,) = [app for app in load_project(Project.at(REPO))[0] if app.name == "ryla-lora-training"]
RULES = load_rules()
CALL = {"job_id": "j", "trigger_word": "ryla_abc", "character_id": "c1"}
# Settings a call may send: the defaults, then each field at its other end.
CONFIGS = [{}, {"steps": 1, "rank": 128}, {"steps": 20000, "learning_rate": 0.01}]


def _rendered(job: Any, config: dict[str, Any]) -> list[str]:
    runtime = getattr(TRAINING, job.constant)
    urls = next(a.name for a in runtime.arguments if a.type == "url_list")
    known = {f.name for f in runtime.argument("config").fields}
    values = runtime.check_arguments(
        {
            **CALL,
            urls: ["https://example.com/a", "https://example.com/b"],
            "config": {k: v for k, v in config.items() if k in known and _fits(runtime, k, v)},
        }
    )
    context = {
        **values,
        "inputs": {urls: f"/w/{urls}"},
        "work_dir": "/w",
        "output_dir": "/w/output",
        "trainer_dir": runtime.trainer_dir,
        "python": "python",
    }
    return render_command(runtime, context)


def _fits(runtime: Any, name: str, value: Any) -> bool:
    try:
        runtime.argument("config").field(name).check(value)
    except Exception:
        return False
    return True


CASES = [
    pytest.param(job, config, id=f"{job.function}-{i}")
    for job in MODEL.training
    for i, config in enumerate(CONFIGS)
]


@pytest.mark.parametrize(("job", "config"), CASES)
def test_rendered_trainer_command_follows_the_pinned_scripts_rules(job: Any, config: dict) -> None:
    git, _, commit = job.trainer.partition("@")
    argv = _rendered(job, config)
    found = script_arguments(argv, getattr(TRAINING, job.constant).trainer_dir, RULES, git, commit)
    assert found is not None, f"{job.function}: no rules for {job.trainer} (argv: {argv})"
    rules, arguments = found
    assert check_arguments(arguments, rules) == [], f"{job.function} runs {rules.label}"


def test_every_pinned_trainer_has_rules() -> None:
    pinned = {job.trainer.partition("@")[::2] for job in MODEL.training}
    assert pinned <= {(r.git, r.commit) for r in RULES}


FINETRAINERS = next(r for r in RULES if r.script == "train.py")
FLUX = next(r for r in RULES if r.script.endswith("train_dreambooth_lora_flux.py"))
WAN_BASE = ["--model_name=wan", "--pretrained_model_name_or_path=x", "--dataset_config=/d.json"]


@pytest.mark.parametrize(
    ("rules", "arguments", "fragment"),
    [
        (FINETRAINERS, [*WAN_BASE, "--training_type=lora"], "as two argv items"),
        (FINETRAINERS, [*WAN_BASE, "--training_type", "lora", "--list_models"], "sys.exit(0)"),
        (FINETRAINERS, [*WAN_BASE, "--training_type", "lora", "--rnak=4"], "--rnak: no such"),
        (FINETRAINERS, [*WAN_BASE, "--training_type", "dora"], "not one of"),
        (FINETRAINERS, WAN_BASE, "--training_type: required"),
        (FINETRAINERS, [*WAN_BASE, "--training_type", "lora", "--gradient_checkpointing=1"],
         "takes no value"),
        (FINETRAINERS, [*WAN_BASE, "--training_type", "lora", "--rank=high"], "not a valid int"),
        (FINETRAINERS, [*WAN_BASE, "--training_type", "lora", "--seed"], "expects a value"),
        (FLUX, ["--pretrained_model_name_or_path=x", "--instance_prompt=p", "stray"], "stray"),
        (FLUX, ["--pretrained_model_name_or_path=x"], "--instance_prompt: required"),
    ],
)  # fmt: skip
def test_rule_breaks_are_reported(rules, arguments: list[str], fragment: str) -> None:
    problems = check_arguments(arguments, rules)
    assert any(fragment in p for p in problems), problems


def test_good_forms_pass() -> None:
    args = [*WAN_BASE, "--training_type", "lora", "--target_modules", "a", "b", "--rank", "8"]
    assert check_arguments(args, FINETRAINERS) == []


def test_validation_reports_todays_training_type_bug_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bring back `--training_type=lora` (the Wan trainers exited 0 without training)."""
    for name in ("specs", "comfy_workflows"):
        shutil.copytree(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "specs" / "ryla-lora-training.yaml"
    text = spec.read_text(encoding="utf-8")
    old = "      - --training_type\n      - lora\n"
    assert text.count(old) == 2
    spec.write_text(text.replace(old, "      - --training_type=lora\n"))
    first = text[: text.index(old)].count("\n") + 1
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if ": error: " in line]
    assert len(errors) == 2, result.output
    assert errors[0].startswith(
        f"specs/ryla-lora-training.yaml:{first}:9: error: training function train_wan_lora: "
        "finetrainers@358b616 train.py: '--training_type=lora': write --training_type and its "
        "value as two argv items"
    ), result.output
