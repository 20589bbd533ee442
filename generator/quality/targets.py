"""Which endpoints a bench run measures, and the URL each one answers on.

Deployed apps answer on the URL Modal forms from the workspace, app name and class label
(:meth:`generator.model.AppModel.url`); ``ryla-gen dev`` serves every endpoint of one app
under a single base URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..resolve.model import AppModel, ClassModel, EndpointModel

Selected = tuple[AppModel, ClassModel, EndpointModel]


class SelectionError(ValueError):
    """The command line selects nothing, or something a base URL cannot serve."""


@dataclass(frozen=True)
class BenchTarget:
    """One endpoint to measure: where it answers and what it costs per second."""

    app: str
    class_name: str
    path: str
    url: str
    gpu: str
    usd_per_second: float
    timeout: float
    scaledown_window: int
    examples: tuple[dict[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        """The target as the JSON report records it (examples are left out: they can be big)."""
        return {
            "app": self.app,
            "class": self.class_name,
            "path": self.path,
            "url": self.url,
            "gpu": self.gpu,
            "usd_per_second": self.usd_per_second,
            "timeout_s": self.timeout,
            "scaledown_window_s": self.scaledown_window,
            "examples": len(self.examples),
        }


def select_targets(
    apps: Sequence[AppModel],
    app_names: Sequence[str] = (),
    paths: Sequence[str] = (),
    *,
    workspace: str | None = None,
    base_url: str | None = None,
) -> list[BenchTarget]:
    """The endpoints named by ``--app``/``--endpoint`` (all of them when neither is given).

    Exactly one of ``workspace`` (deployed: Modal URLs) and ``base_url`` (one served app,
    e.g. ``ryla-gen dev``) must be given.
    """
    if (workspace is None) == (base_url is None):
        raise SelectionError("give exactly one of --workspace and --base-url")
    chosen = _choose(apps, app_names, paths)
    if base_url is not None and len({app.name for app, _, _ in chosen}) > 1:
        names = ", ".join(sorted({app.name for app, _, _ in chosen}))
        raise SelectionError(
            f"--base-url serves one app, but the selection spans {names}; add --app"
        )
    targets = []
    for app, cls, ep in chosen:
        root = base_url.rstrip("/") if base_url is not None else app.url(cls, workspace or "")
        targets.append(
            BenchTarget(
                app=app.name,
                class_name=cls.name,
                path=ep.path,
                url=root + ep.path,
                gpu=cls.gpu,
                usd_per_second=cls.usd_per_second,
                timeout=float(ep.timeout),
                scaledown_window=app.scaledown_window,
                examples=ep.examples,
            )
        )
    return targets


def _choose(
    apps: Sequence[AppModel], app_names: Sequence[str], paths: Sequence[str]
) -> list[Selected]:
    """(app, class, endpoint) triples selected by app names and endpoint paths, in spec order."""
    known_apps = {a.name for a in apps} | {a.module for a in apps}
    unknown = [n for n in app_names if n not in known_apps]
    if unknown:
        raise SelectionError(
            f"no app named {', '.join(unknown)}; apps: {', '.join(a.name for a in apps)}"
        )
    wanted_paths = {"/" + p.lstrip("/") for p in paths}
    all_paths = {ep.path for a in apps for ep in a.endpoints}
    missing = sorted(wanted_paths - all_paths)
    if missing:
        raise SelectionError(f"no endpoint {', '.join(missing)} in the specs")
    chosen: list[Selected] = []
    for app in apps:
        in_app = not app_names or app.name in app_names or app.module in app_names
        for cls in app.classes:
            for ep in cls.endpoints:
                if in_app and (not wanted_paths or ep.path in wanted_paths):
                    chosen.append((app, cls, ep))
    if not chosen:
        raise SelectionError("the selection matches no endpoint")
    return chosen
