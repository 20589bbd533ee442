"""What a smoke run of an app needs: which files to synthesise, which endpoints can run.

Each model an endpoint declares gets its architecture (``resolve/arch.py``); the character
LoRAs its examples load (``volume_file`` parameters) take the LoRA architecture of the
endpoint's base model. An endpoint runs when every file it needs has an architecture that
``synth.py`` can build and every custom-node pack it names is installed (a checkout in the
``--custom-nodes`` folder, ``packs.py``); otherwise it is *not covered*, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..resolve.arch import LOADER_FILE_INPUTS, LORA_OF_BASE, base_arch, infer_arch
from ..resolve.model import AppModel, EndpointModel
from .packs import PackFinding, endpoint_packs
from .synth import ARCHES

LORA_GB = 0.2  # a synthetic character LoRA (rank 16) weighs less


@dataclass(frozen=True)
class SyntheticFile:
    """One file of the scratch models folder: ``folder/filename`` of architecture ``arch``."""

    name: str  # folder/filename
    arch: str
    size_gb: float = 0.0  # the spec's size_gb (what the synthetic file about weighs)

    def job(self, models_dir: str) -> dict[str, Any]:
        return {"arch": self.arch, "path": f"{models_dir}/{self.name}"}


@dataclass
class EndpointTarget:
    path: str
    endpoint: EndpointModel
    files: list[SyntheticFile] = field(default_factory=list)
    not_covered: list[str] = field(default_factory=list)  # reasons; empty: it can run
    packs: list[PackFinding] = field(default_factory=list)  # custom-node packs it needs

    @property
    def covered(self) -> bool:
        return not self.not_covered


def example_files(endpoint: EndpointModel) -> list[str]:
    """Model files (``folder/name``) the endpoint's examples and warm-up load by parameter:
    a ``volume_file`` (training-linked LoRAs), or a value bound to a loader's file input
    (``lora_name``, ``ckpt_name``, …), formatted as the runtime formats it."""
    names: list[str] = []
    requests = [*endpoint.examples, *([endpoint.warmup] if endpoint.warmup else [])]
    for param in endpoint.params:
        folders = {LOADER_FILE_INPUTS[i] for _, i in param.targets if i in LOADER_FILE_INPUTS}
        if not param.volume_file and not folders:
            continue
        for values in requests:
            if values.get(param.name) is None:
                continue
            if param.volume_file:
                name = _formatted(param.volume_file, values)
            else:
                value = _formatted(param.format, values) if param.format else values[param.name]
                name = f"{sorted(folders)[0]}/{value}"
            if name not in names:
                names.append(name)
    return names


def _formatted(template: str, values: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), template)


def plan_endpoint(
    app: AppModel, endpoint: EndpointModel, packs_dir: Path | None = None
) -> EndpointTarget:
    target = EndpointTarget(endpoint.path, endpoint)
    if endpoint.client_workflow_max_nodes:
        target.not_covered.append("the client sends the workflow: no examples to run")
        return target
    if not endpoint.examples:
        target.not_covered.append("the spec gives no examples")
    models = {f"{m.folder}/{m.filename}": m for m in app.models}
    archs: list[str] = []
    for name in endpoint.model_names:
        finding = infer_arch(models[name])
        if finding.arch is None:
            target.not_covered.append(f"{name}: unknown architecture (declare arch:)")
            continue
        archs.append(finding.arch)
        if finding.arch not in ARCHES:
            target.not_covered.append(f"{name}: no synthetic builder for {finding.arch} yet")
        else:
            target.files.append(SyntheticFile(name, finding.arch, models[name].size_gb or 0.0))
    base = base_arch(archs)
    for name in example_files(endpoint):
        if name in models:
            continue  # a declared model, planned above
        if not name.startswith("loras/"):
            target.not_covered.append(
                f"{name}: an example loads it, the spec declares no such model"
            )
            continue
        lora = LORA_OF_BASE.get(base or "")
        if lora is None:
            target.not_covered.append(f"{name}: no base model whose LoRA layout is known")
        elif lora not in ARCHES:
            target.not_covered.append(f"{name}: no synthetic builder for {lora} yet")
        else:
            target.files.append(SyntheticFile(name, lora, LORA_GB))
    target.packs = endpoint_packs(app, endpoint.custom_node_names, packs_dir)
    missing = [p.label for p in target.packs if p.path is None]
    if missing:
        where = f"in {packs_dir}" if packs_dir else "(no --custom-nodes folder given)"
        target.not_covered.append(f"custom nodes not installed {where}: " + ", ".join(missing))
    return target


def plan_app(
    app: AppModel, only: Collection[str] | None = None, packs_dir: Path | None = None
) -> list[EndpointTarget]:
    """Every endpoint of the app (or only those whose paths ``only`` names); packs from
    ``packs_dir``."""
    paths = {only} if isinstance(only, str) else only  # one path: not its substrings
    endpoints = [e for e in app.endpoints if paths is None or e.path in paths]
    return [plan_endpoint(app, e, packs_dir) for e in endpoints]


def class_packs(targets: list[EndpointTarget]) -> list[PackFinding]:
    """The installed packs the targets need, each once (what one ComfyUI start exposes)."""
    found: dict[str, PackFinding] = {}
    for target in targets:
        for pack in target.packs:
            if pack.path is not None:
                found.setdefault(pack.name, pack)
    return list(found.values())


def builds(targets: list[EndpointTarget]) -> tuple[list[SyntheticFile], dict[str, str]]:
    """Files to build (one per architecture and file type) and the others linked to them
    (name -> built). The type counts: ComfyUI picks a file's reader by its extension
    (safetensors or a pickled ``.pth``), so a link must name a file of its own type."""
    first: dict[tuple[str, str], str] = {}
    built: list[SyntheticFile] = []
    links: dict[str, str] = {}
    for target in targets:
        if not target.covered:
            continue
        for f in target.files:
            if f.name in first.values() or f.name in links:
                continue
            kind = (f.arch, PurePosixPath(f.name).suffix.lower())
            if kind in first:
                links[f.name] = first[kind]
            else:
                first[kind] = f.name
                built.append(f)
    return built, links


def disk_groups(
    targets: list[EndpointTarget], budget_gb: float | None
) -> list[list[EndpointTarget]]:
    """Consecutive runs of targets whose files together fit ``budget_gb`` of disk.

    One architecture is built once and linked for other names (``builds``), so a group weighs
    the sizes of its distinct architectures. A target whose own files exceed the budget gets a
    group of its own (the build then reports the disk error). ``None``: one group.
    """
    if budget_gb is None:
        return [targets] if targets else []
    groups: list[list[EndpointTarget]] = []
    current: list[EndpointTarget] = []
    for target in targets:
        if current and group_gb([*current, target]) > budget_gb:
            groups.append(current)
            current = []
        current.append(target)
    if current:
        groups.append(current)
    return groups


def group_gb(targets: list[EndpointTarget]) -> float:
    built, _ = builds(targets)
    return sum(f.size_gb for f in built)
