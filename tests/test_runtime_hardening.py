"""Abuse of a generated app, through its FastAPI against the stand-in: no request reads another's
data, passes a limit, runs up the bill or crashes a route."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import http.server
import io
import json
import struct
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers import REPO, import_generated
from PIL import Image
from test_runtime_app import DEMO, MONOLITH, client_for, leftover_files, png

from generator.runtime import urls
from generator.runtime.backends import RemoteComfy
from generator.runtime.config import Endpoint, Param, Target
from generator.runtime.media import MediaError, decode_image, probe_video
from generator.runtime.server import create_app

WORKFLOW_ROUTE = next(e for e in MONOLITH.ENDPOINTS if e.path == "/workflow")


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


def slow_upload_app(comfy: RemoteComfy, tmp_path: Path, settings=None):
    """/slow-upload (LoadImage -> three slow blurs -> SaveImage) next to the monolith's
    /workflow, on one ComfyUI: what one client uploads, another's graph tries to read."""
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}},
        "3": {"class_type": "ImageBlur", "inputs": {"image": ["2", 0], "blur_radius": 1, "sigma": 1.0}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "s"}},
    }  # fmt: skip
    (tmp_path / "slow.json").write_text(json.dumps(graph))

    class Body(DEMO.InvertRequest.__base__):
        image: str

    slow = Endpoint(path="/slow-upload", request_model=Body, workflow="slow.json",
                    params=(Param("image", kind="image", targets=(Target("1", "image"),)),),
                    outputs=("4",), timeout=30, prefix_nodes=("4",))  # fmt: skip
    (tmp_path / "empty").mkdir(exist_ok=True)
    route = dataclasses.replace(WORKFLOW_ROUTE, input_files=("shipped.png",))
    return create_app(settings or MONOLITH.SETTINGS, [slow, route], comfy, tmp_path)


def load_graph(name: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "p"}},
    }


# --- request files are private to their request --------------------------------------------------


async def test_two_concurrent_requests_never_see_each_others_files(slow_standin, tmp_path) -> None:
    comfy = RemoteComfy(slow_standin.url, base_dir=slow_standin.base_dir)
    (Path(slow_standin.base_dir) / "input" / "shipped.png").write_bytes(png_bytes(3, 3))
    app = slow_upload_app(comfy, tmp_path)
    input_dir = Path(slow_standin.base_dir) / "input"
    async with client_for(app) as client:
        first = asyncio.create_task(
            client.post("/slow-upload", json={"image": png(5, 5, (1, 2, 3))})
        )
        uploaded: list[Path] = []
        for _ in range(400):  # the first request's upload is on disk while it runs
            uploaded = [p for p in input_dir.rglob("*.png") if p.name != "shipped.png"]
            if uploaded:
                break
            await asyncio.sleep(0.01)
        (upload,) = uploaded
        assert upload.parent != input_dir  # a per-request subfolder, not the shared listing
        stolen_name = str(upload.relative_to(input_dir))
        catalog = httpx.get(f"{slow_standin.url}/object_info/LoadImage").json()
        choices = catalog["LoadImage"]["input"]["required"]["image"][0]
        assert choices == ["shipped.png"]  # ComfyUI's own listing does not show the upload
        answers = await asyncio.gather(
            *(
                client.post("/workflow", json={"workflow": load_graph(name)})
                for name in ("unknown.png", stolen_name, upload.name, f"{upload.name} [input]")
            )
        )
        shipped = await client.post("/workflow", json={"workflow": load_graph("shipped.png")})
        done = await first
    assert done.status_code == 200, done.text
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert upload.name not in answer.text and "ryla" not in answer.text  # nothing listed
        assert answer.json()["details"][0]["node_id"] == "1"
        assert "shipped.png" in answer.json()["details"][0]["message"]  # only the route's files
    assert shipped.status_code == 200, shipped.text
    assert leftover_files(Path(slow_standin.base_dir)) == [input_dir / "shipped.png"]
    await comfy.client.aclose()


async def test_client_graphs_cannot_load_request_or_output_files_through_links(
    standin, tmp_path
) -> None:
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    app = slow_upload_app(comfy, tmp_path)
    graph = load_graph("x.png")
    graph["1"]["inputs"]["image"] = ["9", 0]
    graph["9"] = {"class_type": "PrimitiveString", "inputs": {"value": "ryla/abc/x.png"}}
    async with client_for(app) as client:
        linked = await client.post("/workflow", json={"workflow": graph})
        annotated = await client.post("/workflow", json={"workflow": load_graph("a.png [output]")})
    for answer in (linked, annotated):
        assert answer.status_code == 422
        assert any(d["node_id"] == "1" for d in answer.json()["details"])
    assert standin.history() == {}
    await comfy.client.aclose()


# --- client graphs: cycles and the output budget ----------------------------------------------------


@pytest.fixture()
async def monolith(standin):
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    app = create_app(MONOLITH.SETTINGS, [WORKFLOW_ROUTE], comfy, MONOLITH.WORKFLOWS)
    async with client_for(app) as client:
        yield client
    await comfy.client.aclose()


EMPTY = {
    "class_type": "EmptyImage",
    "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
}
SAVE = {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}


@pytest.mark.parametrize(
    ("graph", "nodes"),
    [
        ({"2": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}}, "3": SAVE}, {"2"}),
        (
            {
                "2": {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}},
                "4": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
                "1": EMPTY,
                "3": SAVE,
            },
            {"2", "4"},
        ),
        (
            {
                "1": {
                    **EMPTY,
                    "inputs": {
                        **EMPTY["inputs"],
                        "width": 16384,
                        "height": 16384,
                        "batch_size": 4096,
                    },
                },
                "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                "3": SAVE,
            },
            {"1", "2"},
        ),
        (
            {
                "1": {**EMPTY, "inputs": {**EMPTY["inputs"], "width": 512, "height": 512}},
                "5": {
                    "class_type": "ImageScaleBy",
                    "inputs": {
                        "image": ["1", 0],
                        "upscale_method": "nearest-exact",
                        "scale_by": 8.0,
                    },
                },
                "6": {
                    "class_type": "ImageScaleBy",
                    "inputs": {
                        "image": ["5", 0],
                        "upscale_method": "nearest-exact",
                        "scale_by": 8.0,
                    },
                },
                "2": {"class_type": "ImageInvert", "inputs": {"image": ["6", 0]}},
                "3": SAVE,
            },
            {"6", "2"},
        ),
    ],
    ids=["self-loop", "cycle", "huge-canvas", "scaled-up"],
)
async def test_cycles_and_oversized_outputs_are_422_naming_the_nodes(
    monolith, standin, graph, nodes
) -> None:
    response = await monolith.post("/workflow", json={"workflow": graph})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"] == "validation_error"
    assert {d["node_id"] for d in body["details"]} >= nodes
    assert all(n in body["error"] for n in nodes)
    assert standin.history() == {}  # nothing was queued


async def test_a_graph_within_the_budget_runs(monolith) -> None:
    graph = {"1": {**EMPTY, "inputs": {**EMPTY["inputs"], "batch_size": 4}},
             "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}, "3": SAVE}  # fmt: skip
    response = await monolith.post("/workflow", json={"workflow": graph})
    assert response.status_code == 200, response.text
    assert len(response.json()["files"]) == 4


# --- body limit: streamed bodies ---------------------------------------------------------------------


async def test_a_streamed_body_is_refused_once_it_passes_the_limit(standin) -> None:
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    settings = dataclasses.replace(DEMO.SETTINGS, max_body_bytes=10_000)
    app = create_app(settings, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    sent = 0

    async def chunks():
        nonlocal sent
        for _ in range(10_000):  # 10 MB offered, no Content-Length
            sent += 1000
            yield b" " * 1000

    async with client_for(app) as client:
        for path in ("/invert", "/jobs/invert", "/scale"):
            sent = 0
            response = await client.post(path, content=chunks())
            assert response.status_code == 413, (path, response.text)
            assert response.json()["type"] == "payload_too_large"
            assert sent <= 12_000  # stopped reading right after the limit
    await comfy.client.aclose()


async def test_a_streamed_body_over_http_is_413(standin) -> None:
    import uvicorn

    from generator.standin import free_port

    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    settings = dataclasses.replace(DEMO.SETTINGS, max_body_bytes=100_000)
    app = create_app(settings, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            await asyncio.sleep(0.01)

        async def chunks():
            for _ in range(2_000):  # 20 MB, chunked
                yield b"x" * 10_000

        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(f"http://127.0.0.1:{port}/scale", content=chunks())
            assert response.status_code == 413
            declared = await client.post(f"http://127.0.0.1:{port}/invert", content=b"{" * 200_000)
            assert declared.status_code == 413
    finally:
        server.should_exit = True
        thread.join(5)
    await comfy.client.aclose()


async def test_a_route_may_allow_a_larger_body(standin) -> None:
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    scale = next(e for e in DEMO.ENDPOINTS if e.path == "/scale")
    big = dataclasses.replace(scale, max_body_bytes=2_000_000)
    settings = dataclasses.replace(DEMO.SETTINGS, max_body_bytes=2_000)
    app = create_app(settings, [big, DEMO.ENDPOINTS[0]], comfy, DEMO.WORKFLOWS)
    image = png(64, 64, (9, 9, 9)) + "=" * 0
    padding = {"image": image, "scale_by": 1.0}
    async with client_for(app) as client:
        body = json.dumps(padding) + " " * 5_000
        ok = await client.post("/scale", content=body, headers={"content-type": "application/json"})
        refused = await client.post(
            "/invert", content=" " * 5_000 + "{}", headers={"content-type": "application/json"}
        )
    assert ok.status_code == 200, ok.text
    assert refused.status_code == 413
    await comfy.client.aclose()


# --- URL inputs and webhooks ---------------------------------------------------------------------------

MALFORMED = [
    "http://127.0.0.1:99999/x",
    "http://127.0.0.1:abc/x",
    "http://127.0.0.1:0/x",
    "http://a..b/x",
    "http://" + "a" * 64 + ".example.com/x",
    "http://" + "a." * 130 + "com/x",
    "http://-a.example.com/x",
    "http://exa mple.com/x",
    "http://[::1/x",
    "http://user:pw@example.com/x",
    "http:///x",
    "https://%zz/x",
    "ftp://example.com/x",
    "javascript://example.com/x",
    "http://ex\u0000ample.com/x",
    "http://" + "x" * 3000,
]


@pytest.mark.parametrize("url", MALFORMED)
async def test_every_malformed_url_is_422_naming_the_field(standin, url, monkeypatch) -> None:
    monkeypatch.setenv("RYLA_WEBHOOK_SECRET", "s")
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    app = create_app(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        media = await client.post("/scale", json={"image": url})
        hook = await client.post("/jobs/invert", json={"webhook_url": url})
    for response, field in ((media, "image"), (hook, "webhook_url")):
        assert response.status_code == 422, (url, response.text)
        assert response.json()["details"][0]["field"] == field
    assert standin.history() == {}
    await comfy.client.aclose()


class Files(http.server.BaseHTTPRequestHandler):
    """/img.png, /r/<n> (redirect chain to the image), /loop, /slow, /big, /evil (to 127.0.0.2)."""

    hosts: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        Files.hosts.append(self.headers["Host"])
        port = self.server.server_address[1]
        if self.path.startswith("/r/"):
            n = int(self.path[3:])
            self._redirect(f"/r/{n - 1}" if n > 1 else "/img.png")
        elif self.path == "/loop":
            self._redirect("/loop")
        elif self.path == "/evil":
            self._redirect(f"http://127.0.0.2:{port}/img.png")
        elif self.path == "/slow":
            self.send_response(200)
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"\x89")
                self.wfile.flush()
                time.sleep(0.1)
        elif self.path == "/big":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"\x89PNG" + b"0" * 3_000_000)
        else:
            data = png_bytes(4, 4)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def files_server():
    Files.hosts = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


async def fetch(
    url: str, allow_private: bool = True, timeout: float = 10, max_bytes: int = 1_000_000
):
    return await urls.request(
        "GET", url, allow_private=allow_private, timeout=timeout, max_bytes=max_bytes
    )


async def test_redirects_are_followed_a_few_hops_each_checked(files_server, monkeypatch) -> None:
    base = f"http://127.0.0.1:{files_server}"
    fetched = await fetch(f"{base}/r/3")
    assert fetched.status == 200 and fetched.body.startswith(b"\x89PNG")
    with pytest.raises(urls.UrlError, match="more than 5 redirects"):
        await fetch(f"{base}/loop")
    monkeypatch.setattr(urls, "is_public", lambda address: address == "127.0.0.1")
    with pytest.raises(urls.UrlError, match="private, loopback or link-local"):
        await fetch(f"{base}/evil", allow_private=False)  # the second hop is re-checked
    assert (await fetch(f"{base}/r/1", allow_private=False)).status == 200


async def test_a_download_has_an_overall_deadline_and_a_byte_cap(files_server) -> None:
    base = f"http://127.0.0.1:{files_server}"
    with pytest.raises(urls.UrlError, match="within 0.5s"):
        await fetch(f"{base}/slow", timeout=0.5)  # a byte every 0.1 s never finishes in time
    with pytest.raises(urls.UrlError, match="byte limit"):
        await fetch(f"{base}/big", max_bytes=1_000_000)


async def test_the_connection_goes_to_the_checked_address(files_server, monkeypatch) -> None:
    """DNS answers once; a second lookup (rebinding) would fail the request."""
    real = asyncio.get_running_loop().getaddrinfo
    lookups: list[str] = []

    async def once(host, port, **kwargs):
        lookups.append(host)
        if host != "rebind.test" or len(lookups) > 1:
            raise OSError("no second lookup allowed")
        return await real("127.0.0.1", port, **kwargs)

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", once)
    fetched = await fetch(f"http://rebind.test:{files_server}/img.png")
    assert fetched.status == 200 and lookups == ["rebind.test"]
    assert Files.hosts[-1] == f"rebind.test:{files_server}"  # the name is kept in Host


def test_is_public_sees_through_ipv4_mapped_addresses() -> None:
    assert not urls.is_public("::ffff:127.0.0.1")
    assert not urls.is_public("::ffff:10.0.0.1")
    assert urls.is_public("93.184.216.34")


# --- media are decoded before anything is queued -------------------------------------------------------


def mp4(duration: int = 1000, cut: int = 0) -> bytes:
    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    mvhd = box(b"mvhd", bytes(4) + bytes(8) + struct.pack(">II", 1000, duration) + bytes(80))
    data = (
        box(b"ftyp", b"isom" + bytes(4))
        + box(b"moov", mvhd + box(b"trak", b""))
        + box(b"mdat", b"\0" * 64)
    )
    return data[: len(data) - cut] if cut else data


def test_media_probes() -> None:
    probe_video(mp4(), "mp4")
    for broken, message in ((mp4(cut=10), "runs past the end"), (mp4(duration=0), "no duration"),
                            (mp4()[:40], "runs past the end")):  # fmt: skip
        with pytest.raises(MediaError, match=message):
            probe_video(broken, "mp4")
    with pytest.raises(MediaError, match="truncated or corrupt"):
        decode_image(png_bytes(64, 64)[:-40], 10_000)
    frames = io.BytesIO()
    images = [Image.new("RGB", (10, 10), (i * 5, 0, 0)) for i in range(40)]
    images[0].save(frames, format="GIF", save_all=True, append_images=images[1:])
    with pytest.raises(MediaError, match="10x10x40 frames exceeds"):
        decode_image(frames.getvalue(), 200)  # every frame counts: 4000 > 16 x 200
    decode_image(frames.getvalue(), 250)


async def test_a_truncated_png_is_422_and_nothing_is_queued(api_demo, standin) -> None:
    whole = png_bytes(64, 64)
    response = await api_demo.post("/scale", json={"image": data_url(whole[: len(whole) // 2])})
    assert response.status_code == 422
    assert "truncated or corrupt" in response.json()["details"][0]["message"]
    assert standin.history() == {} and leftover_files(Path(standin.base_dir)) == []


async def test_an_image_outside_its_parameters_size_limits_is_422(standin) -> None:
    """/upscale sets min_side 16 and max_pixels: a 4x4 image reached SDXL's tiled VAE below its
    kernel size and ComfyUI failed (a 500, real CPU ComfyUI); now 422 naming the field."""
    scale = next(e for e in DEMO.ENDPOINTS if e.path == "/scale")
    params = tuple(
        dataclasses.replace(p, min_side=16, max_pixels=64 * 64) if p.kind == "image" else p
        for p in scale.params
    )
    limited = dataclasses.replace(scale, params=params)
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    app = create_app(DEMO.SETTINGS, (limited,), comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        small = await client.post("/scale", json={"image": data_url(png_bytes(4, 40))})
        large = await client.post("/scale", json={"image": data_url(png_bytes(65, 64))})
        right = await client.post("/scale", json={"image": data_url(png_bytes(16, 64))})
    await comfy.client.aclose()
    assert small.status_code == 422 and small.json()["details"][0]["field"] == "image"
    assert "4x40 is smaller than 16 px on a side" in small.json()["details"][0]["message"]
    assert large.status_code == 422
    assert "65x64 exceeds the 4096 pixel limit" in large.json()["details"][0]["message"]
    assert right.status_code == 200, right.text


@pytest.fixture()
async def api_demo(standin):
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    app = create_app(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        yield client
    await comfy.client.aclose()


# --- every ending removes the history entry and the files ---------------------------------------------


async def test_failure_and_timeout_leave_no_history_or_files(slow_standin, tmp_path) -> None:
    comfy = RemoteComfy(slow_standin.url, base_dir=slow_standin.base_dir)
    (tmp_path / "fail.json").write_text(json.dumps({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "early"}},
        "3": {"class_type": "LoadImage", "inputs": {"image": "corrupt.png"}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "late"}},
    }))  # fmt: skip
    (Path(slow_standin.base_dir) / "input" / "corrupt.png").write_bytes(b"not an image")
    fail = Endpoint(path="/fail", request_model=DEMO.InvertRequest, workflow="fail.json", params=(),
                    outputs=("4",), timeout=30, prefix_nodes=("2", "4"))  # fmt: skip
    blur = next(e for e in DEMO.ENDPOINTS if e.path == "/blur")
    (tmp_path / "demo-blur.json").write_text(
        (REPO / "comfy_workflows" / "demo-blur.json").read_text()
    )
    quick = dataclasses.replace(blur, timeout=0.3)
    app = create_app(DEMO.SETTINGS, [fail, quick], comfy, tmp_path)
    async with client_for(app) as client:
        failed = await client.post("/fail", json={})
        timed_out = await client.post("/blur", json={})
    assert failed.status_code == 500 and timed_out.status_code == 504
    slow_standin.wait_idle()
    await asyncio.sleep(0.2)
    assert slow_standin.history() == {}
    left = leftover_files(Path(slow_standin.base_dir))
    assert left == [
        Path(slow_standin.base_dir) / "input" / "corrupt.png"
    ]  # the early output went too
    await comfy.client.aclose()


async def test_a_cancelled_job_leaves_no_history_or_files(slow_standin, monkeypatch) -> None:
    comfy = RemoteComfy(slow_standin.url, base_dir=slow_standin.base_dir)
    app = create_app(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        job_id = (await client.post("/jobs/blur", json={})).json()["job_id"]
        for _ in range(500):
            if (await client.get(f"/jobs/{job_id}")).json()["status"] == "running":
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert (await client.delete(f"/jobs/{job_id}")).status_code == 202
        again = await client.delete(f"/jobs/{job_id}")
    assert again.status_code == 409 and again.json()["type"] == "conflict"
    slow_standin.wait_idle()
    await asyncio.sleep(0.2)
    assert slow_standin.history() == {}
    assert leftover_files(Path(slow_standin.base_dir)) == []
    await comfy.client.aclose()


# --- auth ---------------------------------------------------------------------------------------------


async def test_bearer_scheme_is_case_insensitive(standin, monkeypatch) -> None:
    monkeypatch.setenv("RYLA_API_TOKEN", "s3cret")
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    app = create_app(
        dataclasses.replace(DEMO.SETTINGS, auth="bearer"), DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS
    )
    async with client_for(app) as client:
        for header, status in (("bearer s3cret", 200), ("BEARER  s3cret ", 200), ("Basic s3cret", 401),
                               ("Bearer s3cre", 401), ("Bearer s3cret2", 401), ("s3cret", 401)):  # fmt: skip
            response = await client.post(
                "/invert", json={"width": 2}, headers={"Authorization": header}
            )
            assert response.status_code == status, header
            if status == 401:
                assert response.json()["type"] == "unauthorized"
    await comfy.client.aclose()


# --- jobs ------------------------------------------------------------------------------------------------


async def test_job_ids_are_random_and_pending_jobs_are_capped(slow_standin) -> None:
    comfy = RemoteComfy(slow_standin.url, base_dir=slow_standin.base_dir)
    settings = dataclasses.replace(DEMO.SETTINGS, max_pending_jobs=3)
    app = create_app(settings, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        answers = [await client.post("/jobs/blur", json={}) for _ in range(5)]
        assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
        assert int(answers[3].headers["Retry-After"]) > 0
        assert answers[3].json()["type"] == "too_many_jobs"
        ids = [a.json()["job_id"] for a in answers[:3]]
        assert len(set(ids)) == 3
        for job_id in ids:  # job_ + 22 URL-safe characters = 128 random bits
            assert (
                job_id.startswith("job_") and len(base64.urlsafe_b64decode(job_id[4:] + "==")) == 16
            )
            await client.delete(f"/jobs/{job_id}")
        assert (await client.post("/jobs/blur", json={})).status_code == 202  # room again
    await comfy.client.aclose()


async def test_finished_local_jobs_expire(standin) -> None:
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    settings = dataclasses.replace(DEMO.SETTINGS, job_ttl_seconds=0.2)
    app = create_app(settings, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        job_id = (await client.post("/jobs/invert", json={"width": 2})).json()["job_id"]
        for _ in range(500):
            status = (await client.get(f"/jobs/{job_id}")).json()
            if status["status"] == "succeeded":
                break
            await asyncio.sleep(0.01)
        assert status["status"] == "succeeded"
        await asyncio.sleep(0.3)
        assert (await client.get(f"/jobs/{job_id}")).status_code == 404
    await comfy.client.aclose()


# --- the contract: every status documented, one error shape --------------------------------------------


async def test_every_error_has_the_shared_shape(api_demo) -> None:
    answers = [
        await api_demo.post(
            "/invert", content=b"{not json", headers={"content-type": "application/json"}
        ),
        await api_demo.post(
            "/invert", content=b"[1, 2]", headers={"content-type": "application/json"}
        ),
        await api_demo.post("/invert", content=b"width=3", headers={"content-type": "text/plain"}),
        await api_demo.get("/nowhere"),
        await api_demo.get("/invert"),
        await api_demo.delete("/health"),
    ]
    assert [a.status_code for a in answers] == [422, 422, 422, 404, 405, 405]
    for answer in answers:
        body = answer.json()
        assert set(body) == {"error", "details", "type"}, body
    assert answers[0].json()["details"][0]["field"] == "body"


def test_openapi_lists_every_status_with_the_error_model() -> None:
    app = create_app(
        DEMO.SETTINGS, DEMO.ENDPOINTS, RemoteComfy("http://127.0.0.1:9"), DEMO.WORKFLOWS
    )
    schema = app.openapi()
    paths = schema["paths"]
    invert = paths["/invert"]["post"]["responses"]
    assert set(invert) >= {"200", "400", "404", "413", "422", "499", "500", "503", "504"}
    assert invert["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert set(paths["/jobs/invert"]["post"]["responses"]) >= {"202", "400", "413", "422", "429"}
    assert set(paths["/jobs/{job_id}"]["delete"]["responses"]) >= {"202", "404", "409"}
    assert "HTTPValidationError" not in json.dumps(schema)
    monolith = import_generated(REPO / "generated" / "ryla_comfyui.py")
    assert "max_output_pixels=67108864" in (REPO / "generated" / "ryla_comfyui.py").read_text()
    assert monolith.COMFYUI_SETTINGS.auth == "none"


async def test_request_values_in_response_headers_cannot_break_the_answer(
    standin, tmp_path
) -> None:
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    (tmp_path / "wf.json").write_text((REPO / "comfy_workflows" / "demo-invert.json").read_text())

    class Body(DEMO.InvertRequest.__base__):
        name: str

    endpoint = Endpoint(path="/x", request_model=Body, workflow="wf.json", outputs=("3",), timeout=30,
                        params=(Param("name", header="X-Name"),), headers={"X-Echo": "<{name}>"})  # fmt: skip
    app = create_app(DEMO.SETTINGS, [endpoint], comfy, tmp_path)
    async with client_for(app) as client:
        response = await client.post("/x", json={"name": "a\r\nSet-Cookie: x=1 中"})
    assert response.status_code == 200, response.text
    assert response.headers["X-Name"] == "a%0D%0ASet-Cookie: x=1 %E4%B8%AD"
    assert response.headers["X-Echo"] == "<a%0D%0ASet-Cookie: x=1 %E4%B8%AD>"
    assert "set-cookie" not in response.headers
    await comfy.client.aclose()


async def test_modal_jobs_cap_pending_jobs_per_container(standin) -> None:
    from types import SimpleNamespace

    from generator.runtime.config import load_workflows
    from generator.runtime.jobs import ModalJobs, TooManyJobs

    state: dict = {}

    class Aio:
        def __init__(self, fn):
            self.aio = fn

    async def put(key, value):
        state[key] = value

    async def get(key):
        return state.get(key)

    async def spawn(*args):
        return SimpleNamespace(object_id=f"fc-{len(state)}")

    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    settings = dataclasses.replace(DEMO.SETTINGS, max_pending_jobs=2)
    jobs = ModalJobs(settings, DEMO.ENDPOINTS, comfy, load_workflows(DEMO.WORKFLOWS, DEMO.ENDPOINTS),
                     state=SimpleNamespace(put=Aio(put), get=Aio(get)), spawn=Aio(spawn))  # fmt: skip
    first = await jobs.submit("/invert", {}, None)
    await jobs.submit("/invert", {}, None)
    with pytest.raises(TooManyJobs):
        await jobs.submit("/invert", {}, None)
    state[first] = {**state[first], "status": "succeeded"}  # one ends: room for one more
    await jobs.submit("/invert", {}, None)
    assert await jobs.cancel(first) == "succeeded"  # a finished job is not cancelled (409)
    await comfy.client.aclose()


async def test_a_client_graph_comfyui_rejects_is_422_not_500(standin, tmp_path) -> None:
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    app = slow_upload_app(comfy, tmp_path)  # declares shipped.png, which is not there
    async with client_for(app) as client:
        response = await client.post("/workflow", json={"workflow": load_graph("shipped.png")})
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "prompt_rejected"
    assert response.json()["details"][0]["node_id"] == "1"
    await comfy.client.aclose()


async def test_request_types_are_strict_but_integral_floats_are_integers(api_demo) -> None:
    for body in ({"width": True}, {"width": "5"}, {"width": 2.5}, {"color": False}):
        response = await api_demo.post("/invert", json=body)
        assert response.status_code == 422, body
        assert response.json()["details"][0]["field"] in body
    assert (await api_demo.post("/invert", json={"width": 2.0, "height": 3})).status_code == 200
    assert (await api_demo.post("/blur", json={"seed": False})).status_code == 422


async def test_allow_lists_every_method_of_the_path(api_demo) -> None:
    job = await api_demo.request("OPTIONS", "/jobs/job_x")
    submit = await api_demo.request("OPTIONS", "/jobs/invert")
    assert job.status_code == submit.status_code == 405
    assert job.headers["Allow"] == "DELETE, GET" and submit.headers["Allow"] == "POST"


async def test_webhook_url_is_offered_only_where_webhooks_are_signed(standin, monkeypatch) -> None:
    monkeypatch.delenv("RYLA_WEBHOOK_SECRET", raising=False)
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    app = create_app(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        response = await client.post("/jobs/invert", json={"webhook_url": "https://example.com/h"})
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "webhook_url"
    assert "webhook_url" not in json.dumps(
        app.openapi()["components"]["schemas"]["InvertJobRequest"]
    )
    await comfy.client.aclose()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "NaN or infinite"),
        (float("inf"), "NaN or infinite"),
        (json.loads("[" * 900 + "]" * 900), "nests deeper than 16"),
    ],  # fmt: skip
    ids=["nan", "inf", "deep"],
)
async def test_odd_values_in_client_graphs_are_422(monolith, standin, value, message) -> None:
    graph = {"1": {**EMPTY, "inputs": {**EMPTY["inputs"], "color": value}},
             "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}, "3": SAVE}  # fmt: skip
    body = json.dumps({"workflow": graph}).encode()  # Python's json writes NaN and Infinity
    response = await monolith.post(
        "/workflow", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert message in response.json()["details"][0]["message"]
    assert standin.history() == {}


async def test_nan_in_a_typed_field_is_422(api_demo) -> None:
    body = b'{"sigma": NaN}'
    response = await api_demo.post(
        "/blur", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("HTTPS://Example.COM/a?b=1", ("https", "example.com", 443, "/a?b=1")),
        ("http://example.com.:8080", ("http", "example.com", 8080, "/")),
        ("http://[2001:db8::1]:81/x", ("http", "2001:db8::1", 81, "/x")),
        ("https://bücher.example/x", ("https", "xn--bcher-kva.example", 443, "/x")),
        ("http://" + "a" * 63 + ".com/", ("http", "a" * 63 + ".com", 80, "/")),
    ],
)
def test_well_formed_urls_parse(url, parsed) -> None:
    assert urls.parse_url(url) == parsed


def test_the_connect_url_keeps_the_name_for_host_and_sni() -> None:
    target = urls.Target("https", "cdn.example", 8443, "/x?y", "2001:db8::5")
    assert target.connect_url == "https://[2001:db8::5]:8443/x?y"
    assert target.host_header == "cdn.example:8443"
    assert target.extensions == {"sni_hostname": "cdn.example"}


# --- the fleet front door (the monolith's public URL) has the same guards ------------------------


async def test_the_front_door_limits_bodies_checks_tokens_and_shapes_errors(
    standin, monkeypatch
) -> None:
    from generator.dev import fleet_owners
    from generator.runtime.fleet import LocalOwners, create_fleet_app

    fleet = REPO / "generated" / "ryla_comfyui.py"
    module = import_generated(fleet)
    monkeypatch.setenv("RYLA_API_TOKEN", "s3cret")
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    owners = LocalOwners(fleet_owners(module, fleet.parent), comfy)
    settings = dataclasses.replace(module.SETTINGS, auth="bearer", max_body_bytes=10_000)
    app = create_fleet_app(settings, module.FORWARDS, module.CHAINS, module.RETIRED, owners)
    sent = 0

    async def chunks():
        nonlocal sent
        for _ in range(1000):
            sent += 1000
            yield b" " * 1000

    token = {"Authorization": "bearer s3cret"}
    async with client_for(app) as client:
        streamed = await client.post("/workflow", content=chunks(), headers=token)
        wrong = await client.post(
            "/workflow", json={"workflow": {}}, headers={"Authorization": "Bearer s3cre"}
        )
        broken = await client.post(
            "/workflow", content=b"{", headers={**token, "content-type": "application/json"}
        )
        method = await client.get("/workflow", headers=token)
        ok = await client.post(
            "/workflow", json={"workflow": load_graph("x.png") | {"1": EMPTY}}, headers=token
        )
    assert streamed.status_code == 413 and sent <= 12_000
    assert wrong.status_code == 401
    assert broken.status_code == 422 and broken.json()["details"][0]["field"] == "body"
    assert method.status_code == 405 and method.headers["Allow"] == "POST"
    for response in (streamed, wrong, broken, method):
        assert set(response.json()) >= {"error", "details", "type"}
    assert ok.status_code == 200, ok.text
    responses = app.openapi()["paths"]["/workflow"]["post"]["responses"]
    assert set(responses) >= {"200", "401", "413", "422", "499", "500", "503", "504"}
    await comfy.client.aclose()
