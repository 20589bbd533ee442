"""Running the bench: per endpoint, one first (or cold) request, then N warm ones.

Results are appended to a :class:`BenchRun` as requests complete, so when the run is
interrupted (Ctrl-C cancels the asyncio task) everything measured so far is still there.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from .measure import Sample, measure_request
from .progress import Progress
from .results import EndpointResult
from .targets import BenchTarget

NO_EXAMPLES = "no examples: in the spec"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class ColdStarter(Protocol):
    async def stop_all(self, app: str) -> int: ...


@dataclass(frozen=True)
class BenchOptions:
    """How many requests, how many at once, and the extra time allowed beyond the timeout."""

    runs: int = 5
    concurrency: int = 1
    cold: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    first_grace_s: float = 600.0  # a cold start may load models for minutes
    warm_grace_s: float = 60.0


@dataclass
class BenchRun:
    """The run's results so far; ``interrupted`` when Ctrl-C ended it early."""

    options: BenchOptions
    results: list[EndpointResult] = field(default_factory=list)
    interrupted: bool = False
    interrupted_by: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None


def _client(targets: Sequence[BenchTarget], concurrency: int) -> httpx.AsyncClient:
    """One pooled client; proxies from the environment are ignored for loopback URLs."""
    local = all(urlsplit(t.url).hostname in LOOPBACK for t in targets)
    limits = httpx.Limits(max_connections=max(concurrency, 1) + 1)
    return httpx.AsyncClient(trust_env=not local, limits=limits, follow_redirects=False)


async def run_bench(
    targets: Sequence[BenchTarget],
    run: BenchRun,
    progress: Progress,
    cold: ColdStarter | None = None,
) -> None:
    """Measure every target in order, appending to ``run.results`` as it goes. Ctrl-C marks
    the run interrupted and cancels it; no request starts after it, even where a library
    swallowed the cancellation (seen under load: the bench went on after Ctrl-C)."""
    _stop_on_sigint(run)
    async with _client(targets, run.options.concurrency) as client:
        for target in targets:
            if run.interrupted:
                break
            result = EndpointResult(target, planned=1 + run.options.runs)
            if not target.examples:
                result.planned, result.skipped = 0, NO_EXAMPLES
            run.results.append(result)
            progress.started(result)
            if not result.skipped:
                await _bench_endpoint(client, result, run, progress, cold)
            progress.finished(result)
    run.finished = time.time()


def _stop_on_sigint(run: BenchRun) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def stop() -> None:
        run.interrupted, run.interrupted_by = True, "Ctrl-C"
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, stop)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        pass


async def _bench_endpoint(
    client: httpx.AsyncClient,
    result: EndpointResult,
    run: BenchRun,
    progress: Progress,
    cold: ColdStarter | None,
) -> None:
    options = run.options
    target = result.target
    if cold is not None:
        progress.note(f"  {target.path}: stopping {target.app}'s containers for a cold start")
        stopped = await cold.stop_all(target.app)
        progress.note(f"  {target.path}: {stopped} container(s) stopped")
    phase = "cold" if cold is not None else "first"
    first = await _one(client, result, options, phase, 0, target.timeout + options.first_grace_s)
    progress.request_done(result, first)
    pending = iter(range(options.runs))  # shared: each warm request is taken by one worker

    async def worker() -> None:
        for index in pending:
            if run.interrupted:
                return
            example = index % len(target.examples)
            timeout = target.timeout + options.warm_grace_s
            sample = await _one(client, result, options, "warm", example, timeout)
            progress.request_done(result, sample)

    await asyncio.gather(*(worker() for _ in range(min(options.concurrency, options.runs))))


async def _one(
    client: httpx.AsyncClient,
    result: EndpointResult,
    options: BenchOptions,
    phase: str,
    example: int,
    timeout: float,
) -> Sample:
    sample = await measure_request(
        client,
        result.target,
        result.target.examples[example],
        phase=phase,
        example=example,
        timeout=timeout,
        headers=options.headers or None,
    )
    result.samples.append(sample)
    return sample
