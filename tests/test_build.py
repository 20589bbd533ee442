"""Building the shipped specs: determinism, --check, Modal settings, lint, CLI commands."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import REPO, app_function, class_function, import_generated
from ruff.__main__ import find_ruff_bin

from generator.cli import main
from generator.resolve.gpus import parse_gpu
from generator.resolve.project import Project, load_project


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's specs, workflows and generated modules."""
    for name in ("specs", "comfy_workflows", "generated", "docs"):
        ignore = shutil.ignore_patterns("node_modules", "dist", "__pycache__")
        shutil.copytree(REPO / name, tmp_path / name, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_build_twice_changes_nothing(project: Path) -> None:
    shutil.rmtree(project / "generated")
    first = run("build", "specs/")
    assert first.exit_code == 0, first.output
    files = snapshot(project / "generated")
    assert files, "build wrote no module"
    second = run("build", "specs/")
    assert second.exit_code == 0
    assert "0 file(s) changed" in second.output
    assert snapshot(project / "generated") == files


def test_committed_generated_modules_are_current(project: Path) -> None:
    result = run("build", "--check", "specs/")
    assert result.exit_code == 0, result.output + result.stderr


def test_check_fails_and_names_a_hand_edited_module(project: Path) -> None:
    module = project / "generated" / "ryla_flux.py"
    module.write_text(module.read_text() + "# tweak\n")
    result = run("build", "--check", "specs/")
    assert result.exit_code == 1
    assert "generated/ryla_flux.py: differs" in result.stderr


def test_check_fails_after_a_spec_edit(project: Path) -> None:
    spec = project / "specs" / "ryla-flux.yaml"
    spec.write_text(spec.read_text().replace("timeout: 1800", "timeout: 1700", 1))
    result = run("build", "--check", "specs/")
    assert result.exit_code == 1
    assert "generated/ryla_flux.py: differs" in result.stderr


def test_check_reports_orphans_and_build_removes_them(project: Path) -> None:
    (project / "generated" / "old_app.py").write_text("app = None\n")
    result = run("build", "--check", "specs/")
    assert result.exit_code == 1
    assert "generated/old_app.py: rendered from no spec" in result.stderr
    assert run("build", "specs/").exit_code == 0
    assert not (project / "generated" / "old_app.py").exists()


def test_check_covers_the_openapi_and_client_folders(project: Path) -> None:
    generated = project / "generated"
    (generated / "openapi" / "old_app.json").write_text("{}\n")
    (generated / "clients" / "typescript" / "src" / "apps" / "old-app.ts").write_text("")
    installed = generated / "clients" / "typescript" / "node_modules" / "typescript"
    installed.mkdir(parents=True)
    (installed / "package.json").write_text("{}")  # an npm install is no orphan
    demo = generated / "openapi" / "ryla_demo.json"
    demo.write_text(demo.read_text().replace('"/invert"', '"/inverted"'))
    result = run("build", "--check", "specs/")
    assert result.exit_code == 1
    assert "generated/openapi/old_app.json: rendered from no spec" in result.stderr
    assert (
        "generated/clients/typescript/src/apps/old-app.ts: rendered from no spec" in result.stderr
    )
    assert "generated/openapi/ryla_demo.json: differs" in result.stderr
    assert "node_modules" not in result.stderr
    assert run("build", "specs/").exit_code == 0
    assert not (generated / "openapi" / "old_app.json").exists()
    assert (installed / "package.json").exists()
    assert run("build", "--check", "specs/").exit_code == 0


def test_generated_modules_are_ruff_clean() -> None:
    ruff = find_ruff_bin()
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [ruff, *args, "generated/"], cwd=REPO, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_generated_modules_carry_the_spec_settings_in_modal_objects() -> None:
    apps, _ = load_project(Project.at(REPO))
    assert apps
    for model in apps:
        module = import_generated(REPO / "generated" / f"{model.module}.py")
        assert module.app.name == model.name
        for cls in model.classes:
            info = class_function(module.app, cls.name).info()
            gpu = parse_gpu(cls.gpu)
            assert info.gpus == [(gpu.type.name, gpu.count)]
            assert info.timeout == cls.timeout
            assert info.concurrency_info.max_inputs == model.concurrent_inputs
            assert {p: v.name for p, v in info.volumes.items()} == model.volumes
            if model.fleet:  # the front door serves the class's routes; no web method here
                assert sorted(info.method_names) == ["run_job", "run_request"]
                continue
            assert sorted(info.method_names) == ["fastapi_app", "run_job", "run_request"]
            details = info.method_details["fastapi_app"]
            assert details.unauthenticated == (model.auth != "proxy")
        if model.fleet:  # a CPU function at the URL the default class had
            front = app_function(module.app, "front_door").info()
            assert front.gpus == [] and front.timeout == model.fleet.timeout
            assert front.web_info.unauthenticated == (model.auth != "proxy")
            assert model.fleet.label == f"{model.name}-comfyui-fastapi-app"
        paths = sorted(e.path for e in module.ENDPOINTS)
        assert paths == sorted(e.path for e in model.endpoints)
        header = " ".join(module.__doc__.split())  # the docstring names every source spec
        assert all(source in header for source in model.sources)


def test_flux_request_models_keep_todays_fields_and_defaults() -> None:
    module = import_generated(REPO / "generated" / "ryla_flux.py")
    by_path = {e.path: e.request_model for e in module.ENDPOINTS}
    flux = by_path["/flux"](prompt="a cat")
    assert (flux.width, flux.height, flux.steps, flux.cfg, flux.seed) == (1024, 1024, 4, 1.0, 42)
    assert by_path["/flux-dev"](prompt="a cat").steps == 20
    lora = by_path["/flux-dev-lora"](prompt="x", lora_id="abc")
    assert lora.lora_strength == 1.0
    schema = by_path["/flux"].model_json_schema()
    assert schema["required"] == ["prompt"]
    assert schema["properties"]["width"]["maximum"] == 2048


def test_list_json_names_every_endpoint_with_its_url(project: Path) -> None:
    result = run("list", "--json", "--workspace", "ryla")
    rows = json.loads(result.stdout)
    flux = next(r for r in rows if r["path"] == "/flux" and r["app"] == "ryla-flux")
    assert flux["url"] == "https://ryla--ryla-flux-comfyui-fastapi-app.modal.run/flux"
    assert flux["gpu"] == "L40S"
    assert {r["path"] for r in rows} >= {"/flux", "/flux-dev", "/flux-dev-lora", "/svd"}


def test_schema_command_prints_the_shipped_json_schema(project: Path) -> None:
    import jsonschema

    schema = json.loads(run("schema").stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    for spec in sorted((project / "specs").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(spec.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "app": {"name": "x-y", "gpus": "L4"}}, schema)


def test_deploy_dry_run_prints_the_modal_command(project: Path) -> None:
    result = run("deploy", "svd", "--dry-run", "--env", "staging", "--tag", "v2")
    assert result.exit_code == 0
    assert result.output.strip().endswith(
        "-m modal deploy --env staging --tag v2 generated/ryla_wan26.py"
    )


def test_deploy_of_an_unknown_name_lists_the_apps(project: Path) -> None:
    result = run("deploy", "nope", "--dry-run")
    assert result.exit_code != 0
    assert "no app, endpoint or spec named 'nope'" in result.stderr
    assert "ryla-flux" in result.stderr


def test_deploy_without_credentials_fails_with_modals_message(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "MODAL_CONFIG_PATH": str(home / ".modal.toml"),
    }
    result = subprocess.run(
        [str(Path(shutil.which("ryla-gen") or REPO / ".venv/bin/ryla-gen")), "deploy", "ryla-demo"],
        cwd=project,
        env={**env, "MODAL_TOKEN_ID": "", "MODAL_TOKEN_SECRET": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "token" in (result.stdout + result.stderr).lower()


def test_endpoints_needing_another_gpu_get_their_own_class(project: Path) -> None:
    spec = project / "specs" / "ryla-demo.yaml"
    text = spec.read_text().replace(
        "    workflow: demo-animate.json\n",
        "    workflow: demo-animate.json\n    gpu: H100:2\n    timeout: 900\n",
    )
    spec.write_text(text)
    assert run("build", "specs/").exit_code == 0
    module = import_generated(project / "generated" / "ryla_demo.py")
    default = class_function(module.app, "ComfyUI").info()
    h100 = class_function(module.app, "ComfyUIH100x2").info()
    assert default.gpus == [("T4", 1)] and h100.gpus == [("H100", 2)]
    assert h100.timeout == 900
    assert [e.path for e in module.COMFYUIH100X2_ENDPOINTS] == ["/animate"]
    assert "/animate" not in [e.path for e in module.COMFYUI_ENDPOINTS]
    rows = json.loads(run("list", "--json", "--workspace", "ws").stdout)
    animate = next(r for r in rows if r["path"] == "/animate")
    assert animate["url"] == "https://ws--ryla-demo-comfyuih100x2-fastapi-app.modal.run/animate"


def test_reuse_forwards_or_co_locates_and_reports_unknown_endpoints(project: Path) -> None:
    monolith = import_generated(project / "generated" / "ryla_comfyui.py")
    flux = import_generated(project / "generated" / "ryla_flux.py")
    forward = next(f for f in monolith.FORWARDS if f.path == "/flux-lora")
    assert (forward.app, forward.cls, forward.target) == ("ryla-flux", "ComfyUI", "/flux-dev-lora")
    lora_there = next(e for e in flux.ENDPOINTS if e.path == "/flux-dev-lora")
    fields = lora_there.request_model.model_json_schema()["properties"].keys()
    assert forward.request_model.model_json_schema()["properties"].keys() == fields
    assert "/flux-lora" not in [e.path for e in monolith.ENDPOINTS]  # runs in ryla-flux
    flux_files = {m.filename for m in flux.MODELS}
    assert not flux_files & {m.filename for m in monolith.MODELS}  # no second copy here

    spec = project / "specs" / "ryla-comfyui.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("as: /flux-lora, run: owner}", "as: /flux-lora, run: here}"))
    assert run("build", "specs/").exit_code == 0
    monolith = import_generated(project / "generated" / "ryla_comfyui.py")
    lora_here = next(e for e in monolith.ENDPOINTS if e.path == "/flux-lora")
    assert lora_here.params == lora_there.params and lora_here.workflow == lora_there.workflow
    assert "flux1-dev.safetensors" in {m.filename for m in monolith.MODELS}  # co-located
    forward = next(f for f in monolith.FORWARDS if f.path == "/flux-lora")
    assert (forward.app, forward.target) == ("ryla-comfyui", "/flux-lora")

    spec.write_text(text.replace("path: /flux-dev-lora, as:", "path: /flux-nope, as:"))
    result = run("validate", "specs/")
    assert result.exit_code == 2
    line = next(i for i, row in enumerate(spec.read_text().splitlines(), 1) if "/flux-nope" in row)
    assert f"specs/ryla-comfyui.yaml:{line}:" in result.stderr
    assert (
        "reuse: ryla-flux has no endpoint /flux-nope (/flux, /flux-dev, /flux-dev-lora, "
        "/flux-dev-realism)" in result.stderr
    )


def test_example_media_several_warm_ups_send_is_printed_once() -> None:
    """ryla-instantid's three face routes warm up with the same drawn face: one module constant,
    which every warm-up request refers to (and the request still holds the image itself)."""
    source = (REPO / "generated" / "ryla_instantid.py").read_text()
    module = import_generated(REPO / "generated" / "ryla_instantid.py")
    warmups = [e.warmup for e in module.ENDPOINTS if e.warmup and "reference_image" in e.warmup]
    assert len(warmups) == 3
    assert all(w["reference_image"] is module.WARMUP_REFERENCE_IMAGE for w in warmups)
    assert module.WARMUP_REFERENCE_IMAGE.startswith("data:image/png;base64,iVBOR")
    assert source.count("iVBORw0KGgoAAAANSUhEUgAAAGAAAABgCAIAAABt") == 1
