"""Folders and file rules of the ComfyUI stand-in: input/output/temp, save names, content types.

ComfyUI keeps uploads in ``input/``, saved results in ``output/`` and previews in ``temp/``
(emptied at start-up). Files are addressed by ``(filename, subfolder, type)`` and never outside
their folder; saved files are named ``{prefix}_{counter:05}_.{ext}`` with a counter per prefix
that continues from the files already present.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

FOLDER_TYPES = ("input", "output", "temp")
"""The ``type`` values a file reference may carry."""

_CONTENT_TYPES = {
    ".png": "image/png",
    ".webp": "image/webp",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".wav": "audio/x-wav",
    ".json": "application/json",
}
_DOWNLOAD_ONLY = {"text/html", "text/html-sandboxed", "application/xhtml+xml"}
_DOWNLOAD_ONLY |= {"text/javascript", "text/css"}


@dataclass(frozen=True)
class StandinDirs:
    """The base directory of a stand-in and its ``input``, ``output`` and ``temp`` folders."""

    base: Path

    @property
    def input(self) -> Path:
        return self.base / "input"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def temp(self) -> Path:
        return self.base / "temp"

    def create(self) -> None:
        """Create the folders; empty ``temp`` like ComfyUI does at start-up."""
        shutil.rmtree(self.temp, ignore_errors=True)
        for folder in (self.input, self.output, self.temp):
            folder.mkdir(parents=True, exist_ok=True)

    def by_type(self, folder_type: str | None) -> Path | None:
        """The folder of a ``type`` value (``None`` when the type is unknown)."""
        if folder_type not in FOLDER_TYPES:
            return None
        return self.base / folder_type


def is_inside(root: Path, path: Path) -> bool:
    """Whether ``path`` resolves to ``root`` or somewhere below it."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(root))


def split_annotation(name: str) -> tuple[str, str | None]:
    """Split ComfyUI's annotated names: ``"a.png [output]"`` -> ``("a.png", "output")``."""
    for folder_type in FOLDER_TYPES:
        suffix = f" [{folder_type}]"
        if name.endswith(suffix):
            return name[: -len(suffix)], folder_type
    return name, None


def annotated_path(dirs: StandinDirs, name: str, default_type: str = "input") -> Path | None:
    """The file an annotated name (``sub/a.png``, ``a.png [temp]``) names, if inside its folder."""
    plain, folder_type = split_annotation(name)
    root = dirs.by_type(folder_type or default_type)
    if root is None or not plain:
        return None
    path = root / plain
    return path if is_inside(root, path) else None


def list_input_images(input_dir: Path) -> list[str]:
    """Top-level files of the input folder that look like images, sorted (LoadImage's choices)."""
    if not input_dir.is_dir():
        return []
    names = [entry.name for entry in input_dir.iterdir() if entry.is_file()]
    return sorted(name for name in names if content_type(name).startswith("image/"))


def content_type(filename: str) -> str:
    """The content type ``/view`` answers with; active web content is served as a download."""
    suffix = Path(filename).suffix.lower()
    guessed = _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(filename)[0]
    if not guessed or guessed in _DOWNLOAD_ONLY:
        return "application/octet-stream"
    return guessed


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class SaveTarget:
    """Where a save node writes: folder, base file name, first counter, subfolder."""

    folder: Path
    filename: str
    counter: int
    subfolder: str

    def name(self, counter: int, extension: str, batch_number: int = 0) -> str:
        """``{filename}_{counter:05}_.{extension}`` with ``%batch_num%`` filled in."""
        base = self.filename.replace("%batch_num%", str(batch_number))
        return f"{base}_{counter:05}_.{extension}"


def save_target(root: Path, filename_prefix: str, width: int = 0, height: int = 0) -> SaveTarget:
    """Resolve a ``filename_prefix`` (``video/clip``) below ``root`` and find its next counter.

    The counter is one more than the highest ``{name}_{NNNNN}_…`` already present in the
    folder, whatever the extension. Raises ``ValueError`` for a prefix leaving ``root``.
    """
    prefix = _fill_prefix_variables(filename_prefix, width, height)
    normalized = os.path.normpath(prefix)
    subfolder = os.path.dirname(normalized)
    filename = os.path.basename(normalized)
    folder = root / subfolder
    if not is_inside(root, folder):
        raise ValueError(
            "Saving image outside the output folder is not allowed.\n"
            f" full_output_folder: {os.path.abspath(folder)}\n         output_dir: {root}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    counters = [_counter_of(entry, filename) for entry in os.listdir(folder)]
    highest = max((c for c in counters if c is not None), default=0)
    return SaveTarget(folder, filename, highest + 1, subfolder)


def _counter_of(entry: str, filename: str) -> int | None:
    """The counter of ``{filename}_{NNNNN}…`` files (0 when not numeric), else None."""
    head = entry[: len(filename) + 1]
    if os.path.normcase(head[:-1]) != os.path.normcase(filename) or not head.endswith("_"):
        return None
    try:
        return int(entry[len(filename) + 1 :].split("_")[0])
    except ValueError:
        return 0


def _fill_prefix_variables(prefix: str, width: int, height: int) -> str:
    """Replace ``%width%``, ``%height%``, ``%year%`` … ``%second%`` in a filename prefix."""
    if "%" not in prefix:
        return prefix
    now = time.localtime()
    values = {
        "width": str(width),
        "height": str(height),
        "year": str(now.tm_year),
        "month": f"{now.tm_mon:02}",
        "day": f"{now.tm_mday:02}",
        "hour": f"{now.tm_hour:02}",
        "minute": f"{now.tm_min:02}",
        "second": f"{now.tm_sec:02}",
    }
    for key, value in values.items():
        prefix = prefix.replace(f"%{key}%", value)
    return prefix
