"""Output checks: does a response body decode as the media type it declares?

Images (PNG, JPEG, WEBP, GIF, animated or not) are opened with Pillow: format, size, frame
count and duration. MP4/MOV video is read from its ``moov`` boxes (``mvhd`` duration, ``tkhd``
size, ``stts`` frame count of the video track) without ffmpeg. Anything else is recorded as
``unchecked`` with the reason. JSON responses (``response: json``) are checked file by file.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from PIL import Image, UnidentifiedImageError

IMAGE_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
}
MP4_TYPES = {"video/mp4", "video/quicktime", "video/x-m4v"}


@dataclass(frozen=True)
class OutputCheck:
    """The verdict on one output file: ``ok``, ``failed`` or ``unchecked`` (with a reason)."""

    status: str
    media_type: str
    format: str | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    duration_s: float | None = None
    reason: str | None = None

    @property
    def summary(self) -> str:
        """A short human description, e.g. ``PNG 64×64`` or ``WEBP 64×64, 4 fr, 0.67 s``."""
        if self.status != "ok":
            return f"{self.status}: {self.reason}"
        text = self.format or self.media_type
        if self.width is not None and self.height is not None:
            text += f" {self.width}×{self.height}"
        if self.frames is not None and (self.frames > 1 or self.duration_s):
            text += f", {self.frames} fr"
        if self.duration_s:
            text += f", {self.duration_s:.2f} s"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_body(
    data: bytes, content_type: str | None, expected_frames: int | None = None
) -> list[OutputCheck]:
    """Check every output file in a successful response body (raw bytes or JSON files).

    ``expected_frames`` (the response's ``X-Frames``) must equal the frame count of a single
    output file whose frames can be counted.
    """
    media_type = (content_type or "").split(";")[0].strip().lower()
    checks = (
        _check_json(data) if media_type == "application/json" else [check_file(data, media_type)]
    )
    if expected_frames is not None and len(checks) == 1:
        return [_against_frames(checks[0], expected_frames)]
    return checks


def _against_frames(check: OutputCheck, expected: int) -> OutputCheck:
    if check.status != "ok" or check.frames is None or check.frames == expected:
        return check
    reason = f"X-Frames says {expected}, the file has {check.frames} frame(s)"
    return replace(check, status="failed", reason=reason)


def check_file(data: bytes, media_type: str) -> OutputCheck:
    """Check one output file against its declared media type."""
    if not data:
        return OutputCheck("failed", media_type, reason="empty body")
    if media_type in IMAGE_FORMATS:
        return _check_image(data, media_type)
    if media_type in MP4_TYPES:
        return _check_mp4(data, media_type)
    return OutputCheck("unchecked", media_type, reason=f"no decoder for {media_type or '?'}")


def _check_json(data: bytes) -> list[OutputCheck]:
    try:
        files = json.loads(data)["files"]
        decoded = [(f["media_type"], base64.b64decode(f["data"], validate=True)) for f in files]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        return [OutputCheck("failed", "application/json", reason=f"not a files payload: {exc}")]
    if not decoded:
        return [OutputCheck("failed", "application/json", reason="no files")]
    return [check_file(raw, str(kind).lower()) for kind, raw in decoded]


def _check_image(data: bytes, media_type: str) -> OutputCheck:
    expected = IMAGE_FORMATS[media_type]
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            frames = getattr(image, "n_frames", 1)
            duration = _animation_duration(image) if frames > 1 else None
            found, size = image.format, image.size
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
        return OutputCheck("failed", media_type, reason=f"does not decode as {expected}: {exc}")
    if found != expected:
        return OutputCheck(
            "failed", media_type, format=found, reason=f"declared {media_type}, is {found}"
        )
    return OutputCheck(
        "ok",
        media_type,
        format=found,
        width=size[0],
        height=size[1],
        frames=frames,
        duration_s=duration,
    )


def _animation_duration(image: Image.Image) -> float:
    """Sum of the frame durations of an animated image, in seconds."""
    total_ms = 0.0
    for index in range(image.n_frames):
        image.seek(index)
        total_ms += float(image.info.get("duration", 0) or 0)
    image.seek(0)
    return round(total_ms / 1000.0, 4)


# --- MP4 / QuickTime: just enough of ISO BMFF to read duration, size and frame count


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box between ``start`` and ``end``."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > end:
                return
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise ValueError(f"box '{kind.decode('latin-1')}' at {offset} overruns the file")
        yield kind, offset + header, offset + size
        offset += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload, stop in _boxes(data, start, end):
        if found == kind:
            return payload, stop
    return None


def _children(data: bytes, start: int, end: int, kind: bytes) -> list[tuple[int, int]]:
    return [(p, s) for found, p, s in _boxes(data, start, end) if found == kind]


def _mvhd_duration(data: bytes, start: int) -> float:
    version = data[start]
    if version == 1:
        timescale, duration = struct.unpack_from(">IQ", data, start + 4 + 16)
    else:
        timescale, duration = struct.unpack_from(">II", data, start + 4 + 8)
    if not timescale:
        raise ValueError("mvhd timescale is 0")
    return duration / timescale


def _tkhd_size(data: bytes, start: int) -> tuple[int, int]:
    offset = start + 4 + (32 if data[start] == 1 else 20) + 8 + 8 + 36
    width, height = struct.unpack_from(">II", data, offset)
    return width >> 16, height >> 16


def _video_track(data: bytes, moov: tuple[int, int]) -> tuple[tuple[int, int], int] | None:
    """The video track's ``tkhd`` position and its frame count (sum of ``stts`` samples)."""
    for trak in _children(data, *moov, b"trak"):
        mdia = _child(data, *trak, b"mdia")
        hdlr = mdia and _child(data, *mdia, b"hdlr")
        if not mdia or not hdlr or data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
            continue
        path = [b"minf", b"stbl", b"stts"]
        box: tuple[int, int] | None = mdia
        for kind in path:
            box = box and _child(data, *box, kind)
        frames = 0
        if box:
            (count,) = struct.unpack_from(">I", data, box[0] + 4)
            frames = sum(
                struct.unpack_from(">I", data, box[0] + 8 + 8 * i)[0] for i in range(count)
            )
        tkhd = _child(data, *trak, b"tkhd")
        if tkhd:
            return tkhd, frames
    return None


def _check_mp4(data: bytes, media_type: str) -> OutputCheck:
    try:
        moov = _child(data, 0, len(data), b"moov")
        if moov is None:
            return OutputCheck("failed", media_type, reason="no 'moov' box: not an MP4 file")
        mvhd = _child(data, *moov, b"mvhd")
        duration = _mvhd_duration(data, mvhd[0]) if mvhd else None
        track = _video_track(data, moov)
        if track is None:
            return OutputCheck("failed", media_type, reason="MP4 without a video track")
        (width, height), frames = _tkhd_size(data, track[0][0]), track[1]
    except (ValueError, struct.error, IndexError) as exc:
        return OutputCheck("failed", media_type, reason=f"broken MP4: {exc}")
    if frames == 0:
        return OutputCheck(
            "unchecked",
            media_type,
            format="MP4",
            width=width,
            height=height,
            duration_s=duration,
            reason="fragmented MP4: frame count not in 'stts'",
        )
    return OutputCheck(
        "ok",
        media_type,
        format="MP4",
        width=width,
        height=height,
        frames=frames,
        duration_s=round(duration, 4) if duration is not None else None,
    )
