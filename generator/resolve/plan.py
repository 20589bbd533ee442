"""Model residency: do an app class's models fit its GPU, and how should ComfyUI be launched?

Decided from declared model sizes (spec ``size_gb``) and the GPU's memory. ComfyUI runs a
prompt on one device, so for ``GPU:N`` only one device's memory counts (and the plan says the
other N-1 sit idle). A tenth of the memory is kept free for activations, the CUDA context and
the VAE decode; models fit when their total is at most the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from .gpus import parse_gpu
from .model import AppModel, ClassModel, ModelFileModel

HEADROOM = 0.10
KEEP_LOADED = ("--highvram",)  # keep weights on the GPU between prompts
KEEP_CACHED = ("--cache-lru", "64")  # keep several endpoints' node outputs and models


@dataclass(frozen=True)
class ClassPlan:
    app: str
    cls: str
    gpu: str
    vram_gb: float  # memory ComfyUI can use: one device
    usable_gb: float  # after headroom
    models: tuple[tuple[str, float | None], ...]  # (folder/filename, size or None)
    flags: tuple[str, ...]
    verdict: str  # fits | does-not-fit | unknown
    notes: tuple[str, ...]

    @property
    def total_gb(self) -> float:
        return sum(size or 0.0 for _, size in self.models)


def plan_class(app_name: str, models_: tuple[ModelFileModel, ...], cls: ClassModel) -> ClassPlan:
    gpu = parse_gpu(cls.gpu)
    vram = float(gpu.type.vram_gb)
    usable = round(vram * (1 - HEADROOM), 3)
    sizes = {f"{m.folder}/{m.filename}": m.size_gb for m in models_}
    names = sorted({name for ep in cls.endpoints for name in ep.model_names})
    models = tuple((name, sizes.get(name)) for name in names)
    notes: list[str] = []
    if gpu.count > 1:
        notes.append(
            f"ComfyUI runs each prompt on one device: {gpu.count - 1} of {gpu.count} GPUs idle"
        )
    unknown = [name for name, size in models if size is None]
    total = sum(size or 0.0 for _, size in models)
    if unknown and total <= usable:
        verdict, flags = "unknown", ()
        notes.append("declare size_gb for " + ", ".join(unknown) + " to decide residency")
    elif total <= usable:
        several = len(cls.endpoints) > 1
        verdict, flags = "fits", KEEP_LOADED + (KEEP_CACHED if several else ())
        if several:
            notes.append("all models stay loaded: switching endpoints costs no reload")
    else:
        verdict, flags = "does-not-fit", ()
        notes.append(
            f"{total:.1f} GB of models > {usable:.1f} GB usable: endpoints "
            + ", ".join(ep.path for ep in cls.endpoints)
            + " reload weights when called alternately; split them across apps or use a larger GPU"
        )
    return ClassPlan(
        app_name, cls.name, cls.gpu, vram, usable, models, tuple(flags), verdict, tuple(notes)
    )


def launch_args(plan: ClassPlan, overrides: tuple[str, ...]) -> tuple[str, ...]:
    """The plan's flags, minus any flag the app sets itself, then the app's own arguments."""
    own = {arg for arg in overrides if arg.startswith("--")}
    kept: list[str] = []
    skip_value = False
    for arg in plan.flags:
        if skip_value and not arg.startswith("--"):
            continue
        skip_value = arg in own
        if not skip_value:
            kept.append(arg)
    return (*kept, *overrides)


def plan_app(app: AppModel) -> list[ClassPlan]:
    return [plan_class(app.name, app.models, cls) for cls in app.classes]
