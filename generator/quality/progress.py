"""The progress display of a bench run, on stderr.

On a terminal one line per endpoint is rewritten as requests complete; elsewhere (CI logs)
every request prints a line of its own.
"""

from __future__ import annotations

import sys
from typing import TextIO

from .measure import Sample
from .results import EndpointResult


def _describe(sample: Sample) -> str:
    outcome = "ok" if sample.ok else (sample.error or "failed")
    return f"{sample.phase} {outcome} {sample.total_s:.3f}s"


class Progress:
    """Reports endpoints and requests as they complete."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live

    def _write(self, text: str, *, end: str = "\n") -> None:
        prefix = "\r\x1b[K" if self.live else ""
        self.stream.write(prefix + text + end)
        self.stream.flush()

    def note(self, text: str) -> None:
        """A message of its own line (e.g. stopping containers before a cold request)."""
        self._write(text)

    def started(self, result: EndpointResult) -> None:
        target = result.target
        if result.skipped:
            self._write(f"{target.path}: skipped ({result.skipped})")
            return
        self._write(f"{target.path}: {result.planned} request(s) to {target.url}")

    def request_done(self, result: EndpointResult, sample: Sample) -> None:
        done = len(result.samples)
        failed = sum(1 for s in result.samples if not s.ok)
        line = f"  {result.target.path} [{done}/{result.planned}] {_describe(sample)}"
        if self.live:
            self._write(f"{line}  ({failed} failed)", end="")
        else:
            self._write(line)

    def finished(self, result: EndpointResult) -> None:
        if result.skipped:
            return
        ok = sum(1 for s in result.samples if s.ok)
        self._write(f"  {result.target.path}: {ok}/{len(result.samples)} succeeded")
