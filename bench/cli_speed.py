"""How long `ryla-gen validate` and `ryla-gen build --check` take as whole processes.

Prints, per command, the median wall time and the median CPU time (user + system, less
sensitive to other load on the machine) of several runs, next to baselines measured in the same
run: the bare interpreter (`python -c pass`), importing pydantic (the floor of any spec check)
and importing the CLI module. With ``--against DIR`` (another checkout of ryla-gen, e.g.
`git worktree add --detach /tmp/base <commit>`) the same figures for it, the runs of the two
checkouts interleaved so that both see the same load.

    .venv/bin/python bench/cli_speed.py [--runs 7] [--against /tmp/base]

Targets (issue 12): validate < 0.5 s, build < 1 s for the whole catalog (specs/).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "import pydantic": ["-c", "import pydantic"],
    "import generator.cli": ["-c", "import generator.cli"],
    "ryla-gen validate specs/": ["-m", "generator.cli", "validate", "specs/"],
    "ryla-gen build --check specs/": ["-m", "generator.cli", "build", "--check", "specs/"],
    "validate, self-check not cached": ["-m", "generator.cli", "validate", "specs/"],
}
NO_CACHE = {"validate, self-check not cached"}
"""Runs with RYLA_GEN_NO_CACHE=1: every app's module rendered, imported and served again."""


def python_of(checkout: Path) -> str:
    """The checkout's own interpreter when it has a .venv, else this one (``python -m`` runs the
    package found in the checkout: its current directory comes first on ``sys.path``)."""
    own = checkout / ".venv" / "bin" / "python"
    return str(own if own.exists() else Path(sys.executable))


def run_once(command: list[str], cwd: Path, *, cache: bool = True) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``command`` in ``cwd``."""
    env = {**os.environ, **({} if cache else {"RYLA_GEN_NO_CACHE": "1"})}
    before = os.times()
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - start
    after = os.times()
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {cwd}:\n{result.stderr.decode()[-2000:]}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    checkouts = {"this checkout": REPO}
    if args.against:
        checkouts[str(args.against)] = args.against.resolve()
    print(f"median of {args.runs} runs, seconds: wall / cpu (user+sys), whole process")
    print(f"{'':32}" + "".join(f"{name:>24}" for name in checkouts))
    for label, argv in COMMANDS.items():
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
        cache = label not in NO_CACHE
        for path in checkouts.values():  # one warm-up run each (file cache)
            run_once([python_of(path), *argv], path, cache=cache)
        for _ in range(args.runs):
            for name, path in checkouts.items():
                samples[name].append(run_once([python_of(path), *argv], path, cache=cache))
        cells = []
        for name in checkouts:
            wall = statistics.median(s[0] for s in samples[name])
            cpu = statistics.median(s[1] for s in samples[name])
            cells.append(f"{wall:.3f} / {cpu:.3f}")
        print(f"{label:32}" + "".join(f"{c:>24}" for c in cells))


if __name__ == "__main__":
    main()
