"""Measured samples → per-endpoint figures and target verdicts.

Latency figures (p50, p90, max) are over the successful warm requests; the first request
(``cold`` when ``--cold`` stopped the app's containers, else ``first``) is reported on its own.
The success rate counts every request, the first included.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .measure import Sample
from .targets import BenchTarget

PASS, FAIL, NA = "pass", "fail", "n/a"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Sequence[float]) -> dict[str, float] | None:
    """min, p50, p90 and max of the values (None when there are none)."""
    if not values:
        return None
    return {
        "min": min(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "max": max(values),
    }


@dataclass(frozen=True)
class Thresholds:
    """Targets every endpoint is marked against; ``gated`` ones decide the exit status."""

    max_cold_s: float = 60.0
    max_p50_s: float = 30.0
    min_success: float = 0.95
    gated: frozenset[str] = frozenset()  # of "cold", "p50", "success"

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_cold_s": self.max_cold_s,
            "max_p50_s": self.max_p50_s,
            "min_success": self.min_success,
            "gated": sorted(self.gated),
        }


@dataclass
class EndpointResult:
    """Everything measured for one endpoint; ``samples`` grows while the bench runs."""

    target: BenchTarget
    planned: int
    samples: list[Sample] = field(default_factory=list)
    skipped: str | None = None

    @property
    def first(self) -> Sample | None:
        return next((s for s in self.samples if s.phase != "warm"), None)

    @property
    def warm(self) -> list[Sample]:
        return [s for s in self.samples if s.phase == "warm"]

    def summary(self, thresholds: Thresholds) -> dict[str, Any]:
        """The endpoint's figures as the JSON report holds them (Markdown prints the same)."""
        ok = [s for s in self.samples if s.ok]
        warm_ok = [s for s in self.warm if s.ok]
        requests = len(self.samples)
        figures: dict[str, Any] = {
            **self.target.as_dict(),
            "skipped": self.skipped,
            "planned": self.planned,
            "requests": requests,
            "successes": len(ok),
            "failures": requests - len(ok),
            "success_rate": len(ok) / requests if requests else None,
            "errors": dict(Counter(s.error for s in self.samples if s.error)),
            "first": _first(self.first),
            "warm": {
                "requests": len(self.warm),
                "successes": len(warm_ok),
                "total_s": spread([s.total_s for s in warm_ok]),
                "ttfb_s": spread([s.ttfb_s for s in warm_ok if s.ttfb_s is not None]),
                "execution_s": spread([s.execution_s for s in warm_ok if s.execution_s]),
            },
            "cost": _cost(ok),
            "outputs": _outputs(ok),
        }
        figures["targets"] = _verdicts(figures, self, thresholds)
        figures["samples"] = [s.as_dict() for s in self.samples]
        return figures


def _first(sample: Sample | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {
        "phase": sample.phase,
        "ok": sample.ok,
        "ttfb_s": sample.ttfb_s,
        "total_s": sample.total_s,
        "error": sample.error,
    }


def _cost(ok: Sequence[Sample]) -> dict[str, Any]:
    """Total cost of the successful requests and cost per output file."""
    costs = [s.cost_usd for s in ok if s.cost_usd is not None]
    outputs = sum(s.outputs for s in ok)
    sources = sorted({s.cost_source for s in ok if s.cost_source})
    total = sum(costs)
    return {
        "total_usd": total if costs else None,
        "outputs": outputs,
        "per_output_usd": total / outputs if costs and outputs else None,
        "source": "+".join(sources) or None,
    }


def _outputs(ok: Sequence[Sample]) -> dict[str, Any]:
    """Output checks of the successful requests: counts by status, distinct descriptions."""
    checks = [c for s in ok for c in s.checks]
    by_status = Counter(c.status for c in checks)
    kinds = sorted({c.summary for c in checks if c.status == "ok"})
    unchecked = sorted({c.reason or "" for c in checks if c.status == "unchecked"})
    return {
        "ok": by_status["ok"],
        "unchecked": by_status["unchecked"],
        "kinds": kinds,
        "unchecked_reasons": unchecked,
    }


def _verdict(value: float | None, limit: float, *, upper: bool, attempted: bool) -> str:
    if value is None:
        return FAIL if attempted else NA
    return PASS if (value <= limit if upper else value >= limit) else FAIL


def _verdicts(
    figures: dict[str, Any], result: EndpointResult, thresholds: Thresholds
) -> dict[str, dict[str, Any]]:
    """pass / fail / n/a of each target; a target with attempts but no value fails."""
    first = result.first
    cold_value = first.total_s if first is not None and first.ok else None
    p50 = (figures["warm"]["total_s"] or {}).get("p50")
    rows = {
        "cold": (cold_value, thresholds.max_cold_s, True, first is not None),
        "p50": (p50, thresholds.max_p50_s, True, bool(result.warm)),
        "success": (figures["success_rate"], thresholds.min_success, False, bool(result.samples)),
    }
    return {
        name: {
            "value": value,
            "limit": limit,
            "verdict": _verdict(value, limit, upper=upper, attempted=attempted),
            "gated": name in thresholds.gated,
        }
        for name, (value, limit, upper, attempted) in rows.items()
    }


def gate_failures(summaries: Sequence[dict[str, Any]]) -> list[str]:
    """``"/path: target"`` for every gated target an endpoint missed."""
    return [
        f"{s['path']}: {name} ({_describe(t)})"
        for s in summaries
        for name, t in s["targets"].items()
        if t["gated"] and t["verdict"] == FAIL
    ]


def _describe(target: dict[str, Any]) -> str:
    value = target["value"]
    shown = "no successful request" if value is None else f"{value:.3f}"
    return f"{shown} vs limit {target['limit']:g}"
