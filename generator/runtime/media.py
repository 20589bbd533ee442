"""Media inputs: data URLs, bare base64 or http(s) URLs -> checked bytes with a safe name.

URL inputs are fetched only from public addresses (no loopback, private or link-local hosts,
unless the app allows them), and every input is size-checked before it reaches ComfyUI.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
import socket
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

_DATA_URL = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,(?P<data>.*)$", re.S
)

# Magic numbers of the formats ComfyUI loaders read; the extension names the uploaded file.
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png", "image/png"),
    (b"\xff\xd8\xff", 0, "jpg", "image/jpeg"),
    (b"GIF8", 0, "gif", "image/gif"),
    (b"WEBP", 8, "webp", "image/webp"),
    (b"ftyp", 4, "mp4", "video/mp4"),
    (b"\x1a\x45\xdf\xa3", 0, "webm", "video/webm"),
)
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
    value: str, kind: str, *, max_bytes: int, max_pixels: int, allow_private: bool
) -> Media:
    """Decode one media input of ``kind`` (image, mask, video)."""
    value = value.strip()
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) and not value.startswith(
        ("http://", "https://")
    ):
        raise MediaError("only http(s) URLs are accepted")
    if value.startswith(("http://", "https://")):
        data = await fetch_url(value, max_bytes=max_bytes, allow_private=allow_private)
    else:
        data = decode_base64(value, max_bytes=max_bytes)
    sniffed = sniff(data)
    if sniffed is None or not sniffed[1].startswith(_KIND_PREFIX[kind]):
        raise MediaError(f"not a supported {kind} file (expected {_KIND_PREFIX[kind]}*)")
    ext, media_type = sniffed
    if kind in ("image", "mask"):
        _check_pixels(data, max_pixels)
    return Media(data, media_type, ext)


def decode_base64(value: str, *, max_bytes: int) -> bytes:
    match = _DATA_URL.match(value)
    payload = match.group("data") if match else value
    if len(payload) * 3 // 4 > max_bytes:
        raise MediaError(f"larger than the {max_bytes} byte limit")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(
            "not valid base64 (expected a data URL, base64 or an http(s) URL)"
        ) from None


async def check_public_url(url: str, *, allow_private: bool) -> None:
    """http(s) only; unless allowed, no host resolving to a private, loopback or link-local IP."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaError("only http(s) URLs are accepted")
    if not allow_private:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        await _refuse_private(parts.hostname, port)


async def fetch_url(url: str, *, max_bytes: int, allow_private: bool) -> bytes:
    await check_public_url(url, allow_private=allow_private)
    async with httpx.AsyncClient(timeout=30, follow_redirects=False, trust_env=False) as http:
        async with http.stream("GET", url) as response:
            if response.status_code != 200:
                raise MediaError(f"fetching the URL answered HTTP {response.status_code}")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise MediaError(f"larger than the {max_bytes} byte limit")
                chunks.append(chunk)
    return b"".join(chunks)


async def _refuse_private(host: str, port: int) -> None:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise MediaError(f"cannot resolve host '{host}'") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise MediaError(f"URL host '{host}' is a private, loopback or link-local address")


def _check_pixels(data: bytes, max_pixels: int) -> None:
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit below, without decoding
    try:
        import io

        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError):
        raise MediaError("the image cannot be read") from None
    if width * height > max_pixels:
        raise MediaError(f"image of {width}x{height} exceeds the {max_pixels} pixel limit")
