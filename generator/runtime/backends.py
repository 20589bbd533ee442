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

log = logging.getLogger("ryla.runtime")
COMFY_DIR = Path("/root/comfy/ComfyUI")


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

    async def reload_models(self) -> None:
        """A local folder needs no reload."""


class ComfyServer:
    """ComfyUI running as a subprocess of the container, with the app's models linked in.

    ``snapshot``: start it for a CPU memory snapshot (no GPU attached yet; ryla-gen's helper
    node makes ComfyUI fall back to the CPU device), then :meth:`after_restore` hands it the GPU.
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
    ):
        from .comfy_process import ComfyProcess, comfy_launch_command

        self.models, self.models_dir = list(models), models_dir
        self.catalog: Catalog | None = None  # the server's nodes, for client workflows
        self.base_dir = Path(comfy_dir)
        self.url = f"http://127.0.0.1:{port}"
        self.models_volume = models_volume
        self.volume_folders = tuple(volume_folders)
        if self.volume_folders:  # ComfyUI lists these volume folders live (job outputs)
            extra_args = [*extra_args, "--extra-model-paths-config", str(self._paths_file)]
        self.command = list(command or comfy_launch_command(comfy_dir, port, extra_args))
        self.snapshot = snapshot
        # NVML-based availability checks keep torch from caching "no GPU" before the snapshot.
        env = {"RYLA_SNAPSHOT": "1", "PYTORCH_NVML_BASED_CUDA_CHECK": "1"} if snapshot else {}
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
            lines = ["ryla_models_volume:", f"  base_path: {self.models_dir}"]
            lines += [f"  {folder}: {folder}" for folder in self.volume_folders]
            self._paths_file.write_text("\n".join(lines) + "\n")
        if self.snapshot:
            helper = self.base_dir / "custom_nodes" / "ryla_snapshot_helper"
            helper.parent.mkdir(parents=True, exist_ok=True)
            if not helper.exists():
                helper.symlink_to(Path(__file__).parent / "snapshot_node")
        self.process.start()
        await self.process.wait_ready(self.start_timeout)

    @property
    def _paths_file(self) -> Path:
        return Path("/tmp/ryla_extra_model_paths.yaml")

    async def reload_models(self) -> None:
        """See files committed to the models volume since this container started (new LoRAs)."""
        if self.models_volume is None:
            return
        try:
            await self.models_volume.reload.aio()
        except Exception as exc:  # noqa: BLE001 - a busy volume keeps its current view
            log.warning("models volume reload failed: %s", exc)

    async def after_restore(self) -> None:
        """After a memory-snapshot restore: move ComfyUI to the GPU now attached."""
        async with httpx.AsyncClient(base_url=self.url, timeout=60, trust_env=False) as http:
            response = await http.post("/ryla/snapshot/gpu")
        response.raise_for_status()
        log.info("ComfyUI after restore: %s", response.json())

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
