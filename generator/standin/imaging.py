"""Pillow helpers behind the stand-in's nodes: batches, masks, resizing, saving with metadata.

An ``IMAGE`` value is a batch: a list of RGB ``PIL.Image`` objects of one size. A ``MASK`` value
is a list of ``"F"`` (32-bit float) images holding 0.0–1.0, like ComfyUI's float masks; turning
floats into 8-bit values truncates, as ComfyUI's ``numpy.uint8`` conversion does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, ImageSequence
from PIL.PngImagePlugin import PngInfo

Images = list[Image.Image]
"""An IMAGE batch: RGB images of one size."""

Masks = list[Image.Image]
"""A MASK batch: ``"F"`` images with values in 0.0–1.0."""

RESAMPLING = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
"""Pillow filters for ComfyUI's ``upscale_method`` names."""

EMPTY_MASK_SIZE = (64, 64)
"""ComfyUI's LoadImage returns a 64×64 zero mask for images without alpha."""


def rgb_of(color: int) -> tuple[int, int, int]:
    """``0xRRGGBB`` -> ``(r, g, b)``."""
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF


def solid_mask(value: float, size: tuple[int, int]) -> Image.Image:
    return Image.new("F", size, float(value))


def mask_from_channel(channel: Image.Image, inverted: bool = False) -> Image.Image:
    """An 8-bit channel as a 0–1 mask (``1 - value`` when ``inverted``, as for alpha)."""
    scale = 1.0 / 255.0
    floats = channel.convert("F")
    if inverted:
        return floats.point(lambda v: v * -scale + 1.0)
    return floats.point(lambda v: v * scale)


def invert_mask(mask: Image.Image) -> Image.Image:
    return mask.point(lambda v: v * -1.0 + 1.0)


def mask_to_8bit(mask: Image.Image) -> Image.Image:
    """A 0–1 mask as an ``"L"`` image (truncating, clipped to 0–255)."""
    return mask.point(lambda v: v * 255.0).convert("L")


def resize(
    image: Image.Image, width: int, height: int, method: str, crop: str = "disabled"
) -> Image.Image:
    """Resize like ComfyUI's ``common_upscale``; ``crop="center"`` first cuts to the new aspect."""
    if crop == "center":
        old_w, old_h = image.size
        old_aspect, new_aspect = old_w / old_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        image = image.crop((x, y, old_w - x, old_h - y))
    if image.size == (width, height):
        return image.copy()
    return image.resize((width, height), RESAMPLING[method])


def pair_batches(first: Images, second: Images) -> list[tuple[Image.Image, Image.Image]]:
    """Pair the frames of two batches, repeating the shorter one's frames cyclically."""
    count = max(len(first), len(second))
    return [(first[i % len(first)], second[i % len(second)]) for i in range(count)]


def load_frames(path: Path) -> tuple[Images, Masks]:
    """Frames of an image file and their masks (inverted alpha), as ComfyUI's LoadImage reads.

    Frames whose size differs from the first are skipped; MPO files give their first frame.
    Raises ``PIL.UnidentifiedImageError`` for a file Pillow cannot read.
    """
    images: Images = []
    masks: Masks = []
    with Image.open(str(path)) as source:
        for frame in ImageSequence.Iterator(source):
            frame = ImageOps.exif_transpose(frame)
            if frame.mode == "I":
                frame = frame.point(lambda v: v * (1 / 255))
            image = frame.convert("RGB")
            if images and image.size != images[0].size:
                continue
            images.append(image)
            masks.append(_frame_mask(frame))
            if source.format == "MPO":
                break
    return images, masks


def _frame_mask(frame: Image.Image) -> Image.Image:
    """Inverted alpha of a frame, or the 64×64 zero mask when it has no transparency."""
    if "A" in frame.getbands():
        return mask_from_channel(frame.getchannel("A"), inverted=True)
    if frame.mode == "P" and "transparency" in frame.info:
        return mask_from_channel(frame.convert("RGBA").getchannel("A"), inverted=True)
    return solid_mask(0.0, EMPTY_MASK_SIZE)


def png_metadata(prompt: Any, extra_pnginfo: dict[str, Any] | None) -> PngInfo:
    """PNG text chunks ``prompt`` and one per ``extra_pnginfo`` entry (the UI workflow)."""
    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    for key, value in (extra_pnginfo or {}).items():
        info.add_text(key, json.dumps(value))
    return info


def apng_metadata(prompt: Any, extra_pnginfo: dict[str, Any] | None) -> PngInfo:
    """The same metadata as ``comf`` chunks after the image data, as SaveAnimatedPNG writes."""
    info = PngInfo()
    entries = ([("prompt", prompt)] if prompt is not None else []) + list(
        (extra_pnginfo or {}).items()
    )
    for key, value in entries:
        payload = key.encode("latin-1") + b"\0" + json.dumps(value).encode("latin-1")
        info.add(b"comf", payload, after_idat=True)
    return info


def webp_exif(image: Image.Image, prompt: Any, extra_pnginfo: dict[str, Any] | None) -> Image.Exif:
    """EXIF tags carrying the prompt (0x0110) and the extra entries (0x010F downwards)."""
    exif = image.getexif()
    if prompt is not None:
        exif[0x0110] = f"prompt:{json.dumps(prompt)}"
    for offset, (key, value) in enumerate((extra_pnginfo or {}).items()):
        exif[0x010F - offset] = f"{key}:{json.dumps(value)}"
    return exif
