"""A plain (non-editable) install works outside the checkout: ``pip install .`` from a clean
clone into a fresh venv, then ``ryla-gen build specs/`` reproduces the committed generated/ and
docs/ byte for byte (templates ship in the wheel; nothing is read from the installed checkout).

Offline: the fresh venv sees this interpreter's installed dependencies through a ``.pth`` file
and pip builds with ``--no-build-isolation --no-index --no-deps`` (setuptools and wheel come from
the dev extras), so only ryla-gen itself is installed from the clone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{what} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(clone of HEAD, venv with ryla-gen installed from that clone as a wheel)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout of ryla-gen")
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
    except ImportError:
        pytest.skip("offline build needs setuptools and wheel: pip install -e '.[dev]'")
    tmp = tmp_path_factory.mktemp("packaging")
    clone, venv = tmp / "clone", tmp / "venv"
    head = _run(["git", "rev-parse", "HEAD"], REPO, "git rev-parse").strip()
    _run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(clone)], tmp, "git clone")
    _run(["git", "checkout", "--quiet", head], clone, "git checkout")
    _run([sys.executable, "-m", "venv", str(venv)], tmp, "venv")
    python = venv / "bin" / "python"
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        tmp,
        "venv paths",
    )
    (Path(site.strip()) / "ryla_gen_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    _run([*pip, "--no-index", str(clone)], tmp, "pip install .")
    return clone, venv


def test_wheel_install_builds_the_committed_outputs(installed: tuple[Path, Path]) -> None:
    clone, venv = installed
    where = _run(
        [str(venv / "bin" / "python"), "-P", "-c", "import generator; print(generator.__file__)"],
        clone.parent,
        "import generator",
    )
    assert str(venv) in where, f"generator imported from {where.strip()}, not from the wheel"
    package = Path(where.strip()).parent
    for folder in ("templates", "catalog"):  # every data folder build reads, as in the checkout
        shipped = {p.relative_to(package / folder) for p in (package / folder).rglob("*.*")}
        source = {p.relative_to(clone / folder) for p in (clone / folder).rglob("*.*")}
        assert source - {Path("README.md")} <= shipped, f"the wheel lacks {folder}/ files"

    # Without the checkout's own data folders, the build must use the wheel's copies.
    for folder in ("templates", "catalog"):
        shutil.rmtree(clone / folder)
    _run([str(venv / "bin" / "ryla-gen"), "build", "specs/"], clone, "ryla-gen build specs/")
    _run(["git", "checkout", "--quiet", "--", "templates", "catalog"], clone, "git checkout")
    status = _run(["git", "status", "--porcelain", "--untracked-files=all"], clone, "git status")
    changed = status.splitlines()
    assert changed == [], "the installed ryla-gen rendered other bytes:\n" + "\n".join(changed)
