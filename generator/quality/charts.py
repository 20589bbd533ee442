"""PNG bar charts of the report, drawn with matplotlib.

``latency.png``: per endpoint, horizontal bars for the first/cold request and the warm p50,
p90 and max, with the p50 target as a dashed line when it fits the scale. ``cost.png``: cost
per output file of each endpoint. Both are horizontal grouped bar charts with value labels.
Rendering uses the non-interactive Agg backend and writes no timestamp or version metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .report import REPORT_NAME, fmt_usd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH_IN = 9.6
DPI = 100
INK = "#282828"
TARGET = "#c81e1e"
LATENCY_SERIES = (
    ("first", "#787878"),
    ("p50", "#3182bd"),
    ("p90", "#6baed6"),
    ("max", "#c6dbef"),
)
COST_SERIES = (("$/output", "#31a354"),)


@dataclass(frozen=True)
class Row:
    """One endpoint: its label and one value per series (None: nothing to draw)."""

    label: str
    values: tuple[float | None, ...]


def bar_chart(
    title: str,
    rows: Sequence[Row],
    series: Sequence[tuple[str, str]],
    fmt: Callable[[float], str],
    target: tuple[float, str] | None = None,
) -> Figure:
    """A horizontal grouped bar chart: one group per row (top to bottom), one bar per series."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    bar = 0.8 / len(series)
    height = 1.6 + 0.3 * len(series) * max(len(rows), 1)
    figure = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    figure.suptitle(title, x=0.01, ha="left", color=INK)
    top = max((v for r in rows for v in r.values if v is not None), default=0.0)
    for k, (name, color) in enumerate(series):
        ys = [i + (k - (len(series) - 1) / 2) * bar for i in range(len(rows))]
        values = [r.values[k] for r in rows]
        drawn = [(y, v) for y, v in zip(ys, values, strict=True) if v is not None]
        bars = axes.barh(
            [y for y, _ in drawn], [v for _, v in drawn], height=bar, color=color, label=name
        )
        axes.bar_label(bars, labels=[fmt(v) for _, v in drawn], padding=3, fontsize=8, color=INK)
    for i, row in enumerate(rows):
        if all(v is None for v in row.values):
            axes.text(0, i, " no successful request", va="center", color=TARGET, fontsize=9)
    if target is not None:
        value, label = target
        if value <= max(top, 1e-12) * 1.6:
            axes.axvline(value, color=TARGET, linestyle="--", linewidth=1.5, label=label)
        else:
            axes.text(1, 1.01, f"{label} off scale", transform=axes.transAxes, ha="right",
                      color=TARGET, fontsize=9)  # fmt: skip
    axes.set_yticks(range(len(rows)), [r.label for r in rows])
    axes.set_ylim(len(rows) - 0.5, -0.5)  # first endpoint on top
    axes.set_xlim(0, (max(top, target[0] if target else 0.0) or 1.0) * 1.15)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt(x)))
    axes.grid(axis="x", color="#e1e1e1")
    axes.set_axisbelow(True)
    axes.spines[["top", "right"]].set_visible(False)
    figure.legend(loc="outside upper right", ncols=len(series) + 1, fontsize=8, frameon=False)
    return figure


def _seconds(value: float) -> str:
    return f"{value:.3g} s" if value < 10 else f"{value:.1f} s"


def _usd(value: float) -> str:
    return fmt_usd(value) if value else "$0"


def latency_rows(report: dict[str, Any]) -> list[Row]:
    """First/cold total time, warm p50, p90 and max of every measured endpoint."""
    rows = []
    for e in report["endpoints"]:
        if e["skipped"]:
            continue
        first = e["first"] or {}
        warm = e["warm"]["total_s"] or {}
        first_value = first.get("total_s") if first.get("ok") else None
        rows.append(
            Row(e["path"], (first_value, warm.get("p50"), warm.get("p90"), warm.get("max")))
        )
    return rows


def cost_rows(report: dict[str, Any]) -> list[Row]:
    """Cost per output file of every measured endpoint."""
    return [
        Row(e["path"], (e["cost"]["per_output_usd"],))
        for e in report["endpoints"]
        if not e["skipped"]
    ]


def write_charts(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``ENDPOINT-QUALITY-latency.png`` and ``ENDPOINT-QUALITY-cost.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    first = "cold" if report["cold"] else "first"
    series = ((first, LATENCY_SERIES[0][1]), *LATENCY_SERIES[1:])
    p50_limit = report["thresholds"]["max_p50_s"]
    charts = {
        "latency": bar_chart(
            "Latency per endpoint (seconds)",
            latency_rows(report),
            series,
            _seconds,
            (p50_limit, f"p50 target {p50_limit:g} s"),
        ),
        "cost": bar_chart("Cost per output (USD)", cost_rows(report), COST_SERIES, _usd),
    }
    paths = []
    for name, figure in charts.items():
        path = out_dir / f"{REPORT_NAME}-{name}.png"
        figure.savefig(path, format="png", metadata={"Software": None})
        paths.append(path)
    return paths
