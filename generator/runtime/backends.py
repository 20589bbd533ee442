"""Where the ComfyUI a generated app talks to lives.

``ComfyServer``: ComfyUI as a subprocess of the Modal container (models linked in, memory
snapshot hand-over, restart). ``RemoteComfy``: any ComfyUI reached over HTTP
(``ryla-gen dev``, tests).
"""

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from ..comfy.catalog import Catalog
from .comfy_client import ComfyClient
from .config import ModelFile
from .errors import ComfyUnavailable, GpuUnavailable

log = logging.getLogger("ryla.runtime")
COMFY_DIR = Path("/root/comfy/ComfyUI")
FRESH_DIR = Path("/tmp/ryla_volume_fresh")
"""Files committed to the models volume after this container mounted it, read through Modal's
API (``Volume.reload`` fails while ComfyUI holds files of the volume open)."""
PIN_ENV = "RYLA_PIN_MODELS"  # read by the helper node: generator/runtime/snapshot_node


class RemoteComfy:
    """A ComfyUI reached over HTTP only (``ryla-gen dev``); files it writes are not ours to delete.

    ``base_dir``: when ComfyUI's input/output/temp folders are on this machine (tests, a local
    ComfyUI), pass its base directory so each request's files are removed after the response.
    """

    def __init__(
        self,
        url: str,
        base_dir: str | os.PathLike[str] | None = None,
        models_dir: str | os.PathLike[str] | None = None,
    ):
        self.client = ComfyClient(url)
        self.base_dir = Path(base_dir) if base_dir else None
        self.models_dir = str(models_dir) if models_dir else None
        self.catalog: Catalog | None = None  # the server's nodes, for client workflows

    @property
    def alive(self) -> bool:
        return True

    async def recover(self) -> None:
        """Nothing to restart: the ComfyUI is someone else's process."""

    async def reload_models(self, file: str) -> bool:
        """A local folder needs no reload: whether ``file`` (relative to it) is there."""
        return self.models_dir is not None and (Path(self.models_dir) / file).exists()


class ComfyServer:
    """ComfyUI running as a subprocess of the container, with the app's models linked in.

    ``snapshot``: start it for a CPU memory snapshot (no GPU attached yet; ryla-gen's helper
    node makes ComfyUI fall back to the CPU device), then :meth:`after_restore` hands it the GPU.
    ``pin_models``: file names of the models the residency plan says fit; the helper node keeps
    them loaded whatever mix of requests comes (``snapshot_node/residency.py``).
    """

    def __init__(
        self,
        models: Sequence[ModelFile],
        models_dir: str,
        *,
        extra_args: Sequence[str] = (),
        comfy_dir: str | os.PathLike[str] = COMFY_DIR,
        port: int = 8188,
        command: Sequence[str] | None = None,
        start_timeout: float = 600.0,
        log_path: str | os.PathLike[str] = "/tmp/comfyui.log",
        snapshot: bool = False,
        volume_folders: Sequence[str] = (),
        models_volume: Any = None,
        pin_models: Sequence[str] = (),
        fresh_dir: str | os.PathLike[str] = FRESH_DIR,
    ):
        from .comfy_process import ComfyProcess, comfy_launch_command

        self.models, self.models_dir = list(models), models_dir
        self.catalog: Catalog | None = None  # the server's nodes, for client workflows
        self.base_dir = Path(comfy_dir)
        self.url = f"http://127.0.0.1:{port}"
        self.models_volume = models_volume
        self.volume_folders = tuple(volume_folders)
        self.fresh_dir = Path(fresh_dir)
        if self.volume_folders:  # ComfyUI lists these volume folders live (job outputs)
            extra_args = [*extra_args, "--extra-model-paths-config", str(self._paths_file)]
        self.command = list(command or comfy_launch_command(comfy_dir, port, extra_args))
        self.snapshot = snapshot
        self.pin_models = tuple(pin_models)
        # NVML-based availability checks keep torch from caching "no GPU" before the snapshot.
        env = {"RYLA_SNAPSHOT": "1", "PYTORCH_NVML_BASED_CUDA_CHECK": "1"} if snapshot else {}
        if self.pin_models:
            env[PIN_ENV] = os.pathsep.join(self.pin_models)
        self.process = ComfyProcess(
            self.command, cwd=comfy_dir, url=self.url, log_path=log_path, env=env
        )
        self.client = ComfyClient(self.url)
        self.start_timeout = start_timeout
        self._restart_lock: asyncio.Lock | None = None

    @property
    def alive(self) -> bool:
        return self.process.alive

    async def start(self) -> None:
        """Link models (and the snapshot helper), launch ComfyUI, wait until it answers."""
        from .models import link_models

        if self.models:
            link_models(self.models, self.models_dir, self.base_dir / "models")
        if self.volume_folders:
            lines = []
            for name, base in (("models_volume", self.models_dir), ("fresh", self.fresh_dir)):
                lines += [f"ryla_{name}:", f"  base_path: {base}"]
                lines += [f"  {folder}: {folder}" for folder in self.volume_folders]
            self._paths_file.write_text("\n".join(lines) + "\n")
        if self.snapshot or self.pin_models:
            helper = self.base_dir / "custom_nodes" / "ryla_snapshot_helper"
            helper.parent.mkdir(parents=True, exist_ok=True)
            if not helper.exists() and not helper.is_symlink():
                helper.symlink_to(Path(__file__).parent / "snapshot_node")
        self.process.start()
        try:
            await self.process.wait_ready(self.start_timeout)
        except BaseException:  # not ready in time, cancelled, interrupted: leave no process
            await self.process.stop()
            raise

    @property
    def _paths_file(self) -> Path:
        return Path("/tmp/ryla_extra_model_paths.yaml")

    async def reload_models(self, file: str) -> bool:
        """Whether ``file`` (relative to the models volume) exists now, committed since start.

        First ``Volume.reload`` (it fails while ComfyUI holds volume files open, which it
        usually does); then Modal's file API, which reads the volume's latest committed state
        whatever this container mounted: the file is copied into ``fresh_dir``, a second base
        folder ComfyUI lists for the same model folders, so it appears without a restart.
        """
        if (Path(self.models_dir) / file).exists() or (self.fresh_dir / file).exists():
            return True
        if self.models_volume is None:
            return False
        try:
            await self.models_volume.reload.aio()
        except Exception as exc:  # noqa: BLE001 - a busy volume keeps its current view
            log.info("models volume reload refused (%s); reading the file through Modal's API", exc)
        else:
            if (Path(self.models_dir) / file).exists():
                return True
        return await self._fetch_committed(file)

    async def _fetch_committed(self, file: str) -> bool:
        """Copy ``file`` from the volume's committed state into ``fresh_dir``; whether it was."""
        folder, _, name = file.rpartition("/")
        try:
            listed = await self.models_volume.listdir.aio(folder or "/")
            if not any(Path(entry.path).name == name for entry in listed):
                return False
            target = self.fresh_dir / file
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            with partial.open("wb") as out:
                async for chunk in self.models_volume.read_file.aio(file):
                    out.write(chunk)
            partial.replace(target)
        except Exception as exc:  # noqa: BLE001 - not there, or Modal unreachable: a 404
            log.warning("reading %s from the models volume failed: %r", file, exc)
            return False
        log.info("%s was committed after this container started: copied to %s", file, target)
        return True

    async def after_restore(self) -> None:
        """After a memory-snapshot restore: prove CUDA works, then move ComfyUI to the GPU.

        Raises :class:`GpuUnavailable` with the reason when no usable GPU is attached (serving
        on the CPU would be silently slow), :class:`ComfyUnavailable` when ComfyUI is gone.
        """
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=60, trust_env=False) as http:
                response = await http.post("/ryla/snapshot/gpu")
        except httpx.TransportError as exc:
            raise ComfyUnavailable(f"ComfyUI did not answer after the restore: {exc!r}") from exc
        if response.status_code == 404:
            raise GpuUnavailable(
                "ryla-gen's helper node is not loaded in ComfyUI (custom_nodes/"
                "ryla_snapshot_helper): cannot hand it the GPU after the restore"
            )
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:500]}
        if response.status_code != 200:
            raise GpuUnavailable(f"CUDA is not usable after the restore: {body.get('error')}")
        log.info("ComfyUI after restore: %s", body)

    async def recover(self) -> None:
        """Restart ComfyUI after it died (once, however many requests noticed)."""
        self._restart_lock = self._restart_lock or asyncio.Lock()
        async with self._restart_lock:
            if self.process.alive and await self.client.ready():
                return
            log.warning("ComfyUI is down; restarting. Last log lines:\n%s", self.process.log_tail())
            await self.process.restart(self.start_timeout)

    async def stop(self) -> None:
        await self.process.stop()
        await self.client.aclose()


async def node_catalog(comfy: RemoteComfy | ComfyServer) -> Catalog:
    """The server's node classes, read once (``comfy.catalog``): they do not change while it
    runs. Assigned only once complete, so concurrent callers never see half of it."""
    if comfy.catalog is None:
        catalog = Catalog()
        catalog.merge(await comfy.client.object_info())
        comfy.catalog = catalog
    return comfy.catalog
