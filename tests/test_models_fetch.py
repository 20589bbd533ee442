"""Model downloads into the volume: straight there, several at once, resumed after a break."""

from __future__ import annotations

import hashlib
import http.server
import io
import sys
import threading
import types
import zipfile
from pathlib import Path

import pytest

from generator.runtime.config import ModelFile
from generator.runtime.models import ModelFetchError, fetch_models

BODY = bytes(range(256)) * 4096  # 1 MiB


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


# buffalo_l.zip's layout: files at the top, plus one in a folder and a path that escapes
ARCHIVE = _zip(
    {
        "det_10g.onnx": b"detector",
        "w600k_r50.onnx": b"recognition",
        "sub/genderage.onnx": b"attributes",
        "../escape.onnx": b"outside",
    }
)


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves BODY at any path with HTTP ranges; the first full GET of /flaky breaks midway;
    /pair/* answer only once two are in flight (parallel downloads), /missing is a 404."""

    broken: set[str] = set()
    pair = threading.Barrier(2, timeout=10)
    ranges: list[str] = []
    gets: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.gets.append(self.path)
        if self.path == "/missing":
            self.send_error(404)
            return
        if self.path.endswith(".zip"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(ARCHIVE)))
            self.end_headers()
            self.wfile.write(ARCHIVE)
            return
        if self.path.startswith("/pair/"):
            self.pair.wait()
        start = 0
        if "Range" in self.headers:
            self.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(BODY):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(BODY) - start))
        self.end_headers()
        if self.path == "/flaky" and self.path not in self.broken:
            self.broken.add(self.path)
            self.wfile.write(BODY[start : start + len(BODY) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)  # the transfer breaks
            return
        self.wfile.write(BODY[start:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def files():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Files.broken.clear()
    _Files.ranges.clear()
    _Files.gets.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_broken_transfer_resumes_where_it_stopped(files: str, tmp_path: Path) -> None:
    model = ModelFile(folder="checkpoints", filename="a.safetensors", url=f"{files}/flaky")
    assert fetch_models([model], tmp_path) == [tmp_path / "checkpoints" / "a.safetensors"]
    assert (tmp_path / "checkpoints" / "a.safetensors").read_bytes() == BODY
    assert _Files.ranges == [f"bytes={len(BODY) // 3}-"]  # only the rest was asked for again


def test_a_partial_left_by_an_earlier_build_is_completed(files: str, tmp_path: Path) -> None:
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "v.safetensors.partial").write_bytes(BODY[:1000])
    model = ModelFile(folder="vae", filename="v.safetensors", url=f"{files}/v")
    fetch_models([model], tmp_path)
    assert (tmp_path / "vae" / "v.safetensors").read_bytes() == BODY
    assert not (tmp_path / "vae" / "v.safetensors.partial").exists()


def test_models_download_in_parallel(files: str, tmp_path: Path) -> None:
    """Each /pair/ answer waits until the other request arrived: one at a time would fail."""
    models = [
        ModelFile(folder="loras", filename=f"{n}.safetensors", url=f"{files}/pair/{n}")
        for n in "ab"
    ]
    assert len(fetch_models(models, tmp_path, workers=2)) == 2


def test_hugging_face_files_stream_into_the_volume_not_the_hub_cache(
    files: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = []

    def hf_hub_url(repo_id: str, filename: str, **kwargs: object) -> str:
        asked.append((repo_id, filename, kwargs["revision"]))
        return f"{files}/{filename}"

    hub = types.ModuleType("huggingface_hub")  # the image has it; the test needs only two names
    hub.hf_hub_url = hf_hub_url  # type: ignore[attr-defined]
    utils = types.ModuleType("huggingface_hub.utils")
    utils.build_hf_headers = lambda: {"authorization": "Bearer t"}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    monkeypatch.setitem(sys.modules, "huggingface_hub.utils", utils)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    model = ModelFile(folder="unet", filename="u.safetensors", repo="o/r", file="w.safetensors")
    fetch_models([model], tmp_path / "volume")
    assert asked == [("o/r", "w.safetensors", "main")]
    assert (tmp_path / "volume" / "unet" / "u.safetensors").read_bytes() == BODY
    assert not (tmp_path / "hub-cache").exists()  # one copy: the volume's


def test_every_failure_is_reported_and_the_others_still_land(files: str, tmp_path: Path) -> None:
    ok = ModelFile(folder="vae", filename="ok.safetensors", url=f"{files}/ok")
    gone = ModelFile(folder="vae", filename="gone.safetensors", url=f"{files}/missing")
    with pytest.raises(ModelFetchError, match="vae/gone.safetensors: .*HTTP 404"):
        fetch_models([gone, ok], tmp_path)
    assert (tmp_path / "vae" / "ok.safetensors").read_bytes() == BODY


def _member(files: str, name: str, **kw: str) -> ModelFile:
    return ModelFile(
        folder="insightface/models/buffalo_l",
        filename=name.rsplit("/", 1)[-1],
        url=f"{files}/buffalo_l.zip",
        unpack=name,
        **kw,
    )


def test_members_of_an_archive_share_one_download_and_land_as_files(
    files: str, tmp_path: Path
) -> None:
    wanted = [
        _member(files, "det_10g.onnx"),
        _member(files, "w600k_r50.onnx", sha256=hashlib.sha256(b"recognition").hexdigest()),
        _member(files, "genderage.onnx"),  # found by its name inside a folder
    ]
    fetched = fetch_models(wanted, tmp_path)
    folder = tmp_path / "insightface" / "models" / "buffalo_l"
    assert sorted(p.name for p in fetched) == ["det_10g.onnx", "genderage.onnx", "w600k_r50.onnx"]
    assert (folder / "det_10g.onnx").read_bytes() == b"detector"
    assert (folder / "genderage.onnx").read_bytes() == b"attributes"
    assert _Files.gets == ["/buffalo_l.zip"]  # one download for three files
    assert not any((tmp_path / ".archives").iterdir())  # the archive is not kept
    assert (
        not (tmp_path / "escape.onnx").exists() and not (tmp_path.parent / "escape.onnx").exists()
    )
    fetch_models(wanted, tmp_path)  # all present: nothing is downloaded again
    assert _Files.gets == ["/buffalo_l.zip"]


def test_a_member_the_archive_lacks_or_a_wrong_digest_is_reported_by_file(
    files: str, tmp_path: Path
) -> None:
    wanted = [
        _member(files, "det_10g.onnx"),
        _member(files, "1k3d68.onnx"),
        _member(files, "w600k_r50.onnx", sha256="0" * 64),
    ]
    with pytest.raises(ModelFetchError) as caught:
        fetch_models(wanted, tmp_path)
    message = str(caught.value)
    assert "insightface/models/buffalo_l/1k3d68.onnx: the archive has no member '1k3d68.onnx'" in (
        message
    )
    assert "det_10g.onnx, w600k_r50.onnx" in message  # what it does hold
    assert "w600k_r50.onnx: sha256" in message
    folder = tmp_path / "insightface" / "models" / "buffalo_l"
    assert (folder / "det_10g.onnx").read_bytes() == b"detector"  # the others still land
    assert not (folder / "w600k_r50.onnx").exists()
