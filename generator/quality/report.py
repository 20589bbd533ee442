"""The bench report: ``ENDPOINT-QUALITY.json`` holds the data, ``ENDPOINT-QUALITY.md`` prints it.

The Markdown is rendered from the same dictionary that is written as JSON, so both always
agree; numbers in the table use :func:`fmt_seconds`, :func:`fmt_rate` and :func:`fmt_usd`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from .results import FAIL, PASS, Thresholds, gate_failures
from .runner import BenchRun

REPORT_NAME = "ENDPOINT-QUALITY"
MARKS = {PASS: "✅ pass", FAIL: "❌ fail", "n/a": "– n/a"}
COLUMNS = (
    "Endpoint",
    "GPU",
    "Requests",
    "OK",
    "Success",
    "{first} (s)",
    "p50 (s)",
    "p90 (s)",
    "max (s)",
    "TTFB p50 (s)",
    "$/output",
    "Output",
    "{first} ≤ {cold:g} s",
    "p50 ≤ {p50:g} s",
    "Success ≥ {success:g} %",
    "Errors",
)


def fmt_seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def fmt_rate(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def fmt_usd(value: float | None) -> str:
    """Dollars with three significant digits in fixed notation: ``$0.00000281``."""
    if value is None:
        return "–"
    if value <= 0 or value >= 1:
        return f"${value:.2f}"
    decimals = 2 - math.floor(math.log10(value))
    return f"${value:.{decimals}f}"


def _timestamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def build_report(run: BenchRun, thresholds: Thresholds, source: dict[str, Any]) -> dict[str, Any]:
    """The whole report as data: settings, thresholds, one summary per endpoint, gate result."""
    summaries = [r.summary(thresholds) for r in run.results]
    failures = gate_failures(summaries)
    return {
        "report": REPORT_NAME,
        "started": _timestamp(run.started),
        "finished": _timestamp(run.finished),
        "interrupted": run.interrupted,
        "interrupted_by": run.interrupted_by,
        "source": source,
        "runs": run.options.runs,
        "concurrency": run.options.concurrency,
        "cold": run.options.cold,
        "thresholds": thresholds.as_dict(),
        "gate": {"passed": not failures, "failures": failures},
        "endpoints": summaries,
    }


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """The table's cells, one row per selected endpoint (what the Markdown prints)."""
    return [_row(e) for e in report["endpoints"]]


def _row(e: dict[str, Any]) -> list[str]:
    warm = e["warm"]["total_s"] or {}
    ttfb = e["warm"]["ttfb_s"] or {}
    first = e["first"] or {}
    marks = [_mark(e["targets"][name]) for name in ("cold", "p50", "success")]
    errors = ", ".join(f"{kind} ×{n}" for kind, n in sorted(e["errors"].items()))
    outputs = "; ".join(e["outputs"]["kinds"]) or "–"
    if e["outputs"]["unchecked"]:
        outputs += f" ({e['outputs']['unchecked']} unchecked)"
    return [
        f"`{e['path']}`" + (f" (skipped: {e['skipped']})" if e["skipped"] else ""),
        e["gpu"],
        str(e["requests"]),
        str(e["successes"]),
        fmt_rate(e["success_rate"]),
        fmt_seconds(first.get("total_s") if first.get("ok") else None),
        fmt_seconds(warm.get("p50")),
        fmt_seconds(warm.get("p90")),
        fmt_seconds(warm.get("max")),
        fmt_seconds(ttfb.get("p50")),
        fmt_usd(e["cost"]["per_output_usd"]),
        outputs,
        *marks,
        errors or "–",
    ]


def _mark(target: dict[str, Any]) -> str:
    return MARKS[target["verdict"]] + ("*" if target["gated"] else "")


def _header(report: dict[str, Any]) -> list[str]:
    t = report["thresholds"]
    names = {
        "first": "Cold" if report["cold"] else "First",
        "cold": t["max_cold_s"],
        "p50": t["max_p50_s"],
        "success": t["min_success"] * 100,
    }
    return [c.format(**names) for c in COLUMNS]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: dict[str, Any], charts: list[str]) -> str:
    """``ENDPOINT-QUALITY.md``: settings, the table, notes, errors and the charts."""
    header = _header(report)
    lines = [
        "# Endpoint quality",
        "",
        _settings_line(report),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in table_rows(report)),
        "",
        *_notes(report),
    ]
    lines += _error_details(report)
    if charts:
        lines += ["", "## Charts", ""] + [f"![{Path(c).stem}]({c})" for c in charts]
    return "\n".join(lines).rstrip() + "\n"


def _settings_line(report: dict[str, Any]) -> str:
    source = report["source"]
    where = source.get("base_url") or f"workspace `{source.get('workspace')}`"
    state = (
        f" **Interrupted ({report['interrupted_by']}): partial results.**"
        if report["interrupted"]
        else ""
    )
    gate = "passed" if report["gate"]["passed"] else "FAILED"
    return (
        f"Measured {report['started']} against {where}: 1 {'cold' if report['cold'] else 'first'}"
        f" + {report['runs']} warm request(s) per endpoint, concurrency {report['concurrency']}."
        f" Gate: {gate}.{state}"
    )


def _notes(report: dict[str, Any]) -> list[str]:
    gated = report["thresholds"]["gated"]
    first = (
        "Cold: the first request after `--cold` stopped the app's containers."
        if report["cold"]
        else "First: the first request of the run (the app may already have been warm)."
    )
    notes = [
        f"- {first} p50/p90/max: total time of the successful warm requests; TTFB: time to the"
        " response headers. Success counts every request.",
        "- $/output: `X-Cost-USD` (else GPU price × execution time) of the successful requests"
        " divided by the output files they returned.",
    ]
    if gated:
        names = ", ".join(gated)
        notes.append(f"- `*` targets given on the command line decide the exit status: {names}.")
    failures = report["gate"]["failures"]
    notes += [f"- Missed: {f}" for f in failures]
    return notes


def _error_details(report: dict[str, Any]) -> list[str]:
    lines = []
    for e in report["endpoints"]:
        messages = {(s["error"], s["message"]) for s in e["samples"] if s["error"] and s["message"]}
        for kind, message in sorted(messages):
            lines.append(f"- `{e['path']}` {kind}: {message[:300]}")
    return ["", "## Errors", "", *lines] if lines else []


def write_report(report: dict[str, Any], out_dir: Path, charts: list[Path]) -> list[Path]:
    """Write the JSON and Markdown reports; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{REPORT_NAME}.json"
    md_path = out_dir / f"{REPORT_NAME}.md"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    md_path.write_text(render_markdown(report, [c.name for c in charts]), "utf-8")
    return [md_path, json_path]
