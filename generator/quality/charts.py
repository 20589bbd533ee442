"""PNG bar charts of the report, drawn with Pillow (no plotting library needed).

``latency.png``: per endpoint, horizontal bars for the first/cold request and the warm p50,
p90 and max, with the p50 target as a dashed line when it fits the scale. ``cost.png``: cost
per output file of each endpoint. Both are plain horizontal bar charts with a labelled axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .report import REPORT_NAME, fmt_usd

WIDTH = 960
BAR = 14
GAP = 3
GROUP_GAP = 16
MARGIN = 16
BACKGROUND = "white"
INK = (40, 40, 40)
GRID = (225, 225, 225)
TARGET = (200, 30, 30)
LATENCY_SERIES = (
    ("first", (120, 120, 120)),
    ("p50", (49, 130, 189)),
    ("p90", (107, 174, 214)),
    ("max", (198, 219, 239)),
)
COST_SERIES = (("$/output", (49, 163, 84)),)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class Row:
    """One endpoint: its label and one value per series (None: nothing to draw)."""

    label: str
    values: tuple[float | None, ...]


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType
        return ImageFont.load_default()


def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 × 10^k) giving about ``ticks`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def bar_chart(
    title: str,
    rows: Sequence[Row],
    series: Sequence[tuple[str, tuple[int, int, int]]],
    fmt: Callable[[float], str],
    target: tuple[float, str] | None = None,
) -> Image.Image:
    """A horizontal grouped bar chart: one group per row, one bar per series."""
    font, small = _font(14), _font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = min(260, max([probe.textlength(r.label, font=font) for r in rows] + [60.0]) + 12)
    values = [v for r in rows for v in r.values if v is not None]
    top = max(values, default=0.0)
    if target and target[0] <= max(top, 1e-12) * 1.6:
        top = max(top, target[0])
    step = nice_step(top or 1.0)
    scale_max = step * math.ceil((top or 1.0) * 1.12 / step)
    group_h = len(series) * (BAR + GAP) - GAP
    plot_top = MARGIN + 58
    height = plot_top + max(len(rows), 1) * (group_h + GROUP_GAP) + 40
    image = Image.new("RGB", (WIDTH, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    x0, x1 = MARGIN + label_w, WIDTH - MARGIN - 90
    plot_bottom = height - 34

    def x_of(value: float) -> float:
        return x0 + (x1 - x0) * value / scale_max

    draw.text((MARGIN, MARGIN), title, fill=INK, font=_font(18))
    _legend(draw, series, MARGIN, MARGIN + 30, small)
    tick = 0.0
    while tick <= scale_max + step / 2:
        x = x_of(tick)
        draw.line([(x, plot_top - 4), (x, plot_bottom)], fill=GRID)
        text = fmt(tick)
        draw.text((x - probe.textlength(text, font=small) / 2, plot_bottom + 6), text, INK, small)
        tick += step
    draw.line([(x0, plot_top - 4), (x0, plot_bottom)], fill=INK)
    for index, row in enumerate(rows):
        y = plot_top + index * (group_h + GROUP_GAP)
        draw.text(
            (MARGIN, y + group_h / 2 - 8), _fit(probe, row.label, font, label_w - 8), INK, font
        )
        if all(v is None for v in row.values):
            draw.text((x0 + 6, y + group_h / 2 - 7), "no successful request", TARGET, small)
            continue
        for k, (value, (_, color)) in enumerate(zip(row.values, series, strict=True)):
            if value is None:
                continue
            top_y = y + k * (BAR + GAP)
            draw.rectangle([x0, top_y, max(x_of(value), x0 + 1), top_y + BAR], fill=color)
            draw.text((x_of(value) + 4, top_y), fmt(value), INK, small)
    if target:
        _target_line(draw, target, x_of, scale_max, (plot_top - 8, plot_bottom), small)
    return image


def _fit(probe: ImageDraw.ImageDraw, text: str, font: Font, width: float) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    while text and probe.textlength(text, font=font) > width:
        text = text[:-2] + "…"
    return text


def _legend(
    draw: ImageDraw.ImageDraw,
    series: Sequence[tuple[str, tuple[int, int, int]]],
    x: float,
    y: float,
    font: Font,
) -> None:
    for name, color in series:
        draw.rectangle([x, y + 2, x + 12, y + 14], fill=color)
        draw.text((x + 17, y), name, INK, font)
        x += 17 + draw.textlength(name, font=font) + 18


def _target_line(
    draw: ImageDraw.ImageDraw,
    target: tuple[float, str],
    x_of: Callable[[float], float],
    scale_max: float,
    span: tuple[float, float],
    font: Font,
) -> None:
    value, label = target
    if value > scale_max:
        text = f"{label} off scale"
        draw.text(
            (WIDTH - MARGIN - draw.textlength(text, font=font), MARGIN + 30), text, TARGET, font
        )
        return
    x = x_of(value)
    for y in range(int(span[0]), int(span[1]), 8):
        draw.line([(x, y), (x, min(y + 4, span[1]))], fill=TARGET, width=2)
    draw.text((x + 4, span[0] - 10), label, TARGET, font)


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
    for name, image in charts.items():
        path = out_dir / f"{REPORT_NAME}-{name}.png"
        image.save(path, format="PNG", optimize=True)
        paths.append(path)
    return paths
