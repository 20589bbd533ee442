"""Smoke results on disk: one JSON file, results keyed by endpoint and commit (resumable).

``{"version": 1, "results": {"<app> <path> @<commit>": {...}}}``. A run skips an endpoint whose
key is present (measured at this commit); ``--force`` measures again. The file is rewritten
atomically after every endpoint, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VERSION = 1


class StoreError(Exception):
    pass


def result_key(app: str, path: str, commit: str) -> str:
    return f"{app} {path} @{commit}"


class ResultStore:
    def __init__(self, path: Path):
        self.path = path
        self.results: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise StoreError(f"{path}: not a smoke results file ({exc})") from None
            if not isinstance(data, dict) or data.get("version") != VERSION:
                raise StoreError(f"{path}: not a version-{VERSION} smoke results file")
            results = data.get("results")
            if not isinstance(results, dict):
                raise StoreError(f"{path}: 'results' must be an object")
            self.results = results

    def get(self, app: str, path: str, commit: str) -> dict[str, Any] | None:
        return self.results.get(result_key(app, path, commit))

    def put(self, app: str, path: str, commit: str, result: dict[str, Any]) -> None:
        measured_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.results[result_key(app, path, commit)] = {**result, "measured_at": measured_at}
        self.save()

    def latest(self, commit_rank: Callable[[str], int] | None = None) -> list[dict[str, Any]]:
        """The newest result of every endpoint (rows with app, path and commit), in key order.

        Newest: by ``measured_at``; results from before it was recorded are older than any with
        it, and among themselves ordered by ``commit_rank`` (e.g. the commit's depth in git)."""
        rank = commit_rank or (lambda commit: 0)

        def age(row: dict[str, Any]) -> tuple[bool, str, int]:
            stamp = row.get("measured_at")
            return (stamp is not None, stamp or "", rank(row["commit"]))

        newest: dict[tuple[str, str], dict[str, Any]] = {}
        for key, result in self.results.items():
            endpoint, _, commit = key.rpartition(" @")
            app, _, path = endpoint.partition(" ")
            row = {"app": app, "path": path, "commit": commit, **result}
            known = newest.get((app, path))
            if known is None or age(row) >= age(known):
                newest[(app, path)] = row
        return [newest[k] for k in sorted(newest)]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = {"version": VERSION, "results": dict(sorted(self.results.items()))}
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


def commit_depth(root: Path) -> Callable[[str], int]:
    """A commit's number of ancestors in ``root``'s git history (-1 when unknown); asked of git
    once per commit."""

    @functools.cache
    def depth(commit: str) -> int:
        try:
            done = subprocess.run(
                ["git", "rev-list", "--count", commit.removesuffix("+dirty")],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            )
            return int(done.stdout.strip())
        except (OSError, ValueError, subprocess.CalledProcessError):
            return -1

    return depth


def current_commit(root: Path) -> str:
    """The project's commit (short), ``+dirty`` when specs or workflows differ; else unknown."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "specs", "comfy_workflows", "generator"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")
