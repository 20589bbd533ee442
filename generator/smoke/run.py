"""``ryla-gen smoke``: run every endpoint's examples on a real ComfyUI with synthetic weights.

For each app class: synthesise the model files its covered endpoints need (``synth.py`` in
ComfyUI's Python), start ComfyUI around them (``runtime/backends.ComfyServer``, the generated
module's launch flags, ``--base-directory`` the scratch folder) and serve the generated app
(``runtime/server.create_app``, in process). Per endpoint: models unloaded (``POST /free``),
the first example (first latency: model load included), the other examples, the first again
(warm latency); each output checked (``checks.py``); device memory sampled from
``/system_stats`` meanwhile. Results go to the store after every endpoint.

ComfyUI's ``custom_nodes`` is the scratch folder's: for each class it holds links to exactly
the custom-node packs (``--custom-nodes DIR``, ``packs.py``) its covered endpoints need.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from pydantic import ValidationError

from ..resolve.model import AppModel, ClassModel
from ..runtime.apply import resolve_values
from ..runtime.backends import ComfyServer, RemoteComfy, node_catalog
from ..runtime.comfy_process import comfy_launch_command
from ..runtime.config import Endpoint, field_keys
from ..runtime.media import decode_base64, is_url
from ..runtime.server import create_app
from .checks import check_response
from .packs import PackFinding
from .store import ResultStore
from .targets import EndpointTarget, SyntheticFile, builds, class_packs, disk_groups, plan_app

SYNTH = Path(__file__).with_name("synth.py")
GB = 1024**3
VRAM_MODES = ("--gpu-only", "--highvram", "--normalvram", "--lowvram", "--novram")


@dataclass
class SmokeOptions:
    comfy_dir: Path | None
    comfy_url: str | None
    models_dir: Path | None
    scratch: Path
    python: str
    port: int
    commit: str
    force: bool = False
    clean: bool = False  # remove the app's synthetic files after its run (disk space)
    only: frozenset[str] | None = None  # these endpoint paths of the app (None: all)
    device: str = "cuda"
    start_timeout: float = 600.0
    max_steps: int | None = None  # lower every example's steps to this (time budget)
    max_model_gb: float | None = None  # disk for synthetic files per round (default: free space)
    custom_nodes: Path | None = None  # folder of custom-node pack checkouts
    at_defaults: bool = False  # one run of the first example's required fields only
    after_others: str = "packs"  # who runs before each endpoint's check: packs | all | none
    tiny: bool = False  # diffusion models of families with a tiny size built at it (CPU runs)
    overrides: tuple[tuple[str, Any], ...] = ()  # (field, value) set in every example (--set)
    node_overrides: tuple[tuple[str, str, Any], ...] = ()  # (node id or title, input, value)

    @property
    def models_root(self) -> Path:
        """Where the synthetic files are: ``--models-dir``, else the scratch folder's."""
        return self.models_dir or self.scratch / "models"


class SmokeError(Exception):
    pass


Echo = Callable[[str], None]


def runtime_endpoints(module: ModuleType) -> dict[str, tuple[Endpoint, Any]]:
    """path -> (runtime Endpoint, its class's AppSettings), from the generated module."""
    found: dict[str, tuple[Endpoint, Any]] = {}
    for name, value in vars(module).items():
        if name.endswith("_ENDPOINTS") and name != "ENDPOINTS" and isinstance(value, tuple):
            settings = getattr(module, name[: -len("_ENDPOINTS")] + "_SETTINGS")
            for endpoint in value:
                found[endpoint.path] = (endpoint, settings)
    return found


async def smoke_app(
    app: AppModel, module: ModuleType, options: SmokeOptions, store: ResultStore, echo: Echo
) -> list[dict[str, Any]]:
    """Measure the app's endpoints not yet measured at this commit; every row of the app."""
    targets = plan_app(app, options.only, options.custom_nodes)
    rows: list[dict[str, Any]] = []
    pending: list[EndpointTarget] = []
    for target in targets:
        known = store.get(app.name, target.path, options.commit)
        if not target.covered:
            rows.append(_not_covered(app.name, target, options.commit, store))
        elif known is not None and not options.force and known.get("status") != "not-covered":
            echo(f"{app.name} {target.path}: measured at {options.commit} already, skipped")
            rows.append(_row(app.name, target.path, known))
        else:
            pending.append(target)
    if not pending:
        return rows
    _check_overrides(pending, module, options)  # before any file is built or ComfyUI started
    models_dir = options.models_root
    if options.comfy_dir is not None:
        remove_partial_files(models_dir, echo)
    budget = _disk_budget(options, models_dir, pending)
    built: dict[str, Any] = {}  # file name -> build record, of the files present now
    try:  # --clean holds when ComfyUI fails to start or the run is cut short too
        for cls in app.classes:
            in_class = [t for t in pending if any(e.path == t.path for e in cls.endpoints)]
            rows += await _smoke_class(
                app, cls, in_class, module, options, store, echo, built, budget
            )
    finally:
        if options.clean:
            _remove(built, models_dir)
    return rows


async def _smoke_class(
    app: AppModel,
    cls: ClassModel,
    in_class: list[EndpointTarget],
    module: ModuleType,
    options: SmokeOptions,
    store: ResultStore,
    echo: Echo,
    built: dict[str, Any],
    budget: float | None,
) -> list[dict[str, Any]]:
    """One class's pending endpoints, in disk rounds; ``built`` follows the files present."""
    runtime = runtime_endpoints(module)
    models_dir = options.models_root
    rows: list[dict[str, Any]] = []
    groups = disk_groups(in_class, budget)
    if len(groups) > 1:
        echo(
            f"class {cls.name}: {len(groups)} rounds to stay within {budget:.0f} GB of disk: "
            + " | ".join(", ".join(t.path for t in g) for g in groups)
        )
    for group in groups:
        if budget is not None:  # make room: what this round does not use goes first
            keep = {f.name for t in group for f in t.files}
            keep |= {f.name for f in builds(group)[0]}
            _remove({n: r for n, r in built.items() if n not in keep}, models_dir)
            for name in [n for n in built if n not in keep]:
                del built[name]
        made = _synthesise(group, options, echo)
        built.update(made)
        for target in [t for t in group if not t.covered]:  # a synthetic build failed
            rows.append(_not_covered(app.name, target, options.commit, store))
        runnable = [t for t in group if t.covered]
        if not runnable:
            continue
        packs = class_packs(runnable)
        async with _comfy(app.name, cls, options, echo, packs) as (comfy, started_s):
            log = options.scratch / f"comfyui-{app.name}-{cls.name}.log"
            ran: list[Ran] = []
            for target in runnable:
                endpoint, settings = runtime[target.path]
                workflows, changed = _node_overridden(module.WORKFLOWS, endpoint, options)
                app_ = create_app(settings, [endpoint], comfy, workflows)
                unloaded = await _unloaded_nodes(comfy, module.WORKFLOWS, endpoint, log)
                if unloaded:  # a pack that did not import: every request would be refused
                    echo(f"  {target.path}: {unloaded}")
                    result = {"status": "failed", "error": unloaded, "runs": []}
                else:
                    result = await _measure(target, endpoint, app_, comfy, echo, options)
                if changed:
                    result["node_overrides"] = changed
                result["comfy_start_s"] = started_s
                result["declared_gb"] = round(sum(f.size_gb for f in target.files), 2)
                result["synth"] = {f.name: made.get(f.name) for f in target.files}
                if target.packs:
                    result["packs"] = [p.record() for p in target.packs]
                store.put(app.name, target.path, options.commit, result)
                rows.append(_row(app.name, target.path, result))
                ran.append(Ran(target, endpoint, app_, result, options))
            if not options.at_defaults and options.after_others != "none":
                only_packs = options.after_others == "packs"
                for done in await _after_others(ran, comfy, echo, only_packs):
                    store.put(app.name, done.target.path, options.commit, done.result)
                    rows = [r for r in rows if r["path"] != done.target.path]
                    rows.append(_row(app.name, done.target.path, done.result))
    return rows


@dataclass
class Ran:
    """An endpoint measured in this ComfyUI: its app and its result (updated by later checks)."""

    target: EndpointTarget
    endpoint: Endpoint
    app: Any
    result: dict[str, Any]
    options: SmokeOptions | None = None

    @property
    def example(self) -> dict[str, Any]:
        """The request sent again: ``_measure``'s warm one."""
        return _reseeded(self.endpoint, _sent_examples(self.target, self.endpoint, self.options)[0])


async def _after_others(
    ran: list[Ran], comfy: Any, echo: Echo, only_packs: bool = False
) -> list[Ran]:
    """Does each endpoint still work, and give the same picture, right after another endpoint
    of the class that loads one of its files ran? ``_measure`` starts every endpoint from a
    freed ComfyUI, but a container serves them in any order, and ComfyUI hands consecutive
    prompts the same cached model object: a pack that changes it in place breaks its
    neighbours (x-flux's IP-Adapter swaps Flux's blocks for its own, which take no
    ``attn_mask``; every other Flux graph then failed). Endpoints with custom-node packs go
    first as the one before (``only_packs``: only they do; core nodes clone what they
    patch). A picture is compared with two runs of the endpoint from a freed ComfyUI: equal
    ones make it deterministic here, so a different picture after the other endpoint is a
    finding; else only a failure is. Returns the endpoints whose result grew."""
    ok = [r for r in ran if r.result.get("runs") and r.result["runs"][0].get("ok")]
    pairs = [
        (before, after)
        for before in sorted(ran, key=lambda r: not r.target.packs)  # packs first: likelier
        for after in ok
        if before is not after
        and (before.target.packs or not only_packs)
        and _shares_files(before.target, after.target)
    ]
    if not pairs:
        return []
    url = _comfy_url(comfy)
    clean: dict[str, dict[str, Any]] = {}
    changed: dict[str, Ran] = {}
    for before, after in pairs:
        await _freed(url)
        await _run_in(before, echo)
        run = await _run_in(after, echo)
        if run["ok"] and after.target.path not in clean:  # what to compare a picture with
            await _freed(url)
            first, again = await _run_in(after, echo), await _run_in(after, echo)
            clean[after.target.path] = {
                "digest": first.get("digest") if first["ok"] and again["ok"] else None,
                "deterministic": first["ok"] and first.get("digest") == again.get("digest"),
            }
        verdict = _after_verdict(run, clean.get(after.target.path))
        record = {"after": before.target.path, "verdict": verdict, **run}
        after.result.setdefault("after_others", []).append(record)
        said = verdict if run["ok"] else f"{verdict}: {run['error']}"
        echo(f"  {after.target.path} after {before.target.path}: {said}")
        if verdict in ("fails", "changed") and after.result["status"] == "executed":
            after.result["status"] = "breaks-after-other"
            after.result["error"] = f"after {before.target.path}: {said}"
        changed[after.target.path] = after
    return list(changed.values())


def _after_verdict(run: dict[str, Any], own: dict[str, Any] | None) -> str:
    """``same``, ``fails``, ``changed`` (a different picture where the endpoint alone is
    deterministic) or ``ok`` (a picture, not comparable: the endpoint alone varies)."""
    if not run["ok"]:
        return "fails"
    if own is None or not own["deterministic"]:
        return "ok"
    return "same" if run.get("digest") == own["digest"] else "changed"


def _shares_files(a: EndpointTarget, b: EndpointTarget) -> bool:
    return bool({f.name for f in a.files} & {f.name for f in b.files})


async def _run_in(r: Ran, echo: Echo) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=r.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://smoke", timeout=r.endpoint.timeout + 60
    ) as client:
        return await _one(client, r.endpoint, r.example)


def _comfy_url(comfy: Any) -> str:
    url = comfy.client.base_url if hasattr(comfy.client, "base_url") else None
    return str(url or getattr(comfy, "url", "")).rstrip("/")


async def _freed(url: str) -> float:
    """Unload every model and drop ComfyUI's cached outputs; the seconds until memory settled."""
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        with contextlib.suppress(httpx.HTTPError):
            await http.post(f"{url}/free", json={"unload_models": True, "free_memory": True})
        return await _settled(http, url)


def _node_overridden(
    workflows: Any, endpoint: Endpoint, options: SmokeOptions
) -> tuple[Any, dict[str, Any]]:
    """The workflows folder to run the endpoint from: with ``--set-node`` changes that apply to
    its graph, a scratch copy of it (``{"NODE.INPUT": value}`` says which); else the module's."""
    if not options.node_overrides:
        return workflows, {}
    graph = json.loads((Path(workflows) / endpoint.workflow).read_text())
    changed: dict[str, Any] = {}
    for node, name, value in options.node_overrides:
        for node_id, entry in graph.items():
            title = (entry.get("_meta") or {}).get("title")
            if node in (node_id, title) and name in entry.get("inputs", {}):
                entry["inputs"][name] = value
                changed[f"{node_id}.{name}"] = value
    if not changed:
        return workflows, {}
    folder = options.scratch / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / endpoint.workflow).write_text(json.dumps(graph, indent=1))
    return folder, changed


async def _unloaded_nodes(comfy: Any, workflows: Any, endpoint: Endpoint, log: Path) -> str:
    """The endpoint's node classes this ComfyUI lacks, with why each pack failed to import
    (ComfyUI's log: "Cannot import PATH module for custom nodes: REASON"); "" when none."""
    graph = json.loads((Path(workflows) / endpoint.workflow).read_text())
    known = await node_catalog(comfy)  # read once per ComfyUI start
    missing = sorted({n["class_type"] for n in graph.values() if n["class_type"] not in known})
    if not missing:
        return ""
    said = f"node classes missing from ComfyUI: {', '.join(missing)}"
    reasons = []
    if log.is_file():
        for text in log.read_text(errors="replace").splitlines():
            found = _IMPORT_FAILED.search(text)
            if found:
                reasons.append(f"{Path(found['path']).name}: {found['reason'].strip()}")
    if reasons:
        said += "; custom nodes that did not import: " + "; ".join(dict.fromkeys(reasons))
    return said


_IMPORT_FAILED = re.compile(r"Cannot import (?P<path>\S+) module for custom nodes: (?P<reason>.*)")


def _disk_budget(
    options: SmokeOptions, models_dir: Path, targets: list[EndpointTarget]
) -> float | None:
    """GB of synthetic files one round may hold: ``--max-model-gb``, else the disk's free
    space plus the files of these targets already built (reused), less 4 GB for ComfyUI."""
    if options.max_model_gb is not None:
        return options.max_model_gb
    if options.comfy_dir is None:  # a running ComfyUI: files are not built here
        return None
    existing = models_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    names = {f.name for t in targets for f in t.files}
    held = sum(
        (models_dir / n).stat().st_size
        for n in names
        if (models_dir / n).is_file() and not (models_dir / n).is_symlink()
    )
    return (shutil.disk_usage(existing).free + held) / GB - 4


def remove_partial_files(models_dir: Path, echo: Echo) -> None:
    """A build cut short (time limit, signal) leaves safetensors' temporary ``.tmp*`` file:
    tens of GB that no round would count or reuse."""
    if not models_dir.is_dir():
        return
    for path in sorted(models_dir.glob("*/.tmp*")):
        if path.is_file():
            size = path.stat().st_size
            path.unlink()
            echo(f"removed {path.name} in {path.parent.name}/ ({size / GB:.1f} GB, a cut build)")


def _remove(built: dict[str, Any], models_dir: Path) -> None:
    for name in sorted(built):
        for path in (models_dir / name, _tiny_marker(models_dir / name)):
            with contextlib.suppress(OSError):
                path.unlink()


def _tiny_marker(path: Path) -> Path:
    """Beside a file a ``--tiny`` run built (JSON: the size it was shrunk to, or ``{}``): only
    tiny runs reuse it, and a full-size run never takes a shrunk model."""
    return path.with_name(path.name + ".tiny")


def _reusable(path: Path, tiny: bool) -> bool:
    return path.exists() and _tiny_marker(path).exists() == tiny


def _not_covered(
    app: str, target: EndpointTarget, commit: str, store: ResultStore
) -> dict[str, Any]:
    result = {"status": "not-covered", "reasons": target.not_covered}
    store.put(app, target.path, commit, result)
    return _row(app, target.path, result)


def _row(app: str, path: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"app": app, "path": path, **result}


# --- synthetic files


def _synthesise(targets: list[EndpointTarget], options: SmokeOptions, echo: Echo) -> dict:
    """Build the files the targets need (present ones reused); name -> build record."""
    models_dir = options.models_root
    to_build, links = builds(targets)
    records: dict[str, Any] = {}
    missing = [f for f in to_build if not _reusable(models_dir / f.name, options.tiny)]
    for f in missing:  # a link whose file an earlier round removed
        if (models_dir / f.name).is_symlink():
            (models_dir / f.name).unlink()
    for f in to_build:
        if f not in missing:
            records[f.name] = {"arch": f.arch, "reused": True}
            if options.tiny and (size := json.loads(_tiny_marker(models_dir / f.name).read_text())):
                records[f.name]["tiny"] = size
    if missing:
        if options.comfy_dir is None:
            raise SmokeError("synthetic files need --comfy-dir (ComfyUI's classes build them)")
        records.update(_run_synth(missing, models_dir, options, echo))
        for f in missing:  # a tiny run marks all it built: the shrunk ones say their size
            marker = _tiny_marker(models_dir / f.name)
            if options.tiny and "error" not in records[f.name]:
                marker.write_text(json.dumps(records[f.name].get("tiny") or {}))
            elif marker.exists():
                marker.unlink()
    for name, source in links.items():
        link = models_dir / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(models_dir / source)
        records[name] = {"arch": records.get(source, {}).get("arch"), "same_as": source}
    failed = [n for n, r in records.items() if "error" in r]
    for target in targets:
        broken = [f.name for f in target.files if f.name in failed]
        if broken:
            target.not_covered.append("synthetic build failed: " + ", ".join(broken))
    return records


def _run_synth(
    files: Sequence[SyntheticFile], models_dir: Path, options: SmokeOptions, echo: Echo
) -> dict[str, Any]:
    jobs = [{**f.job(str(models_dir)), **({"tiny": True} if options.tiny else {})} for f in files]
    jobs_file = options.scratch / "synth-jobs.json"
    jobs_file.parent.mkdir(parents=True, exist_ok=True)
    jobs_file.write_text(json.dumps(jobs, indent=1))
    echo(f"synthesising {len(files)} file(s): " + ", ".join(f"{f.name} ({f.arch})" for f in files))
    command = [options.python, str(SYNTH), "--comfy-dir", str(options.comfy_dir)]
    if options.custom_nodes is not None:  # builders that use a pack's own model classes
        command += ["--custom-nodes", str(options.custom_nodes)]
    command += ["--device", options.device, str(jobs_file)]
    log = options.scratch / "synth.log"
    with log.open("ab") as err:
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, check=False)
    records: dict[str, Any] = {}
    prefix = f"{models_dir}/"
    for line in proc.stdout.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            name = str(record.get("path", "")).removeprefix(prefix)
            records[name] = record
            said = record.get("error") or f"{record['seconds']} s"
            echo(f"  {name}: {said}" + (f" (tiny: {record['tiny']})" if "tiny" in record else ""))
    for f in files:
        records.setdefault(f.name, {"error": f"builder exited {proc.returncode}; see {log}"})
    return records


# --- ComfyUI


PACK_COPY_MARK = ".ryla-smoke-copy"  # in each pack folder expose_packs made


def expose_packs(custom_nodes: Path, packs: Sequence[PackFinding]) -> None:
    """Make ``custom_nodes`` hold copies of exactly ``packs``, as the image clones them there:
    a pack that resolves files relative to its own real path (ReActor's facexlib weights in
    ``<pack>/../../models``) must find ComfyUI's folders, which a link to the checkout would
    escape. Copies and links from an earlier class, and the former link to the whole folder
    of ComfyUI's tree, are removed; nothing else is."""
    if custom_nodes.is_symlink():
        custom_nodes.unlink()
    custom_nodes.mkdir(parents=True, exist_ok=True)
    for entry in custom_nodes.iterdir():
        if entry.is_symlink():
            entry.unlink()
        elif (entry / PACK_COPY_MARK).exists():
            shutil.rmtree(entry)
    for pack in packs:
        assert pack.path is not None
        copy = custom_nodes / pack.name
        if copy.exists():
            raise SmokeError(f"{copy} is in the way of pack {pack.label}: remove it")
        shutil.copytree(pack.path.resolve(), copy, symlinks=True, ignore=_not_copied)
        (copy / PACK_COPY_MARK).write_text(f"a copy of {pack.path.resolve()}\n")


def _not_copied(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n in (".git", "__pycache__")]


def _link_models(models: Path, models_dir: Path | None) -> None:
    """ComfyUI reads models from ``--base-directory``'s ``models``: there, a link to
    ``--models-dir`` when that is another folder."""
    if models_dir is None or models.resolve() == models_dir.resolve():
        return
    if models.is_symlink():
        models.unlink()
    if models.exists():
        raise SmokeError(f"{models} is a folder: remove it, or leave out --models-dir")
    models_dir.mkdir(parents=True, exist_ok=True)
    models.parent.mkdir(parents=True, exist_ok=True)
    models.symlink_to(models_dir)


@contextlib.asynccontextmanager
async def _comfy(  # noqa: ANN202
    app: str, cls: ClassModel, options: SmokeOptions, echo: Echo, packs: Sequence[PackFinding]
):
    if options.comfy_url:
        comfy = RemoteComfy(options.comfy_url, models_dir=options.models_dir)
        try:
            yield comfy, None
        finally:
            await comfy.client.aclose()
        return
    assert options.comfy_dir is not None
    if _port_taken(options.port):  # else the readiness check would find that other server
        raise SmokeError(f"port {options.port} is taken (a ComfyUI left running?); use --port")
    base = options.scratch
    (base / "frontend").mkdir(parents=True, exist_ok=True)
    (base / "frontend" / "index.html").write_text("<!doctype html><title>smoke</title>\n")
    expose_packs(base / "custom_nodes", packs)
    _link_models(base / "models", options.models_dir)
    for pack in packs:
        echo(f"custom nodes {pack.label}: {pack.note()}")
    args = list(cls.comfy_args)
    if options.device == "cpu":  # ComfyUI refuses --cpu with any VRAM mode
        args = [a for a in args if a not in VRAM_MODES] + ["--cpu"]
    args += ["--base-directory", str(base)]
    args += ["--front-end-root", str(base / "frontend")]
    command = comfy_launch_command(options.comfy_dir, options.port, args, python=options.python)
    server = ComfyServer(
        (),
        str(options.models_root),
        comfy_dir=options.comfy_dir,
        port=options.port,
        command=command,
        start_timeout=options.start_timeout,
        log_path=base / f"comfyui-{app}-{cls.name}.log",
    )
    server.base_dir = base  # input/output/temp live there: request files get removed
    echo(f"starting ComfyUI for class {cls.name}: {' '.join(args)}")
    started = time.perf_counter()
    try:
        await server.start()
    except Exception as exc:
        raise SmokeError(
            f"ComfyUI did not start ({exc}); log: {server.process.log_tail()}"
        ) from exc
    started_s = round(time.perf_counter() - started, 2)
    echo(f"ComfyUI ready in {started_s} s")
    try:
        yield server, started_s
    finally:
        await server.stop()


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class _MemorySampler:
    """Peak device memory while requests run, from ComfyUI's ``/system_stats``."""

    def __init__(self, url: str, interval: float = 0.2):
        self.url, self.interval = url, interval
        self.peak_used = 0
        self.peak_torch = 0
        self.device_type: str | None = None
        self.device_name: str | None = None
        self.comfyui_version: str | None = None
        self.total = 0
        self.last_free = 0

    async def sample(self, http: httpx.AsyncClient) -> None:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError):
            stats = (await http.get(f"{self.url}/system_stats")).json()
            self.comfyui_version = stats.get("system", {}).get("comfyui_version")
            device = stats["devices"][0]
            self.device_type, self.device_name = device.get("type"), device.get("name")
            self.total = int(device["vram_total"])
            self.last_free = int(device["vram_free"])
            self.peak_used = max(self.peak_used, self.total - self.last_free)
            self.peak_torch = max(self.peak_torch, int(device.get("torch_vram_total", 0)))

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            while True:
                await self.sample(http)
                await asyncio.sleep(self.interval)

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_type": self.device_type,
            "device": self.device_name,
            "comfyui_version": self.comfyui_version,
            "peak_used_gb": round(self.peak_used / GB, 2),
            "peak_torch_reserved_gb": round(self.peak_torch / GB, 2),
            "total_gb": round(self.total / GB, 2),
        }


async def _measure(
    target: EndpointTarget,
    endpoint: Endpoint,
    app: Any,
    comfy: Any,
    echo: Echo,
    options: SmokeOptions | None = None,
) -> dict[str, Any]:
    at_defaults = options.at_defaults if options else False
    url = _comfy_url(comfy)
    unload_s = await _freed(url)
    sampler = _MemorySampler(url)
    sampling = asyncio.ensure_future(sampler.run())
    applied: dict[str, Any] = {}
    examples = _sent_examples(target, endpoint, options, applied)
    runs: list[dict[str, Any]] = []
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://smoke", timeout=endpoint.timeout + 60
        ) as client:
            warm_example = _reseeded(endpoint, examples[0])
            for i, example in enumerate(examples if at_defaults else [*examples, warm_example]):
                run = await _one(client, endpoint, example)
                run["example"] = i if i < len(examples) else 0
                runs.append(run)
                echo(f"  {target.path} example {run['example']}: {_run_text(run)}")
                if not run["ok"] and i == 0:
                    break  # the graph is broken: the rest would fail the same way
            if len(runs) > len(examples) and runs[-1]["ok"]:
                runs += await _input_checks(client, endpoint, warm_example, runs[-1], echo)
                runs += await _refusal_checks(client, endpoint, warm_example, echo)
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    served = [r for r in runs if "refused" not in r]  # a refusal check's "ok" is its verdict
    answered = [r for r in served if "varied" not in r]
    first, warm = answered[0], (answered[-1] if len(answered) > len(examples) else None)
    ok = all(r["ok"] for r in served)
    unrefused = sorted(r["refused"] for r in runs if "refused" in r and not r["ok"])
    problems = sorted({p for r in runs for p in r.get("problems", [])})
    ignored = sorted(r["varied"] for r in runs if r.get("ignored"))
    status = "failed" if not ok else "output-mismatch" if problems else "executed"
    if ok and not ignored and unrefused:
        status = "accepts-unusable"
    result: dict[str, Any] = {
        "status": "ignores-input" if ok and ignored else status,
        "first_s": first["seconds"],
        "warm_s": warm["seconds"] if warm else None,
        "load_s": round(first["seconds"] - warm["seconds"], 2) if warm and ok else None,
        "memory": sampler.as_dict(),
        "unload_wait_s": unload_s,
        "runs": runs,
    }
    capped = [e["steps"] for e in examples if STEPS_CAPPED in e]
    if capped:
        requested = [e[STEPS_CAPPED] for e in examples if STEPS_CAPPED in e]
        result["steps"] = {"ran": max(capped), "requested": max(requested)}
    if applied:
        result["overrides"] = applied
    if at_defaults:
        result["request"] = {"defaults": True, "sent": sorted(examples[0].keys() - {STEPS_CAPPED})}
    if not ok:
        result["error"] = next(r["error"] for r in runs if not r["ok"])
    if problems:
        result["problems"] = problems
    if ignored:
        result["ignored_inputs"] = ignored
    if unrefused:
        result["unrefused_inputs"] = unrefused
    return result


def _sent_examples(
    target: EndpointTarget,
    endpoint: Endpoint,
    options: SmokeOptions | None,
    applied: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The examples as a run sends them: only the first one's required fields with
    ``--at-defaults``, ``--set`` values (named in ``applied``), steps capped by ``--max-steps``."""
    max_steps, at_defaults = (options.max_steps, options.at_defaults) if options else (None, False)
    overrides = options.overrides if options else ()
    examples = list(target.endpoint.examples)
    if at_defaults:  # what a bare call costs (memory at the default frames and size)
        examples = [_required_only(endpoint, examples[0])]
    applied = {} if applied is None else applied
    examples = [_overridden(endpoint, e, overrides, applied) for e in examples]
    return [_capped(endpoint, e, max_steps) for e in examples]


async def _refusal_checks(
    client: httpx.AsyncClient, endpoint: Endpoint, example: dict[str, Any], echo: Echo
) -> list[dict[str, Any]]:
    """Does a declared refusal fire? For each image parameter with ``node_errors`` or
    ``node_warnings`` (a face the graph needs), the request again with a one-colour image of
    the same size: no detector finds a face there (the synthetic ones by construction), so the
    answer must be a 422 naming the parameter. A 200 means the declared phrase never matched
    what the pack raised or logged: the client would get an output without the face."""
    runs = []
    for param in endpoint.params:
        if param.kind != "image" or not (param.node_errors or param.node_warnings):
            continue
        flat = _flat(example.get(param.name))
        if flat is None:
            continue
        run = await _one(client, endpoint, {**example, param.name: flat})
        run["refused"] = param.name
        said = run.get("error", "")
        run["ok"] = run["status_code"] == 422 and param.name in said
        run["said"] = said if run["status_code"] != 200 else "200: an output, not refused"
        runs.append(run)
        verdict = "refused" if run["ok"] else "NOT REFUSED"
        echo(f"  {param.name} one-colour: {verdict} ({run['said'][:160]})")
    return runs


def _flat(value: Any) -> str | None:
    """A one-colour PNG data URL of the image's size (None for a URL or a list)."""
    from PIL import Image

    if not isinstance(value, str) or is_url(value):
        return None
    with Image.open(io.BytesIO(decode_base64(value, max_bytes=2**40))) as image:
        size = image.size
    out = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


async def _input_checks(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    example: dict[str, Any],
    answered: dict[str, Any],
    echo: Echo,
) -> list[dict[str, Any]]:
    """Does the output depend on each image input? The answered request again (same seeds)
    with that image inverted: the same pictures (``content_digest``) mean the graph ignores the
    image (a start image never wired to the sampler, say), which random weights show as well as
    real ones."""
    runs = []
    for param in endpoint.params:
        if param.kind not in ("image", "mask") or example.get(param.name) is None:
            continue
        value = example[param.name]
        other = [_inverted(v) for v in value] if isinstance(value, list) else _inverted(value)
        if other is None or (isinstance(other, list) and None in other):
            continue  # a URL: not fetched here
        run = await _one(client, endpoint, {**example, param.name: other})
        run["varied"] = param.name
        run["ignored"] = bool(run["ok"]) and run.get("digest") == answered.get("digest")
        if run["ignored"] and STEPS_CAPPED in example:  # too few steps may not use the model
            run["uncapped"] = await _same_uncapped(client, endpoint, example, param.name, other)
            run["ignored"] = run["uncapped"]["same"]
        runs.append(run)
        said = "the output did not change: the graph ignores it" if run["ignored"] else "ok"
        if "uncapped" in run and not run["ignored"]:
            said = f"ok at {run['uncapped']['steps']} steps (the same output at {example['steps']})"
        if not run["ok"]:
            said = f"FAILED: {run['error']}"
        echo(f"  {param.name} inverted: {said}")
    return runs


async def _same_uncapped(
    client: httpx.AsyncClient, endpoint: Endpoint, example: dict[str, Any], name: str, other: Any
) -> dict[str, Any]:
    """The input check again at the steps the example asked for: with ``--max-steps`` a
    sampler may take a single step per model, and UniPC's first step from sigma 1 does not use
    the model's output at all (a two-expert Wan 2.2 graph at 2 steps ignored its start image
    so, and used it at 4), so equal pictures there prove nothing."""
    full = {k: v for k, v in example.items() if k != STEPS_CAPPED}
    full["steps"] = example[STEPS_CAPPED]
    first = await _one(client, endpoint, full)
    second = await _one(client, endpoint, {**full, name: other})
    said: dict[str, Any] = {
        "steps": full["steps"],
        "seconds": [first["seconds"], second["seconds"]],
    }
    failed = next((r["error"] for r in (first, second) if not r["ok"]), None)
    if failed is not None:  # no verdict at the full steps: the capped one stands
        return {**said, "same": True, "error": failed}
    return {**said, "same": first.get("digest") == second.get("digest")}


def content_digest(body: bytes) -> str:
    """A digest of what an output shows, not of its file: ComfyUI's savers embed the prompt
    (request file names included) in the file, so equal pictures come in unequal bytes. Frames
    of images and animations through Pillow, of videos through PyAV when installed; the bytes
    otherwise."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    digest = hashlib.sha256()
    try:
        with Image.open(io.BytesIO(body)) as image:
            for frame in ImageSequence.Iterator(image):
                digest.update(frame.convert("RGBA").tobytes())
        return digest.hexdigest()[:16]
    except (UnidentifiedImageError, OSError, ValueError):
        pass
    try:
        import av  # ComfyUI's own video dependency

        with av.open(io.BytesIO(body)) as container:
            for frame in container.decode(video=0):
                digest.update(frame.to_ndarray(format="rgb24").tobytes())
        return digest.hexdigest()[:16]
    except Exception:  # noqa: BLE001 - no PyAV, or not a video it reads
        return hashlib.sha256(body).hexdigest()[:16]


def _inverted(value: str) -> str | None:
    """The image of a data URL or bare base64 value with its colours inverted, as a PNG data
    URL (same size and mode); None for a URL."""
    from PIL import Image, ImageOps

    if is_url(value):
        return None
    data = decode_base64(value, max_bytes=2**40)
    with Image.open(io.BytesIO(data)) as image:
        rgba = image.convert("RGBA")
    red, green, blue, alpha = rgba.split()
    inverted = ImageOps.invert(Image.merge("RGB", (red, green, blue)))
    out = io.BytesIO()
    Image.merge("RGBA", (*inverted.split(), alpha)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


async def _settled(http: httpx.AsyncClient, url: str, timeout: float = 180.0) -> float:
    """Wait until the previous endpoint's models left the GPU (``/free`` works in the
    background: moving tens of GB back to RAM takes seconds that are no part of this
    endpoint's first latency). Settled: device memory unchanged over three samples."""
    sampler = _MemorySampler(url)
    started = time.perf_counter()
    last: list[int] = []
    while time.perf_counter() - started < timeout:
        await sampler.sample(http)
        if sampler.device_type != "cuda":
            break
        last = [*last[-2:], sampler.total - sampler.last_free]
        if len(last) == 3 and max(last) - min(last) < 64 * 1024**2:
            break
        await asyncio.sleep(0.5)
    return round(time.perf_counter() - started, 2)


STEPS_CAPPED = "__steps_requested"  # marks an example whose steps --max-steps lowered


def _capped(endpoint: Endpoint, example: dict[str, Any], max_steps: int | None) -> dict[str, Any]:
    """The example with its ``steps`` (given or default) lowered to ``max_steps``: the graph
    executes the same nodes, in a fraction of the time (heavy video and 20B image models)."""
    if max_steps is None or "steps" not in endpoint.request_model.model_fields:
        return dict(example)
    steps = endpoint.request_model.model_validate(example).model_dump(by_alias=True)["steps"]
    if not isinstance(steps, int) or steps <= max_steps:
        return dict(example)
    return {**example, "steps": max_steps, STEPS_CAPPED: steps}


def _field_keys(endpoint: Endpoint) -> dict[str, set[str]]:
    """Each request field's name -> every key a client may send it under (name, aliases)."""
    return {
        name: field_keys(name, info) for name, info in endpoint.request_model.model_fields.items()
    }


def _overridden(
    endpoint: Endpoint,
    example: dict[str, Any],
    overrides: Sequence[tuple[str, Any]],
    applied: dict[str, Any],
) -> dict[str, Any]:
    """The example with each ``--set`` field the endpoint has set (under the key given, other
    keys of that field dropped); ``applied`` collects what was set."""
    fields = _field_keys(endpoint)
    out = dict(example)
    for key, value in overrides:
        same = next((keys for keys in fields.values() if key in keys), None)
        if same is None:
            continue  # another endpoint's field
        out = {k: v for k, v in out.items() if k not in same}
        out[key] = applied[key] = value
    return out


def _check_overrides(
    pending: Sequence[EndpointTarget], module: ModuleType, options: SmokeOptions
) -> None:
    """Every example, with the ``--set`` values, must be a request its endpoint accepts: a
    value outside a field's range is the caller's mistake, said before anything runs."""
    if not options.overrides:
        return
    runtime = runtime_endpoints(module)
    said = {key for key, _ in options.overrides}
    problems: list[str] = []
    for target in pending:
        endpoint = runtime[target.path][0]
        for example in target.endpoint.examples:
            tried = _overridden(endpoint, example, options.overrides, {})
            try:
                endpoint.request_model.model_validate(tried)
            except ValidationError as exc:
                for error in exc.errors():
                    field = ".".join(str(part) for part in error["loc"])
                    if field.split(".")[0] in said:
                        problems.append(
                            f"{target.path}: {field}={tried.get(field)!r}: {error['msg']}"
                        )
    if problems:
        raise SmokeError(
            "--set gives a value an endpoint refuses: " + "; ".join(sorted(set(problems)))
        )


def _required_only(endpoint: Endpoint, example: dict[str, Any]) -> dict[str, Any]:
    """The example with only the fields a client must send: every other parameter takes the
    spec's default, so the run shows what a bare call costs (a video's default frames)."""
    model_fields = endpoint.request_model.model_fields
    required = [
        keys for name, keys in _field_keys(endpoint).items() if model_fields[name].is_required()
    ]
    return {k: v for k, v in example.items() if any(k in keys for keys in required)}


def _reseeded(endpoint: Endpoint, example: dict[str, Any]) -> dict[str, Any]:
    """The warm run: the first example with other seeds, so ComfyUI's cache cannot answer it."""
    warm = dict(example)
    for param in endpoint.params:
        value = example.get(param.name)
        if param.kind == "seed" and (value is None or isinstance(value, int)):
            warm[param.name] = (value or 0) + 1
    return warm


async def _one(client: httpx.AsyncClient, endpoint: Endpoint, example: dict) -> dict[str, Any]:
    example = {k: v for k, v in example.items() if k != STEPS_CAPPED}
    request = endpoint.request_model.model_validate(example).model_dump(by_alias=True)
    request = resolve_values(endpoint, request)  # what the graph gets: `sets` (aspect_ratio) too
    started = time.perf_counter()
    response = await client.post(endpoint.path, json=example)
    seconds = round(time.perf_counter() - started, 3)
    run: dict[str, Any] = {"seconds": seconds, "status_code": response.status_code}
    if response.status_code != 200:
        run.update(ok=False, error=_error_text(response))
        return run
    outputs, problems = check_response(response.content, response.headers, request)
    run.update(ok=True, outputs=outputs, problems=problems)
    run["digest"] = content_digest(response.content)
    run["execution_s"] = _float(response.headers.get("x-execution-time-sec"))
    return run


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    if isinstance(body, dict):
        text = f"HTTP {response.status_code} {body.get('type', '')}: {body.get('error', '')}"
        details = body.get("details")
        if details:
            text += f" ({str(details)[:400]})"
        return text
    return f"HTTP {response.status_code}: {str(body)[:300]}"


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _run_text(run: dict[str, Any]) -> str:
    if run["ok"]:
        text = f"{run['seconds']} s, " + ", ".join(run.get("outputs", []))
        return text + "".join(f"; MISMATCH: {p}" for p in run.get("problems", []))
    return f"FAILED after {run['seconds']} s: {run['error']}"


def default_python(comfy_dir: Path | None) -> str:
    """ComfyUI's interpreter: its venv beside or inside the tree when there is one."""
    if comfy_dir is not None:
        for candidate in (comfy_dir / "venv", comfy_dir.parent / "venv", comfy_dir / ".venv"):
            python = candidate / "bin" / "python"
            if python.exists():
                return str(python)
    return sys.executable


def results_name(at_defaults: bool, tiny: bool) -> str:
    """The default results file: runs measured differently never share one."""
    if tiny:
        return "tiny-smoke-results.json"
    return "gpu-smoke-defaults.json" if at_defaults else "gpu-smoke-results.json"


def scratch_default() -> Path:
    return Path(os.environ.get("TMPDIR", "/tmp")) / "ryla-smoke"
