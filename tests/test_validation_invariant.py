"""A spec that validates builds, imports and serves; anything else is ``file:line:col``.

One block per class of mistake (issue 12): the self-check of rendered modules, wire names,
reserved routes and headers, workflow graphs without a catalog, constraints and Modal limits,
the live catalog, positions. Cases are our own; they reuse the small project of
``test_invalid_specs.py`` (its ``VALID`` spec: line 7 path, 10 the parameter width, 11-15 its
keys, 18 the example; its workflow: nodes 1 Canvas, 2 Invert, 3 Save Image on lines 2-4).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import import_generated
from test_invalid_specs import (
    CANVAS,
    COMMIT_A,
    INT_PARAM,
    SAVE,
    VALID,
    WF,
    X,
    assert_no_traceback,
    assert_reports,
    edit,
    node,
    run_validate,
    spec,
    workflow,
    write_project,
)

from generator.cli import main
from generator.runtime.apply import apply_request

WIDTH_BIND = "        bind: {title: Canvas, input: width}\n"


def with_param(text: str, example: str = "{width: 64}") -> dict[str, str]:
    """VALID plus a parameter after width (lines 16...) and another example."""
    return spec(VALID.replace(WIDTH_BIND, WIDTH_BIND + text).replace("{width: 64}", example))


# --- 1. the structural guarantee: rendered, imported, examples served -------------------------


def test_selfcheck_catches_what_no_rule_knows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the example rule switched off, the generated model still refuses the example."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("generator.resolve.endpoints.example_value_problem", lambda p, v: None)
    result = run_validate(tmp_path, edit("{width: 64}", "{width: 5000}"))
    assert_reports(result, f"{X}:18:9", "example 1: the generated request model refuses it")


def test_selfcheck_places_an_uncompilable_field_at_its_parameter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without derived Python names a parameter 'class' would not compile: found, placed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        "generator.resolve.endpoints.python_names", lambda names: {n: n for n in names}
    )
    text = VALID.replace("      width:", "      class:").replace("{width: 64}", "{class: 64}")
    result = run_validate(tmp_path, spec(text))
    assert_reports(result, f"{X}:10:7", "the rendered module does not compile")


def test_a_pass_is_remembered_a_failure_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same inputs, same outcome: a passed app is not rendered again; any change re-checks."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert run_validate(tmp_path, spec(VALID)).exit_code == 0
    assert len(list((tmp_path / "cache").rglob("*"))) == 3  # ryla-gen/passed/<one app>

    def refuse(*args: object) -> str:
        raise AssertionError("rendered although it passed before")

    monkeypatch.setattr("generator.render.files._render_module", refuse)
    assert CliRunner().invoke(main, ["validate"]).exit_code == 0
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("generator.resolve.endpoints.example_value_problem", lambda p, v: None)
    (tmp_path / X).write_text(VALID.replace("{width: 64}", "{width: 5000}"))
    for _ in range(2):  # the failure is found again: nothing was remembered for it
        result = CliRunner().invoke(main, ["validate"])
        assert_reports(result, f"{X}:18:9", "the generated request model refuses it")


# --- 2. wire names are free, Python names derived ----------------------------------------------

WIRE = """\
version: 1
app:
  name: wire
  gpu: T4
  volumes: {}
endpoints:
  - path: /wire
    workflow: wf.json
    parameters:
      class: {type: int, default: 64, bind: {node: '1', input: width}}
      model_config: {type: int, default: 64, bind: {node: '1', input: height}}
      schema: {type: int, bind: {node: '1', input: batch_size}}
      json: {type: int, aliases: [str], bind: {node: '1', input: color}}
      from: {type: string, bind: {node: '3', input: filename_prefix}}
      _private: {type: string, header: X-Private}
    output: {node: '3'}
    examples:
      - {class: 128, model_config: 96, schema: 1, str: 7, from: p, _private: x}
"""


def test_wire_names_that_python_or_pydantic_reserve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path, spec(WIRE))
    (tmp_path / "pyproject.toml").write_text("")
    result = CliRunner().invoke(main, ["build", "specs/"])
    assert_no_traceback(result)
    assert result.exit_code == 0, result.output
    module = import_generated(tmp_path / "generated" / "wire.py")
    endpoint = module.ENDPOINTS[0]
    body = {"class": 128, "model_config": 96, "schema": 1, "str": 7, "from": "p", "_private": "x"}
    values = endpoint.request_model.model_validate(body).model_dump(by_alias=True)
    wire = {"class": 128, "model_config": 96, "schema": 1, "json": 7, "from": "p", "_private": "x"}
    assert values == wire
    graph = json.loads((tmp_path / WF).read_text())
    applied = apply_request(endpoint, graph, values, {})
    assert applied.prompt["1"]["inputs"] == {
        "width": 128,
        "height": 96,
        "batch_size": 1,
        "color": 7,
    }
    assert applied.prompt["3"]["inputs"]["filename_prefix"] == "p"
    assert applied.headers == {"X-Private": "x"}


def test_paths_whose_derived_names_collide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/in-vert and /in_vert (one constant IN_VERT), /models-dir (the module's MODELS_DIR)."""
    monkeypatch.chdir(tmp_path)
    routes = VALID[VALID.index("  - path") :]
    text = VALID.replace("/invert", "/in-vert") + "".join(
        routes.replace("/invert", path) for path in ("/in_vert", "/models-dir")
    )
    write_project(tmp_path, spec(text))
    (tmp_path / "pyproject.toml").write_text("")
    result = CliRunner().invoke(main, ["build", "specs/"])
    assert_no_traceback(result)
    assert result.exit_code == 0, result.output
    module = import_generated(tmp_path / "generated" / "demo.py")
    assert [e.path for e in module.ENDPOINTS] == ["/in-vert", "/in_vert", "/models-dir"]
    assert len({e.request_model for e in module.ENDPOINTS}) == 3
    assert module.MODELS_DIR == "/root/models"
    served = json.loads((tmp_path / "generated" / "openapi" / "demo.json").read_text())
    ids = [op["operationId"] for ops in served["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_webhook_url_is_not_a_parameter_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = VALID.replace("      width:", "      webhook_url:").replace("{width:", "{webhook_url:")
    files = spec(text)
    assert_reports(run_validate(tmp_path, files), f"{X}:10:7", "'webhook_url' is reserved")


# --- 3. reserved routes, normalised paths, owned and malformed headers -------------------------


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/health", "built-in route"),
        ("/docs/oauth2-redirect", "built-in route"),
        ("/openapi.json", "built-in route"),
        ("/jobs/invert", "job routes"),
        ("/a/../invert", "'.' or '..' segment"),
        ("/a//invert", "empty segment"),
        ("/invert/", "ends with '/'"),
        ("/-x", "each segment"),
    ],
)
def test_reserved_or_unnormalised_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_reports(run_validate(tmp_path, edit("/invert", path)), f"{X}:7:11", fragment)


@pytest.mark.parametrize(
    ("header_line", "where", "fragment"),
    [
        ("        header: Content-Type\n", f"{X}:16:17", "set by the runtime"),
        ("        header: x-cost-usd\n", f"{X}:16:17", "set by the runtime"),
        ("        header: X Bad\n", f"{X}:16:17", "not a valid HTTP header name"),
        ("        header: X-Seed\n", f"{X}:16:17", "only a seed parameter sets it"),
    ],
)
def test_owned_or_malformed_parameter_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header_line: str, where: str, fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    files = spec(VALID.replace(WIDTH_BIND, WIDTH_BIND.rstrip("\n") + "\n" + header_line))
    assert_reports(run_validate(tmp_path, files), where, fragment)


def test_owned_endpoint_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    files = edit("    output:", "    headers: {X-GPU-Type: A100}\n    output:")
    assert_reports(run_validate(tmp_path, files), f"{X}:16:15", "set by the runtime")


# --- 4. workflow graphs without a catalog ------------------------------------------------------


def test_duplicate_node_id_reported_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = workflow(CANVAS, node("ImageInvert", {"image": ["1", 0]}), SAVE)
    text = text.replace('  "3":', '  "2": {"class_type": "ImageInvert", "inputs": {}},\n  "3":')
    result = run_validate(tmp_path, spec(VALID, wf=text))
    assert_reports(result, f"{WF}:4:1", 'key "2" appears twice')


def test_cycle_names_its_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = workflow(
        CANVAS, node("ImageInvert", {"image": ["4", 0]}), SAVE, node("X", {"a": ["2", 0]})
    )
    result = run_validate(tmp_path, spec(VALID, wf=text))
    assert_reports(result, WF, "the graph has a cycle: nodes")
    assert "2 -> 4 -> 2" in result.output or "4 -> 2 -> 4" in result.output, result.output


def test_link_to_missing_node_without_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = workflow(CANVAS, node("ImageInvert", {"image": ["9", 0]}), SAVE)
    result = run_validate(tmp_path, spec(VALID, wf=text))
    assert_reports(result, f"{WF}:3:1", "node 2: input 'image' links to missing node '9'")


def test_two_parameters_bound_to_one_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    files = with_param(
        "      w2:\n        type: int\n        bind: {title: Canvas, input: width}\n"
    )
    assert_reports(
        run_validate(tmp_path, files), f"{X}:18:15", "already bound to parameter 'width'"
    )


def test_workflow_path_outside_the_workflows_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_validate(tmp_path, edit("workflow: wf.json", "workflow: ../specs/x.json"))
    assert_reports(result, f"{X}:8:15", "must be a path inside comfy_workflows/")


# --- 5. constraints and Modal's limits ---------------------------------------------------------

STEP8 = VALID.replace("max: 4096", "max: 4096\n        multiple_of: 8")

CONSTRAINT_CASES = [
    pytest.param(edit("max: 4096", "max: .inf"), f"{X}:14:14", "finite", id="max-inf"),
    pytest.param(edit("default: 64", "default: .nan"), f"{X}:12:18", "finite", id="default-nan"),
    pytest.param(
        edit("max: 4096", "max: 4096\n        multiple_of: 0"),
        f"{X}:15:22",
        "greater than 0",
        id="multiple-of-zero",
    ),
    pytest.param(
        spec(STEP8.replace("default: 64", "default: 60")),
        f"{X}:12:18",
        "60 is not a multiple of 8",
        id="default-breaks-multiple-of",
    ),
    pytest.param(
        spec(STEP8.replace("{width: 64}", "{width: 65}")),
        f"{X}:19:17",
        "65 is not a multiple of 8",
        id="example-breaks-multiple-of",
    ),
    pytest.param(
        edit(INT_PARAM, "type: seed\n        default: -1"),
        f"{X}:12:18",
        "-1 is below min 0",
        id="seed-default-negative",
    ),
    pytest.param(
        spec(VALID.replace(INT_PARAM, "type: enum\n        choices: [64, 128, 64]")),
        f"{X}:12:18",
        "choice 64 given twice",
        id="duplicate-choices",
    ),
    pytest.param(
        with_param(
            "      p:\n        type: string\n        format: '{width.__class__}'\n"
            "        bind: {title: Save Image, input: filename_prefix}\n"
        ),
        f"{X}:18:17",
        "field {width.__class__} must be a plain {parameter} name",
        id="format-attribute",
    ),
    pytest.param(
        with_param(
            "      p:\n        type: string\n        format: '{width!r}'\n"
            "        bind: {title: Save Image, input: filename_prefix}\n"
        ),
        f"{X}:18:17",
        "field {width!r} must be a plain {parameter} name",
        id="format-conversion",
    ),
    pytest.param(
        with_param(
            "      ratio:\n        type: enum\n        choices: [square, wide]\n"
            "        sets: {square: {width: 64}, wide: {width: 4097}}\n",
            "{width: 64, ratio: square}",
        ),
        f"{X}:19:66",
        "sets 'width' to a value it refuses: 4097 is above max 4096",
        id="sets-value-out-of-range",
    ),
    pytest.param(
        edit("  gpu: T4", "  gpu: T4\n  timeout: 86401"),
        f"{X}:5:12",
        "less than or equal to 86400",
        id="timeout-above-a-day",
    ),
    pytest.param(
        edit("  volumes: {}", "  volumes: {/models: 'my models'}"),
        f"{X}:5:22",
        "String should match pattern",
        id="volume-name-modal-refuses",
    ),
    pytest.param(
        edit("  volumes: {}", "  volumes: {}\n  secrets: [" + "s" * 65 + "]"),
        f"{X}:6:13",
        "String should match pattern",
        id="secret-name-too-long",
    ),
    pytest.param(
        edit("  volumes: {}", "  volumes: {}\n  max_containers: 5000"),
        f"{X}:6:19",
        "less than or equal to 1000",
        id="max-containers",
    ),
    pytest.param(
        edit("  name: demo", "  name: " + "a" * 60),
        f"{X}:3:9",
        "at most 59 characters",
        id="app-name-too-long-for-its-jobs-dict",
    ),
]


@pytest.mark.parametrize(("files", "where", "fragment"), CONSTRAINT_CASES)
def test_constraint(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    where: str,
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_reports(run_validate(tmp_path, files), where, fragment)


# --- 6. a live catalog (--object-info http://...) ----------------------------------------------


@pytest.fixture()
def live_catalog(object_info_path: Path) -> Iterator[str]:
    """A server answering /object_info with the recorded core catalog."""
    body = object_info_path.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


CHECKPOINT = node("CheckpointLoaderSimple", {"ckpt_name": "x.safetensors"}, "Loader")


def test_live_catalog_counts_declared_model_files_as_choices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_catalog: str
) -> None:
    monkeypatch.chdir(tmp_path)
    text = (
        VALID.replace("  volumes: {}", "  volumes: {/root/models: ryla-models}")
        .replace(
            "    output:",
            "    models:\n      - {repo: org/m, file: mine.safetensors, folder: checkpoints}\n"
            "    output:",
        )
        .replace(
            WIDTH_BIND,
            WIDTH_BIND + "      ckpt:\n        type: enum\n        choices: [mine.safetensors]\n"
            "        bind: {title: Loader, input: ckpt_name}\n",
        )
    )
    files = spec(
        text, wf=workflow(CANVAS, node("ImageInvert", {"image": ["1", 0]}), SAVE, CHECKPOINT)
    )
    result = run_validate(tmp_path, files, "--object-info", live_catalog)
    assert_no_traceback(result)
    assert result.exit_code == 0, result.output


def test_live_catalog_names_a_pack_that_did_not_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_catalog: str
) -> None:
    monkeypatch.chdir(tmp_path)
    files = edit(
        "    output:",
        "    custom_nodes:\n"
        f"      - {{git: https://github.com/x/pack, commit: {COMMIT_A}, nodes: [FancyNode]}}\n"
        "    output:",
    )
    result = run_validate(tmp_path, files, "--object-info", live_catalog)
    assert_reports(result, f"{X}:17:9", "custom node https://github.com/x/pack")
    assert "the server has no FancyNode" in result.output


# --- 7. positions ------------------------------------------------------------------------------


def test_merge_of_a_scalar_is_reported_at_the_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = VALID.replace("version: 1\n", "version: 1\nx-anchor: &s 5\n").replace(
        "        type: int\n", "        type: int\n        <<: *s\n"
    )
    assert_reports(run_validate(tmp_path, spec(text)), f"{X}:13:9", "'<<' merges only mappings")


def test_spec_that_is_not_utf8_gets_a_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path, {})
    (tmp_path / X).write_bytes(VALID.replace("name: demo", "name: d\xe9mo").encode("latin-1"))
    result = CliRunner().invoke(main, ["validate"])
    assert_reports(result, f"{X}:3:10", "not UTF-8: byte 0xe9")


# --- media limits and example media: the runtime's own check ---------------------------------


def test_image_size_limits_are_only_for_images(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_validate(
        tmp_path, edit("        min: 1\n", "        min: 1\n        min_side: 8\n")
    )
    assert_reports(result, f"{X}:14", "parameter 'width': min_side is only for image and mask")


def test_example_media_get_the_runtimes_own_check() -> None:
    """A header-only MP4 example passed the build and was refused by the runtime (its video
    probe): three shipped examples were so. An image under a parameter's min_side likewise."""
    import base64
    import io

    from PIL import Image

    from generator.render.selfcheck import _media_problem
    from generator.runtime.config import Param

    header_only = "data:video/mp4;base64,AAAAGGZ0eXBpc29tAAACAGlzb21tcDQxAAAACGZyZWU="
    problem = _media_problem(header_only, Param("clip", kind="video"))
    assert problem is not None and "truncated or corrupt" in problem
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    small = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    assert _media_problem(small, Param("image", kind="image")) is None
    limited = Param("image", kind="image", min_side=16)
    assert "smaller than 16 px" in (_media_problem(small, limited) or "")
