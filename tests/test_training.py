"""Training training: the LoRA trainers as specs, their generated Modal functions run locally with a
stand-in trainer, the endpoint <-> training naming link, invalid training specs, `ryla-gen run`/`status`.

Nothing is downloaded: the stand-in trainer is a small Python script put on PATH under the
names the specs call (``accelerate``, ``torchrun``), and inputs come from an HTTP server on
127.0.0.1 (the training's ``allow_private_urls`` switch lets the runtime fetch from it).
"""

from __future__ import annotations

import ast
import dataclasses
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import modal
import pytest
from click.testing import CliRunner
from helpers import REPO, import_generated
from PIL import Image

from generator.cli import main
from generator.resolve.gpus import parse_gpu
from generator.resolve.project import Project, load_project
from generator.resolve.training import normalize_pattern
from generator.runtime.training import Arg, Output, TrainingError, render_command

MODULE_PATH = REPO / "generated" / "ryla_lora_training.py"
TRAINING = import_generated(MODULE_PATH)
APPS = {app.name: app for app in load_project(Project.at(REPO))[0]}
MODEL = APPS["ryla-lora-training"]

# shared/reference/existing-endpoints.md, section ryla-lora-training.
TODAY = {
    "train_flux_lora": ("A100-80GB", 7200, "image_urls"),
    "train_qwen_lora": ("A100-80GB", 7200, "image_urls"),
    "train_wan_lora": ("L40S", 14400, "video_urls"),
    "train_wan_lora_14b": ("A100-80GB", 28800, "video_urls"),
}


# --- the generated module ---------------------------------------------------------------------


@pytest.mark.parametrize("function", sorted(TODAY))
def test_each_function_carries_todays_gpu_and_timeout(function: str) -> None:
    gpu, timeout, _ = TODAY[function]
    training = next(j for j in MODEL.training if j.function == function)
    assert (training.gpu, training.timeout) == (gpu, timeout)  # the spec
    info = getattr(TRAINING, function).info()  # the Modal function, read back
    assert info.gpus == [(parse_gpu(gpu).type.name, 1)]
    assert info.timeout == timeout
    assert {p: v.name for p, v in info.volumes.items()} == {
        "/root/models": "ryla-models",
        "/cache": "hf-hub-cache",
    }
    assert getattr(TRAINING, function.upper()).timeout == timeout


@pytest.mark.parametrize("function", sorted(TODAY))
def test_each_function_keeps_todays_signature(function: str) -> None:
    tree = ast.parse(MODULE_PATH.read_text(encoding="utf-8"))
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    names = [a.arg for a in node.args.args]
    assert names == ["job_id", TODAY[function][2], "trigger_word", "character_id", "config"]
    assert [ast.unparse(a.annotation) for a in node.args.args] == [
        "str",
        "list[str]",
        "str",
        "str",
        "dict | None",
    ]
    assert [ast.unparse(d) for d in node.args.defaults] == ["None"]  # config only


def test_the_module_lists_its_training_functions_and_no_endpoints() -> None:
    assert TRAINING.ENDPOINTS == ()
    assert [j.name for j in TRAINING.TRAINING_FUNCTIONS] == list(TODAY)
    assert TRAINING.app.name == "ryla-lora-training"


def test_lora_endpoints_load_the_files_the_training_functions_write() -> None:
    """Each LoRA endpoint's lora_id names the file its training stores (the old naming bug)."""
    links = {
        "/flux-dev-lora": "train_flux_lora",
        "/qwen-image-2512-lora": "train_qwen_lora",
        "/wan2.6-lora": "train_wan_lora",
    }
    endpoints = {e.path: e for app in APPS.values() for e in app.endpoints}
    training = {j.function: j for j in MODEL.training}
    for path, function in links.items():
        (param,) = [p for p in endpoints[path].params if p.name == "lora_id"]
        (output,) = training[function].outputs
        loaded = normalize_pattern("loras/" + str(param.format))
        assert loaded == normalize_pattern(output.path), path
        assert "{lora_id}" in str(param.format) and "{character_id}" in output.path
    z_image = endpoints["/z-image-lora"]
    (param,) = [p for p in z_image.params if p.name == "lora_id"]
    assert param.format == "character-{lora_id}.safetensors"  # no trainer: left unlinked


# --- running a training locally with a stand-in trainer ----------------------------------------------

STANDIN = """\
import json, os, sys, time
from pathlib import Path

mode = os.environ.get("RYLA_STANDIN_MODE", "ok")
record = {"tool": Path(sys.argv[0]).name, "argv": sys.argv[1:], "cwd": os.getcwd()}
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)

def listing(folder):
    return {p.name: p.read_bytes().hex() for p in sorted(Path(folder).iterdir())}

if "instance_data_dir" in opts:
    record["inputs"] = listing(opts["instance_data_dir"])
if "dataset_config" in opts:
    config = json.loads(Path(opts["dataset_config"]).read_text())
    record["dataset_config"] = config
    record["inputs"] = listing(config["datasets"][0]["data_root"])
Path(os.environ["RYLA_STANDIN_RECORD"]).write_text(json.dumps(record))

if mode == "fail":
    for step in range(1, 61):
        print(f"step {step}/60 loss=0.{step:02d}")
    print("RuntimeError: CUDA out of memory", file=sys.stderr)
    sys.exit(3)
if mode == "hang":
    print("loading the model", flush=True)
    time.sleep(60)
out = Path(opts["output_dir"])
if record["tool"] == "torchrun":
    for step, body in (("000005", b"early"), ("000010", b"final")):
        (out / "lora_weights" / step).mkdir(parents=True)
        (out / "lora_weights" / step / "pytorch_lora_weights.safetensors").write_bytes(body)
elif mode != "nothing":
    (out / "pytorch_lora_weights.safetensors").write_bytes(b"LORA " + record["tool"].encode())
print("done")
"""


class FakeVolume:
    def __init__(self) -> None:
        self.commits = 0

    def commit(self) -> None:
        self.commits += 1


@dataclasses.dataclass
class Standin:
    record_path: Path

    def set_mode(self, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
        monkeypatch.setenv("RYLA_STANDIN_MODE", mode)

    @property
    def ran(self) -> bool:
        return self.record_path.exists()

    @property
    def record(self) -> dict[str, Any]:
        return json.loads(self.record_path.read_text())


@pytest.fixture()
def trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Standin:
    """``accelerate`` and ``torchrun`` on PATH: record their call, write a small LoRA file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("accelerate", "torchrun"):
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\n{STANDIN}")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("RYLA_STANDIN_RECORD", str(tmp_path / "record.json"))
    monkeypatch.setenv("RYLA_STANDIN_MODE", "ok")
    return Standin(tmp_path / "record.json")


def png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, format="PNG")
    return out.getvalue()


MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00" * 64
WEBM = b"\x1a\x45\xdf\xa3" + b"\x00" * 64
FILES = {
    "/a.png": png((255, 0, 0)),
    "/b.png": png((0, 0, 255)),
    "/clip.mp4": MP4,
    "/clip.webm": WEBM,
    "/note.txt": b"not an image",
}
# path -> Location ({port} is the server's): one hop, two hops, a loop, another host.
REDIRECTS = {
    "/moved": "/a.png",
    "/moved-twice": "/moved",
    "/loop": "/loop",
    "/to-localhost": "http://localhost:{port}/a.png",
}


class MediaHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path in REDIRECTS:
            self.send_response(302)
            port = self.server.server_address[1]
            self.send_header("Location", REDIRECTS[self.path].format(port=port))
            self.end_headers()
            return
        body = FILES.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def media() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MediaHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def prepare(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    function: str,
    *,
    allow_private: bool = True,
    **changes: Any,
) -> tuple[Path, FakeVolume]:
    """Point the generated function's training at a local volume folder and a fake Volume."""
    constant = function.upper()
    training = getattr(TRAINING, constant)
    models = tmp_path / "models"
    outputs = tuple(dataclasses.replace(o, mount=str(models)) for o in training.outputs)
    local = dataclasses.replace(
        training, outputs=outputs, allow_private_urls=allow_private, **changes
    )
    monkeypatch.setattr(TRAINING, constant, local)
    volume = FakeVolume()
    monkeypatch.setattr(TRAINING, "volumes", {str(models): volume})
    return models, volume


def call(function: str, **kwargs: Any) -> dict[str, Any]:
    with warnings.catch_warnings():  # "executing locally ... no access to the mounted Volume"
        warnings.simplefilter("ignore", UserWarning)
        return getattr(TRAINING, function).local(**kwargs)


def flux_command(work: str, **config: Any) -> list[str]:
    c = {"steps": 500, "rank": 16, "learning_rate": 0.0001, "resolution": 512, "seed": 42}
    c.update(config)
    return [
        "launch",
        "--num_processes=1",
        "--num_machines=1",
        "--mixed_precision=bf16",
        "--dynamo_backend=no",
        "/root/trainer/examples/dreambooth/train_dreambooth_lora_flux.py",
        "--pretrained_model_name_or_path=black-forest-labs/FLUX.1-dev",
        f"--instance_data_dir={work}/image_urls",
        "--instance_prompt=photo of ryla_abc",
        f"--output_dir={work}/output",
        "--mixed_precision=bf16",
        f"--resolution={c['resolution']}",
        "--train_batch_size=1",
        "--gradient_accumulation_steps=4",
        "--gradient_checkpointing",
        "--cache_latents",
        "--optimizer=adamw",
        "--use_8bit_adam",
        f"--learning_rate={c['learning_rate']}",
        "--guidance_scale=1",
        "--lr_scheduler=constant",
        "--lr_warmup_steps=0",
        f"--rank={c['rank']}",
        f"--max_train_steps={c['steps']}",
        f"--checkpointing_steps={c['steps'] + 1}",
        f"--seed={c['seed']}",
        "--report_to=tensorboard",
    ]


def work_dir_of(record: dict[str, Any]) -> str:
    output = next(a for a in record["argv"] if a.startswith("--output_dir="))
    work = output.split("=", 1)[1].removesuffix("/output")
    assert os.path.realpath(work) == record["cwd"]  # the trainer runs in the work folder
    return work


def test_flux_training_runs_the_trainer_and_stores_the_lora(
    trainer: Standin, media: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models, volume = prepare(monkeypatch, tmp_path, "train_flux_lora")
    result = call(
        "train_flux_lora",
        job_id="job-1",
        image_urls=[f"{media}/a.png", f"{media}/b.png"],
        trigger_word="ryla_abc",
        character_id="abc123",
        config={"steps": 20, "rank": 8},
    )
    record = trainer.record
    work = work_dir_of(record)
    assert record["tool"] == "accelerate"
    assert record["argv"] == flux_command(work, steps=20, rank=8)
    assert record["inputs"] == {
        "0000.png": FILES["/a.png"].hex(),
        "0001.png": FILES["/b.png"].hex(),
    }
    stored = models / "loras" / "flux-character-abc123.safetensors"
    assert stored.read_bytes() == b"LORA accelerate"
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]  # no .partial left
    seconds = result.pop("training_time_seconds")
    assert isinstance(seconds, float) and seconds >= 0
    assert result == {
        "status": "completed",
        "job_id": "job-1",
        "trigger_word": "ryla_abc",
        "character_id": "abc123",
        "config": {"steps": 20, "rank": 8, "learning_rate": 0.0001, "resolution": 512, "seed": 42},
        "lora_path": str(stored),
        "lora_filename": "flux-character-abc123.safetensors",
        "model_type": "flux",
    }
    assert volume.commits == 1
    assert not Path(work).exists()  # the work folder is removed


def test_qwen_training_defaults_and_its_own_file_name(
    trainer: Standin, media: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models, _ = prepare(monkeypatch, tmp_path, "train_qwen_lora")
    result = call(
        "train_qwen_lora",
        job_id="j",
        image_urls=[f"{media}/a.png"],
        trigger_word="ryla_abc",
        character_id="c-1",
    )
    assert result["status"] == "completed", result
    argv = trainer.record["argv"]
    assert "--pretrained_model_name_or_path=Qwen/Qwen-Image-2512" in argv
    assert {"--resolution=1024", "--rank=16", "--max_train_steps=500", "--offload"} <= set(argv)
    assert result["lora_filename"] == "qwen-character-c-1.safetensors"
    assert (models / "loras" / "qwen-character-c-1.safetensors").is_file()
    assert result["model_type"] == "qwen"


@pytest.mark.parametrize(
    ("function", "model", "filename"),
    [
        ("train_wan_lora", "Wan2.1-T2V-1.3B", "wan-character-w1.safetensors"),
        ("train_wan_lora_14b", "Wan2.1-T2V-14B", "wan-14b-character-w1.safetensors"),
    ],
)
def test_wan_training_renders_a_dataset_config_and_store_the_last_checkpoint(
    trainer: Standin,
    media: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    function: str,
    model: str,
    filename: str,
) -> None:
    models, volume = prepare(monkeypatch, tmp_path, function)
    result = call(
        function,
        job_id="j",
        video_urls=[f"{media}/clip.mp4"],
        trigger_word="ryla_w",
        character_id="w1",
        config={"frames": 33, "steps": 50},
    )
    assert result["status"] == "completed", result
    record = trainer.record
    work = work_dir_of(record)
    assert record["tool"] == "torchrun"
    assert record["argv"][:4] == [
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=1",
        "/root/trainer/train.py",
    ]
    assert f"--pretrained_model_name_or_path=Wan-AI/{model}-Diffusers" in record["argv"]
    assert f"--dataset_config={work}/dataset.json" in record["argv"]
    assert {"--train_steps=50", "--precomputation_items=1", "--lr_warmup_steps=5"} <= set(
        record["argv"]
    )
    assert record["dataset_config"] == {
        "datasets": [
            {
                "data_root": f"{work}/video_urls",
                "dataset_type": "video",
                "video_resolution_buckets": [[33, 480, 832]],
                "reshape_mode": "bicubic",
                "remove_common_llm_caption_prefixes": True,
            }
        ]
    }
    assert record["inputs"] == {"0000.mp4": MP4.hex(), "0000.txt": b"ryla_w".hex()}
    assert (models / "loras" / filename).read_bytes() == b"final"  # the highest step
    assert result["lora_filename"] == filename
    assert volume.commits == 1


def test_a_trainer_exiting_non_zero_is_reported_with_its_last_log_lines(
    trainer: Standin, media: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models, volume = prepare(monkeypatch, tmp_path, "train_flux_lora")
    trainer.set_mode(monkeypatch, "fail")
    result = call(
        "train_flux_lora",
        job_id="j",
        image_urls=[f"{media}/a.png"],
        trigger_word="t",
        character_id="abc",
    )
    assert result["status"] == "failed"
    assert result["error"] == "trainer exited with status 3"
    assert result["exit_code"] == 3
    lines = result["log_tail"].splitlines()
    assert len(lines) == 40  # the spec's log_lines default
    assert lines[-1] == "RuntimeError: CUDA out of memory"
    assert lines[0] == "step 22/60 loss=0.22"
    assert (result["job_id"], result["character_id"], result["model_type"]) == ("j", "abc", "flux")
    assert "lora_path" not in result
    assert not (models / "loras").exists()
    assert volume.commits == 0


def test_a_trainer_that_writes_no_output_fails_the_training(
    trainer: Standin, media: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, volume = prepare(monkeypatch, tmp_path, "train_qwen_lora")
    trainer.set_mode(monkeypatch, "nothing")
    result = call(
        "train_qwen_lora",
        job_id="j",
        image_urls=[f"{media}/a.png"],
        trigger_word="t",
        character_id="a",
    )
    assert result["status"] == "failed"
    assert "wrote no pytorch_lora_weights.safetensors" in result["error"]
    assert result["log_tail"].splitlines()[-1] == "done"
    assert volume.commits == 0


def test_a_trainer_past_its_time_is_stopped_and_reported(
    trainer: Standin, media: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare(monkeypatch, tmp_path, "train_flux_lora", timeout=2)
    trainer.set_mode(monkeypatch, "hang")
    result = call(
        "train_flux_lora",
        job_id="j",
        image_urls=[f"{media}/a.png"],
        trigger_word="t",
        character_id="a",
    )
    assert result["status"] == "failed"
    assert "trainer ran past 2 s" in result["error"]
    assert result["log_tail"] == "loading the model"
    assert result["training_time_seconds"] < 30


@pytest.mark.parametrize(
    ("urls", "fragment"),
    [
        pytest.param(
            ["{media}/a.png"], "is a private, loopback or link-local address", id="loopback"
        ),
        pytest.param(
            ["http://10.0.0.7/a.png"], "is a private, loopback or link-local address", id="private"
        ),
        pytest.param(
            ["http://169.254.169.254/latest"],
            "is a private, loopback or link-local address",
            id="metadata",
        ),
        pytest.param(
            ["file:///etc/passwd"],
            "image_urls[0]: only http(s) URLs are accepted",
            id="file-scheme",
        ),
        pytest.param(
            ["https://x.invalid/a.png", "ftp://x/a.png"],
            "image_urls[1]: only http(s)",
            id="ftp-scheme",
        ),
    ],
)
def test_unsafe_input_urls_are_refused_before_the_trainer_runs(
    trainer: Standin,
    media: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    urls: list[str],
    fragment: str,
) -> None:
    _, volume = prepare(monkeypatch, tmp_path, "train_flux_lora", allow_private=False)
    result = call(
        "train_flux_lora",
        job_id="j",
        image_urls=[u.format(media=media) for u in urls],
        trigger_word="t",
        character_id="abc",
    )
    assert result["status"] == "failed"
    assert fragment in result["error"], result["error"]
    assert not trainer.ran
    assert volume.commits == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        pytest.param(
            {"image_urls": ["{media}/note.txt"]},
            "image_urls[0]: not a supported image file",
            id="not-an-image",
        ),
        pytest.param({"image_urls": ["{media}/missing.png"]}, "answered HTTP 404", id="http-404"),
        pytest.param(
            {"image_urls": ["{media}/loop"]}, "image_urls[0]: more than 5 redirects", id="loop"
        ),
        pytest.param({"image_urls": []}, "at least 1 URL(s)", id="no-images"),
        pytest.param(
            {"character_id": "../../etc/x"},
            "argument 'character_id': '../../etc/x' does not match",
            id="path-in-id",
        ),
        pytest.param(
            {"config": {"steps": 0}},
            "argument 'config': argument 'steps': 0 is below the minimum 1",
            id="steps-below-min",
        ),
        pytest.param({"config": {"rank": 7}}, "7 is not one of", id="rank-not-a-choice"),
        pytest.param(
            {"config": {"stepz": 5}},
            "unknown setting(s) stepz; known: steps, rank",
            id="unknown-setting",
        ),
        pytest.param(
            {"config": {"learning_rate": "fast"}}, "must be of type float", id="wrong-type"
        ),
        pytest.param({"trigger_word": "a\nb"}, "argument 'trigger_word'", id="newline-in-trigger"),
    ],
)
def test_invalid_arguments_fail_the_training_with_a_reason(
    trainer: Standin,
    media: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, Any],
    fragment: str,
) -> None:
    prepare(monkeypatch, tmp_path, "train_flux_lora")
    given = {
        "job_id": "j",
        "image_urls": [f"{media}/a.png"],
        "trigger_word": "t",
        "character_id": "a",
    }
    given.update(
        {
            k: [u.format(media=media) for u in v] if k == "image_urls" else v
            for k, v in kwargs.items()
        }
    )
    result = call("train_flux_lora", **given)
    assert result["status"] == "failed"
    assert fragment in result["error"], result["error"]
    assert not trainer.ran


def test_runtime_pieces() -> None:
    training = TRAINING.TRAIN_FLUX_LORA
    context = {
        **training.check_arguments(
            {
                "job_id": "j",
                "image_urls": ["https://h/a.png"],
                "trigger_word": "t",
                "character_id": "c",
            }
        ),
        "inputs": {"image_urls": "/w/image_urls"},
        "work_dir": "/w",
        "output_dir": "/w/output",
        "trainer_dir": "/root/trainer",
        "python": "python",
    }
    assert render_command(training, context)[:2] == ["accelerate", "launch"]
    conditional = dataclasses.replace(
        training, command=("x", "{% if config.steps > 900 %}--long{% endif %}")
    )
    assert render_command(conditional, context) == ["x"]  # empty items are dropped
    escape = Output("lora", "/vol", "loras/{character_id}", "f")
    with pytest.raises(TrainingError, match="leaves the volume"):
        escape.target({"character_id": "../../etc"})
    assert escape.target({"character_id": "ok"}) == Path("/vol/loras/ok")
    assert Arg("u", "url_list").parse_text('["https://a", "https://b"]') == [
        "https://a",
        "https://b",
    ]
    assert Arg("b", "bool").parse_text("yes") is True
    assert normalize_pattern("loras/a-{x}.st") == normalize_pattern("loras//a-{character_id}.st")


# --- invalid training specs: file:line:col ------------------------------------------------------------

X = "specs/x.yaml"
E = "specs/ep.yaml"
# Lines: 3 name, 5 volumes, 6 training, 7 function, 8 image, 9 trainer, 10 arguments, 11 character_id,
# 12 image_urls, 13 steps, 14 command, 15 outputs, 16 lora, 17 path.
JOB = """\
version: 1
app:
  name: trainers
  gpu: L4
  volumes: {/root/models: models}
training:
  - function: train_x
    image:
      trainer: {package: "trainer-pkg==1.0"}
    arguments:
      character_id: {type: string, required: true, pattern: "^[a-z0-9]+$"}
      image_urls: {type: url_list, required: true, media: image}
      steps: {type: int, default: 10, min: 1}
    command: [trainer, "--steps={{ steps }}", "--out={{ output_dir }}"]
    outputs:
      lora:
        path: "loras/x-{character_id}.safetensors"
        trainer_file: out.safetensors
"""
# An endpoint app loading the training's output. Lines: 14 format, 15 from_training.
ENDPOINT = """\
version: 1
app:
  name: gen
  gpu: T4
  volumes: {/root/models: models}
endpoints:
  - path: /lora
    workflow: wf.json
    parameters:
      lora_id:
        type: string
        required: true
        bind: {title: Save Image, input: filename_prefix}
        format: "x-{lora_id}.safetensors"
        from_training: train_x
    output: {title: Save Image}
    examples:
      - {lora_id: abc}
"""
WORKFLOW = """\
{
  "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}, "_meta": {"title": "Canvas"}},
  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}, "_meta": {"title": "Save Image"}}
}
"""


def training_edit(old: str, new: str, base: str = JOB) -> dict[str, str]:
    assert base.count(old) == 1, old
    return {X: base.replace(old, new)}


def validate(root: Path, files: dict[str, str]) -> tuple[int, list[str], str]:
    (root / "specs").mkdir()
    (root / "comfy_workflows").mkdir()
    (root / "comfy_workflows" / "wf.json").write_text(WORKFLOW)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate"])
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if ": error: " in line]
    return result.exit_code, errors, result.output


def assert_error(root: Path, files: dict[str, str], where: str, fragment: str) -> None:
    code, errors, output = validate(root, files)
    assert code == 2, output
    hits = [e for e in errors if e.startswith(where + ": error: ") and fragment in e]
    assert hits, f"no error at {where} containing {fragment!r}; got:\n{output}"


JOB_CASES = [
    pytest.param(
        training_edit("media: image}", "media: image, formats: [png, mp4]}"),
        f"{X}:12:81",
        "argument 'image_urls': format 'mp4' is not one ryla-gen recognises for image",
        id="format-of-another-kind",
    ),
    pytest.param(
        training_edit("min: 1}", "min: 1, formats: [png]}"),
        f"{X}:13:47",
        "argument 'steps': 'formats' is only for type url_list",
        id="formats-on-a-number",
    ),
    pytest.param(
        training_edit("    image:\n", "    gpus: L4\n    image:\n"),
        f"{X}:8:5",
        "unknown key 'gpus' (did you mean 'gpu'?)",
        id="unknown-key",
    ),
    pytest.param(
        training_edit('{package: "trainer-pkg==1.0"}', "{git: https://example.invalid/t}"),
        f"{X}:9:16",
        "a git trainer must be pinned with 'commit' (40 hex digits)",
        id="git-trainer-unpinned",
    ),
    pytest.param(
        training_edit('"trainer-pkg==1.0"', '"trainer-pkg>=1.0"'),
        f"{X}:9:26",
        "String should match pattern",
        id="package-trainer-unpinned",
    ),
    pytest.param(
        training_edit(', pattern: "^[a-z0-9]+$"}', "}"),
        f"{X}:17:15",
        "output path uses '{character_id}': only required string arguments with a 'pattern'",
        id="output-field-without-pattern",
    ),
    pytest.param(
        training_edit("x-{character_id}", "x-{char}"),
        f"{X}:17:15",
        "output path uses '{char}', which is no argument",
        id="output-field-unknown",
    ),
    pytest.param(
        training_edit('"loras/x-{character_id}.safetensors"', '"../x-{character_id}.safetensors"'),
        f"{X}:17:15",
        "must be relative and stay inside the volume",
        id="output-path-escapes",
    ),
    pytest.param(
        training_edit(
            "      character_id: {type: string, required: true",
            "      seed: {type: int, default: 1}\n      character_id: {type: string, required: true",
        ),
        f"{X}:12:7",
        "required argument 'character_id' follows optional 'seed'",
        id="required-after-optional",
    ),
    pytest.param(
        training_edit('"--steps={{ steps }}"', '"--steps={{ step }}"'),
        f"{X}:14:24",
        "command.1: unknown template variable(s) step",
        id="template-unknown-variable",
    ),
    pytest.param(
        training_edit('"--steps={{ steps }}"', '"--steps={{ steps }"'),
        f"{X}:14:24",
        "command.1: template line 1",
        id="template-syntax",
    ),
    pytest.param(
        training_edit('"--out={{ output_dir }}"', '"--out={{ trainer_dir }}"'),
        f"{X}:14:47",
        "trainer_dir is only set for a git trainer",
        id="trainer-dir-without-git",
    ),
    pytest.param(
        training_edit("default: 10, min: 1", "default: 0, min: 1"),
        f"{X}:13:35",
        "default: argument 'steps': 0 is below the minimum 1",
        id="default-below-min",
    ),
    pytest.param(
        training_edit("{type: int, default: 10, min: 1}", "{type: int, default: 10, media: image}"),
        f"{X}:13:39",
        "argument 'steps': 'media' is only for type url_list",
        id="url-key-on-int",
    ),
    pytest.param(
        training_edit("  - function: train_x\n", "  - function: train_x\n    timeout: 90000\n"),
        f"{X}:8:14",
        "timeout 90000 s is over Modal's limit of 86400 s",
        id="timeout-over-a-day",
    ),
    pytest.param(
        training_edit("  - function: train_x\n", "  - function: train_x\n    gpu: Z99\n"),
        f"{X}:8:10",
        "unknown GPU 'Z99'",
        id="gpu-unknown",
    ),
    pytest.param(
        training_edit(
            "        trainer_file: out.safetensors\n",
            "        trainer_file: out.safetensors\n        volume: /data\n",
        ),
        f"{X}:19:17",
        "output 'lora': volume '/data' is not among the training's volumes (/root/models)",
        id="output-volume-not-mounted",
    ),
    pytest.param(
        training_edit("    outputs:\n", "    result: {status: ok}\n    outputs:\n"),
        f"{X}:15:14",
        "result key 'status' is already set by the run",
        id="result-key-reserved",
    ),
    pytest.param(
        training_edit(
            "      image_urls: {type", "      inputs: {type: string}\n      image_urls: {type"
        ),
        f"{X}:12:7",
        "argument name 'inputs' is taken",
        id="argument-name-taken",
    ),
    pytest.param(
        {
            X: JOB,
            E: ENDPOINT.replace('"x-{lora_id}.safetensors"', '"character-{lora_id}.safetensors"'),
        },
        f"{E}:14:17",
        "/lora: parameter 'lora_id': loads loras/character-{lora_id}.safetensors from volume "
        "'models', but training function train_x writes loras/x-{character_id}.safetensors into volume 'models' "
        "(specs/x.yaml:17:15)",
        id="link-pattern-disagrees",
    ),
    pytest.param(
        {X: JOB, E: ENDPOINT.replace("/root/models: models", "/root/models: other")},
        f"{E}:14:17",
        "from volume 'other', but training function train_x writes loras/x-{character_id}.safetensors into "
        "volume 'models'",
        id="link-volume-disagrees",
    ),
    pytest.param(
        {X: JOB, E: ENDPOINT.replace("from_training: train_x", "from_training: train_y")},
        f"{E}:15:24",
        "from_training: no training function named 'train_y'; training functions: train_x",
        id="link-unknown-training",
    ),
    pytest.param(
        {X: JOB, E: ENDPOINT.replace('        format: "x-{lora_id}.safetensors"\n', "")},
        f"{E}:14:24",
        "from_training needs 'format'",
        id="link-without-format",
    ),
    pytest.param(
        {X: JOB, E: ENDPOINT.replace("from_training: train_x", "from_training: [train_x]")},
        f"{E}:15:24",
        "expected a training function's name or {training, output, folder}",
        id="link-shape",
    ),
    pytest.param(
        {X: JOB, "specs/y.yaml": JOB.replace("trainers", "trainers-two")},
        "specs/y.yaml:7:15",
        "training function train_x is already defined at specs/x.yaml:7:15",
        id="training-name-twice",
    ),
    pytest.param(
        {
            X: JOB,
            "specs/y.yaml": JOB.replace("trainers", "trainers-two").replace("train_x", "train_y"),
        },
        "specs/y.yaml:17:15",
        "the same files as training function train_x (specs/x.yaml:17:15)",
        id="two-training-one-output-pattern",
    ),
    pytest.param(
        {X: ENDPOINT.replace("        from_training: train_x\n", "") + JOB.split("\n", 5)[5]},
        f"{X}:19:15",
        "app 'gen' serves endpoints, so it cannot hold training too",
        id="endpoints-and-training-in-one-app",
    ),
]


@pytest.mark.parametrize(("files", "where", "fragment"), JOB_CASES)
def test_invalid_training_spec(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    where: str,
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_error(tmp_path, files, where, fragment)


def test_valid_training_and_linked_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, errors, output = validate(tmp_path, {X: JOB, E: ENDPOINT})
    assert code == 0, output
    assert "ok: 2 app(s), 1 endpoint(s), 1 training function(s)" in output


def test_the_shipped_endpoints_fail_validation_when_a_lora_name_drifts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bring back today's bug (the endpoint reads character-{id}): the build refuses."""
    for name in ("specs", "comfy_workflows"):
        shutil.copytree(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "specs" / "ryla-flux.yaml"
    text = spec.read_text(encoding="utf-8")
    old = 'format: "flux-character-{lora_id}.safetensors"'
    assert text.count(old) == 1
    spec.write_text(text.replace(old, 'format: "character-{lora_id}.safetensors"'))
    line = text[: text.index(old)].count("\n") + 1
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 2
    assert (
        f"specs/ryla-flux.yaml:{line}:17: error: /flux-dev-lora: parameter 'lora_id': loads "
        "loras/character-{lora_id}.safetensors" in result.output
    ), result.output
    assert (
        "training function train_flux_lora writes loras/flux-character-{character_id}.safetensors"
        in result.output
    )


# --- ryla-gen run / status ----------------------------------------------------------------------


@dataclasses.dataclass
class FakeCall:
    object_id: str = "fc-01TEST"
    outcome: Any = None

    def get(self, timeout: float | None = None) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


@pytest.fixture()
def fake_modal(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    class FakeFunction:
        def spawn(self, **kwargs: Any) -> FakeCall:
            seen["kwargs"] = kwargs
            return FakeCall()

    def from_name(app: str, name: str, *, environment_name: str | None = None) -> FakeFunction:
        seen["function"] = (app, name, environment_name)
        return FakeFunction()

    def from_id(call_id: str) -> FakeCall:
        seen["call_id"] = call_id
        return FakeCall(call_id, seen.get("outcome"))

    monkeypatch.setattr(modal.Function, "from_name", staticmethod(from_name))
    monkeypatch.setattr(modal.FunctionCall, "from_id", staticmethod(from_id))
    monkeypatch.chdir(REPO)
    return seen


def test_run_spawns_the_deployed_function_with_typed_arguments(fake_modal: dict[str, Any]) -> None:
    args = [
        "run", "train_flux_lora", "--env", "staging",
        "--arg", "job_id=job-9", "--arg", "image_urls=https://cdn.example/a.png",
        "--arg", "image_urls=https://cdn.example/b.png", "--arg", "trigger_word=ryla abc",
        "--arg", "character_id=abc", "--arg", "config.steps=20", "--arg", "config.learning_rate=2e-4",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "fc-01TEST"
    assert fake_modal["function"] == ("ryla-lora-training", "train_flux_lora", "staging")
    assert fake_modal["kwargs"] == {
        "job_id": "job-9",
        "image_urls": ["https://cdn.example/a.png", "https://cdn.example/b.png"],
        "trigger_word": "ryla abc",
        "character_id": "abc",
        "config": {"steps": 20, "learning_rate": 0.0002},
    }


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--arg", "config.steps=many"], "argument 'steps' (int)"),
        (["--arg", "epochs=3"], "train_flux_lora has no argument 'epochs'"),
        (["--arg", "config.epochs=3"], "argument 'config' has no setting 'epochs'"),
        (["--arg", "job_id"], "expected NAME=VALUE"),
        (["--arg", "character_id=../x"], "does not match"),
    ],
)
def test_run_refuses_bad_arguments_before_calling_modal(
    fake_modal: dict[str, Any], args: list[str], fragment: str
) -> None:
    base = ["--arg", "job_id=j", "--arg", "image_urls=https://a/x.png", "--arg", "trigger_word=t"]
    base += ["--arg", "character_id=abc"]
    result = CliRunner().invoke(main, ["run", "train_flux_lora", *base, *args])
    assert result.exit_code == 2
    assert fragment in result.stderr, result.stderr
    assert "kwargs" not in fake_modal


def test_run_of_an_unknown_function_names_the_training_functions(
    fake_modal: dict[str, Any],
) -> None:
    result = CliRunner().invoke(main, ["run", "train_sdxl_lora"])
    assert result.exit_code == 1
    assert (
        "no training function named 'train_sdxl_lora'; training functions: train_flux_lora, train_qwen_lora"
        in result.stderr
    )


@pytest.mark.parametrize(
    ("outcome", "code", "expected"),
    [
        (TimeoutError(), 0, {"call_id": "fc-1", "state": "running"}),
        ({"status": "completed", "lora_filename": "f.safetensors"}, 0,
         {"call_id": "fc-1", "state": "finished", "result": {"status": "completed", "lora_filename": "f.safetensors"}}),
        ({"status": "failed", "error": "trainer exited with status 3"}, 1,
         {"call_id": "fc-1", "state": "finished", "result": {"status": "failed", "error": "trainer exited with status 3"}}),
        (ValueError("boom"), 1, {"call_id": "fc-1", "state": "error", "error": "boom"}),
    ],
)  # fmt: skip
def test_status_reports_running_result_or_error(
    fake_modal: dict[str, Any], outcome: Any, code: int, expected: dict[str, Any]
) -> None:
    fake_modal["outcome"] = outcome
    result = CliRunner().invoke(main, ["status", "fc-1"])
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout) == expected
    assert fake_modal["call_id"] == "fc-1"


def test_run_without_credentials_fails_with_modals_message(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "MODAL_CONFIG_PATH": str(home / ".modal.toml"),
        "MODAL_TOKEN_ID": "",
        "MODAL_TOKEN_SECRET": "",
    }
    command = [str(Path(shutil.which("ryla-gen") or REPO / ".venv/bin/ryla-gen")), "run"]
    command += ["train_wan_lora", "--arg", "job_id=j", "--arg", "video_urls=https://a/v.mp4"]
    command += ["--arg", "trigger_word=t", "--arg", "character_id=c"]
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "token" in (result.stdout + result.stderr).lower()


# --- downloads: redirects, formats the trainer reads ---------------------------------------------


def test_redirects_are_followed_to_the_file(
    trainer: Standin, media: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare(monkeypatch, tmp_path, "train_flux_lora")
    result = call(
        "train_flux_lora",
        job_id="j",
        image_urls=[f"{media}/moved", f"{media}/moved-twice"],
        trigger_word="t",
        character_id="abc",
    )
    assert result["status"] == "completed", result
    red = png((255, 0, 0)).hex()
    assert trainer.record["inputs"] == {"0000.png": red, "0001.png": red}


def test_every_redirect_hop_passes_the_address_checks(
    trainer: Standin, media: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """127.0.0.1 stands for a public host here; a hop to 'localhost' is refused like a private
    one: the check runs again on the redirect's target, not only on the URL given."""
    from generator.runtime import urls

    checked: list[str] = []
    check_url = urls.check_url

    async def only_127(url: str, *, allow_private: bool) -> urls.Target:
        checked.append(url)
        if "//localhost" in url:
            raise urls.UrlError("URL host 'localhost' is a private, loopback or link-local address")
        return await check_url(url, allow_private=True)

    monkeypatch.setattr(urls, "check_url", only_127)
    prepare(monkeypatch, tmp_path, "train_flux_lora")
    result = call(
        "train_flux_lora",
        job_id="j",
        image_urls=[f"{media}/to-localhost"],
        trigger_word="t",
        character_id="abc",
    )
    assert result["status"] == "failed"
    assert "image_urls[0]: URL host 'localhost' is a private" in result["error"], result
    assert checked == [f"{media}/to-localhost", f"{media.replace('127.0.0.1', 'localhost')}/a.png"]
    assert not trainer.ran


@pytest.mark.parametrize("function", ["train_wan_lora", "train_wan_lora_14b"])
def test_webm_clips_are_refused_before_the_trainer_runs(
    trainer: Standin, media: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, function: str
) -> None:
    prepare(monkeypatch, tmp_path, function)
    result = call(
        function,
        job_id="j",
        video_urls=[f"{media}/clip.mp4", f"{media}/clip.webm"],
        trigger_word="t",
        character_id="abc",
    )
    assert result["status"] == "failed"
    assert "video_urls[1]: WEBM is not read by the trainer (it reads MP4)" in result["error"]
    assert not trainer.ran
