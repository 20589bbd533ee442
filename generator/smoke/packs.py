"""Custom-node packs a smoke run may use: checkouts in a folder named by ``--custom-nodes``.

A pack is the spec's custom node (``resolve.model.CustomNodeModel``); it counts as installed
when ``DIR/<directory>`` is a folder, ``directory`` being the name the generated image clones
it under (``custom_nodes/<directory>``: the repository's last path part, or the registry id).
When the folder is a git checkout its commit is read and compared with the spec's pin; a
checkout without ``.git`` (``git archive``, a copied tree) has an unknown commit, reported.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..resolve.model import AppModel, CustomNodeModel


@dataclass(frozen=True)
class PackFinding:
    """One pack an endpoint needs and what the folder holds for it."""

    pack: CustomNodeModel
    path: Path | None  # the checkout; None: not installed

    @property
    def name(self) -> str:
        return self.pack.directory

    @property
    def label(self) -> str:
        return f"{self.pack.directory} ({self.pack.key}@{self.pack.pin[:12]})"

    def commit(self) -> str | None:
        """The checkout's commit when it is a git checkout, else None (unknown)."""
        if self.path is None or not (self.path / ".git").exists():
            return None
        try:  # --git-dir: never the commit of a repository the folder merely sits in
            done = subprocess.run(
                ["git", "--git-dir", str(self.path / ".git"), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        commit = done.stdout.strip()
        return commit if done.returncode == 0 and commit else None

    def note(self) -> str:
        """How the checkout relates to the spec's pin, one phrase."""
        if self.path is None:
            return "not installed"
        if not self.pack.commit:
            return f"registry version {self.pack.version}: version of {self.path} not checked"
        commit = self.commit()
        if commit is None:
            return f"{self.path}: commit unknown (no .git), spec pins {self.pack.commit[:12]}"
        if commit != self.pack.commit:
            return f"{self.path} is at {commit[:12]}, the spec pins {self.pack.commit[:12]}"
        return f"{self.path} at the pinned commit"

    def record(self) -> dict[str, str | None]:
        return {
            "pack": self.pack.key,
            "pinned": self.pack.pin,
            "path": str(self.path) if self.path else None,
            "commit": self.commit(),
            "note": self.note(),
        }


def endpoint_packs(
    app: AppModel, custom_node_names: tuple[str, ...], folder: Path | None
) -> list[PackFinding]:
    """The packs an endpoint names (``key@pin``), each found in ``folder`` or not."""
    by_name = {f"{p.key}@{p.pin}": p for p in app.custom_nodes}
    found: list[PackFinding] = []
    for name in custom_node_names:
        pack = by_name[name]
        path = folder / pack.directory if folder is not None else None
        found.append(PackFinding(pack, path if path is not None and path.is_dir() else None))
    return found
