"""Cold start: residency plan, launch flags, memory-snapshot hooks, warm-up before /ready."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import httpx
import modal
import pytest
from helpers import REPO, import_generated
from modal._partial_function import _PartialFunctionFlags
from modal._utils.async_utils import synchronizer

from generator.resolve.model import ClassModel, EndpointModel, ModelFileModel
from generator.resolve.plan import launch_args, plan_class
from generator.resolve.project import Project, load_project
from generator.runtime.backends import ComfyServer, RemoteComfy
from generator.runtime.config import Endpoint
from generator.runtime.server import create_app
from generator.runtime.warmup import Warmup

APPS, _ = load_project(Project.at(REPO))


def endpoint(path: str, models: tuple[str, ...]) -> EndpointModel:
    return EndpointModel(
        path=path, request_class="R", summary="", description=None, workflow_file="w.json",
        fields=(), params=(), outputs=(), response="raw", timeout=60, gpu="L40S", headers={},
        require_one_of=(), prefix_nodes=(), examples=(), source="s.yaml", model_names=models,
    )  # fmt: skip


def model(name: str, size: float | None) -> ModelFileModel:
    folder, filename = name.split("/")
    return ModelFileModel(folder, filename, "o/r", filename, "main", None, None, size)


@pytest.mark.parametrize(
    ("gpu", "sizes", "endpoints", "verdict", "flags"),
    [
        ("L40S", [20.0, 10.0], 2, "fits", ("--highvram", "--cache-lru", "32")),
        ("L40S", [20.0], 1, "fits", ("--highvram", "--cache-lru", "32")),
        ("L40S", [30.0, 13.2], 2, "fits", ("--highvram", "--cache-lru", "32")),  # 43.2 = 48 x 0.9
        ("L40S", [30.0, 13.3], 2, "does-not-fit", ()),
        ("A100-80GB", [30.0, 13.3], 2, "fits", ("--highvram", "--cache-lru", "32")),
        ("H100:2", [60.0, 20.0], 2, "does-not-fit", ()),  # one device's 72 GB, not 144
        ("L40S", [20.0, None], 2, "unknown", ()),
        ("L40S", [50.0, None], 2, "does-not-fit", ()),
    ],
    ids=["fits", "single-endpoint", "exact-boundary", "just-over", "bigger-gpu", "multi-gpu-one-device", "unknown-size", "known-part-too-big"],
)  # fmt: skip
def test_residency_plan(gpu, sizes, endpoints, verdict, flags) -> None:
    names = [f"checkpoints/m{i}.safetensors" for i in range(len(sizes))]
    eps = tuple(endpoint(f"/e{i}", tuple(names)) for i in range(endpoints))
    cls = ClassModel("ComfyUI", gpu, 60, 0.001, eps)
    plan = plan_class("app", tuple(model(n, s) for n, s in zip(names, sizes, strict=True)), cls)
    assert (plan.verdict, plan.flags) == (verdict, flags)
    if verdict == "fits":  # kept loaded by the helper node; RAM for loading the largest one
        assert plan.pinned == tuple(f"m{i}.safetensors" for i in range(len(sizes)))
        assert 0 <= plan.memory_mb - (8 + max(sizes)) * 1024 < 256  # MiB, rounded up
    elif verdict == "does-not-fit" and None not in sizes:  # offloaded weights live in RAM
        assert not plan.pinned and 0 <= plan.memory_mb - (8 + sum(sizes)) * 1024 < 256
    if gpu.endswith(":2"):
        assert plan.vram_gb == 80 and "1 of 2 GPUs idle" in plan.notes[0]


def test_a_measured_activation_figure_keeps_more_than_a_tenth_free() -> None:
    """SVD's decode held 16.7 GB beyond its 9.56 GB of models on an H200 (ryla-gen smoke):
    alone on an L4 (24 GB) a flat tenth would call it resident and it would run out of memory."""
    svd = dataclasses.replace(endpoint("/svd", ("checkpoints/svd_xt.safetensors",)), gpu="L4")
    models = (model("checkpoints/svd_xt.safetensors", 9.56),)
    flat = plan_class("app", models, ClassModel("ComfyUI", "L4", 60, 0.001, (svd,)))
    assert (flat.verdict, flat.usable_gb) == ("fits", 21.6)
    measured = dataclasses.replace(svd, activation_gb=16.7)
    plan = plan_class("app", models, ClassModel("ComfyUI", "L4", 60, 0.001, (measured,)))
    assert (plan.verdict, plan.usable_gb) == ("does-not-fit", 7.3)
    assert "16.7 GB kept free for /svd's run beyond its models" in plan.notes[0]
    small = dataclasses.replace(svd, activation_gb=1.0)  # below a tenth: the tenth stays
    assert (
        plan_class("app", models, ClassModel("ComfyUI", "L4", 60, 0.001, (small,))).usable_gb
        == 21.6
    )


def test_a_resident_class_with_lora_endpoints_says_switching_costs_a_load() -> None:
    """Pinned models never reload, but LoRA patches do: on the H200 every switch of Qwen-Image's
    Lightning LoRA logged a full 19.5 GB load (~15 s). The plan no longer implies otherwise."""
    z_image = next(a for a in APPS if a.name == "ryla-z-image")
    plan = plan_class(z_image.name, z_image.models, z_image.classes[0])
    assert plan.verdict == "fits"
    (said,) = [n for n in plan.notes if "LoRAs" in n]
    assert said.startswith("/z-image-lora applies LoRAs")
    plain = endpoint("/plain", ("checkpoints/m.safetensors",))
    fixed = endpoint("/fixed", ("checkpoints/m.safetensors", "loras/style.safetensors"))
    models = (model("checkpoints/m.safetensors", 5.0), model("loras/style.safetensors", 0.2))
    both = plan_class("app", models, ClassModel("ComfyUI", "L40S", 60, 0.001, (plain, fixed)))
    assert [n for n in both.notes if "LoRAs" in n] == [
        "/fixed applies LoRAs: a request whose LoRAs differ from the previous one's loads the "
        "model again with other patches (ComfyUI logs a full load; ~15 s per switch for "
        "Qwen-Image's 19.5 GB on an H200)"
    ]
    alone = plan_class("app", models[:1], ClassModel("ComfyUI", "L40S", 60, 0.001, (plain,)))
    assert not [n for n in alone.notes if "LoRAs" in n]


def test_a_private_endpoint_counts_its_own_copy_of_a_shared_model() -> None:
    """private_models keeps the model a graph changes in place apart: while both are cached,
    two copies of the file are in memory, and the plan counts both (and pins only the shared)."""
    name = "diffusion_models/flux.safetensors"
    shared = endpoint("/pulid", (name,))
    private = dataclasses.replace(
        endpoint("/ip", (name,)), private_nodes=("1",), private_files=(name,)
    )
    models = (model(name, 20.0),)
    fits = plan_class("app", models, ClassModel("ComfyUI", "L40S", 60, 0.001, (shared, private)))
    assert (fits.verdict, fits.total_gb, fits.pinned) == ("fits", 40.0, ("flux.safetensors",))
    assert f"{name} is loaded twice (a copy for /ip): private_models" in fits.notes
    alone = plan_class("app", models, ClassModel("ComfyUI", "L40S", 60, 0.001, (private,)))
    assert alone.total_gb == 20.0  # no other endpoint loads it: one copy
    big = (model(name, 24.0),)
    over = plan_class("app", big, ClassModel("ComfyUI", "L40S", 60, 0.001, (shared, private)))
    assert over.verdict == "does-not-fit"  # 48 GB of copies > 43.2 usable


def test_the_ip_adapter_endpoint_loads_flux_apart_from_pulid() -> None:
    """x-flux's ApplyFluxIPAdapter replaced the cached Flux's blocks with its own (no attn_mask):
    on the real ComfyUI 0.3.66, every Flux request after it that shared the model failed."""
    instantid = next(a for a in APPS if a.name == "ryla-instantid")
    by_path = {ep.path: ep for cls in instantid.classes for ep in cls.endpoints}
    ip, pulid = by_path["/flux-ipadapter-faceid"], by_path["/flux-pulid"]
    flux = "diffusion_models/flux1-dev.safetensors"
    assert flux in ip.model_names and flux in pulid.model_names  # the same file, so shared
    assert ip.private_files == (flux,) and ip.private_nodes
    assert not pulid.private_nodes


def test_app_arguments_override_the_plans_flags() -> None:
    eps = (endpoint("/a", ()), endpoint("/b", ()))
    plan = plan_class("app", (), ClassModel("ComfyUI", "L40S", 60, 0.001, eps))
    assert launch_args(plan, ()) == ("--highvram", "--cache-lru", "32")
    assert launch_args(plan, ("--cache-lru", "8", "--fast")) == (
        "--highvram",
        "--cache-lru",
        "8",
        "--fast",
    )


def test_generated_modules_launch_comfyui_with_the_planned_flags(tmp_path: Path) -> None:
    for app in APPS:
        module = import_generated(REPO / "generated" / f"{app.module}.py")
        for cls in app.classes:
            planned = launch_args(plan_class(app.name, app.models, cls), tuple(app.comfy_args))
            args = getattr(module, cls.args_constant)
            assert args == planned
            server = ComfyServer(module.MODELS, str(tmp_path), extra_args=args, comfy_dir=tmp_path)
            assert (
                server.command[-len(args) :] == list(args)
                if args
                else server.command[-1] == "--disable-auto-launch"
            )
    flux = next(a for a in APPS if a.name == "ryla-flux")
    assert plan_class(flux.name, flux.models, flux.classes[0]).verdict == "does-not-fit"


def enter_hooks(cls: modal.Cls) -> dict[str, int]:
    hooks = {}
    for name, partial in cls._get_partial_functions().items():
        flags = synchronizer._translate_in(partial).flags
        if flags & (
            _PartialFunctionFlags.ENTER_PRE_SNAPSHOT | _PartialFunctionFlags.ENTER_POST_SNAPSHOT
        ):
            hooks[name] = flags
    return hooks


def test_snapshot_apps_have_pre_and_post_snapshot_hooks() -> None:
    snapshot_apps = [a for a in APPS if a.memory_snapshot]
    assert snapshot_apps and len(snapshot_apps) < len(APPS)
    for app in APPS:
        module = import_generated(REPO / "generated" / f"{app.module}.py")
        for cls in app.classes:
            hooks = enter_hooks(getattr(module, cls.name))
            if app.memory_snapshot:
                assert hooks["start"] & _PartialFunctionFlags.ENTER_PRE_SNAPSHOT
                assert hooks["restore"] & _PartialFunctionFlags.ENTER_POST_SNAPSHOT
            else:
                assert set(hooks) == {"start"}
                assert hooks["start"] & _PartialFunctionFlags.ENTER_POST_SNAPSHOT


def test_modal_refuses_snapshot_hooks_without_enable_memory_snapshot() -> None:
    """Why importing the generated module proves `enable_memory_snapshot=True` is set."""
    app = modal.App("probe")
    with pytest.raises(modal.exception.InvalidError, match="enable_memory_snapshot"):

        @app.cls()
        class Probe:
            @modal.enter(snap=True)
            def start(self) -> None: ...


def test_default_warmup_is_the_first_example_at_its_real_size_with_one_step() -> None:
    flux = next(e for a in APPS for e in a.endpoints if e.path == "/flux")
    assert flux.warmup == {**flux.examples[0], "steps": 1}
    assert "width" not in flux.warmup  # the request's default size, as real traffic sends
    invert = next(e for a in APPS for e in a.endpoints if e.path == "/invert")
    assert invert.warmup == invert.examples[0]


# --- warm-up against the stand-in ---------------------------------------------------------------

DEMO = import_generated(REPO / "generated" / "ryla_demo.py")


class CountingComfy(RemoteComfy):
    """A RemoteComfy whose client records when each run finished."""

    def __init__(self, url: str, base_dir: Path) -> None:
        super().__init__(url, base_dir)
        self.finished: list[float] = []
        run = self.client.run

        async def counted(*args, **kwargs):
            result = await run(*args, **kwargs)
            self.finished.append(asyncio.get_running_loop().time())
            return result

        self.client.run = counted  # type: ignore[method-assign]


async def test_warmup_prompts_run_before_ready_turns_200(slow_standin) -> None:
    comfy = CountingComfy(slow_standin.url, slow_standin.base_dir)
    warmup = Warmup()
    app = create_app(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS, warmup)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client,
    ):
        first = await client.get("/ready")
        assert first.status_code == 503 and first.json()["error"] == "warming up"
        while (ready := await client.get("/ready")).status_code != 200:
            assert ready.json()["error"] == "warming up", ready.json()
            await asyncio.sleep(0.05)
        turned_ready = asyncio.get_running_loop().time()
    assert len(comfy.finished) == sum(1 for e in DEMO.ENDPOINTS if e.warmup is not None) == 4
    assert max(comfy.finished) <= turned_ready
    assert warmup.state == "ok" and all(r["ok"] for r in warmup.results.values())
    await comfy.client.aclose()


async def test_failing_warmup_keeps_ready_at_503_with_the_reason(standin, tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text(json.dumps({
        "1": {"class_type": "LoadImage", "inputs": {"image": "missing.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }))  # fmt: skip
    broken = Endpoint(path="/broken", request_model=DEMO.InvertRequest, workflow="broken.json",
                      params=(), outputs=("2",), timeout=10, warmup={})  # fmt: skip
    comfy = RemoteComfy(standin.url, standin.base_dir)
    warmup = Warmup()
    app = create_app(DEMO.SETTINGS, [broken], comfy, tmp_path, warmup)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client,
    ):
        for _ in range(200):
            if warmup.state in ("ok", "failed"):
                break
            await asyncio.sleep(0.02)
        ready = await client.get("/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["error"] == "warm-up failed"
    reason = body["details"]["endpoints"]["/broken"]["reason"]
    assert "LoadImage" in reason and "missing.png" in reason
    await comfy.client.aclose()
