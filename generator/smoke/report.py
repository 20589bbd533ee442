"""Smoke results as text: one line per endpoint (terminal) or a Markdown table (GPU-SMOKE.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _gb(result: dict[str, Any]) -> str:
    """Peak device memory, sampled from ``/system_stats`` every 0.2 s: used (total less what
    ComfyUI counts free, which includes torch's cached blocks) / torch reserved (what the
    allocator held, cache included)."""
    memory = result.get("memory") or {}
    if memory.get("device_type") != "cuda":
        return "–"
    return f"{memory.get('peak_used_gb', 0):.1f} / {memory.get('peak_torch_reserved_gb', 0):.1f}"


def _comfyui(result: dict[str, Any]) -> str:
    """The ComfyUI version the run reported (``/system_stats``)."""
    return (result.get("memory") or {}).get("comfyui_version") or "–"


def _declared(result: dict[str, Any]) -> str:
    value = result.get("declared_gb")
    return "–" if value is None else f"{value:.1f}"


def outcome(result: dict[str, Any]) -> str:
    """What happened, and under which conditions the run differs from a client's call."""
    status = result.get("status")
    if status == "not-covered":
        return "not covered: " + "; ".join(result.get("reasons", []))
    said = f"executed{_conditions(result)}"
    if status == "executed":
        return said
    if status == "ignores-input":
        return f"{said}, ignores its input: " + ", ".join(result.get("ignored_inputs", []))
    if status == "accepts-unusable":
        return f"{said}, one-colour image not refused: " + ", ".join(
            result.get("unrefused_inputs", [])
        )
    if status == "output-mismatch":
        return f"{said}, output mismatch: " + "; ".join(result.get("problems", []))
    if status == "breaks-after-other":  # alone it executed; after another endpoint it did not
        return f"{said} alone, BREAKS {result.get('error', '?')}"
    return "FAILED: " + str(result.get("error", "?"))


def _conditions(result: dict[str, Any]) -> str:
    """`` (2 of 20 steps; tiny x.gguf; num_frames=5)``, or nothing for a run as asked."""
    steps = result.get("steps")
    said = ["defaults: sent " + ", ".join(result["request"]["sent"])] if "request" in result else []
    said += [f"{steps['ran']} of {steps['requested']} steps"] if steps else []
    synth = result.get("synth") or {}
    tiny = sorted(name.split("/")[-1] for name, r in synth.items() if r and r.get("tiny"))
    said += ["tiny " + ", ".join(tiny)] if tiny else []
    said += [f"{k}={v}" for k, v in (result.get("overrides") or {}).items()]
    said += [f"node {k}={v}" for k, v in (result.get("node_overrides") or {}).items()]
    return f" ({'; '.join(said)})" if said else ""


def line(row: dict[str, Any]) -> str:
    """``app /path: executed, first 3.21 s, warm 1.02 s, load 2.19 s, peak 21.4 GB``."""
    text = f"{row['app']} {row['path']}: {outcome(row)}"
    if row.get("status") in (
        "executed",
        "output-mismatch",
        "ignores-input",
        "failed",
        "breaks-after-other",
    ):
        text += (
            f" | first {_s(row.get('first_s'))} s, warm {_s(row.get('warm_s'))} s,"
            f" load {_s(row.get('load_s'))} s, peak {_gb(row)} GB"
        )
    return text


def markdown(rows: Iterable[dict[str, Any]]) -> str:
    out = [
        "| app | endpoint | result | first (s) | warm (s) | load (s) | declared models (GB) |"
        " peak GPU memory used / reserved (GB) | output | ComfyUI | commit |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for row in rows:
        runs = row.get("runs") or []
        output = next((", ".join(r.get("outputs", [])) for r in runs if r.get("ok")), "")
        out.append(
            f"| {row['app']} | `{row['path']}` | {outcome(row).replace('|', '/')} |"
            f" {_s(row.get('first_s'))} | {_s(row.get('warm_s'))} | {_s(row.get('load_s'))} |"
            f" {_declared(row)} | {_gb(row)} | {output} |"
            f" {_comfyui(row)} | {row.get('commit', '')} |"
        )
    return "\n".join(out) + "\n"
