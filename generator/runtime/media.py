"""Media inputs: data URLs, bare base64 or http(s) URLs -> checked bytes with a safe name.

URL inputs are fetched under the rules of :mod:`.urls` (public addresses only unless the app
allows others, redirects re-checked, a deadline and a byte cap). Every input is size-checked and
fully decoded (images) or probed (videos) before it reaches ComfyUI.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
import uuid
from dataclasses import dataclass

from .urls import UrlError, request

_DATA_URL = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,(?P<data>.*)$", re.S | re.I
)  # RFC 2397: scheme, type and "base64" are case-insensitive
_BASE64_BREAKS = str.maketrans("", "", " \t\r\n")
"""Line breaks and spaces that MIME tools (``base64``, wrapping at 76) put in base64."""
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# Magic numbers of the formats ComfyUI loaders read; the extension names the uploaded file.
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png", "image/png"),
    (b"\xff\xd8\xff", 0, "jpg", "image/jpeg"),
    (b"GIF8", 0, "gif", "image/gif"),
    (b"WEBP", 8, "webp", "image/webp"),
    (b"ftyp", 4, "mp4", "video/mp4"),
    (b"\x1a\x45\xdf\xa3", 0, "webm", "video/webm"),
)
ANIMATION_FRAMES = 16  # an animation may hold this many full-size frames' pixels in all
_KIND_PREFIX = {"image": "image/", "mask": "image/", "video": "video/"}


class MediaError(ValueError):
    """A media input that cannot be used; the message is safe to show the client."""


@dataclass(frozen=True)
class Media:
    data: bytes
    media_type: str
    extension: str

    def upload_name(self, field: str) -> str:
        """A unique, sanitized file name: nothing of the client's name reaches the disk."""
        safe_field = re.sub(r"[^a-z0-9_]", "", field.lower())[:32] or "input"
        return f"ryla_{uuid.uuid4().hex}_{safe_field}.{self.extension}"


def media_formats(kind: str | None = None) -> list[str]:
    """File types :func:`sniff` recognises (of one kind: image, video), e.g. ``mp4``."""
    prefix = _KIND_PREFIX.get(kind or "", "")
    return [ext for _, _, ext, media_type in _SIGNATURES if media_type.startswith(prefix)]


def sniff(data: bytes) -> tuple[str, str] | None:
    for magic, offset, ext, media_type in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            if ext == "webp" and data[:4] != b"RIFF":
                continue
            return ext, media_type
    return None


async def load_media(
    value: str,
    kind: str,
    *,
    max_bytes: int,
    max_pixels: int,
    allow_private: bool,
    download_timeout: float = 60.0,
    download_max_bytes: int | None = None,
    min_side: int | None = None,
) -> Media:
    """Decode one media input of ``kind`` (image, mask, video), fully, before anything is queued.

    ``max_bytes`` bounds inline (base64) data, ``download_max_bytes`` (default: the same) and
    ``download_timeout`` a URL download, redirects included."""
    value = value.strip()
    if is_url(value):
        data = await fetch_url(
            value,
            max_bytes=download_max_bytes or max_bytes,
            allow_private=allow_private,
            timeout=download_timeout,
        )
    else:
        data = decode_base64(value, max_bytes=max_bytes)
    return verify_media(data, kind, max_pixels=max_pixels, min_side=min_side)


def verify_media(data: bytes, kind: str, *, max_pixels: int, min_side: int | None = None) -> Media:
    """The file is of ``kind`` and whole: images decoded to the last frame within the size
    limits, videos probed. The one check of media bytes (requests, and the build's self-check
    of examples)."""
    sniffed = sniff(data)
    if sniffed is None or not sniffed[1].startswith(_KIND_PREFIX[kind]):
        raise MediaError(f"not a supported {kind} file (expected {_KIND_PREFIX[kind]}*)")
    ext, media_type = sniffed
    if kind in ("image", "mask"):
        decode_image(data, max_pixels, min_side)
    else:
        probe_video(data, ext)
    return Media(data, media_type, ext)


async def fetch_url(
    url: str, *, max_bytes: int, allow_private: bool, timeout: float = 300.0
) -> bytes:
    """A URL's bytes under the rules of :mod:`.urls` (a 200 answer only); MediaError otherwise."""
    try:
        fetched = await request(
            "GET", url, allow_private=allow_private, timeout=timeout, max_bytes=max_bytes
        )
    except UrlError as exc:
        raise MediaError(str(exc)) from None
    if fetched.status != 200:
        raise MediaError(f"fetching the URL answered HTTP {fetched.status}")
    return fetched.body


def is_url(value: str) -> bool:
    """A media value given as a URL (``scheme://``), not inline data."""
    return _URL.match(value.strip()) is not None


def decode_base64(value: str, *, max_bytes: int) -> bytes:
    match = _DATA_URL.match(value)
    payload = (match.group("data") if match else value).translate(_BASE64_BREAKS)
    if len(payload) * 3 // 4 > max_bytes:
        raise MediaError(f"larger than the {max_bytes} byte limit")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(
            "not valid base64 (expected a data URL, base64 or an http(s) URL)"
        ) from None


def decode_image(data: bytes, max_pixels: int, min_side: int | None = None) -> None:
    """Size checks (per frame, and all frames of an animation) without decoding, then verify
    and decode every frame: a truncated or corrupt file is refused here, not inside ComfyUI."""
    from PIL import Image, ImageSequence

    Image.MAX_IMAGE_PIXELS = None  # our own limit below, checked before decoding
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            frames = getattr(image, "n_frames", 1)
    except Exception:  # noqa: BLE001 - Pillow raises many kinds for broken headers
        raise MediaError("the image cannot be read") from None
    if width * height > max_pixels:
        raise MediaError(f"image of {width}x{height} exceeds the {max_pixels} pixel limit")
    if min_side is not None and min(width, height) < min_side:
        raise MediaError(f"image of {width}x{height} is smaller than {min_side} px on a side")
    if width * height * frames > max_pixels * ANIMATION_FRAMES:
        raise MediaError(
            f"animation of {width}x{height}x{frames} frames exceeds the "
            f"{max_pixels * ANIMATION_FRAMES} pixel limit of all its frames"
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            for frame in ImageSequence.Iterator(image):
                frame.load()
    except Exception:  # noqa: BLE001
        raise MediaError("the image is truncated or corrupt (it cannot be decoded)") from None


def probe_video(data: bytes, ext: str) -> None:
    """The container's structure is whole: MP4 boxes fill the file exactly and hold a movie
    header with a duration; a WebM has its EBML header and a segment that fits the file."""
    problem = _probe_mp4(data) if ext == "mp4" else _probe_webm(data)
    if problem:
        raise MediaError(f"the video is truncated or corrupt: {problem}")


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]] | str:
    """(type, payload start, box end) of the ISO-BMFF boxes in data[start:end]."""
    boxes, pos = [], start
    while pos < end:
        if end - pos < 8:
            return "a box header is cut off"
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if end - pos < 16:
                return "a box header is cut off"
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return f"box '{kind.decode('latin-1')}' runs past the end of the file"
        boxes.append((kind, pos + header, pos + size))
        pos += size
    return boxes


def _probe_mp4(data: bytes) -> str | None:
    top = _boxes(data, 0, len(data))
    if isinstance(top, str):
        return top
    kinds = {kind: (begin, stop) for kind, begin, stop in top}
    if b"moov" not in kinds:
        return "no movie header (moov)"
    if b"mdat" not in kinds and b"moof" not in kinds:
        return "no media data (mdat)"
    inner = _boxes(data, *kinds[b"moov"])
    if isinstance(inner, str):
        return inner
    found = {kind: (begin, stop) for kind, begin, stop in inner}
    if b"mvhd" not in found or b"trak" not in found:
        return "no movie header or track"
    begin, stop = found[b"mvhd"]
    version = data[begin] if stop > begin else 0
    fields = (">II", begin + 12) if version == 0 else (">IQ", begin + 20)
    if stop - begin < fields[1] - begin + struct.calcsize(fields[0]):
        return "the movie header is cut off"
    timescale, duration = struct.unpack_from(fields[0], data, fields[1])
    if not timescale or (not duration and b"mvex" not in found):
        return "the movie has no duration"
    return None


def _vint(data: bytes, pos: int, keep_marker: bool = False) -> tuple[int, int] | None:
    """An EBML variable-size integer at ``pos``: (value, length); None when cut off."""
    if pos >= len(data) or data[pos] == 0:
        return None
    length = 8 - data[pos].bit_length() + 1
    if pos + length > len(data):
        return None
    value = int.from_bytes(data[pos : pos + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, length


def _probe_webm(data: bytes) -> str | None:
    header = _vint(data, 4)
    if header is None or 4 + header[1] + header[0] > len(data):
        return "the EBML header is cut off"
    pos = 4 + header[1] + header[0]
    segment_id = _vint(data, pos, keep_marker=True)
    if segment_id is None or segment_id[0] != 0x18538067:
        return "no segment after the EBML header"
    size = _vint(data, pos + segment_id[1])
    if size is None:
        return "the segment header is cut off"
    start = pos + segment_id[1] + size[1]
    unknown = size[0] == (1 << (7 * size[1])) - 1
    if not unknown and start + size[0] > len(data):
        return "the segment runs past the end of the file"
    if b"\x1f\x43\xb6\x75" not in data[start:]:
        return "no frames (cluster)"
    return None
