"""Model files: fetched once into the shared models volume, linked into ComfyUI's folders."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from .config import ModelFile


class ModelFetchError(RuntimeError):
    pass


def volume_path(model: ModelFile, models_dir: str | os.PathLike[str]) -> Path:
    return Path(models_dir) / model.folder / model.filename


def fetch_models(models: Iterable[ModelFile], models_dir: str | os.PathLike[str]) -> list[Path]:
    """Download missing models into the volume; files already present are skipped.

    Returns the paths downloaded. Runs as an image build step with the volume mounted, so one
    copy serves every app that names the same file.
    """
    fetched = []
    for model in models:
        target = volume_path(model, models_dir)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        if model.url:
            _download_url(model.url, partial)
        else:
            _download_hf(model, partial)
        if model.sha256:
            _verify(partial, model.sha256, model)
        partial.replace(target)
        fetched.append(target)
    return fetched


def link_models(
    models: Iterable[ModelFile],
    models_dir: str | os.PathLike[str],
    comfy_models_dir: str | os.PathLike[str],
) -> list[Path]:
    """Symlink each volume file into ``<comfy>/models/<folder>/<filename>``; returns the links."""
    links = []
    for model in models:
        source = volume_path(model, models_dir)
        link = Path(comfy_models_dir) / model.folder / model.filename
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.is_symlink() and Path(os.readlink(link)) == source:
                links.append(link)
                continue
            link.unlink()
        link.symlink_to(source)
        links.append(link)
    return links


def _download_hf(model: ModelFile, partial: Path) -> None:
    from huggingface_hub import hf_hub_download  # only in the image build step

    cached = hf_hub_download(
        repo_id=model.repo, filename=model.file, revision=model.revision, repo_type=model.repo_type
    )
    _copy(Path(cached), partial)


def _download_url(url: str, partial: Path) -> None:
    import httpx

    with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
        response.raise_for_status()
        with partial.open("wb") as out:
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)


def _copy(source: Path, target: Path) -> None:
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(1 << 24):
            dst.write(chunk)


def _verify(path: Path, expected: str, model: ModelFile) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        path.unlink()
        raise ModelFetchError(
            f"{model.folder}/{model.filename}: sha256 {digest.hexdigest()} != expected {expected}"
        )
