"""``ryla-gen smoke`` without a GPU: architecture inference, what an app needs, the resumable
result store, output checks, and the whole command against the stand-in (model-free ryla-demo).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from generator.cli import main
from generator.resolve.arch import ARCHITECTURES, infer_arch
from generator.resolve.model import AppModel, ModelFileModel
from generator.resolve.project import Project, load_project
from generator.smoke.checks import check_response
from generator.smoke.run import SmokeError, _link_models, expose_packs
from generator.smoke.store import ResultStore, StoreError
from generator.smoke.synth import ARCHES
from generator.smoke.targets import builds, class_packs, plan_app

REPO = Path(__file__).resolve().parents[1]


def model(folder: str, repo: str, file: str, arch: str | None = None) -> ModelFileModel:
    return ModelFileModel(
        folder, file.rsplit("/", 1)[-1], repo, file, "main", None, None, None, arch=arch
    )


@pytest.fixture(scope="module")
def apps() -> dict[str, AppModel]:
    found, _ = load_project(Project.at(REPO, None), None)
    return {a.name: a for a in found}


# --- architectures


@pytest.mark.parametrize(
    ("folder", "repo", "file", "arch"),
    [
        (
            "checkpoints",
            "stabilityai/sdxl-turbo",
            "sd_xl_turbo_1.0_fp16.safetensors",
            "sdxl-checkpoint",
        ),
        (
            "checkpoints",
            "ByteDance/SDXL-Lightning",
            "sdxl_lightning_4step.safetensors",
            "sdxl-checkpoint",
        ),
        (
            "checkpoints",
            "Comfy-Org/flux1-schnell",
            "flux1-schnell-fp8.safetensors",
            "flux-schnell-checkpoint",
        ),
        ("diffusion_models", "black-forest-labs/FLUX.1-dev", "flux1-dev.safetensors", "flux-dev"),
        ("vae", "black-forest-labs/FLUX.1-dev", "ae.safetensors", "flux-vae"),
        ("vae", "Comfy-Org/z_image_turbo", "split_files/vae/ae.safetensors", "flux-vae"),
        ("text_encoders", "comfyanonymous/flux_text_encoders", "t5xxl_fp16.safetensors", "t5-xxl"),
        (
            "text_encoders",
            "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
            "split_files/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
            "umt5-xxl",
        ),
        (
            "diffusion_models",
            "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
            "split_files/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors",
            "wan21-t2v-1.3b",
        ),
        (
            "checkpoints",
            "stabilityai/stable-video-diffusion-img2vid-xt",
            "svd_xt.safetensors",
            "svd-checkpoint",
        ),
        (
            "diffusion_models",
            "Comfy-Org/z_image_turbo",
            "split_files/diffusion_models/z_image_turbo_bf16.safetensors",
            "z-image",
        ),
        (
            "text_encoders",
            "Comfy-Org/z_image_turbo",
            "split_files/text_encoders/qwen_3_4b.safetensors",
            "qwen3-4b",
        ),
        (
            "diffusion_models",
            "Comfy-Org/Qwen-Image_ComfyUI",
            "split_files/diffusion_models/qwen_image_2512_fp8_e4m3fn.safetensors",
            "qwen-image",
        ),
        (
            "diffusion_models",
            "Comfy-Org/Qwen-Image-Edit_ComfyUI",
            "split_files/diffusion_models/qwen_image_edit_2511_bf16.safetensors",
            "qwen-image-edit",
        ),
        (
            "text_encoders",
            "Comfy-Org/Qwen-Image_ComfyUI",
            "split_files/text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors",
            "qwen25-vl-7b",
        ),
        (
            "vae",
            "Comfy-Org/Qwen-Image_ComfyUI",
            "split_files/vae/qwen_image_vae.safetensors",
            "qwen-image-vae",
        ),
        (
            "diffusion_models",
            "Comfy-Org/HunyuanVideo_1.5_repackaged",
            "split_files/diffusion_models/hunyuanvideo1.5_720p_i2v_fp16.safetensors",
            "hunyuan15-i2v",
        ),
        (
            "diffusion_models",
            "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
            "split_files/diffusion_models/wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors",
            "wan21-i2v-14b",
        ),
        (
            "clip_vision",
            "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
            "split_files/clip_vision/clip_vision_h.safetensors",
            "clip-vision-h",
        ),
        (
            "diffusion_models",
            "QuantStack/Wan2.2-I2V-A14B-GGUF",
            "LowNoise/Wan2.2-I2V-A14B-LowNoise-Q5_K_S.gguf",
            "wan22-i2v-a14b-gguf",
        ),
    ],
)
def test_architecture_is_inferred_from_repo_and_file(folder, repo, file, arch) -> None:
    finding = infer_arch(model(folder, repo, file))
    assert (finding.arch, finding.how) == (arch, "inferred")


def test_unknown_files_are_not_guessed() -> None:
    # a VAE named ae.safetensors from an unknown repo, and a custom-node model
    assert infer_arch(model("vae", "someone/else", "ae.safetensors")).arch is None
    assert (
        infer_arch(model("pulid", "guozinan/PuLID", "pulid_flux_v0.9.1.safetensors")).how
        == "unknown"
    )
    # the same file in another folder is another thing
    assert (
        infer_arch(model("loras", "black-forest-labs/FLUX.1-dev", "flux1-dev.safetensors")).arch
        is None
    )


def test_declared_architecture_wins() -> None:
    finding = infer_arch(
        model("checkpoints", "me/finetune", "mine.safetensors", arch="sdxl-checkpoint")
    )
    assert (finding.arch, finding.how) == ("sdxl-checkpoint", "declared")


def test_every_buildable_architecture_is_one_a_spec_may_declare() -> None:
    assert set(ARCHES) <= set(ARCHITECTURES)


# --- what an app needs


def test_flux_app_needs_its_files_and_a_lora_matching_its_base(apps) -> None:
    targets = {t.path: t for t in plan_app(apps["ryla-flux"])}
    assert all(t.covered for t in targets.values())  # /flux-dev-realism declares its LoRA's arch
    lora = targets["/flux-dev-lora"].files[-1]
    assert (lora.name, lora.arch) == ("loras/flux-character-abc123.safetensors", "flux-lora")
    built, links = builds(list(targets.values()))
    assert [f.name for f in built].count("diffusion_models/flux1-dev.safetensors") == 1
    # the realism LoRA is the same architecture: one file serves both names
    assert links == {
        "loras/flux-realism-lora.safetensors": "loras/flux-character-abc123.safetensors"
    }


@pytest.mark.parametrize(
    ("app", "path", "archs"),
    [
        ("ryla-wan26", "/svd", ["svd-checkpoint"]),
        ("ryla-z-image", "/z-image-simple", ["z-image", "qwen3-4b", "flux-vae"]),
        (
            "ryla-qwen-image",
            "/qwen-image-edit-2511",
            ["qwen-image-edit", "qwen25-vl-7b", "qwen-image-vae"],
        ),
        (
            "ryla-wan26",
            "/hunyuan15-i2v",
            ["hunyuan15-i2v", "qwen25-vl-7b", "byt5-small-glyph", "hunyuan15-vae", "siglip-vision"],
        ),
        ("ryla-wan26", "/wan2.6-i2v", ["wan21-i2v-14b", "clip-vision-h", "umt5-xxl", "wan21-vae"]),
    ],
)
def test_endpoints_with_new_builders_are_covered(apps, app, path, archs) -> None:
    target = {t.path: t for t in plan_app(apps[app])}[path]
    assert target.covered, target.not_covered
    assert [f.arch for f in target.files] == archs


def test_files_of_one_architecture_are_built_once(apps) -> None:
    targets = [t for t in plan_app(apps["ryla-instantid"]) if t.covered]
    assert [t.path for t in targets] == ["/sdxl-turbo", "/sdxl-lightning"]
    built, links = builds(targets)
    assert [f.arch for f in built] == ["sdxl-checkpoint"]
    assert links == {
        "checkpoints/sdxl_lightning_4step.safetensors": "checkpoints/sd_xl_turbo_1.0_fp16.safetensors"
    }


def test_uncovered_endpoints_say_why(apps) -> None:
    targets = {t.path: t for t in plan_app(apps["ryla-instantid"])}
    reasons = " ".join(targets["/sdxl-instantid"].not_covered)
    assert "instantid/ip-adapter.bin: unknown architecture" in reasons
    assert "custom nodes" in reasons
    klein = {t.path: t for t in plan_app(apps["ryla-z-image"])}["/flux-klein-edit"]
    assert any("no synthetic builder for flux2-klein" in r for r in klein.not_covered)


# --- custom-node packs (--custom-nodes DIR)


def test_custom_node_endpoints_without_their_packs_name_what_is_missing(apps, tmp_path) -> None:
    (tmp_path / "ComfyUI-VideoHelperSuite").mkdir()  # VHS only: GGUF is missing
    for packs_dir in (None, tmp_path):
        targets = {t.path: t for t in plan_app(apps["ryla-wan26"], packs_dir=packs_dir)}
        reasons = " ".join(targets["/wan22-i2v"].not_covered)
        assert "custom nodes not installed" in reasons
        assert "ComfyUI-GGUF (https://github.com/city96/comfyui-gguf@795e45156ece)" in reasons
        assert "VideoHelperSuite" not in reasons
    assert "no --custom-nodes folder given" in " ".join(
        plan_app(apps["ryla-wan26"], "/wan2.6-r2v")[0].not_covered
    )


def test_an_endpoint_whose_packs_are_installed_is_covered(apps, tmp_path) -> None:
    (tmp_path / "ComfyUI-VideoHelperSuite").mkdir()
    (target,) = plan_app(apps["ryla-wan26"], "/wan2.6-r2v", tmp_path)
    assert target.covered, target.not_covered
    assert [a.arch for a in target.files] == ["wan21-vace-1.3b", "umt5-xxl", "wan21-vae"]
    (pack,) = target.packs
    assert pack.path == tmp_path / "ComfyUI-VideoHelperSuite"
    assert "commit unknown (no .git), spec pins 4ee72c065db2" in pack.note()
    # a pack is matched by the folder the image clones it as, nothing looser
    (tmp_path / "ComfyUI-VideoHelperSuite").rename(tmp_path / "videohelpersuite")
    assert not plan_app(apps["ryla-wan26"], "/wan2.6-r2v", tmp_path)[0].covered


def test_the_gguf_experts_are_one_synthetic_file_once_ggufs_pack_is_there(apps, tmp_path) -> None:
    (tmp_path / "ComfyUI-GGUF").mkdir()
    (target,) = plan_app(apps["ryla-wan26"], "/wan22-i2v", tmp_path)
    assert target.covered, target.not_covered
    assert [f.arch for f in target.files] == [
        "wan22-i2v-a14b-gguf",
        "wan22-i2v-a14b-gguf",
        "umt5-xxl",
        "wan21-vae",
    ]
    built, links = builds([target])
    assert [f.name for f in built][0] == "diffusion_models/wan22_i2v_high_noise.gguf"
    assert links == {
        "diffusion_models/wan22_i2v_low_noise.gguf": "diffusion_models/wan22_i2v_high_noise.gguf"
    }


def _git_checkout(path: Path) -> str:
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    path.mkdir()
    (path / "__init__.py").write_text("")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env |= {"GIT_COMMITTER_EMAIL": "t@t", "HOME": str(path), "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True)
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True)
    return done.stdout.strip()


def test_a_checkout_at_another_commit_is_said_to_differ(apps, tmp_path) -> None:
    commit = _git_checkout(tmp_path / "ComfyUI-VideoHelperSuite")
    (target,) = plan_app(apps["ryla-wan26"], "/wan2.6-r2v", tmp_path)
    assert target.covered  # it runs, and the result says which code ran
    record = target.packs[0].record()
    assert record["commit"] == commit
    assert f"is at {commit[:12]}, the spec pins 4ee72c065db2" in record["note"]


def test_comfyui_sees_exactly_the_packs_of_the_class(apps, tmp_path) -> None:
    packs_dir = tmp_path / "packs"
    for name in ("ComfyUI-VideoHelperSuite", "ComfyUI-GGUF", "unrelated-pack"):
        (packs_dir / name).mkdir(parents=True)
    app = apps["ryla-wan26"]
    (cls,) = [c for c in app.classes if any(e.path == "/wan2.6-r2v" for e in c.endpoints)]
    paths = {e.path for e in cls.endpoints}  # /wan22-i2v (GGUF) runs in another class
    targets = [t for t in plan_app(app, None, packs_dir) if t.covered and t.path in paths]
    custom = tmp_path / "scratch" / "custom_nodes"
    custom.parent.mkdir()
    custom.symlink_to(packs_dir)  # what earlier smoke runs left: a link to a whole folder
    expose_packs(custom, class_packs(targets))
    assert not custom.is_symlink()
    assert {p.name: p.resolve() for p in custom.iterdir()} == {
        "ComfyUI-VideoHelperSuite": packs_dir / "ComfyUI-VideoHelperSuite"
    }
    assert sorted(p.name for p in packs_dir.iterdir()) == [
        "ComfyUI-GGUF",
        "ComfyUI-VideoHelperSuite",
        "unrelated-pack",
    ]  # the old link was removed, not the folder it pointed to
    expose_packs(custom, [])  # the next class needs none
    assert list(custom.iterdir()) == []
    (custom / "ComfyUI-VideoHelperSuite").mkdir()  # a real folder is never removed
    with pytest.raises(SmokeError, match="in the way of pack ComfyUI-VideoHelperSuite"):
        expose_packs(custom, class_packs(targets))


def test_comfyui_finds_the_synthetic_files_of_another_models_folder(tmp_path) -> None:
    # ComfyUI reads <--base-directory>/models: --models-dir elsewhere is linked there
    models_dir = tmp_path / "elsewhere"
    _link_models(tmp_path / "scratch" / "models", models_dir)
    assert (tmp_path / "scratch" / "models").resolve() == models_dir
    _link_models(tmp_path / "scratch" / "models", tmp_path / "other")  # a later run, moved
    assert (tmp_path / "scratch" / "models").resolve() == tmp_path / "other"
    (tmp_path / "s2" / "models").mkdir(parents=True)
    with pytest.raises(SmokeError, match="is a folder"):
        _link_models(tmp_path / "s2" / "models", models_dir)


# --- the result store


def test_store_keeps_results_by_endpoint_and_commit(tmp_path: Path) -> None:
    path = tmp_path / "smoke" / "results.json"
    store = ResultStore(path)
    store.put("ryla-demo", "/invert", "abc", {"status": "executed", "first_s": 1.0})
    again = ResultStore(path)
    assert again.get("ryla-demo", "/invert", "abc") == {"status": "executed", "first_s": 1.0}
    assert again.get("ryla-demo", "/invert", "def") is None
    assert again.get("ryla-demo", "/scale", "abc") is None


@pytest.mark.parametrize(
    "body", ["not json", "[]", '{"version": 2, "results": {}}', '{"version": 1}']
)
def test_store_refuses_a_file_it_did_not_write(tmp_path: Path, body: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(body)
    with pytest.raises(StoreError, match="results.json"):
        ResultStore(path)


# --- output checks


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _webp(frames: int, colors: bool = True) -> bytes:
    images = [Image.new("RGB", (8, 8), (i * 40 if colors else 0, 0, 0)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="WEBP", save_all=True, append_images=images[1:], duration=100)
    return buffer.getvalue()


def test_output_size_must_be_the_requested_size() -> None:
    headers = {"content-type": "image/png"}
    assert check_response(_png(64, 32), headers, {"width": 64, "height": 32}) == (["PNG 64×32"], [])
    _, problems = check_response(_png(64, 64), headers, {"width": 64, "height": 32})
    assert problems == ["output is 64×64, the request asked 64×32"]


def test_frames_must_match_the_frames_header() -> None:
    headers = {"content-type": "image/webp", "x-frames": "4"}
    assert check_response(_webp(4), headers, {})[1] == []
    assert check_response(_webp(3), headers, {})[1] == ["output has 3 frames, X-Frames says 4"]


def test_undecodable_output_is_a_problem() -> None:
    _, problems = check_response(b"not a png", {"content-type": "image/png"}, {})
    assert len(problems) == 1 and problems[0].startswith("image/png: ")


# --- the command, against the stand-in


def test_smoke_command_runs_the_demo_app_and_resumes(standin, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "results.json"
    table = tmp_path / "table.md"
    args = ["smoke", "ryla-demo", "--comfy-url", standin.url, "--out", str(out), "--commit", "c1"]
    first = CliRunner().invoke(main, [*args, "--markdown", str(table)])
    assert first.exception is None or isinstance(first.exception, SystemExit), first.output
    results = json.loads(out.read_text())["results"]
    invert = results["ryla-demo /invert @c1"]
    assert invert["status"] == "executed", first.output
    assert [r["outputs"] for r in invert["runs"]] == [["PNG 64×64"], ["PNG 64×64"]]
    assert invert["first_s"] > 0 and invert["warm_s"] > 0
    assert results["ryla-demo /scale @c1"]["runs"][0]["outputs"] == ["PNG 4×4"]
    assert "| ryla-demo | `/invert` | executed |" in table.read_text()
    assert "ryla-demo /invert: executed" in first.output

    again = CliRunner().invoke(main, args)
    assert "ryla-demo /invert: measured at c1 already, skipped" in again.output
    assert json.loads(out.read_text())["results"] == results  # nothing measured twice

    other = CliRunner().invoke(
        main, ["smoke", "invert", "--comfy-url", standin.url, "--out", str(out), "--commit", "c2"]
    )
    keys = set(json.loads(out.read_text())["results"])
    assert "ryla-demo /invert @c2" in keys and "ryla-demo /scale @c2" not in keys, other.output


def test_smoke_needs_a_comfyui(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["smoke", "ryla-demo", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    assert "--comfy-dir" in result.output and "Traceback" not in result.output
