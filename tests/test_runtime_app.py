"""The generated app's FastAPI, end to end against the ComfyUI stand-in.

Requests go through the same ``create_app`` the Modal class serves, built from the committed
generated module of the model-free spec (``generated/ryla_demo.py``).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
from pathlib import Path

import httpx
import pytest
from helpers import REPO, import_generated
from PIL import Image

from generator.runtime.backends import RemoteComfy
from generator.runtime.config import Endpoint, Param, Target
from generator.runtime.server import create_app
from generator.runtime.warmup import warm_up

DEMO = import_generated(REPO / "generated" / "ryla_demo.py")
BY_PATH = {e.path: e for e in DEMO.ENDPOINTS}


def png(width: int, height: int, color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def pixels(data: bytes) -> list[tuple[int, int, int]]:
    with Image.open(io.BytesIO(data)) as image:
        return list(image.convert("RGB").get_flattened_data())


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app", timeout=60
    )


@pytest.fixture()
def comfy(standin) -> RemoteComfy:
    return RemoteComfy(standin.url, base_dir=standin.base_dir)


@pytest.fixture()
async def api(comfy: RemoteComfy):
    app = create_app(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        yield client
    await comfy.client.aclose()


def leftover_files(base_dir: Path) -> list[Path]:
    return [
        p for sub in ("input", "output", "temp") for p in (base_dir / sub).rglob("*") if p.is_file()
    ]


async def test_invert_returns_the_right_pixels_and_headers(api: httpx.AsyncClient, standin) -> None:
    response = await api.post("/invert", json={"width": 8, "height": 4, "color": 0xFF8000})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert pixels(response.content) == [(0, 127, 255)] * 32
    assert float(response.headers["X-Execution-Time-Sec"]) > 0
    assert response.headers["X-GPU-Type"] == "T4"
    cost = float(response.headers["X-Cost-USD"])
    assert cost == pytest.approx(
        float(response.headers["X-Execution-Time-Sec"]) * 0.000164, abs=1e-6
    )


async def test_sixteen_concurrent_requests_each_get_their_own_output(
    api: httpx.AsyncClient,
) -> None:
    colors = [(i * 15, 255 - i * 15, i * 7) for i in range(16)]
    responses = await asyncio.gather(
        *(
            api.post("/invert", json={"width": 2, "height": 2, "color": (r << 16) | (g << 8) | b})
            for r, g, b in colors
        )
    )
    for (r, g, b), response in zip(colors, responses, strict=True):
        assert response.status_code == 200, response.text
        assert pixels(response.content) == [(255 - r, 255 - g, 255 - b)] * 4


async def test_identical_request_twice_returns_bytes_both_times(api: httpx.AsyncClient) -> None:
    body = {"width": 3, "height": 3, "color": 0x123456}
    first = await api.post("/invert", json=body)
    second = await api.post("/invert", json=body)
    assert first.status_code == second.status_code == 200
    assert pixels(first.content) == pixels(second.content) == [(0xED, 0xCB, 0xA9)] * 9


async def test_uploaded_image_is_scaled(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/scale", json={"source_image": png(3, 2, (10, 20, 30)), "scale_by": 2}
    )
    assert response.status_code == 200, response.text
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (6, 4)
    assert set(pixels(response.content)) == {(10, 20, 30)}


async def test_animated_webp_has_its_media_type_and_headers(api: httpx.AsyncClient) -> None:
    response = await api.post("/animate", json={"frames": 3, "fps": 5})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/webp"
    assert response.headers["X-Frames"] == "3"
    assert response.headers["X-FPS"] == "5.0"
    with Image.open(io.BytesIO(response.content)) as image:  # identical frames merge in WEBP
        assert (image.format, image.size) == ("WEBP", (64, 64))


async def test_json_response_when_the_client_asks(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/invert", json={"width": 2, "height": 2}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    body = response.json()
    (file,) = body["files"]
    assert file["media_type"] == "image/png"
    assert pixels(base64.b64decode(file["data"])) == [(255, 255, 255)] * 4


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/invert", {"width": 0}, "width"),
        ("/invert", {"widht": 5}, "widht"),
        ("/invert", {"color": "red"}, "color"),
        ("/scale", {}, "image"),
        ("/scale", {"image": png(2, 2, (0, 0, 0)), "method": "cubic"}, "method"),
    ],
)
async def test_invalid_request_is_422_naming_the_field(
    api: httpx.AsyncClient, path, body, field
) -> None:
    response = await api.post(path, json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["type"] == "validation_error"
    assert field in [d["field"] for d in payload["details"]]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("http://127.0.0.1:9/cat.png", "private, loopback or link-local"),
        ("http://169.254.169.254/latest/meta-data", "private, loopback or link-local"),
        ("data:image/png;base64,AAAA", "not a supported image"),
    ],
)
async def test_unsafe_or_broken_media_is_refused(
    api: httpx.AsyncClient, image: str, message: str
) -> None:
    response = await api.post("/scale", json={"image": image})
    assert response.status_code == 422
    assert message in response.json()["details"][0]["message"]


async def test_oversized_body_is_refused(comfy: RemoteComfy) -> None:
    settings = dataclasses.replace(DEMO.SETTINGS, max_body_bytes=1000)
    app = create_app(settings, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        response = await client.post("/scale", json={"image": png(64, 64, (1, 2, 3)) + "A" * 2000})
    assert response.status_code == 413


async def test_oversized_image_is_refused(comfy: RemoteComfy) -> None:
    settings = dataclasses.replace(DEMO.SETTINGS, max_image_pixels=100)
    app = create_app(settings, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        response = await client.post("/scale", json={"image": png(20, 20, (1, 2, 3))})
    assert response.status_code == 422
    assert "pixel limit" in response.json()["details"][0]["message"]


def custom_app(
    comfy: RemoteComfy, tmp_path: Path, workflow: dict, params=(), timeout=30.0, outputs=("3",)
):
    (tmp_path / "wf.json").write_text(json.dumps(workflow))

    class Body(DEMO.InvertRequest.__base__):  # a plain pydantic model
        width: int = 8

    endpoint = Endpoint(
        path="/x",
        request_model=Body,
        workflow="wf.json",
        params=params,
        outputs=outputs,
        timeout=timeout,
    )
    return create_app(DEMO.SETTINGS, [endpoint], comfy, tmp_path)


async def test_prompt_rejected_by_comfyui_names_node_and_input(
    comfy: RemoteComfy, tmp_path: Path
) -> None:
    workflow = json.loads((REPO / "comfy_workflows" / "demo-invert.json").read_text())
    app = custom_app(
        comfy, tmp_path, workflow, params=(Param("width", targets=(Target("1", "width"),)),)
    )
    async with client_for(app) as client:
        response = await client.post(
            "/x", json={"width": 0}
        )  # the model allows it; ComfyUI does not
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "prompt_rejected"
    detail = body["details"][0]
    assert (detail["node_id"], detail["class_type"], detail["input"], detail["field"]) == (
        "1",
        "EmptyImage",
        "width",
        "width",
    )


async def test_runtime_failure_is_500_with_node_type(
    comfy: RemoteComfy, standin, tmp_path: Path
) -> None:
    (Path(standin.base_dir) / "input" / "corrupt.png").write_bytes(b"not an image")
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "corrupt.png"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    app = custom_app(comfy, tmp_path, workflow)
    async with client_for(app) as client:
        response = await client.post("/x", json={})
    assert response.status_code == 500
    details = response.json()["details"]
    assert details["node_id"] == "1" and details["node_type"] == "LoadImage"
    assert "UnidentifiedImageError" in details["exception_type"]


async def test_a_node_error_that_means_the_sent_value_is_unusable_is_422_naming_it(
    comfy: RemoteComfy, standin, tmp_path: Path
) -> None:
    # the node raises on the value the client sent (as ApplyInstantID's "No face detected")
    (Path(standin.base_dir) / "input" / "corrupt.png").write_bytes(b"not an image")
    (tmp_path / "wf.json").write_text(json.dumps({
        "1": {"class_type": "LoadImage", "inputs": {"image": "corrupt.png"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }))  # fmt: skip

    class Body(DEMO.InvertRequest.__base__):
        picture: str | None = None

    def app_for(node_errors):
        picture = Param("picture", targets=(Target("1", "image"),), node_errors=node_errors)
        endpoint = Endpoint(path="/x", request_model=Body, workflow="wf.json",
                            params=(picture,), outputs=("3",), timeout=30)  # fmt: skip
        return create_app(DEMO.SETTINGS, [endpoint], comfy, tmp_path)

    async with client_for(app_for({"Cannot Identify Image": "not a picture"})) as client:
        refused = await client.post("/x", json={"picture": "corrupt.png"})
        unsent = await client.post("/x", json={})  # the workflow's own value: not the client's
    assert unsent.status_code == 500
    assert refused.status_code == 422
    (detail,) = refused.json()["details"]
    assert (detail["field"], detail["message"]) == ("picture", "not a picture")
    assert (detail["node_id"], detail["node_type"]) == ("1", "LoadImage")
    assert "cannot identify image file" in detail["node_message"]
    # another error of the node is still the server's (500)
    async with client_for(app_for({"no face detected": "no face"})) as client:
        failed = await client.post("/x", json={"picture": "corrupt.png"})
    assert failed.status_code == 500
    assert failed.json()["type"] == "execution_error"


async def test_a_logged_line_that_means_the_sent_value_went_unused_is_422_without_output(
    comfy: RemoteComfy, standin, tmp_path: Path, monkeypatch
) -> None:
    # as PuLID's "No faces detected in any of the given images, returning unmodified model":
    # the run completes, but without the client's value; its output must not be served
    (tmp_path / "wf.json").write_text((REPO / "comfy_workflows" / "demo-invert.json").read_text())

    class Body(DEMO.InvertRequest.__base__):
        width: int | None = None

    width = Param("width", targets=(Target("1", "width"),),
                  node_warnings={"no faces detected": "no face found in width"})  # fmt: skip
    endpoint = Endpoint(path="/x", request_model=Body, workflow="wf.json", params=(width,),
                        outputs=("3",), timeout=30)  # fmt: skip
    app = create_app(DEMO.SETTINGS, [endpoint], comfy, tmp_path)
    watched: list[tuple[str, ...]] = []
    run = comfy.client.run

    async def run_that_logs_every_watched_phrase(prompt, **kwargs):
        watched.append(kwargs["watch"])
        result = await run(prompt, **kwargs)
        return dataclasses.replace(result, noticed=kwargs["watch"])

    monkeypatch.setattr(comfy.client, "run", run_that_logs_every_watched_phrase)
    async with client_for(app) as client:
        refused = await client.post("/x", json={"width": 16})
        served = await client.post("/x", json={})  # not sent: nothing is watched
    assert watched == [("no faces detected",), ()]
    assert refused.status_code == 422
    (detail,) = refused.json()["details"]
    assert detail == {
        "field": "width",
        "message": "no face found in width",
        "logged": "no faces detected",
    }
    assert served.status_code == 200
    assert leftover_files(Path(standin.base_dir)) == []


async def test_timeout_is_504_and_leaves_the_queue_empty(slow_standin, tmp_path: Path) -> None:
    comfy = RemoteComfy(slow_standin.url, base_dir=slow_standin.base_dir)
    blur = dataclasses.replace(BY_PATH["/blur"], timeout=0.3)
    app = create_app(DEMO.SETTINGS, [blur], comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        response = await client.post("/blur", json={"sigma": 1.0})
    assert response.status_code == 504
    assert response.json()["type"] == "timeout"
    queue = httpx.get(f"{slow_standin.url}/queue").json()
    assert queue["queue_running"] == [] and queue["queue_pending"] == []
    await comfy.client.aclose()


async def test_no_files_or_history_left_behind(api: httpx.AsyncClient, standin) -> None:
    assert (await api.post("/scale", json={"image": png(2, 2, (5, 5, 5))})).status_code == 200
    assert (await api.post("/invert", json={})).status_code == 200
    assert (
        await api.post("/scale", json={"image": "data:image/png;base64,AAAA"})
    ).status_code == 422
    assert leftover_files(Path(standin.base_dir)) == []
    assert httpx.get(f"{standin.url}/history").json() == {}


async def test_health_and_ready(api: httpx.AsyncClient) -> None:
    assert (await api.get("/health")).status_code == 200
    assert (await api.get("/ready")).json() == {"status": "ready"}


async def test_openapi_documents_each_request_model(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    assert set(schema["paths"]) >= {"/invert", "/scale", "/blur", "/animate"}
    invert = schema["components"]["schemas"]["InvertRequest"]
    assert invert["properties"]["width"]["maximum"] == 4096
    assert invert["properties"]["width"]["description"] == "Canvas width in pixels."


# --- ComfyUI as a child process: crash and recovery; clients that leave -------------------------


@pytest.fixture()
async def comfy_server(tmp_path: Path):
    """The container's ComfyServer, running the stand-in as its 'ComfyUI' command."""
    import os
    import signal

    from generator.runtime.backends import ComfyServer
    from generator.standin import StandinProcess, free_port

    port = free_port()
    (tmp_path / "comfy").mkdir()
    command = StandinProcess(tmp_path / "comfy", port=port, node_delay=0.5).command()
    server = ComfyServer(
        [],
        str(tmp_path / "models"),
        comfy_dir=tmp_path / "comfy",
        port=port,
        command=command,
        start_timeout=30,
        log_path=tmp_path / "comfy.log",
    )
    await server.start()
    yield server
    if server.process.alive:
        os.killpg(server.process._proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("how", ["timeout", "cancelled"])
async def test_a_start_that_does_not_complete_leaves_no_comfyui_running(tmp_path, how) -> None:
    """A smoke run stopped by its time limit while ComfyUI was starting left it running."""
    import sys

    from generator.runtime.backends import ComfyServer
    from generator.runtime.comfy_process import ComfyStartFailed
    from generator.standin import free_port

    (tmp_path / "comfy").mkdir()
    never_ready = [sys.executable, "-c", "import time; time.sleep(120)"]
    server = ComfyServer([], str(tmp_path / "models"), comfy_dir=tmp_path / "comfy",
                         port=free_port(), command=never_ready, log_path=tmp_path / "c.log",
                         start_timeout=0.5 if how == "timeout" else 60)  # fmt: skip
    if how == "timeout":
        with pytest.raises(ComfyStartFailed):
            await server.start()
    else:
        starting = asyncio.create_task(server.start())
        await asyncio.sleep(0.5)
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
    assert server.process._proc is not None and not server.process.alive


async def test_comfyui_killed_mid_request_gives_503_and_the_next_request_succeeds(
    comfy_server,
) -> None:
    import os
    import signal

    app = create_app(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy_server, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        slow = asyncio.create_task(client.post("/blur", json={"sigma": 1.0}))
        await asyncio.sleep(0.4)
        os.killpg(comfy_server.process._proc.pid, signal.SIGKILL)
        response = await slow
        assert response.status_code == 503
        assert response.json()["type"] == "unavailable"
        for _ in range(200):  # the app restarts ComfyUI in the background
            if (await client.get("/ready")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        after = await client.post("/invert", json={"width": 2, "height": 2, "color": 0})
    assert after.status_code == 200
    assert pixels(after.content) == [(255, 255, 255)] * 4
    await comfy_server.client.aclose()


async def test_client_that_leaves_cancels_the_run(slow_standin) -> None:
    import threading

    import uvicorn

    comfy = RemoteComfy(slow_standin.url, base_dir=slow_standin.base_dir)
    app = create_app(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    from generator.standin import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(timeout=0.4) as client:
            with pytest.raises(httpx.ReadTimeout):  # the client gives up and disconnects
                await client.post(f"http://127.0.0.1:{port}/blur", json={"sigma": 1.0})
        for _ in range(100):
            queue = slow_standin.queue()
            if not queue["queue_running"] and not queue["queue_pending"]:
                break
            await asyncio.sleep(0.05)
        assert queue == {"queue_running": [], "queue_pending": []}
        for _ in range(100):  # the run's history entry and files are removed too
            if not slow_standin.history() and not leftover_files(Path(slow_standin.base_dir)):
                break
            await asyncio.sleep(0.05)
        assert slow_standin.history() == {}
        assert leftover_files(Path(slow_standin.base_dir)) == []
    finally:
        server.should_exit = True
        thread.join(5)


async def test_bearer_auth_refuses_missing_or_wrong_tokens(comfy: RemoteComfy, monkeypatch) -> None:
    monkeypatch.setenv("RYLA_API_TOKEN", "s3cret")
    settings = dataclasses.replace(DEMO.SETTINGS, auth="bearer")
    app = create_app(settings, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    async with client_for(app) as client:
        body = {"width": 2, "height": 2}
        assert (await client.post("/invert", json=body)).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.post("/invert", json=body, headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert (await client.post("/invert", json=body, headers=right)).status_code == 200
        assert (await client.get("/health")).status_code == 200  # probes stay open


async def test_a_missing_job_written_lora_is_404_and_a_present_one_runs(
    standin, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir, models_dir=models)
    workflow = json.loads((REPO / "comfy_workflows" / "demo-invert.json").read_text())
    (tmp_path / "wf.json").write_text(json.dumps(workflow))

    class Body(DEMO.InvertRequest.__base__):
        lora_id: str

    lora = Param(
        "lora_id", volume_file="loras/flux-character-{lora_id}.safetensors", header="X-LoRA-Used"
    )
    endpoint = Endpoint(
        path="/x",
        request_model=Body,
        workflow="wf.json",
        params=(lora,),
        outputs=("3",),
        timeout=30,
    )
    app = create_app(DEMO.SETTINGS, [endpoint], comfy, tmp_path)
    async with client_for(app) as client:
        missing = await client.post("/x", json={"lora_id": "c42"})
        outside = await client.post("/x", json={"lora_id": "../../etc/passwd"})
        (models / "loras" / "flux-character-c42.safetensors").write_bytes(b"lora")
        present = await client.post("/x", json={"lora_id": "c42"})
    assert missing.status_code == 404
    assert missing.json()["details"] == {
        "field": "lora_id",
        "file": "loras/flux-character-c42.safetensors",
    }
    assert outside.status_code == 404
    assert present.status_code == 200 and present.headers["X-LoRA-Used"] == "c42"
    await comfy.client.aclose()


# --- /workflow: the client sends the graph --------------------------------------------------------

MONOLITH = import_generated(REPO / "generated" / "ryla_comfyui.py")
INVERT_GRAPH = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 3, "height": 2, "batch_size": 1, "color": 0x0000FF},
    },
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "client"}},
}


@pytest.fixture()
async def monolith(comfy: RemoteComfy):
    workflow_route = next(e for e in MONOLITH.ENDPOINTS if e.path == "/workflow")
    app = create_app(MONOLITH.SETTINGS, [workflow_route], comfy, MONOLITH.WORKFLOWS)
    async with client_for(app) as client:
        yield client


async def test_client_workflow_runs_and_returns_its_output(
    monolith: httpx.AsyncClient, standin
) -> None:
    response = await monolith.post("/workflow", json={"workflow": INVERT_GRAPH})
    assert response.status_code == 200, response.text
    assert pixels(response.content) == [(255, 255, 0)] * 6
    again = await monolith.post("/workflow", json={"workflow": INVERT_GRAPH})  # same graph twice
    assert pixels(again.content) == [(255, 255, 0)] * 6
    assert leftover_files(Path(standin.base_dir)) == []


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        (
            {**INVERT_GRAPH, "2": {"class_type": "NoSuchNode", "inputs": {}}},
            "unknown node class 'NoSuchNode'",
        ),
        (
            {
                **INVERT_GRAPH,
                "1": {**INVERT_GRAPH["1"], "inputs": {**INVERT_GRAPH["1"]["inputs"], "width": 0}},
            },
            "below the minimum",
        ),
        ({"nodes": [], "links": []}, "UI export"),
        ({"1": INVERT_GRAPH["1"]}, "no output node"),
        ({str(i): INVERT_GRAPH["1"] for i in range(201)}, "at most 200"),
    ],
    ids=["unknown-class", "out-of-range", "ui-export", "no-output", "too-large"],
)
async def test_invalid_client_workflows_are_refused_before_queueing(
    monolith, standin, graph, message
) -> None:
    response = await monolith.post("/workflow", json={"workflow": graph})
    assert response.status_code == 422
    assert any(message in problem["message"] for problem in response.json()["details"]), (
        response.json()
    )
    assert standin.history() == {}  # nothing reached ComfyUI


async def test_container_warm_up_runs_every_endpoint_through_comfyui(comfy_server) -> None:
    warmup = await warm_up(comfy_server, DEMO.SETTINGS, DEMO.ENDPOINTS, DEMO.WORKFLOWS)
    assert warmup.state == "ok", warmup.report()
    assert set(warmup.results) == {"/invert", "/scale", "/blur", "/animate"}
    assert leftover_files(comfy_server.base_dir) == []


async def test_snapshot_start_installs_the_helper_node_and_marks_the_phase(tmp_path: Path) -> None:
    from generator.runtime.backends import ComfyServer
    from generator.standin import StandinProcess, free_port

    port = free_port()
    (tmp_path / "comfy").mkdir()
    command = StandinProcess(tmp_path / "comfy", port=port).command()
    server = ComfyServer([], str(tmp_path / "models"), comfy_dir=tmp_path / "comfy", port=port,
                         command=command, start_timeout=30, log_path=tmp_path / "c.log", snapshot=True)  # fmt: skip
    assert server.process.env == {"RYLA_SNAPSHOT": "1", "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}
    await server.start()
    try:
        helper = tmp_path / "comfy" / "custom_nodes" / "ryla_snapshot_helper"
        assert (helper / "prestartup_script.py").is_file() and (helper / "__init__.py").is_file()
    finally:
        await server.stop()
    assert not server.alive


async def test_batch_video_faceswap_names_the_field_when_sent_an_mp4(comfy: RemoteComfy) -> None:
    """/batch-video-faceswap reads animated images (the Wan routes' WEBP); an MP4 is a 422
    naming the field before anything is queued (MP4/WebM go to /video-faceswap)."""
    qwen = import_generated(REPO / "generated" / "ryla_qwen_image.py")
    app = create_app(qwen.SETTINGS, qwen.ENDPOINTS, comfy, qwen.WORKFLOWS)
    mp4 = "data:video/mp4;base64," + base64.b64encode(b"\0\0\0\x20ftypisom" + bytes(24)).decode()
    body = {"source_video": mp4, "reference_image": png(2, 2, (9, 9, 9)), "fps": 16}
    async with client_for(app) as client:
        response = await client.post("/batch-video-faceswap", json=body)
    await comfy.client.aclose()
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "invalid request: source_video"
    assert "not a supported image file" in json.dumps(error["details"])
