"""Node catalog of the stand-in: node definitions in ComfyUI's ``/object_info`` format.

The built-in catalog describes exactly the nodes :mod:`generator.standin.nodes` implements, with
the definitions ComfyUI 0.3.64 reports for them. A full catalog (such as a recorded
``object_info.json``, possibly merged with a custom-node one) can be loaded instead, so prompts
are validated against every real node; its classes the stand-in does not implement fail when
they run.

Like ComfyUI, the choices of an ``image_upload`` combo (``LoadImage.image``) are the image files
currently in the input folder, read at each request.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import list_input_images

CatalogFiles = Path | Sequence[Path] | None
"""``object_info.json`` file(s) to load; several are merged, later ones win (None: built-in)."""

INPUT_CATEGORIES = ("required", "optional")
"""Input sections a prompt may set (``hidden`` inputs are filled by the server)."""

_METADATA_HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}

_SAVE_PREFIX_TOOLTIP = (
    "The prefix for the file to save. This may include formatting information such as "
    "%date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes."
)


@dataclass(frozen=True)
class InputField:
    """One settable input of a node class: name, section, declared type and its options."""

    name: str
    category: str
    type: str | list[Any]
    options: dict[str, Any]

    @property
    def config(self) -> list[Any]:
        """``[type, options]`` as ComfyUI echoes it in validation errors."""
        return [self.type, self.options]


class Catalog:
    """Node class definitions by class name, with live file choices for upload combos."""

    def __init__(self, definitions: Mapping[str, dict[str, Any]], input_dir: Path) -> None:
        self._definitions = dict(definitions)
        self._input_dir = input_dir

    @classmethod
    def load(cls, input_dir: Path, object_info: CatalogFiles = None) -> Catalog:
        """The built-in catalog, or the merged ``object_info.json`` files (core + custom nodes)."""
        files = [object_info] if isinstance(object_info, str | Path) else list(object_info or [])
        if not files:
            return cls(builtin_definitions(), input_dir)
        definitions: dict[str, dict[str, Any]] = {}
        for path in files:
            definitions |= json.loads(Path(path).read_text())
        return cls(definitions, input_dir)

    def __contains__(self, class_type: object) -> bool:
        return isinstance(class_type, str) and class_type in self._definitions

    def __iter__(self) -> Iterator[str]:
        return iter(self._definitions)

    def definition(self, class_type: str) -> dict[str, Any]:
        """The class's ``/object_info`` entry with upload combos listing the input folder."""
        entry = copy.deepcopy(self._definitions[class_type])
        for section in entry.get("input", {}).values():
            for spec in section.values():
                if _lists_input_images(spec):
                    spec[0] = list_input_images(self._input_dir)
        return entry

    def object_info(self) -> dict[str, dict[str, Any]]:
        """Every definition, as ``GET /object_info`` answers."""
        return {class_type: self.definition(class_type) for class_type in self._definitions}

    def is_output_node(self, class_type: str) -> bool:
        return self._definitions[class_type].get("output_node") is True

    def output_types(self, class_type: str) -> tuple[Any, ...]:
        """Declared output types, as a tuple (indexing past the end raises IndexError)."""
        return tuple(self._definitions[class_type].get("output", []))

    def input_fields(self, class_type: str) -> list[InputField]:
        """Required then optional inputs, in the declared order, with live combo choices."""
        inputs = self.definition(class_type).get("input", {})
        fields = []
        for category in INPUT_CATEGORIES:
            for name, spec in inputs.get(category, {}).items():
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                fields.append(InputField(name, category, spec[0], options))
        return fields

    def hidden_inputs(self, class_type: str) -> dict[str, str]:
        """Hidden inputs and what fills them (``PROMPT``, ``EXTRA_PNGINFO``, ``UNIQUE_ID``)."""
        hidden = self._definitions[class_type].get("input", {}).get("hidden", {})
        return {name: kind[0] if isinstance(kind, list) else kind for name, kind in hidden.items()}


def _lists_input_images(spec: list[Any]) -> bool:
    """Whether an input spec is a combo of files uploaded to the input folder."""
    if len(spec) < 2 or not isinstance(spec[0], list) or not isinstance(spec[1], dict):
        return False
    return spec[1].get("image_upload") is True and spec[1].get("image_folder", "input") == "input"


# ---------------------------------------------------------------- built-in definitions


def builtin_definitions() -> dict[str, dict[str, Any]]:
    """``/object_info`` entries of the implemented nodes, as ComfyUI 0.3.64 reports them."""
    return {entry["name"]: copy.deepcopy(entry) for entry in _BUILTIN}


def _int(default: int, low: int, high: int, step: int | None = 1, **extra: Any) -> list[Any]:
    options: dict[str, Any] = {"default": default, "min": low, "max": high}
    if step is not None:
        options["step"] = step
    return ["INT", options | extra]


def _float(default: float, low: float, high: float, step: float) -> list[Any]:
    return ["FLOAT", {"default": default, "min": low, "max": high, "step": step}]


def _node(
    name: str,
    display_name: str | None,
    category: str,
    *,
    required: dict[str, list[Any]],
    optional: dict[str, list[Any]] | None = None,
    hidden: dict[str, str] | None = None,
    outputs: tuple[str, ...] = (),
    module: str = "nodes",
    description: str = "",
    output_node: bool = False,
    schema_v3: bool = False,
) -> dict[str, Any]:
    """One definition; ``schema_v3`` adds the fields ComfyUI's newer node schema reports."""
    sections: dict[str, dict[str, Any]] = {"required": required}
    if optional:
        sections["optional"] = optional
    if hidden:
        sections["hidden"] = hidden
    entry: dict[str, Any] = {
        "input": sections,
        "input_order": {key: list(value) for key, value in sections.items()},
        "output": list(outputs),
        "output_is_list": [False] * len(outputs),
        "output_name": list(outputs),
    }
    if schema_v3:
        entry["output_tooltips"] = [None] * len(outputs)
    entry |= {
        "name": name,
        "display_name": display_name,
        "description": description,
        "python_module": module,
        "category": category,
        "output_node": output_node,
    }
    if schema_v3:
        entry |= {"deprecated": False, "experimental": False, "api_node": False}
    return entry


_UPSCALE_METHODS = [["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]]
_SAVE_DESCRIPTION = "Saves the input images to your ComfyUI output directory."
_ANIMATION_INPUTS = {
    "images": ["IMAGE"],
    "filename_prefix": ["STRING", {"default": "ComfyUI"}],
    "fps": _float(6.0, 0.01, 1000.0, 0.01),
}

_BUILTIN: list[dict[str, Any]] = [
    _node(
        "EmptyImage",
        "EmptyImage",
        "image",
        required={
            "width": _int(512, 1, 16384),
            "height": _int(512, 1, 16384),
            "batch_size": _int(1, 1, 4096, step=None),
            "color": _int(0, 0, 0xFFFFFF, display="color"),
        },
        outputs=("IMAGE",),
    ),
    _node(
        "LoadImage",
        "Load Image",
        "image",
        required={"image": [[], {"image_upload": True}]},
        outputs=("IMAGE", "MASK"),
    ),
    _node(
        "ImageInvert", "Invert Image", "image", required={"image": ["IMAGE"]}, outputs=("IMAGE",)
    ),
    _node(
        "ImageScaleBy",
        "Upscale Image By",
        "image/upscaling",
        required={
            "image": ["IMAGE"],
            "upscale_method": _UPSCALE_METHODS,
            "scale_by": _float(1.0, 0.01, 8.0, 0.01),
        },
        outputs=("IMAGE",),
    ),
    _node(
        "ImageScale",
        "Upscale Image",
        "image/upscaling",
        required={
            "image": ["IMAGE"],
            "upscale_method": _UPSCALE_METHODS,
            "width": _int(512, 0, 16384),
            "height": _int(512, 0, 16384),
            "crop": [["disabled", "center"]],
        },
        outputs=("IMAGE",),
    ),
    _node(
        "ImageBlur",
        None,
        "image/postprocessing",
        required={
            "image": ["IMAGE", {}],
            "blur_radius": _int(1, 1, 31),
            "sigma": _float(1.0, 0.1, 10.0, 0.1),
        },
        outputs=("IMAGE",),
        module="comfy_extras.nodes_post_processing",
        schema_v3=True,
    ),
    _node(
        "ImageBlend",
        None,
        "image/postprocessing",
        required={
            "image1": ["IMAGE", {}],
            "image2": ["IMAGE", {}],
            "blend_factor": _float(0.5, 0.0, 1.0, 0.01),
            "blend_mode": [
                "COMBO",
                {
                    "multiselect": False,
                    "options": [
                        "normal",
                        "multiply",
                        "screen",
                        "overlay",
                        "soft_light",
                        "difference",
                    ],
                },
            ],
        },
        outputs=("IMAGE",),
        module="comfy_extras.nodes_post_processing",
        schema_v3=True,
    ),
    _node(
        "ImageAddNoise",
        "ImageAddNoise",
        "image",
        required={
            "image": ["IMAGE"],
            "seed": _int(
                0,
                0,
                2**64 - 1,
                step=None,
                control_after_generate=True,
                tooltip="The random seed used for creating the noise.",
            ),
            "strength": _float(0.5, 0.0, 1.0, 0.01),
        },
        outputs=("IMAGE",),
        module="comfy_extras.nodes_images",
    ),
    _node(
        "ImageBatch",
        "Batch Images",
        "image",
        required={"image1": ["IMAGE"], "image2": ["IMAGE"]},
        outputs=("IMAGE",),
    ),
    _node(
        "RepeatImageBatch",
        "RepeatImageBatch",
        "image/batch",
        required={"image": ["IMAGE"], "amount": _int(1, 1, 4096, step=None)},
        outputs=("IMAGE",),
        module="comfy_extras.nodes_images",
    ),
    _node(
        "ImageCompositeMasked",
        "ImageCompositeMasked",
        "image",
        required={
            "destination": ["IMAGE"],
            "source": ["IMAGE"],
            "x": _int(0, 0, 16384),
            "y": _int(0, 0, 16384),
            "resize_source": ["BOOLEAN", {"default": False}],
        },
        optional={"mask": ["MASK"]},
        outputs=("IMAGE",),
        module="comfy_extras.nodes_mask",
    ),
    _node(
        "SolidMask",
        "SolidMask",
        "mask",
        required={
            "value": _float(1.0, 0.0, 1.0, 0.01),
            "width": _int(512, 1, 16384),
            "height": _int(512, 1, 16384),
        },
        outputs=("MASK",),
        module="comfy_extras.nodes_mask",
    ),
    _node(
        "InvertMask",
        "InvertMask",
        "mask",
        required={"mask": ["MASK"]},
        outputs=("MASK",),
        module="comfy_extras.nodes_mask",
    ),
    _node(
        "MaskToImage",
        "Convert Mask to Image",
        "mask",
        required={"mask": ["MASK"]},
        outputs=("IMAGE",),
        module="comfy_extras.nodes_mask",
    ),
    _node(
        "ImageToMask",
        "Convert Image to Mask",
        "mask",
        required={"image": ["IMAGE"], "channel": [["red", "green", "blue", "alpha"]]},
        outputs=("MASK",),
        module="comfy_extras.nodes_mask",
    ),
    _node(
        "SaveImage",
        "Save Image",
        "image",
        required={
            "images": ["IMAGE", {"tooltip": "The images to save."}],
            "filename_prefix": ["STRING", {"default": "ComfyUI", "tooltip": _SAVE_PREFIX_TOOLTIP}],
        },
        hidden=_METADATA_HIDDEN,
        description=_SAVE_DESCRIPTION,
        output_node=True,
    ),
    _node(
        "PreviewImage",
        "Preview Image",
        "image",
        required={"images": ["IMAGE"]},
        hidden=_METADATA_HIDDEN,
        description=_SAVE_DESCRIPTION,
        output_node=True,
    ),
    _node(
        "SaveAnimatedWEBP",
        "SaveAnimatedWEBP",
        "image/animation",
        required=_ANIMATION_INPUTS
        | {
            "lossless": ["BOOLEAN", {"default": True}],
            "quality": _int(80, 0, 100, step=None),
            "method": [["default", "fastest", "slowest"]],
        },
        hidden=_METADATA_HIDDEN,
        module="comfy_extras.nodes_images",
        output_node=True,
    ),
    _node(
        "SaveAnimatedPNG",
        "SaveAnimatedPNG",
        "image/animation",
        required=_ANIMATION_INPUTS | {"compress_level": _int(4, 0, 9, step=None)},
        hidden=_METADATA_HIDDEN,
        module="comfy_extras.nodes_images",
        output_node=True,
    ),
]
