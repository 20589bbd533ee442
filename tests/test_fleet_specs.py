"""Spec errors of the fleet keys (fleet, chains, retired, reuse run): each reported at its place.

Small projects as in tests/test_invalid_specs.py: one fleet app ``front`` with /invert (an int
``width``) and /scale (a required ``image``), one chain, one retired route.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_invalid_specs import X, assert_reports, node, run_validate, workflow

SCALE_WF = workflow(
    node("LoadImage", {"image": "x.png"}, "Input Image"),
    node("ImageInvert", {"image": ["1", 0]}, "Invert"),
    node("SaveImage", {"images": ["2", 0], "filename_prefix": "t"}, "Save Image"),
)

FLEET = """\
version: 1
app:
  name: front
  gpu: T4
  volumes: {}
  fleet: true
endpoints:
  - path: /invert
    workflow: wf.json
    parameters:
      width: {type: int, default: 64, min: 1, max: 4096, bind: {title: Canvas, input: width}}
    output: {title: Save Image}
    examples:
      - {width: 64}
  - path: /scale
    workflow: scale.json
    parameters:
      image: {type: image, required: true, bind: {title: Input Image, input: image}}
    output: {title: Save Image}
    examples:
      - {image: "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGM8UaHBwMDAxMDAwMDAAAARqgFsecZ2JgAAAABJRU5ErkJggg=="}
chains:
  - path: /both
    parameters:
      size: {type: int, default: 8}
    steps:
      - name: canvas
        app: front
        path: /invert
        inputs: {width: size}
      - name: scaled
        app: front
        path: /scale
        inputs: {image: canvas.output}
retired:
  - {path: /old, use: /both, reason: replaced}
"""


def fleet(old: str = "", new: str = "") -> dict[str, str]:
    if old:
        assert FLEET.count(old) == 1, old
    return {X: FLEET.replace(old, new) if old else FLEET, "comfy_workflows/scale.json": SCALE_WF}


def at(text: str, fragment: str) -> str:
    """``file:line`` of the first line holding ``fragment``."""
    line = next(i for i, row in enumerate(text.splitlines(), 1) if fragment in row)
    return f"{X}:{line}"


CASES = [
    pytest.param(
        ("        path: /scale\n", "        path: /nope\n"),
        "path: /nope",
        "step scaled: app 'front' has no endpoint /nope (its endpoints: /invert, /scale)",
        id="step-unknown-path",
    ),
    pytest.param(
        ("inputs: {width: size}", "inputs: {wide: size}"),
        "inputs: {wide: size}",
        "step canvas: /invert has no field 'wide' (width)",
        id="step-unknown-field",
    ),
    pytest.param(
        ("inputs: {width: size}", "inputs: {width: scaled.output}"),
        "inputs: {width: scaled.output}",
        "step canvas: 'scaled.output' names no earlier step",
        id="output-of-a-later-step",
    ),
    pytest.param(
        ("inputs: {image: canvas.output}", "inputs: {image: size}"),
        "inputs: {image: size}",
        "step scaled: parameter 'size' is int, but /scale field 'image' is image",
        id="parameter-type-mismatch",
    ),
    pytest.param(
        ("inputs: {image: canvas.output}", "inputs: {}"),
        "- name: scaled",
        "step scaled: /scale needs field 'image'; map it in inputs",
        id="required-step-field-unmapped",
    ),
    pytest.param(
        ("inputs: {width: size}", "inputs: {width: colour}"),
        "inputs: {width: colour}",
        "'colour' is not a parameter of the chain (size)",
        id="unknown-chain-parameter",
    ),
    pytest.param(
        ("  - path: /both\n", "  - path: /invert  # the chain\n"),
        "/invert  # the chain",
        "chain /invert: the path is already an endpoint of 'front'",
        id="chain-path-taken",
    ),
    pytest.param(
        ("  fleet: true\n", ""),
        "chains:",
        "chains run on the fleet's front door: declare them in the app with 'fleet: true'",
        id="chain-outside-the-fleet-app",
    ),
    pytest.param(
        ("{path: /old, use: /both", "{path: /scale, use: /both"),
        "{path: /scale, use: /both",
        "retired /scale is still served by app 'front'",
        id="retired-path-still-served",
    ),
    pytest.param(
        ("use: /both, reason", "use: /nowhere, reason"),
        "use: /nowhere",
        "retired /old: use /nowhere is not served by any app",
        id="retired-replacement-unknown",
    ),
    pytest.param(
        ("  fleet: true\n", "reuse:\n  - {app: front, path: /invert, as: /inv, run: owner}\n"),
        "run: owner",
        "reuse run: owner forwards the route, which only the app with 'fleet: true' does",
        id="forward-outside-the-fleet-app",
    ),
]


@pytest.mark.parametrize(("change", "line_of", "fragment"), CASES)
def test_fleet_spec_error_is_reported_at_its_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: tuple[str, str],
    line_of: str,
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    files = fleet(*change)
    if change[1].startswith("reuse:"):  # a top-level key: move it out of the app mapping
        files[X] = files[X].replace(change[1], "") + change[1]
    assert_reports(run_validate(tmp_path, files), at(files[X], line_of), fragment)


def test_the_valid_fleet_lists_its_chain_and_retired_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from generator.cli import main

    monkeypatch.chdir(tmp_path)
    result = run_validate(tmp_path, fleet())
    assert result.exit_code == 0, result.output
    rows = json.loads(CliRunner().invoke(main, ["list", "--json"]).stdout)
    kinds = {(r["kind"], r["path"]) for r in rows}
    assert {("endpoint", "/invert"), ("chain", "/both"), ("retired", "/old")} <= kinds
    chain = next(r for r in rows if r["path"] == "/both")
    assert chain["steps"] == ["front/invert", "front/scale"]
    assert next(r for r in rows if r["path"] == "/old")["use"] == "/both"
