"""Invalid specs: every problem is reported as ``file:line:col: error: message``, exit 2.

Each case builds a small project in a temporary directory (``specs/`` and ``comfy_workflows/``),
runs the real CLI in-process and checks the reported place and message. Workflows are written
one node per line, so node ``k`` of a workflow (1-based, in order) opens on line ``k + 1``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

from generator.cli import main
from generator.diagnostics import Diagnostics
from generator.spec.format import json_schema
from generator.spec.load import load_spec

REPO = Path(__file__).resolve().parents[1]
X = "specs/x.yaml"  # the spec file of single-file cases
WF = "comfy_workflows/wf.json"  # the default workflow


def node(class_type: str, inputs: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"class_type": class_type, "inputs": inputs}
    if title is not None:
        out["_meta"] = {"title": title}
    return out


def workflow(*nodes: dict[str, Any]) -> str:
    """An API-format workflow; node ``i`` (ids 1, 2, ...) on line ``i + 1``."""
    body = ",\n".join(f'  "{i}": {json.dumps(n)}' for i, n in enumerate(nodes, start=1))
    return "{\n" + body + "\n}\n"


CANVAS = node("EmptyImage", {"width": 64, "height": 64, "batch_size": 1, "color": 0}, "Canvas")
INVERT = node("ImageInvert", {"image": ["1", 0]}, "Invert")
SAVE = node("SaveImage", {"images": ["2", 0], "filename_prefix": "t"}, "Save Image")
# EmptyImage -> ImageInvert -> SaveImage; titles Canvas, Invert, Save Image.
DEFAULT_WORKFLOW = workflow(CANVAS, INVERT, SAVE)

# A valid spec; most cases are one edit of it. Lines: 3 name, 4 gpu, 7 path, 8 workflow,
# 10 width, 11 type, 12 default, 13 min, 14 max, 15 bind, 16 output, 18 the example.
VALID = """\
version: 1
app:
  name: demo
  gpu: T4
  volumes: {}
endpoints:
  - path: /invert
    workflow: wf.json
    parameters:
      width:
        type: int
        default: 64
        min: 1
        max: 4096
        bind: {title: Canvas, input: width}
    output: {title: Save Image}
    examples:
      - {width: 64}
"""

# An enum parameter bound to a string input. Lines: 10 prefix, 11 type, 12 choices,
# 13 default, 14 bind, 15 output, 17 the example.
ENUM = """\
version: 1
app:
  name: demo
  gpu: T4
  volumes: {}
endpoints:
  - path: /invert
    workflow: wf.json
    parameters:
      prefix:
        type: enum
        choices: [a, b]
        default: a
        bind: {title: Save Image, input: filename_prefix}
    output: {title: Save Image}
    examples:
      - {prefix: a}
"""

# Two parameters (aliases, prepend_to, format, require_one_of, examples). Lines: 10 width,
# 11 type, 12 aliases, 13 bind, 14 prefix, 15 type, 16 bind, 17 output, 19 the example.
TWO = """\
version: 1
app:
  name: demo
  gpu: T4
  volumes: {}
endpoints:
  - path: /invert
    workflow: wf.json
    parameters:
      width:
        type: int
        aliases: [w]
        bind: {title: Canvas, input: width}
      prefix:
        type: string
        bind: {title: Save Image, input: filename_prefix}
    output: {title: Save Image}
    examples:
      - {width: 64, prefix: t}
"""

# Two endpoints of one app; {0}: custom_nodes or models, {1} and {2}: one item each
# (lines 11 and 17, column 9).
TWO_ENDPOINTS = """\
version: 1
app:
  name: demo
  gpu: T4
endpoints:
  - path: /a
    workflow: wf.json
    output: {{node: '3'}}
    examples: [{{}}]
    {0}:
      - {1}
  - path: /b
    workflow: wf.json
    output: {{node: '3'}}
    examples: [{{}}]
    {0}:
      - {2}
"""
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
INT_PARAM = "type: int\n        default: 64\n        min: 1\n        max: 4096"


def spec(text: str, **workflows: str) -> dict[str, str]:
    """Files of a one-spec project: specs/x.yaml and comfy_workflows/<name>.json."""
    files = {X: text}
    files.update({f"comfy_workflows/{name}.json": body for name, body in workflows.items()})
    return files


def edit(old: str, new: str, base: str = VALID, **workflows: str) -> dict[str, str]:
    """``base`` with ``old`` replaced by ``new`` (``old`` must occur exactly once)."""
    assert base.count(old) == 1, old
    return spec(base.replace(old, new), **workflows)


def write_project(root: Path, files: dict[str, str]) -> None:
    (root / "specs").mkdir()
    (root / "comfy_workflows").mkdir()
    files = {WF: DEFAULT_WORKFLOW, **files}
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")


def run_validate(root: Path, files: dict[str, str], *args: str) -> Result:
    write_project(root, files)
    return CliRunner().invoke(main, ["validate", *args])


def assert_no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output, result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)


def assert_reports(result: Result, where: str, fragment: str) -> None:
    """Exit 2, an error line at ``where`` (file:line[:col]) carrying ``fragment``."""
    assert_no_traceback(result)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if ": error: " in line]
    hits = [e for e in errors if e.startswith(where + ":") and fragment in e]
    assert hits, f"no error at {where} containing {fragment!r}; got:\n{result.output}"
    assert "nothing was generated" in result.output


# --- spec-level cases (no node catalog) --------------------------------------------------------

SPEC_CASES = [
    # --- YAML ---
    pytest.param(
        edit("  gpu: T4", "  gpu: T4: x"),
        f"{X}:4:10",
        "invalid YAML: mapping values are not allowed here",
        id="yaml-syntax",
    ),
    pytest.param(
        edit("      - {width: 64}", "      - {width: 64"),
        f"{X}:19:1",
        "invalid YAML: expected ',' or '}'",
        id="yaml-unclosed-flow-mapping",
    ),
    pytest.param(
        edit("  volumes: {}", "  volumes: {}\n  gpu: L4"),
        f"{X}:6:3",
        "duplicate key 'gpu' (first defined at line 4)",
        id="yaml-duplicate-key",
    ),
    pytest.param(
        edit("{title: Canvas, input: width}", "{title: Canvas, input: width, input: height}"),
        f"{X}:15:45",
        "duplicate key 'input' (first defined at line 15)",
        id="yaml-duplicate-key-flow",
    ),
    pytest.param(
        spec("- version: 1\n"),
        f"{X}:1:1",
        "a spec file must be a mapping with 'version' and 'app'",
        id="yaml-not-a-mapping",
    ),
    # --- structure: version ---
    pytest.param(
        edit("version: 1", "version: 2"),
        f"{X}:1:10",
        "unsupported spec version 2; this ryla-gen reads version 1",
        id="version-unsupported",
    ),
    pytest.param(
        edit("version: 1", "version: '1'"),
        f"{X}:1:10",
        "unsupported spec version '1'",
        id="version-string",
    ),
    pytest.param(
        edit("version: 1\n", ""),
        f"{X}:1:1",
        "missing required key 'version'",
        id="version-missing",
    ),
    # --- structure: unknown keys ---
    pytest.param(
        edit("    workflow: wf.json", "    workflow: wf.json\n    summry: Inverts"),
        f"{X}:9:5",
        "unknown key 'summry' (did you mean 'summary'?); expected one of: path, workflow",
        id="unknown-key-did-you-mean",
    ),
    pytest.param(
        edit("endpoints:", "endpoint:"),
        f"{X}:6:1",
        "unknown key 'endpoint' (did you mean 'endpoints'?)",
        id="unknown-key-top-level",
    ),
    pytest.param(
        edit("        min: 1", "        minimum: 1"),
        f"{X}:13:9",
        "unknown key 'minimum' (did you mean 'min'?)",
        id="unknown-key-parameter",
    ),
    pytest.param(
        edit("  gpu: T4", "  gpu: T4\n  zzz: 1"),
        f"{X}:5:3",
        "unknown key 'zzz'; expected one of: name, description, gpu",
        id="unknown-key-no-suggestion",
    ),
    # --- structure: types ---
    pytest.param(
        edit("  gpu: T4", "  gpu: T4\n  timeout: '300'"),
        f"{X}:5:12",
        "app.timeout: Input should be a valid integer",
        id="wrong-type-string-for-int",
    ),
    pytest.param(
        edit("  gpu: T4", "  gpu: T4\n  memory_snapshot: 'yes'"),
        f"{X}:5:20",
        "app.memory_snapshot: Input should be a valid boolean",
        id="wrong-type-string-for-bool",
    ),
    pytest.param(
        edit("        type: int", "        type: integer"),
        f"{X}:11:15",
        "endpoints.0.parameters.width.type: Input should be 'string', 'int'",
        id="wrong-type-unknown-param-type",
    ),
    pytest.param(
        edit("  - path: /invert", "  - path: invert"),
        f"{X}:7:11",
        "endpoints.0.path: String should match pattern",
        id="wrong-type-path-pattern",
    ),
    pytest.param(
        edit("  name: demo", "  name: Demo_App"),
        f"{X}:3:9",
        "app.name: String should match pattern",
        id="wrong-type-app-name-pattern",
    ),
    pytest.param(
        edit("  gpu: T4", "  gpu: T4\n  timeout: 0"),
        f"{X}:5:12",
        "app.timeout: Input should be greater than 0",
        id="wrong-type-timeout-zero",
    ),
    pytest.param(
        edit("endpoints:\n", "endpoints:\n  - path: /a\n    output: {node: '3'}\n"),
        f"{X}:7:5",
        "endpoints.0: missing required key 'workflow'",
        id="missing-key-workflow",
    ),
    pytest.param(
        edit("    output: {title: Save Image}\n", ""),
        f"{X}:7:5",
        "endpoints.0: missing required key 'output'",
        id="missing-key-output",
    ),
    pytest.param(
        edit("        bind: {title: Canvas, input: width}", "        bind: {title: Canvas}"),
        f"{X}:15:15",
        "endpoints.0.parameters.width.bind: missing required key 'input'",
        id="missing-key-bind-input",
    ),
    pytest.param(
        edit("{title: Canvas, input: width}", "{node: '1', title: Canvas, input: width}"),
        f"{X}:15:15",
        "give exactly one of 'node' or 'title'",
        id="bind-node-and-title",
    ),
    pytest.param(
        edit("  volumes: {}", "  volumes: {}\n  auth: bearer"),
        f"{X}:6:9",
        "auth: bearer needs 'auth_secret'",
        id="bearer-without-secret",
    ),
    pytest.param(
        edit("  volumes: {}", "  volumes: {}\n  auth: none"),
        f"{X}:6:9",
        "auth: none needs an explicit 'max_containers'",
        id="public-without-max-containers",
    ),
    pytest.param(
        edit("  volumes: {}", "  volumes: {models: ryla-models}"),
        f"{X}:5:12",
        "volume mount path 'models' must be absolute",
        id="volume-mount-relative",
    ),
    # --- apps and files ---
    pytest.param(
        {
            "specs/a.yaml": VALID,
            "specs/b.yaml": VALID.replace("/invert", "/other"),
        },
        "specs/b.yaml:3:9",
        "app 'demo' is already defined at specs/a.yaml:3:9",
        id="app-defined-twice",
    ),
    pytest.param(
        {
            "specs/a.yaml": VALID,
            "specs/b.yaml": "version: 1\napp: dmeo\nendpoints: []\n",
        },
        "specs/b.yaml:2:6",
        "app 'dmeo' is not defined in any spec file",
        id="app-undefined",
    ),
    pytest.param(
        spec(VALID + VALID[VALID.index("  - path") :]),
        f"{X}:19:11",
        "duplicate path /invert in app 'demo' (first at specs/x.yaml:7:11)",
        id="duplicate-endpoint-path",
    ),
    pytest.param(
        {
            "specs/a.yaml": VALID,
            "specs/b.yaml": "version: 1\napp: demo\nendpoints:\n"
            + VALID[VALID.index("  - path") :],
        },
        "specs/b.yaml:4:11",
        "duplicate path /invert in app 'demo' (first at specs/a.yaml:7:11)",
        id="duplicate-endpoint-path-two-files",
    ),
    pytest.param(
        spec("version: 1\napp:\n  name: demo\n  gpu: T4\n"),
        f"{X}:3:3",
        "app 'demo' has no endpoints",
        id="app-without-endpoints",
    ),
    # --- GPUs ---
    pytest.param(
        edit("  gpu: T4", "  gpu: T5"),
        f"{X}:4:8",
        "unknown GPU 'T5'; Modal offers: T4, L4",
        id="gpu-unknown",
    ),
    pytest.param(
        edit("    workflow: wf.json", "    workflow: wf.json\n    gpu: H100:9"),
        f"{X}:9:10",
        "GPU count in 'H100:9' must be 1..8",
        id="gpu-count-above-8",
    ),
    # --- workflow files ---
    pytest.param(
        edit("workflow: wf.json", "workflow: nope.json"),
        f"{X}:8:15",
        "/invert: comfy_workflows/nope.json: workflow file not found: comfy_workflows/nope.json",
        id="workflow-missing",
    ),
    pytest.param(
        edit(
            "workflow: wf.json",
            "workflow: ui.json",
            ui=json.dumps({"nodes": [{"id": 1, "type": "SaveImage"}], "links": []}),
        ),
        f"{X}:8:15",
        "comfy_workflows/ui.json: this is a ComfyUI UI export, not API format",
        id="workflow-ui-export",
    ),
    pytest.param(
        edit("workflow: wf.json", "workflow: bad.json", bad='{\n  "1": {"class_type": "X",}\n}\n'),
        f"{X}:8:15",
        "comfy_workflows/bad.json: invalid JSON at line 2 col 27",
        id="workflow-not-json",
    ),
    pytest.param(
        edit("workflow: wf.json", "workflow: odd.json", odd='{"1": {"inputs": {}}}'),
        f"{X}:8:15",
        "node '1' has no 'class_type': not API format",
        id="workflow-node-without-class-type",
    ),
    # --- bindings ---
    pytest.param(
        edit("{title: Canvas, input: width}", "{node: '9', input: width}"),
        f"{X}:15:22",
        'no node \'9\' in wf.json; nodes: 1 (EmptyImage "Canvas"), 2 (ImageInvert "Invert"), '
        '3 (SaveImage "Save Image")',
        id="bind-missing-node-id",
    ),
    pytest.param(
        edit("{title: Canvas, input: width}", "{title: Canvass, input: width}"),
        f"{X}:15:23",
        "no node titled 'Canvass' in wf.json; titles: 'Canvas', 'Invert', 'Save Image'",
        id="bind-missing-title",
    ),
    pytest.param(
        spec(
            VALID,
            wf=workflow(CANVAS, INVERT, SAVE, node("EmptyImage", {"width": 8}, "Canvas")),
        ),
        f"{X}:15:23",
        "title 'Canvas' is not unique in wf.json (nodes 1, 4); bind by node id",
        id="bind-ambiguous-title",
    ),
    pytest.param(
        edit("{title: Canvas, input: width}", "{title: Canvas, input: widht}"),
        f"{X}:15:38",
        "node 1 (EmptyImage) has no input 'widht'; its inputs: width, height, batch_size, color",
        id="bind-missing-input",
    ),
    pytest.param(
        edit("{title: Canvas, input: width}", "{title: Invert, input: image}"),
        f"{X}:15:38",
        "input 'image' of node 2 (ImageInvert) is a link from node 1; bind a literal input",
        id="bind-link-input",
    ),
    pytest.param(
        edit("type: int\n        default: 64\n        min: 1\n        max: 4096", "type: string"),
        f"{X}:11:15",
        "parameter 'width' (string) does not fit input 'width' of node 1 (EmptyImage), "
        "which holds 64",
        id="param-type-does-not-fit-input",
    ),
    pytest.param(
        edit("        bind: {title: Canvas, input: width}\n", ""),
        f"{X}:11:9",
        "parameter 'width' is bound to nothing",
        id="param-bound-to-nothing",
    ),
    pytest.param(
        edit(
            "        bind: {title: Canvas, input: width}",
            "        ignored: true\n        header: X-W",
        ),
        f"{X}:15:18",
        "parameter 'width' is 'ignored' but also used",
        id="param-ignored-but-used",
    ),
    # --- parameter values ---
    pytest.param(
        edit("default: 64", "default: 5000"),
        f"{X}:12:18",
        "parameter 'width': default 5000 is above max 4096",
        id="default-above-max",
    ),
    pytest.param(
        edit("default: 64", "default: 0"),
        f"{X}:12:18",
        "parameter 'width': default 0 is below min 1",
        id="default-below-min",
    ),
    pytest.param(
        edit("min: 1", "min: 5000"),
        f"{X}:13:14",
        "parameter 'width': min 5000 is greater than max 4096",
        id="min-greater-than-max",
    ),
    pytest.param(
        edit("default: 64", "default: '64'"),
        f"{X}:12:18",
        "parameter 'width': default '64' is not a valid int",
        id="default-wrong-type",
    ),
    pytest.param(
        edit(INT_PARAM, "type: string\n        max: 5"),
        f"{X}:11:15",
        "parameter 'width': min/max/multiple_of need a numeric type",
        id="bounds-on-non-numeric",
    ),
    pytest.param(
        edit(INT_PARAM, "type: seed\n        default: lucky"),
        f"{X}:12:18",
        "parameter 'width': default 'lucky' is not a valid seed",
        id="seed-default-invalid",
    ),
    pytest.param(
        edit("max: 4096", "max: 4096\n        max_items: 2"),
        f"{X}:11:9",
        "parameter 'width': max_items is only for image, video and mask",
        id="max-items-on-int",
    ),
    pytest.param(
        edit("max: 4096", "max: 4096\n        node_errors: {'  ': no face found}"),
        f"{X}:15:22",
        "parameter 'width': node_errors needs a message part and a message (got '  ': "
        "'no face found')",
        id="node-errors-blank-part",
    ),
    pytest.param(
        edit("max: 4096", "max: 4096\n        node_errors: [No face detected]"),
        f"{X}:15:22",
        "node_errors",
        id="node-errors-not-a-mapping",
    ),
    # --- enum, choices, map, sets ---
    pytest.param(
        edit("        choices: [a, b]\n", "", base=ENUM),
        f"{X}:11:15",
        "parameter 'prefix': type enum needs 'choices'",
        id="enum-without-choices",
    ),
    pytest.param(
        edit("default: a", "default: c", base=ENUM),
        f"{X}:13:18",
        "parameter 'prefix': default 'c' is not among the choices",
        id="default-not-among-choices",
    ),
    pytest.param(
        edit("type: enum", "type: string", base=ENUM),
        f"{X}:12:18",
        "parameter 'prefix': 'choices' is only for type enum",
        id="choices-on-non-enum",
    ),
    pytest.param(
        edit("default: a", "default: a\n        required: true", base=ENUM),
        f"{X}:13:18",
        "parameter 'prefix': a required parameter cannot have a default",
        id="required-with-default",
    ),
    pytest.param(
        edit("default: a", "default: a\n        map: {a: x}", base=ENUM),
        f"{X}:14:14",
        "parameter 'prefix': map has no value for b",
        id="map-missing-key",
    ),
    pytest.param(
        edit("default: a", "default: a\n        map: {a: x, b: y, c: z}", base=ENUM),
        f"{X}:14:14",
        "parameter 'prefix': map keys c are never sent",
        id="map-extra-key",
    ),
    pytest.param(
        edit("max: 4096", "max: 4096\n        map: {'1': 2}"),
        f"{X}:15:14",
        "parameter 'width': map needs a bool or enum parameter",
        id="map-on-int",
    ),
    pytest.param(
        edit("default: a", "default: a\n        sets: {a: {heigth: 5}}", base=ENUM),
        f"{X}:14:19",
        "parameter 'prefix': sets unknown parameter 'heigth'",
        id="sets-unknown-parameter",
    ),
    pytest.param(
        edit("default: a", "default: a\n        sets: {c: {}}", base=ENUM),
        f"{X}:14:19",
        "parameter 'prefix': sets key 'c' is not among the choices",
        id="sets-key-not-a-choice",
    ),
    # --- aliases, prepend_to, format, require_one_of, headers ---
    pytest.param(
        edit("        type: string", "        type: string\n        aliases: [w]", base=TWO),
        f"{X}:16:18",
        "alias 'w' of parameter 'prefix' is already used by 'width'",
        id="aliases-collide",
    ),
    pytest.param(
        edit("aliases: [w]", "aliases: [prefix]", base=TWO),
        f"{X}:12:18",
        "alias 'prefix' of parameter 'width' is already used by 'prefix'",
        id="alias-is-a-parameter-name",
    ),
    pytest.param(
        edit("        type: string", "        type: string\n        prepend_to: width", base=TWO),
        f"{X}:16:21",
        "parameter 'prefix': prepend_to 'width' must name a string parameter",
        id="prepend-to-non-string",
    ),
    pytest.param(
        edit(
            "        type: string", "        type: string\n        blank_is_default: true", base=TWO
        ),
        f"{X}:16:27",
        "parameter 'prefix': blank_is_default needs a string parameter with a non-empty default",
        id="blank-is-default-without-default",
    ),
    pytest.param(
        edit("        type: string", "        type: string\n        prepend_to: prompt", base=TWO),
        f"{X}:16:21",
        "parameter 'prefix': prepend_to 'prompt' must name a string parameter",
        id="prepend-to-unknown",
    ),
    pytest.param(
        edit("        type: string", "        type: string\n        format: 'o/{widht}'", base=TWO),
        f"{X}:16:17",
        "parameter 'prefix': format uses unknown name(s) widht",
        id="format-unknown-name",
    ),
    pytest.param(
        edit(
            "    workflow: wf.json",
            "    workflow: wf.json\n    require_one_of: [[width, heigth]]",
            base=TWO,
        ),
        f"{X}:9:22",
        "require_one_of names unknown parameter 'heigth'",
        id="require-one-of-unknown-parameter",
    ),
    pytest.param(
        spec(
            TWO.replace("aliases: [w]", "required: true").replace(
                "    workflow: wf.json",
                "    workflow: wf.json\n    require_one_of: [[width, prefix]]",
            )
        ),
        f"{X}:9:22",
        "require_one_of member 'width' must not be required",
        id="require-one-of-required-member",
    ),
    pytest.param(
        edit("    output:", "    headers: {X-W: '{wdth}'}\n    output:", base=TWO),
        f"{X}:17:20",
        "header X-W uses unknown parameter(s) wdth",
        id="header-unknown-parameter",
    ),
    # --- examples ---
    pytest.param(
        edit("{width: 64, prefix: t}", "{width: 64, prefx: t}", base=TWO),
        f"{X}:19:21",
        "example 1: unknown field 'prefx'",
        id="example-unknown-field",
    ),
    pytest.param(
        spec(TWO.replace("aliases: [w]", "required: true").replace("width: 64, ", "")),
        f"{X}:19:9",
        "example 1: missing required field 'width'",
        id="example-missing-required-field",
    ),
    pytest.param(
        edit("{width: 64, prefix: t}", "{width: wide, prefix: t}", base=TWO),
        f"{X}:19:17",
        "example 1: field 'width': expects int, got 'wide'",
        id="example-wrong-type",
    ),
    pytest.param(
        edit("{prefix: a}", "{prefix: c}", base=ENUM),
        f"{X}:17:18",
        "example 1: field 'prefix': 'c' is not among the choices",
        id="example-not-a-choice",
    ),
    # --- output ---
    pytest.param(
        edit("output: {title: Save Image}", "output: {title: Saved}"),
        f"{X}:16:21",
        "no node titled 'Saved' in wf.json; titles: 'Canvas', 'Invert', 'Save Image'",
        id="output-title-not-found",
    ),
    pytest.param(
        edit("output: {title: Save Image}", "output: {node: '7'}"),
        f"{X}:16:20",
        "no node '7' in wf.json; nodes: 1 (EmptyImage \"Canvas\")",
        id="output-node-not-found",
    ),
    pytest.param(
        edit("output: {title: Save Image}", "output: {title: Save Image, response: html}"),
        f"{X}:16:43",
        "endpoints.0.output.response: Input should be 'raw' or 'json'",
        id="output-response-mode",
    ),
    # --- custom nodes and models ---
    pytest.param(
        edit(
            "    workflow: wf.json",
            "    workflow: wf.json\n    custom_nodes:\n      - git: https://github.com/x/pack",
        ),
        f"{X}:10:9",
        "endpoints.0.custom_nodes.0: a git custom node must be pinned with 'commit'",
        id="custom-node-without-commit",
    ),
    pytest.param(
        edit(
            "    workflow: wf.json",
            "    workflow: wf.json\n    custom_nodes:\n"
            "      - {git: https://github.com/x/pack, commit: abc123}",
        ),
        f"{X}:10:50",
        "custom_nodes.0.commit: String should match pattern '^[0-9a-f]{40}$'",
        id="custom-node-short-commit",
    ),
    pytest.param(
        spec(
            TWO_ENDPOINTS.format(
                "custom_nodes",
                f"{{git: https://github.com/x/pack, commit: {COMMIT_A}}}",
                f"{{git: https://github.com/X/pack.git, commit: {COMMIT_B}}}",
            )
        ),
        f"{X}:17:9",
        f"custom node https://github.com/x/pack is pinned at {COMMIT_B} here and at "
        f"{COMMIT_A} ({X}:11:9); one app installs one version",
        id="custom-node-two-commits",
    ),
    pytest.param(
        edit(
            "    workflow: wf.json", "    workflow: wf.json\n    models:\n      - {folder: loras}"
        ),
        f"{X}:10:9",
        "endpoints.0.models.0: give either 'repo' and 'file', or 'url'",
        id="model-without-source",
    ),
    pytest.param(
        edit(
            "    workflow: wf.json",
            "    workflow: wf.json\n    models:\n      - {url: 'http://x.org/m.bin', folder: vae}",
        ),
        f"{X}:10:9",
        "model url must start with https://",
        id="model-url-not-https",
    ),
    pytest.param(
        edit(
            "    workflow: wf.json",
            "    workflow: wf.json\n    models:\n"
            "      - {url: 'https://x.org/m.tar.gz', unpack: a.onnx, folder: insightface}",
        ),
        f"{X}:10:9",
        "'unpack' takes a member of a .zip archive; https://x.org/m.tar.gz is not one",
        id="model-unpack-not-zip",
    ),
    pytest.param(
        edit(
            "    workflow: wf.json",
            "    workflow: wf.json\n    models:\n"
            "      - {url: 'https://x.org/m.zip', unpack: ../a.onnx, folder: insightface}",
        ),
        f"{X}:10:9",
        "'unpack' must be a relative path inside the archive: '../a.onnx'",
        id="model-unpack-escapes",
    ),
    pytest.param(
        spec(
            TWO_ENDPOINTS.format(
                "models",
                "{repo: org/a, file: m.safetensors, folder: loras}",
                "{repo: org/b, file: m.safetensors, folder: loras}",
            )
        ),
        f"{X}:17:9",
        f"model loras/m.safetensors comes from another source at {X}:11:9",
        id="model-two-sources",
    ),
    pytest.param(
        edit(
            "    workflow: wf.json",
            "    workflow: wf.json\n    models:\n"
            "      - {repo: org/a, file: m.safetensors, folder: loras}",
        ),
        f"{X}:3:3",
        "models_volume '/root/models' is not among the app's volumes (none)",
        id="models-volume-not-mounted",
    ),
    pytest.param(
        edit(
            "    workflow: wf.json",
            "    workflow: wf.json\n    models:\n"
            "      - repo: org/a\n        file: m.safetensors\n        folder: checkpoints\n"
            "        arch: sdxl",
        ),
        f"{X}:13:15",
        "unknown architecture 'sdxl'; known: sd15-checkpoint, sdxl-checkpoint",
        id="model-arch-unknown",
    ),
    pytest.param(
        edit(
            "    output: {title: Save Image}\n",
            "    private_models: true\n    output: {title: Save Image}\n",
        ),
        f"{X}:16",
        "private_models: the workflow has no node that loads a diffusion model",
        id="private-models-without-a-model-loader",
    ),
    pytest.param(
        edit(
            "        bind: {title: Canvas, input: width}\n",
            "        bind: {title: Canvas, input: width}\n"
            "      model:\n"
            "        type: string\n"
            "        default: a.safetensors\n"
            "        bind: {title: Loader, input: unet_name}\n"
            "    private_models: true\n",
            wf=workflow(
                CANVAS,
                INVERT,
                SAVE,
                node(
                    "UNETLoader",
                    {"unet_name": "a.safetensors", "weight_dtype": "default"},
                    "Loader",
                ),
            ),
        ),
        f"{X}:20",
        "private_models: node 4's unet_name is bound to a parameter",
        id="private-models-of-a-model-the-client-picks",
    ),
]


@pytest.mark.parametrize(("files", "where", "fragment"), SPEC_CASES)
def test_invalid_spec(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    where: str,
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_reports(run_validate(tmp_path, files), where, fragment)


# --- regressions: bugs found while writing these tests, now fixed -----------------------------

BUG_CASES = [
    pytest.param(
        edit(INT_PARAM, "type: string\n        default: a\n        min: 1"),
        f"{X}:11:15",
        "parameter 'width': min/max/multiple_of need a numeric type",
        id="bounds-on-string-with-default",
    ),
    pytest.param(
        spec(
            VALID.replace(
                INT_PARAM + "\n        bind: {title: Canvas, input: width}",
                "type: string\n        min: 1\n        header: X-W",
            ).replace("{width: 64}", "{width: a}")
        ),
        f"{X}:11:15",
        "parameter 'width': min/max/multiple_of need a numeric type",
        id="bounds-on-string-with-example",
    ),
    pytest.param(
        edit("      width:\n", "      Width:\n"),
        f"{X}:10:7",
        "parameters.Width: String should match pattern",
        id="parameter-name-pattern-at-key",
    ),
    pytest.param(
        edit("version: 1", "version: true"),
        f"{X}:1:10",
        "version",
        id="version-true",
    ),
    pytest.param(
        spec(
            VALID.replace(
                "      width:\n        type: int",
                "      base: &b\n        type: int\n        header: X-B\n"
                "      width:\n        type: string\n        <<: *b",
            )
        ),
        f"{X}:14:15",
        "parameter 'width' (string) does not fit input 'width'",
        id="merge-key-after-explicit-key",
    ),
    pytest.param(
        spec(
            VALID.replace(
                INT_PARAM + "\n        bind: {title: Canvas, input: width}",
                "type: string\n        format: 'p-{}'\n"
                "        bind: {title: Save Image, input: filename_prefix}",
            ).replace("{width: 64}", "{width: a}")
        ),
        f"{X}:12:17",
        "parameter 'width': format",
        id="format-positional-field",
    ),
]


@pytest.mark.parametrize(("files", "where", "fragment"), BUG_CASES)
def test_validator_bug(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    where: str,
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_reports(run_validate(tmp_path, files), where, fragment)


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        pytest.param(
            "bind: {title: Canvas, input: width}", "bind: Canvas", f"{X}:15:15", id="bind-scalar"
        ),
        pytest.param(
            "app:\n  name: demo\n  gpu: T4\n  volumes: {}", "app: [demo]", f"{X}:2:6", id="app-list"
        ),
    ],
)
def test_union_shape_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, where: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_validate(tmp_path, edit(old, new))
    assert_reports(result, where, "")
    assert "_shape" not in result.output and "Input tag" not in result.output, result.output


def test_every_unknown_key_of_a_mapping_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    files = edit("    workflow: wf.json", "    workflow: wf.json\n    summry: a\n    descripton: b")
    result = run_validate(tmp_path, files)
    assert_reports(result, f"{X}:9:5", "unknown key 'summry'")
    assert_reports(result, f"{X}:10:5", "unknown key 'descripton'")


def test_no_undefined_app_cascade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    files = {
        "specs/a.yaml": VALID.replace("  gpu: T4", "  gpu: T4\n  zzz: 1"),
        "specs/b.yaml": "version: 1\napp: demo\nendpoints: []\n",
    }
    result = run_validate(tmp_path, files)
    assert_reports(result, "specs/a.yaml:5:3", "unknown key 'zzz'")
    assert "not defined in any spec file" not in result.output, result.output


# --- checks against the node catalog (--object-info) ------------------------------------------

SCALE_BY = node(
    "ImageScaleBy", {"image": ["1", 0], "upscale_method": "nearest", "scale_by": 2.0}, "Scale"
)
LATENT = node("EmptyLatentImage", {"width": 64, "height": 64, "batch_size": 1}, "Latent")

CATALOG_CASES = [
    pytest.param(
        spec(VALID, wf=workflow(CANVAS, node("ImageInvertX", {"image": ["1", 0]}), SAVE)),
        f"{WF}:3:1",
        "node 2: unknown node class 'ImageInvertX' (declare the custom node that provides it)",
        id="unknown-class-type",
    ),
    pytest.param(
        edit(
            "    workflow: wf.json",
            "    workflow: wf.json\n    custom_nodes:\n"
            f"      - {{git: https://github.com/x/pack, commit: {COMMIT_A}, nodes: [Other]}}",
            wf=workflow(CANVAS, node("ImageInvertX", {"image": ["1", 0]}), SAVE),
        ),
        f"{WF}:3:1",
        "node 2: unknown node class 'ImageInvertX'",
        id="unknown-class-not-from-declared-custom-node",
    ),
    pytest.param(
        spec(
            VALID, wf=workflow(node("EmptyImage", {**CANVAS["inputs"], "colour": 1}), INVERT, SAVE)
        ),
        f"{WF}:2:1",
        "node 1: EmptyImage has no input 'colour'; its inputs: width, height, batch_size, color",
        id="unknown-input-name",
    ),
    pytest.param(
        spec(
            VALID,
            wf=workflow(node("EmptyImage", {**CANVAS["inputs"], "batch_size": 0}), INVERT, SAVE),
        ),
        f"{WF}:2:1",
        "node 1: input 'batch_size' of EmptyImage: value 0 is below the minimum 1",
        id="int-literal-out-of-range",
    ),
    pytest.param(
        spec(VALID, wf=workflow(node("EmptyImage", {"width": 64}, "Canvas"), INVERT, SAVE)),
        f"{WF}:2:1",
        "node 1: EmptyImage is missing required input 'height'",
        id="missing-required-input",
    ),
    pytest.param(
        spec(VALID, wf=workflow(CANVAS, SCALE_BY, SAVE)),
        f"{WF}:3:1",
        "node 2: input 'upscale_method' of ImageScaleBy: value 'nearest' is not among the "
        "choices: 'nearest-exact', 'bilinear'",
        id="combo-value-not-in-list",
    ),
    pytest.param(
        spec(VALID, wf=workflow(CANVAS, node("ImageInvert", {"image": ["4", 0]}), SAVE, LATENT)),
        f"{WF}:3:1",
        "node 2: input 'image' expects IMAGE but node 4 (EmptyLatentImage) output 0 is LATENT",
        id="link-type-mismatch",
    ),
    pytest.param(
        spec(VALID, wf=workflow(CANVAS, node("ImageInvert", {"image": ["9", 0]}), SAVE)),
        f"{WF}:3:1",
        "node 2: input 'image' links to missing node '9'",
        id="link-to-missing-node",
    ),
    pytest.param(
        spec(VALID, wf=workflow(CANVAS, node("ImageInvert", {"image": ["1", 3]}), SAVE)),
        f"{WF}:3:1",
        "node 2: input 'image' links to output 3 of node 1 (EmptyImage), which has 1 output(s)",
        id="link-to-missing-output",
    ),
    pytest.param(
        edit("min: 1", "min: 0"),
        f"{X}:13:14",
        "parameter 'width': min 0 is below the minimum 1 of input 'width' of node 1 (EmptyImage)",
        id="param-min-below-node-minimum",
    ),
    pytest.param(
        edit("max: 4096", "max: 20000"),
        f"{X}:14:14",
        "parameter 'width': max 20000 is above the maximum 16384 of input 'width'",
        id="param-max-above-node-maximum",
    ),
    pytest.param(
        edit("default: 64\n        min: 1\n        max: 4096", "default: 20000"),
        f"{X}:12:18",
        "parameter 'width': default for input 'width' of node 1 (EmptyImage): value 20000 is "
        "above the maximum 16384",
        id="param-default-above-node-maximum",
    ),
    pytest.param(
        spec(
            VALID.replace(INT_PARAM, "type: bool\n        map: {true: 5, false: 0}").replace(
                "{width: 64}", "{width: true}"
            )
        ),
        f"{X}:12:14",
        "parameter 'width': map value for input 'width' of node 1 (EmptyImage): value 0 is "
        "below the minimum 1",
        id="map-value-below-node-minimum",
    ),
    pytest.param(
        edit(INT_PARAM, "type: bool"),
        f"{X}:11:15",
        "parameter 'width' of type bool cannot set input 'width' of node 1 (EmptyImage) "
        "of type INT",
        id="param-type-cannot-set-input-type",
    ),
    pytest.param(
        spec(
            ENUM.replace("choices: [a, b]", "choices: [nearest, bilinear]")
            .replace("default: a", "default: bilinear")
            .replace(
                "{title: Save Image, input: filename_prefix}",
                "{title: Scale, input: upscale_method}",
            )
            .replace("{prefix: a}", "{prefix: bilinear}"),
            wf=workflow(CANVAS, SCALE_BY, SAVE),
        ),
        f"{X}:12:18",
        "parameter 'prefix': choice 'nearest' is not accepted by input 'upscale_method' of "
        "node 2 (ImageScaleBy)",
        id="enum-choice-not-accepted-by-combo",
    ),
    pytest.param(
        edit("output: {title: Save Image}", "output: {title: Invert}"),
        f"{X}:16:13",
        "output node 2 (ImageInvert) is not an output node",
        id="output-not-an-output-node",
    ),
]


@pytest.mark.parametrize(("files", "where", "fragment"), CATALOG_CASES)
def test_invalid_against_catalog(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    object_info_path: Path,
    files: dict[str, str],
    where: str,
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_validate(tmp_path, files, "--object-info", str(object_info_path))
    assert_reports(result, where, fragment)


BASES = {
    "x": VALID,
    "y": ENUM.replace("name: demo", "name: demo-enum"),
    "z": TWO.replace("name: demo", "name: demo-two"),
    "w": TWO_ENDPOINTS.format(
        "models",
        "{repo: org/a, file: m.safetensors, folder: loras}",
        "{repo: org/a, file: m.safetensors, folder: loras}",
    ).replace("name: demo", "name: demo-models"),
}


@pytest.mark.parametrize("with_catalog", [False, True], ids=["plain", "object-info"])
def test_bases_are_valid(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    with_catalog: bool,
) -> None:
    """The bases of the cases are valid, so each case's error comes from its one change."""
    monkeypatch.chdir(tmp_path)
    args = (
        ["--object-info", str(request.getfixturevalue("object_info_path"))] if with_catalog else []
    )
    result = run_validate(tmp_path, {f"specs/{k}.yaml": v for k, v in BASES.items()}, *args)
    assert_no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "ok: 4 app(s), 5 endpoint(s)" in result.output
    assert "error" not in result.output


# --- whole runs ------------------------------------------------------------------------------


def test_every_error_of_a_run_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors are collected across files, endpoints and parameters, not first-only."""
    monkeypatch.chdir(tmp_path)
    files = {
        # structural: stops this file, not the others
        "specs/a.yaml": VALID.replace("endpoints:", "endpoint:"),
        # semantic errors in two parameters and the output of one endpoint
        "specs/b.yaml": TWO.replace("name: demo", "name: other")
        .replace("{title: Canvas, input: width}", "{title: Canvass, input: width}")
        .replace("        type: string", "        type: string\n        default: 5")
        .replace("output: {title: Save Image}", "output: {node: '7'}"),
        # a second endpoint file of app 'other' with a missing workflow
        "specs/c.yaml": "version: 1\napp: other\nendpoints:\n"
        "  - path: /gone\n    workflow: gone.json\n    output: {node: '3'}\n",
    }
    result = run_validate(tmp_path, files)
    expected = [
        ("specs/a.yaml:6:1", "unknown key 'endpoint'"),
        ("specs/b.yaml:13:23", "no node titled 'Canvass'"),
        ("specs/b.yaml:16:18", "parameter 'prefix': default 5 is not a valid string"),
        ("specs/b.yaml:18:20", "no node '7' in wf.json"),
        ("specs/c.yaml:5:15", "workflow file not found"),
    ]
    for where, fragment in expected:
        assert_reports(result, where, fragment)
    assert f"{len(expected)} error(s); nothing was generated." in result.output


def test_more_than_ten_apps_warns_but_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    files = {
        f"specs/app{i:02}.yaml": VALID.replace("name: demo", f"name: app-{i}") for i in range(11)
    }
    result = run_validate(tmp_path, files)
    assert_no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "warning: 11 apps: more than the 10 the workspace plan allows" in result.output
    assert "ok: 11 app(s), 11 endpoint(s)" in result.output


def test_diagnostics_go_to_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_validate(tmp_path, edit("  gpu: T4", "  gpu: T5"))
    try:
        stdout, stderr = result.stdout, result.stderr
    except ValueError:  # click < 8.2 mixes stderr into stdout by default
        pytest.skip("this click version does not capture stderr separately")
    assert f"{X}:4:8: error: unknown GPU 'T5'" in stderr
    assert "error" not in stdout


# --- JSON Schema ------------------------------------------------------------------------------

SHIPPED_SPECS = sorted((REPO / "specs").glob("*.yaml"))

# Structural cases of SPEC_CASES the schema must reject as well (same files, parsed by PyYAML).
SCHEMA_REJECTS = [
    "unknown-key-did-you-mean",
    "unknown-key-top-level",
    "unknown-key-parameter",
    "wrong-type-string-for-int",
    "wrong-type-string-for-bool",
    "wrong-type-unknown-param-type",
    "wrong-type-path-pattern",
    "wrong-type-app-name-pattern",
    "wrong-type-timeout-zero",
    "missing-key-workflow",
    "missing-key-output",
    "missing-key-bind-input",
    "version-unsupported",
    "version-string",
    "version-missing",
    "output-response-mode",
    "custom-node-short-commit",
]


@pytest.fixture(scope="module")
def schema_validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=[p.name for p in SHIPPED_SPECS])
def test_schema_agrees_with_loader_on_shipped_spec(
    schema_validator: jsonschema.Draft202012Validator, path: Path
) -> None:
    """The schema accepts every shipped spec the loader accepts (and rejects work in progress
    the loader rejects: specs/ is shared with work that is not finished yet)."""
    diags = Diagnostics()
    loaded = load_spec(path, diags, REPO)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in schema_validator.iter_errors(data)]
    if loaded is None:
        assert errors, f"schema accepts {path.name}, the loader rejects it: {diags.items}"
    else:
        assert not errors, errors


@pytest.mark.parametrize("name", ["ryla-demo.yaml", "ryla-flux.yaml", "svd.yaml"])
def test_schema_accepts_reference_spec(
    schema_validator: jsonschema.Draft202012Validator, name: str
) -> None:
    path = REPO / "specs" / name
    if not path.is_file():
        pytest.skip(f"{name} is not in specs/")
    schema_validator.validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def test_schema_accepts_valid_bases(schema_validator: jsonschema.Draft202012Validator) -> None:
    for text in (VALID, ENUM, TWO):
        schema_validator.validate(yaml.safe_load(text))


@pytest.mark.parametrize("case_id", SCHEMA_REJECTS)
def test_schema_rejects_structural_case(
    schema_validator: jsonschema.Draft202012Validator, case_id: str
) -> None:
    (case,) = [c for c in SPEC_CASES if c.id == case_id]
    files = case.values[0]
    data = yaml.safe_load(files[X])
    assert not schema_validator.is_valid(data), f"schema accepts {case_id}"
