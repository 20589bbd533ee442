"""Node implementations of the stand-in, computed with Pillow.

Each implementation is registered under its ComfyUI class name and called as
``function(context, **inputs)``; it returns a :class:`NodeResult` holding the output values
(by output slot) and, for output nodes, the ``ui`` dict sent in ``executed`` and kept in history.
Nodes of a loaded catalog without an implementation here raise :class:`NodeNotImplementedError`
when they run. ``ImageBlur`` sleeps ``node_delay`` seconds first (reporting progress), to make
workflows slow on purpose; an interrupt cuts that sleep short.
"""

from __future__ import annotations

import random
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageFilter, ImageOps

from . import imaging
from .files import StandinDirs, annotated_path, file_digest, save_target
from .imaging import Images, Masks

PROGRESS_STEPS = 10
"""Number of ``progress`` events a delayed ImageBlur reports."""


class NodeNotImplementedError(RuntimeError):
    """The node class is in the catalog but the stand-in cannot execute it."""


@dataclass
class NodeContext:
    """What a node sees besides its inputs: its id, the folders, the delay, progress reporting."""

    node_id: str
    dirs: StandinDirs
    node_delay: float = 0.0
    interrupt: threading.Event = field(default_factory=threading.Event)
    report_progress: Callable[[int, int], None] = lambda value, total: None


@dataclass
class NodeResult:
    """Output values by slot, and the ``ui`` payload of an output node."""

    outputs: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None


NodeFunction = Callable[..., NodeResult]
InputCheck = Callable[[StandinDirs, Any], bool | str]

_NODES: dict[str, NodeFunction] = {}

INPUT_CHECKS: dict[str, dict[str, InputCheck]] = {}
"""Custom validation per class and input (ComfyUI's ``VALIDATE_INPUTS``): True or a message.
An input with a custom check skips the generic range and choice checks, as in ComfyUI."""


def implemented_classes() -> list[str]:
    return sorted(_NODES)


def run_node(class_type: str, context: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """Execute one node; raises :class:`NodeNotImplementedError` for unknown classes."""
    function = _NODES.get(class_type)
    if function is None:
        raise NodeNotImplementedError(
            f"The ComfyUI stand-in does not implement node class '{class_type}' "
            f"(it implements: {', '.join(implemented_classes())})"
        )
    return function(context, **inputs)


def change_marker(class_type: str, dirs: StandinDirs, inputs: dict[str, Any]) -> Any:
    """ComfyUI's ``IS_CHANGED``: part of the cache key; LoadImage hashes its file."""
    if class_type != "LoadImage":
        return None
    path = annotated_path(dirs, inputs.get("image", ""))
    if path is None or not path.is_file():
        return object()  # never equal: never served from cache
    return file_digest(path)


def _node(class_type: str) -> Callable[[NodeFunction], NodeFunction]:
    def register(function: NodeFunction) -> NodeFunction:
        _NODES[class_type] = function
        return function

    return register


# --------------------------------------------------------------------------- sources


@_node("EmptyImage")
def empty_image(
    ctx: NodeContext, width: int, height: int, batch_size: int = 1, color: int = 0
) -> NodeResult:
    image = Image.new("RGB", (width, height), imaging.rgb_of(color))
    return NodeResult(([image.copy() for _ in range(batch_size)],))


@_node("LoadImage")
def load_image(ctx: NodeContext, image: str) -> NodeResult:
    path = annotated_path(ctx.dirs, image)
    if path is None:
        raise FileNotFoundError(f"Invalid image file: {image}")
    return NodeResult(imaging.load_frames(path))


def _check_input_image(dirs: StandinDirs, value: Any) -> bool | str:
    path = annotated_path(dirs, value) if isinstance(value, str) else None
    if path is None or not path.exists():
        return f"Invalid image file: {value}"
    return True


INPUT_CHECKS["LoadImage"] = {"image": _check_input_image}


@_node("SolidMask")
def solid_mask(ctx: NodeContext, value: float, width: int, height: int) -> NodeResult:
    return NodeResult(([imaging.solid_mask(value, (width, height))],))


# ---------------------------------------------------------------------- image ops


@_node("ImageInvert")
def image_invert(ctx: NodeContext, image: Images) -> NodeResult:
    return NodeResult(([ImageOps.invert(frame) for frame in image],))


@_node("ImageScaleBy")
def image_scale_by(
    ctx: NodeContext, image: Images, upscale_method: str, scale_by: float
) -> NodeResult:
    width, height = image[0].size
    size = (round(width * scale_by), round(height * scale_by))
    return NodeResult(([imaging.resize(frame, *size, upscale_method) for frame in image],))


@_node("ImageScale")
def image_scale(
    ctx: NodeContext, image: Images, upscale_method: str, width: int, height: int, crop: str
) -> NodeResult:
    if width == 0 and height == 0:
        return NodeResult((image,))
    old_width, old_height = image[0].size
    if width == 0:
        width = max(1, round(old_width * height / old_height))
    elif height == 0:
        height = max(1, round(old_height * width / old_width))
    scaled = [imaging.resize(frame, width, height, upscale_method, crop) for frame in image]
    return NodeResult((scaled,))


@_node("ImageAddNoise")
def image_add_noise(ctx: NodeContext, image: Images, seed: int, strength: float) -> NodeResult:
    """Seeded noise blended over every frame, different per frame (ComfyUI adds Gaussian
    noise of the whole batch's shape; uniform noise and a blend are close enough here)."""
    rng = random.Random(seed)
    noisy = []
    for frame in image:
        noise = Image.frombytes("RGB", frame.size, rng.randbytes(frame.width * frame.height * 3))
        noisy.append(Image.blend(frame.convert("RGB"), noise, strength))
    return NodeResult((noisy,))


@_node("ImageBlur")
def image_blur(ctx: NodeContext, image: Images, blur_radius: int, sigma: float) -> NodeResult:
    _simulate_work(ctx)
    blur = ImageFilter.GaussianBlur(radius=sigma)
    return NodeResult(([frame.filter(blur) for frame in image],))


def _simulate_work(ctx: NodeContext) -> None:
    """Sleep ``node_delay`` in steps, reporting progress; return early once interrupted."""
    if ctx.node_delay <= 0:
        return
    for step in range(1, PROGRESS_STEPS + 1):
        if ctx.interrupt.wait(ctx.node_delay / PROGRESS_STEPS):
            return
        ctx.report_progress(step, PROGRESS_STEPS)


_BLEND_MODES: dict[str, Callable[[Image.Image, Image.Image], Image.Image]] = {
    "normal": lambda first, second: second,
    "multiply": ImageChops.multiply,
    "screen": ImageChops.screen,
    "overlay": ImageChops.overlay,
    "soft_light": ImageChops.soft_light,
    "difference": ImageChops.subtract,
}


@_node("ImageBlend")
def image_blend(
    ctx: NodeContext, image1: Images, image2: Images, blend_factor: float, blend_mode: str
) -> NodeResult:
    blended = []
    for first, second in imaging.pair_batches(image1, image2):
        if second.size != first.size:
            second = imaging.resize(second, *first.size, "bicubic", "center")
        mixed = _BLEND_MODES[blend_mode](first, second)
        blended.append(Image.blend(first, mixed, blend_factor))
    return NodeResult((blended,))


@_node("ImageBatch")
def image_batch(ctx: NodeContext, image1: Images, image2: Images) -> NodeResult:
    size = image1[0].size
    second = [
        frame if frame.size == size else imaging.resize(frame, *size, "bilinear", "center")
        for frame in image2
    ]
    return NodeResult((image1 + second,))


@_node("RepeatImageBatch")
def repeat_image_batch(ctx: NodeContext, image: Images, amount: int) -> NodeResult:
    return NodeResult((image * amount,))


@_node("ImageCompositeMasked")
def image_composite_masked(
    ctx: NodeContext,
    destination: Images,
    source: Images,
    x: int,
    y: int,
    resize_source: bool,
    mask: Masks | None = None,
) -> NodeResult:
    results = []
    for index, target in enumerate(destination):
        pasted = source[index % len(source)]
        if resize_source:
            pasted = pasted.resize(target.size, Image.Resampling.BILINEAR)
        result = target.copy()
        if mask is None:
            result.paste(pasted, (x, y))
        else:
            alpha = mask[index % len(mask)].resize(pasted.size, Image.Resampling.BILINEAR)
            result.paste(pasted, (x, y), imaging.mask_to_8bit(alpha))
        results.append(result)
    return NodeResult((results,))


# ---------------------------------------------------------------------------- masks


@_node("InvertMask")
def invert_mask(ctx: NodeContext, mask: Masks) -> NodeResult:
    return NodeResult(([imaging.invert_mask(frame) for frame in mask],))


@_node("MaskToImage")
def mask_to_image(ctx: NodeContext, mask: Masks) -> NodeResult:
    images = []
    for frame in mask:
        gray = imaging.mask_to_8bit(frame)
        images.append(Image.merge("RGB", (gray, gray, gray)))
    return NodeResult((images,))


_CHANNELS = ["red", "green", "blue", "alpha"]


@_node("ImageToMask")
def image_to_mask(ctx: NodeContext, image: Images, channel: str) -> NodeResult:
    index = _CHANNELS.index(channel)
    bands = image[0].getbands()
    if index >= len(bands):
        raise IndexError(f"index {index} is out of bounds for dimension 3 with size {len(bands)}")
    return NodeResult(([imaging.mask_from_channel(frame.split()[index]) for frame in image],))


# ---------------------------------------------------------------------------- saving


@_node("SaveImage")
def save_image(
    ctx: NodeContext,
    images: Images,
    filename_prefix: str = "ComfyUI",
    prompt: Any = None,
    extra_pnginfo: dict[str, Any] | None = None,
) -> NodeResult:
    refs = _save_pngs(ctx.dirs.output, "output", images, filename_prefix, 4, prompt, extra_pnginfo)
    return NodeResult(ui={"images": refs})


@_node("PreviewImage")
def preview_image(
    ctx: NodeContext,
    images: Images,
    prompt: Any = None,
    extra_pnginfo: dict[str, Any] | None = None,
) -> NodeResult:
    suffix = "".join(random.choices(string.ascii_lowercase, k=5))
    prefix = f"ComfyUI_temp_{suffix}"
    refs = _save_pngs(ctx.dirs.temp, "temp", images, prefix, 1, prompt, extra_pnginfo)
    return NodeResult(ui={"images": refs})


def _save_pngs(
    root: Path,
    folder_type: str,
    images: Images,
    filename_prefix: str,
    compress_level: int,
    prompt: Any,
    extra_pnginfo: dict[str, Any] | None,
) -> list[dict[str, str]]:
    """Save each frame as ``{prefix}_{counter:05}_.png``; return their file references."""
    target = save_target(root, filename_prefix, *images[0].size)
    metadata = imaging.png_metadata(prompt, extra_pnginfo)
    refs = []
    for batch_number, frame in enumerate(images):
        name = target.name(target.counter + batch_number, "png", batch_number)
        frame.save(target.folder / name, pnginfo=metadata, compress_level=compress_level)
        refs.append({"filename": name, "subfolder": target.subfolder, "type": folder_type})
    return refs


_WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}


@_node("SaveAnimatedWEBP")
def save_animated_webp(
    ctx: NodeContext,
    images: Images,
    filename_prefix: str,
    fps: float,
    lossless: bool,
    quality: int,
    method: str,
    prompt: Any = None,
    extra_pnginfo: dict[str, Any] | None = None,
) -> NodeResult:
    target = save_target(ctx.dirs.output, filename_prefix, *images[0].size)
    name = target.name(target.counter, "webp")
    images[0].save(
        target.folder / name,
        save_all=True,
        append_images=images[1:],
        duration=int(1000.0 / fps),
        exif=imaging.webp_exif(images[0], prompt, extra_pnginfo),
        lossless=lossless,
        quality=quality,
        method=_WEBP_METHODS[method],
    )
    ref = {"filename": name, "subfolder": target.subfolder, "type": "output"}
    return NodeResult(ui={"images": [ref], "animated": [len(images) != 1]})


@_node("SaveAnimatedPNG")
def save_animated_png(
    ctx: NodeContext,
    images: Images,
    filename_prefix: str,
    fps: float,
    compress_level: int,
    prompt: Any = None,
    extra_pnginfo: dict[str, Any] | None = None,
) -> NodeResult:
    target = save_target(ctx.dirs.output, filename_prefix, *images[0].size)
    name = target.name(target.counter, "png")
    images[0].save(
        target.folder / name,
        format="PNG",
        save_all=True,
        append_images=images[1:],
        duration=int(1000.0 / fps),
        pnginfo=imaging.apng_metadata(prompt, extra_pnginfo),
        compress_level=compress_level,
    )
    ref = {"filename": name, "subfolder": target.subfolder, "type": "output"}
    return NodeResult(ui={"images": [ref], "animated": [True]})
