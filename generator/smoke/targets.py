"""What a smoke run of an app needs: which files to synthesise, which endpoints can run.

Each model an endpoint declares gets its architecture (``resolve/arch.py``); the character
LoRAs its examples load (``volume_file`` parameters) take the LoRA architecture of the
endpoint's base model. An endpoint runs when every file it needs has an architecture that
``synth.py`` can build and every custom-node pack it names is installed (a checkout in the
``--custom-nodes`` folder, ``packs.py``); otherwise it is *not covered*, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..resolve.arch import LORA_OF_BASE, base_arch, infer_arch
from ..resolve.model import AppModel, EndpointModel
from .packs import PackFinding, endpoint_packs
from .synth import ARCHES


@dataclass(frozen=True)
class SyntheticFile:
    """One file of the scratch models folder: ``folder/filename`` of architecture ``arch``."""

    name: str  # folder/filename
    arch: str

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
    """Volume files (``loras/...``) the endpoint's examples and warm-up name."""
    names: list[str] = []
    requests = [*endpoint.examples, *([endpoint.warmup] if endpoint.warmup else [])]
    for param in endpoint.params:
        if not param.volume_file:
            continue
        for values in requests:
            if values.get(param.name) is None:
                continue
            name = param.volume_file.replace("{" + param.name + "}", str(values[param.name]))
            if name not in names:
                names.append(name)
    return names


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
            target.files.append(SyntheticFile(name, finding.arch))
    loras = example_files(endpoint)
    base = base_arch(archs)
    for name in loras:
        lora = LORA_OF_BASE.get(base or "")
        if lora is None:
            target.not_covered.append(f"{name}: no base model whose LoRA layout is known")
        elif lora not in ARCHES:
            target.not_covered.append(f"{name}: no synthetic builder for {lora} yet")
        else:
            target.files.append(SyntheticFile(name, lora))
    target.packs = endpoint_packs(app, endpoint.custom_node_names, packs_dir)
    missing = [p.label for p in target.packs if p.path is None]
    if missing:
        where = f"in {packs_dir}" if packs_dir else "(no --custom-nodes folder given)"
        target.not_covered.append(f"custom nodes not installed {where}: " + ", ".join(missing))
    return target


def plan_app(
    app: AppModel, only: str | None = None, packs_dir: Path | None = None
) -> list[EndpointTarget]:
    """Every endpoint of the app (or only the one at path ``only``); packs from ``packs_dir``."""
    endpoints = [e for e in app.endpoints if only is None or e.path == only]
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
    """Files to build (one per architecture) and the others linked to them (name -> built)."""
    first: dict[str, str] = {}
    built: list[SyntheticFile] = []
    links: dict[str, str] = {}
    for target in targets:
        if not target.covered:
            continue
        for f in target.files:
            if f.name in first.values() or f.name in links:
                continue
            if f.arch in first:
                links[f.name] = first[f.arch]
            else:
                first[f.arch] = f.name
                built.append(f)
    return built, links
