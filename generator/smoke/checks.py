"""A smoke response against what was asked: decodes as its media type, size and frames agree.

The file checks are ``ryla-gen bench``'s (``quality/checks.py``). On top: an image or video's
size equals the request's ``width``×``height`` when the endpoint takes both, and a video's frame
count equals its ``X-Frames`` header. Encoders merge identical consecutive frames (Pillow's
animated WEBP does; random weights often draw identical frames): fewer frames whose duration is
``X-Frames / X-FPS`` still pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..quality.checks import check_body


def check_response(
    body: bytes, headers: Mapping[str, str], request: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """(summaries of the output files, problems); no problems: the output is what was asked."""
    checks = check_body(body, headers.get("content-type"))
    problems = [f"{c.media_type}: {c.reason}" for c in checks if c.status == "failed"]
    size = (request.get("width"), request.get("height"))
    frames_header = headers.get("x-frames")
    for c in checks:
        if c.status != "ok":
            continue
        if None not in size and c.width is not None and (c.width, c.height) != size:
            problems.append(
                f"output is {c.width}×{c.height}, the request asked {size[0]}×{size[1]}"
            )
        if frames_header is not None and c.frames is not None:
            try:
                expected = int(frames_header)
            except ValueError:
                problems.append(f"X-Frames header is not a number: {frames_header!r}")
                continue
            if c.frames != expected and not _merged_frames(c.duration_s, expected, headers):
                problems.append(f"output has {c.frames} frames, X-Frames says {expected}")
    return [c.summary for c in checks], problems


def _merged_frames(duration: float | None, frames: int, headers: Mapping[str, str]) -> bool:
    """The output lasts as long as ``frames`` at ``X-FPS``: identical frames were merged."""
    try:
        fps = float(headers.get("x-fps", ""))
    except ValueError:
        return False
    return bool(duration) and fps > 0 and abs(duration - frames / fps) <= 0.5 / fps
