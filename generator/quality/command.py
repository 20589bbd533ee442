"""``ryla-gen bench``: select endpoints, run the bench, write the reports, decide the exit status.

Exit status: 0 when every target given on the command line is met, 1 when an endpoint
missed one (a deploy gate) or ``--cold`` could not stop the app's containers, 130 when Ctrl-C
ended the run (the reports hold what was measured until then). Usage mistakes raise
:class:`BenchUsageError`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..resolve.model import AppModel
from .charts import write_charts
from .cold import ColdStartError, ModalColdStarter
from .progress import Progress
from .report import build_report, write_report
from .results import Thresholds
from .runner import BenchOptions, BenchRun, ColdStarter, run_bench
from .targets import BenchTarget, SelectionError, select_targets

EXIT_OK, EXIT_GATE, EXIT_INTERRUPTED = 0, 1, 130


class BenchUsageError(ValueError):
    """The command line cannot be run as given."""


@dataclass(frozen=True)
class BenchArgs:
    """The command line of ``ryla-gen bench``."""

    workspace: str | None = None
    base_url: str | None = None
    apps: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    runs: int = 5
    concurrency: int = 1
    cold: bool = False
    out: Path = Path("reports")
    max_cold: float | None = None
    max_p50: float | None = None
    min_success: float | None = None
    headers: tuple[str, ...] = ()
    env: str | None = None


def thresholds(args: BenchArgs) -> Thresholds:
    """Default targets (cold 60 s, p50 30 s, success 95 %), replaced and gated by the given."""
    given = {"cold": args.max_cold, "p50": args.max_p50, "success": args.min_success}
    success = args.min_success
    if success is not None and success > 1:  # "--min-success 95" means 95 %
        success = success / 100
    default = Thresholds()
    return Thresholds(
        max_cold_s=args.max_cold if args.max_cold is not None else default.max_cold_s,
        max_p50_s=args.max_p50 if args.max_p50 is not None else default.max_p50_s,
        min_success=success if success is not None else default.min_success,
        gated=frozenset(name for name, value in given.items() if value is not None),
    )


def parse_headers(values: tuple[str, ...]) -> dict[str, str]:
    """``--header 'Name: value'`` options as a dict."""
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise BenchUsageError(f"--header '{value}': expected 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def _source(args: BenchArgs) -> tuple[str | None, str | None]:
    """(workspace, base_url), the workspace defaulting to $MODAL_WORKSPACE."""
    if args.workspace and args.base_url:
        raise BenchUsageError("give --workspace or --base-url, not both")
    if args.base_url:
        if args.cold:
            raise BenchUsageError(
                "--cold needs a deployed app (--workspace): against --base-url (e.g. `ryla-gen"
                " dev`) there is no container to stop; the first request is reported as 'first'"
            )
        return None, args.base_url
    workspace = args.workspace or os.environ.get("MODAL_WORKSPACE")
    if not workspace:
        raise BenchUsageError("give --workspace WS (or set MODAL_WORKSPACE) or --base-url URL")
    return workspace, None


def select(apps: list[AppModel], args: BenchArgs) -> list[BenchTarget]:
    workspace, base_url = _source(args)
    try:
        return select_targets(
            apps, args.apps, args.endpoints, workspace=workspace, base_url=base_url
        )
    except SelectionError as exc:
        raise BenchUsageError(str(exc)) from None


def run_command(
    apps: list[AppModel],
    args: BenchArgs,
    *,
    progress: Progress | None = None,
    cold_starter: ColdStarter | None = None,
) -> int:
    """Run the bench and write the reports under ``args.out``; returns the exit status."""
    targets = select(apps, args)
    limits = thresholds(args)
    options = BenchOptions(
        runs=args.runs,
        concurrency=args.concurrency,
        cold=args.cold,
        headers=parse_headers(args.headers),
    )
    if args.cold and cold_starter is None:
        cold_starter = ModalColdStarter(args.env)
    run = BenchRun(options)
    progress = progress or Progress()
    try:
        asyncio.run(run_bench(targets, run, progress, cold_starter if args.cold else None))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C (runner._stop_on_sigint)
        run.interrupted, run.interrupted_by = True, "Ctrl-C"
    except ColdStartError as exc:
        run.interrupted, run.interrupted_by = True, f"--cold: {exc}"
    if run.interrupted:
        progress.note(f"interrupted ({run.interrupted_by}): writing what was measured so far")
    report = build_report(run, limits, _describe_source(args, targets))
    _write(report, args.out)
    if run.interrupted:
        return EXIT_INTERRUPTED if run.interrupted_by == "Ctrl-C" else EXIT_GATE
    for failure in report["gate"]["failures"]:
        click.echo(f"target missed: {failure}", err=True)
    return EXIT_OK if report["gate"]["passed"] else EXIT_GATE


def _describe_source(args: BenchArgs, targets: list[BenchTarget]) -> dict[str, Any]:
    workspace, base_url = _source(args)
    return {
        "workspace": workspace,
        "base_url": base_url,
        "apps": sorted({t.app for t in targets}),
        "modal_env": args.env,
    }


def _write(report: dict[str, Any], out: Path) -> None:
    charts = write_charts(report, out)
    for path in write_report(report, out, charts) + charts:
        click.echo(f"wrote {path}")
