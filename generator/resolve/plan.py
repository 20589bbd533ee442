"""Model residency: do an app class's models fit its GPU, and how should ComfyUI be launched?

Decided from declared model sizes (spec ``size_gb``) and the GPU's memory. ComfyUI runs a
prompt on one device, so for ``GPU:N`` only one device's memory counts (and the plan says the
other N-1 sit idle). A tenth of the memory is kept free for activations, the CUDA context and
the VAE decode, or an endpoint's declared ``activation_gb`` when larger (video decoding needs
more: measured by ``ryla-gen smoke``); models fit when their total is at most the rest.

How models that fit stay loaded (measured on an H200 with ComfyUI 0.8.0): ComfyUI keeps a model
only while its loader node's output is in the output cache. ``--cache-lru N`` alone only
postpones eviction (about three entries per request: an endpoint unused for ~N/3 requests
reloads); ``--cache-classic`` reloads on every switch; ``--cache-ram`` never evicts until the
free RAM that psutil reads from ``/proc/meminfo`` drops below its headroom, which inside a
container can be the host's RAM, not the container's limit, so the cache (every request's
images and latents) grows unbounded, and when it does evict it drops idle models first. So the
plan pins: ``--highvram`` (weights stay on the GPU), ``--cache-lru N`` bounding every other node
output, and ryla-gen's helper node keeping the outputs of nodes that load the pinned files
(``runtime/snapshot_node/residency.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .arch import LOADER_FILE_INPUTS
from .gpus import parse_gpu
from .model import AppModel, ClassModel, EndpointModel, ModelFileModel

HEADROOM = 0.10
OUTPUT_CACHE = 32  # node outputs kept besides the pinned models (text encodings, images)
KEEP_LOADED = ("--highvram", "--cache-lru", str(OUTPUT_CACHE))
HOST_BASE_GB = 8.0  # Python, torch, ComfyUI, CUDA host side, cached outputs, request files


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
    pinned: tuple[str, ...] = ()  # model file names kept loaded (when they fit)
    host_gb: float | None = None  # container memory to reserve (Modal ``memory=``)

    @property
    def total_gb(self) -> float:
        return sum(size or 0.0 for _, size in self.models)

    @property
    def memory_mb(self) -> int | None:
        """Modal's ``memory=`` request in MiB, or None when sizes are unknown."""
        return None if self.host_gb is None else int(-(-self.host_gb * 1024 // 256) * 256)


def plan_class(app_name: str, models_: tuple[ModelFileModel, ...], cls: ClassModel) -> ClassPlan:
    gpu = parse_gpu(cls.gpu)
    vram = float(gpu.type.vram_gb)
    usable, kept_for = usable_gb(vram, cls)
    sizes = {f"{m.folder}/{m.filename}": m.size_gb for m in models_}
    names = sorted({name for ep in cls.endpoints for name in ep.model_names})
    copies = private_copies(cls)
    models = tuple((name, sizes.get(name)) for name in names)
    models += tuple((f"{name} ({why})", sizes.get(name)) for name, why in copies)
    notes: list[str] = []
    if kept_for:
        notes.append(kept_for)
    if gpu.count > 1:
        notes.append(
            f"ComfyUI runs each prompt on one device: {gpu.count - 1} of {gpu.count} GPUs idle"
        )
    for name, why in copies:
        notes.append(f"{name} is loaded twice ({why}): private_models")
    unknown = [name for name, size in models if size is None]
    total = sum(size or 0.0 for _, size in models)
    pinned: tuple[str, ...] = ()
    host_gb = None
    if unknown and total <= usable:
        verdict, flags = "unknown", ()
        notes.append("declare size_gb for " + ", ".join(unknown) + " to decide residency")
    elif total <= usable:
        verdict, flags = "fits", KEEP_LOADED
        pinned = tuple(sorted({name.split("/", 1)[1] for name in names}))
        host_gb = HOST_BASE_GB + max(size or 0.0 for _, size in models) if models else None
        if pinned:
            notes.append(
                "models pinned by ryla-gen's helper node: no reload under any mix of requests"
            )
        patching = [ep.path for ep in cls.endpoints if applies_lora(ep)]
        if patching:
            verb = "applies" if len(patching) == 1 else "apply"
            notes.append(
                f"{', '.join(patching)} {verb} LoRAs: a request whose LoRAs differ from the "
                "previous one's loads the model again with other patches (ComfyUI logs a full "
                "load; ~15 s per switch for Qwen-Image's 19.5 GB on an H200)"
            )
    else:
        verdict, flags = "does-not-fit", ()
        host_gb = HOST_BASE_GB + total  # ComfyUI offloads what the GPU cannot hold to RAM
        notes.append(
            f"{total:.1f} GB of models > {usable:.1f} GB usable: endpoints "
            + ", ".join(ep.path for ep in cls.endpoints)
            + " reload weights when called alternately; split them across apps or use a larger GPU"
        )
    return ClassPlan(
        app_name,
        cls.name,
        cls.gpu,
        vram,
        usable,
        models,
        tuple(flags),
        verdict,
        tuple(notes),
        pinned,
        None if host_gb is None else round(host_gb, 3),
    )


def private_copies(cls: ClassModel) -> list[tuple[str, str]]:
    """Files loaded more than once because ``private_models`` endpoints load a copy of their
    own (ComfyUI caches each apart, so all copies may be in memory): one entry per extra copy."""
    copies = []
    for name in sorted({n for ep in cls.endpoints for n in ep.private_files}):
        users = [ep for ep in cls.endpoints if name in ep.model_names]
        private = [ep for ep in users if name in ep.private_files]
        shared = len(private) < len(users)  # the endpoints that share one copy
        for ep in private[0 if shared else 1 :]:
            copies.append((name, f"a copy for {ep.path}"))
    return copies


def applies_lora(ep: EndpointModel) -> bool:
    """Whether an endpoint patches a model with LoRAs: a declared file in ``loras/``, or a
    parameter naming one (a loader's ``lora_name``, a training-linked LoRA)."""
    if any(name.startswith("loras/") for name in ep.model_names):
        return True
    return any(
        (p.volume_file or "").startswith("loras/")
        or any(LOADER_FILE_INPUTS.get(i) == "loras" for _, i in p.targets)
        for p in ep.params
    )


def usable_gb(vram: float, cls: ClassModel) -> tuple[float, str | None]:
    """GPU memory the models may take: the rest after a tenth of the GPU, or after the largest
    ``activation_gb`` an endpoint declares when that is more (video decoding held 17 GB beyond
    SVD's declared models on an H200: a tenth of a 24 GB GPU would not cover it); with the
    reason when an endpoint's figure decided."""
    needs = [(ep.activation_gb, ep.path) for ep in cls.endpoints if ep.activation_gb]
    largest = max(needs, default=(0.0, ""))
    if largest[0] <= vram * HEADROOM:
        return round(vram * (1 - HEADROOM), 3), None
    return round(vram - largest[0], 3), (
        f"{largest[0]:g} GB kept free for {largest[1]}'s run beyond its models (activation_gb)"
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
