"""Model files: fetched once into the shared models volume, linked into ComfyUI's folders."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .config import ModelFile


class ModelFetchError(RuntimeError):
    pass


def volume_path(model: ModelFile, models_dir: str | os.PathLike[str]) -> Path:
    return Path(models_dir) / model.folder / model.filename


def fetch_models(
    models: Iterable[ModelFile], models_dir: str | os.PathLike[str], *, workers: int = 4
) -> list[Path]:
    """Download missing models into the volume, ``workers`` at a time; present files are skipped.

    Returns the paths downloaded. Runs as an image build step with the volume mounted, so one
    copy serves every app that names the same file. Each file streams straight into the volume
    (no Hugging Face cache copy) as ``<name>.partial``, resumed with an HTTP range where an
    earlier attempt stopped, and is renamed into place once complete (and its sha256 matches).
    Members of a .zip archive (``unpack``) share one download of it, into the volume's
    ``.archives/``; each member wanted is extracted the same way and the archive removed.
    Every failure is reported together after the others finished.
    """
    missing = [m for m in models if not volume_path(m, models_dir).exists()]
    groups: dict[tuple, list[ModelFile]] = {}
    for model in missing:
        key = _archive_key(model) if model.unpack else ("file", model.folder, model.filename)
        groups.setdefault(key, []).append(model)
    failures: list[str] = []
    fetched: list[Path] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(_fetch_group, group, Path(models_dir)) for group in groups.values()]
        for future in futures:
            paths, errors = future.result()
            fetched += paths
            failures += errors
    if failures:
        raise ModelFetchError("; ".join(failures))
    return fetched


def _fetch_group(group: list[ModelFile], models_dir: Path) -> tuple[list[Path], list[str]]:
    """One download: a file, or an archive and its members; (paths, failures by file)."""
    try:
        if group[0].unpack:
            return _fetch_archive(group, models_dir)
        return [_fetch_one(group[0], models_dir)], []
    except Exception as exc:  # noqa: BLE001 - each failure is reported, none hidden
        return [], [f"{m.folder}/{m.filename}: {exc}" for m in group]


def _fetch_one(model: ModelFile, models_dir: Path) -> Path:
    target = volume_path(model, models_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    url, headers = _source(model)
    _download(url, partial, headers)
    if model.sha256:
        _verify(partial, model.sha256, model)
    partial.replace(target)
    return target


def _archive_key(model: ModelFile) -> tuple:
    return ("archive", model.url, model.repo, model.file, model.revision, model.repo_type)


def _fetch_archive(members: list[ModelFile], models_dir: Path) -> tuple[list[Path], list[str]]:
    """Download the archive once, extract each member wanted, remove the archive."""
    url, headers = _source(members[0])
    digest = hashlib.sha256(repr(_archive_key(members[0])).encode()).hexdigest()[:16]
    partial = models_dir / ".archives" / f"{digest}.zip.partial"  # resumed, never kept
    partial.parent.mkdir(parents=True, exist_ok=True)
    _download(url, partial, headers)
    paths: list[Path] = []
    failures: list[str] = []
    try:
        with zipfile.ZipFile(partial) as zf:
            for model in members:
                try:
                    paths.append(_extract(zf, model, models_dir))
                except ModelFetchError as exc:
                    failures.append(f"{model.folder}/{model.filename}: {exc}")
    except zipfile.BadZipFile as exc:
        bad = f"{url} is not a zip archive ({exc})"
        failures += [f"{m.folder}/{m.filename}: {bad}" for m in members]
    finally:
        partial.unlink(missing_ok=True)
    return paths, failures


def _archive_member(names: list[str], wanted: str) -> str:
    """The member ``wanted`` names: its exact path, or the one entry whose name ends with it."""
    if wanted in names:
        return wanted
    found = [n for n in names if n.endswith("/" + wanted)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ModelFetchError(f"{wanted!r} matches {len(found)} members: {', '.join(found[:5])}")
    files = [n for n in names if not n.endswith("/")]
    shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
    raise ModelFetchError(f"the archive has no member {wanted!r} (it holds {shown or 'nothing'})")


def _extract(zf: zipfile.ZipFile, model: ModelFile, models_dir: Path) -> Path:
    """One member into the volume, as a download is: ``.partial``, digest, rename. The member's
    path in the archive is never a destination (no writing outside the model's folder)."""
    member = _archive_member(zf.namelist(), model.unpack or "")
    target = volume_path(model, models_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with zf.open(member) as source, partial.open("wb") as out:
        shutil.copyfileobj(source, out, 1 << 22)
    if model.sha256:
        _verify(partial, model.sha256, model)
    partial.replace(target)
    return target


def _source(model: ModelFile) -> tuple[str, dict[str, str]]:
    """The file's URL and request headers (a Hugging Face token when the image has one)."""
    if model.url:
        return model.url, {}
    from huggingface_hub import hf_hub_url  # only in the image build step
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(model.repo, model.file, revision=model.revision, repo_type=model.repo_type)
    return url, build_hf_headers()


def _download(url: str, partial: Path, headers: dict[str, str], attempts: int = 6) -> None:
    """Stream ``url`` into ``partial``, resuming from its current size after a broken transfer."""
    import httpx

    last: Exception | None = None
    for attempt in range(attempts):
        have = partial.stat().st_size if partial.exists() else 0
        ranged = {**headers, "Range": f"bytes={have}-"} if have else headers
        try:
            with httpx.stream(
                "GET", url, headers=ranged, follow_redirects=True, timeout=60
            ) as response:
                if have and response.status_code == 416:  # nothing left past what we have
                    return
                response.raise_for_status()
                resumed = have and response.status_code == 206
                with partial.open("ab" if resumed else "wb", buffering=1 << 22) as out:
                    for chunk in response.iter_bytes():  # as it arrives: a break loses little
                        out.write(chunk)
            return
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code < 500 and exc.response.status_code != 429:
                raise ModelFetchError(f"{url}: HTTP {exc.response.status_code}") from None
            last = exc
        except httpx.TransportError as exc:
            last = exc
        time.sleep(min(30.0, 0.5 * 2**attempt))
    raise ModelFetchError(f"{url}: gave up after {attempts} attempts: {last!r}")


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
