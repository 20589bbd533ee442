"""build keeps the OpenAPI documents and clients by a digest of their inputs: a cached build
writes exactly what a fresh one does, and any input that changes them changes the digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.api import outputs
from generator.render.files import RenderedFile, render_apps
from generator.resolve.project import Project, load_project

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo() -> tuple[list, list[RenderedFile]]:
    apps, _ = load_project(Project.at(ROOT, [ROOT / "specs" / "ryla-demo.yaml"]))
    return apps, render_apps(apps, ROOT)


def test_a_cached_build_writes_what_a_fresh_one_does(demo, tmp_path, monkeypatch) -> None:
    apps, modules = demo
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh = outputs.render_api(apps, modules, ROOT, ROOT / "generated")
    assert list((tmp_path / "ryla-gen" / "api").glob("*.json")), "nothing was cached"

    def no_render(*_args):
        raise AssertionError("a cached build rendered again")

    monkeypatch.setattr(outputs, "_render", no_render)
    cached = outputs.render_api(apps, modules, ROOT, ROOT / "generated")
    assert cached == fresh
    served = next(f for f in cached if f.path == Path("openapi/ryla_demo.json"))
    assert served.content == (ROOT / "generated" / "openapi" / "ryla_demo.json").read_text()


def test_the_digest_follows_every_input(demo, monkeypatch) -> None:
    apps, modules = demo
    monkeypatch.delenv("RYLA_GEN_NO_CACHE", raising=False)
    workflows = ROOT / "comfy_workflows"
    base = outputs._digest(apps, modules, workflows, ROOT)
    changed = [RenderedFile(m.path, m.content + "\n# changed\n") for m in modules]
    assert outputs._digest(apps, changed, workflows, ROOT) != base
    assert outputs._digest(apps[:0], modules, workflows, ROOT) != base
    monkeypatch.setattr(outputs, "_CODE_DIRS", (*outputs._CODE_DIRS, "quality"))
    assert outputs._digest(apps, modules, workflows, ROOT) != base
    monkeypatch.setenv("RYLA_GEN_NO_CACHE", "1")
    assert outputs._digest(apps, modules, workflows, ROOT) is None
