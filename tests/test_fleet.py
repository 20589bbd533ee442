"""The fleet's one URL, end to end on the ComfyUI stand-in.

The monolith ryla-comfyui is served as ``ryla-gen dev`` serves it (``dev_app``): its front door
runs every other app's endpoint in-process against the same stand-in. Model routes fail at the
stand-in's validation (their nodes and models are not there) but must reach their route; the
model-free ryla-demo endpoints run for real, alone and as the steps of chains.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from helpers import REPO, import_generated
from PIL import Image
from pydantic import BaseModel
from test_catalog_specs import CLIENT_BODIES, FLUX, LORA, PNG

from generator.dev import dev_app, fleet_owners
from generator.runtime.backends import RemoteComfy
from generator.runtime.config import Chain, Step
from generator.runtime.fleet import LocalOwners, Outcome, create_fleet_app

FLEET = REPO / "generated" / "ryla_comfyui.py"
MODULE = import_generated(FLEET)
WEBP = (
    "data:image/webp;base64,UklGRogAAABXRUJQVlA4WAoAAAACAAAADwAADwAAQU5JTQYAAAAAAAAAAABBTk1GKgAAAAAA"
    "AAAAAA8AAA8AAH0AAAJWUDhMEQAAAC8PwAMAB1CUIhel/4GI6H8AAEFOTUYqAAAAAAAAAAAADwAADwAAfQAAAFZQOEwRA"
    "AAALw/AAwAHUJSiFLn/gYjofwAA"
)
WORKFLOW = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
    },
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}},
}

# Every call of RYLA's TypeScript client (ModalClient), as it sends it: the bodies of
# tests/test_catalog_specs.py plus the routes only more-endpoints.md records. The client holds
# one base URL: the monolith's.
CLIENT_CALLS: list[tuple[str, dict[str, Any]]] = [(path, body) for path, body, _ in CLIENT_BODIES]
CLIENT_CALLS += [
    ("/flux-lora", LORA),
    ("/workflow", {"workflow": WORKFLOW}),
    ("/image-faceswap", {"source_image": PNG, "reference_image": PNG, "restore_face": True}),
    ("/qwen-faceswap", {"prompt": "a cat", "reference_image": PNG, "negative_prompt": "blur",
                        "seed": 1, "restore_face": True}),
    ("/qwen-faceswap-fast", {"prompt": "a cat", "reference_image": PNG, "negative_prompt": "blur",
                             "seed": 1, "restore_face": True}),
    ("/qwen-character-scene", {"character_image": PNG, "scene": "a beach", "denoise": 0.7,
                               "seed": 1}),
]  # fmt: skip
CLIENT_CALLS += [
    ("/wan2.6-i2v", {"prompt": "waves", "reference_image": PNG, "num_frames": 33, "seed": 1}),
    ("/wan2.6-i2v-faceswap", {"prompt": "waves", "reference_image": PNG, "face_image": PNG}),
    ("/wan22-i2v", {"source_image": PNG, "prompt": "waves", "num_frames": 33}),
    ("/wan22-i2v-faceswap", {"source_image": PNG, "face_image": PNG, "prompt": "waves"}),
    ("/batch-video-faceswap", {"source_video": WEBP, "reference_image": PNG, "fps": 16}),
]
RETIRED = [
    ("/wan2", "/wan2.6"),
    ("/flux-instantid", "/sdxl-instantid"),
    ("/z-image-instantid", "/sdxl-instantid"),
    ("/z-image-pulid", "/flux-pulid"),
    ("/z-image-pulid-lora", "/flux-pulid"),
]


class NoFields(BaseModel):
    """The request body of the test-only chains below: ``{}``."""


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://fleet", timeout=60
    )


@pytest.fixture()
async def fleet(standin):
    async with client_for(dev_app(FLEET, standin.url, str(standin.base_dir))) as client:
        yield client


def pixels(data: bytes) -> tuple[tuple[int, int], list[tuple[int, int, int]]]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size, list(image.convert("RGB").get_flattened_data())


def reached_its_route(response: httpx.Response) -> bool:
    """Not a routing or request-shape refusal (the route ran, or failed past validation)."""
    body = response.json() if "json" in response.headers.get("content-type", "") else {}
    routing = response.status_code in (404, 405) and body.get("type") in (
        "not_found",
        "method_not_allowed",
    )
    return not routing and response.status_code != 422 and body.get("type") != "validation_error"


@pytest.mark.parametrize(("path", "body"), CLIENT_CALLS, ids=[c[0] for c in CLIENT_CALLS])
async def test_every_client_call_reaches_a_route_on_the_fleet_url(
    fleet: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    response = await fleet.post(path, json=body)
    assert reached_its_route(response), (response.status_code, response.text[:500])


@pytest.mark.parametrize(("path", "use"), RETIRED, ids=[r[0] for r in RETIRED])
async def test_retired_routes_answer_410_naming_the_replacement(
    fleet: httpx.AsyncClient, path: str, use: str
) -> None:
    response = await fleet.post(path, json={"prompt": "a cat"})
    assert response.status_code == 410
    body = response.json()
    assert body["type"] == "gone" and body["use"] == use
    assert use in body["error"] and body["details"]
    assert (await fleet.get(path)).status_code == 410


async def test_a_retired_route_answers_410_on_its_own_apps_url_too(standin) -> None:
    app = dev_app(REPO / "generated" / "ryla_z_image.py", standin.url)
    async with client_for(app) as client:
        response = await client.post("/z-image-pulid", json={"prompt": "a cat"})
    assert response.status_code == 410
    assert response.json()["use"] == "/flux-pulid"


async def test_unknown_paths_answer_404_listing_the_routes(fleet: httpx.AsyncClient) -> None:
    response = await fleet.post("/flux-schnell", json={"prompt": "a cat"})
    assert response.status_code == 404
    body = response.json()
    assert body["type"] == "not_found" and "/flux-schnell" in body["error"]
    routes = set(body["details"]["routes"])
    assert {"/flux", "/wan2.6", "/workflow", "/qwen-faceswap", "/invert"} <= routes
    wrong_method = await fleet.get("/flux")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["type"] == "method_not_allowed"


async def test_a_forwarded_route_answers_as_its_owner_does(fleet: httpx.AsyncClient) -> None:
    response = await fleet.post("/invert", json={"width": 4, "height": 2, "color": 0xFF8000})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert pixels(response.content) == ((4, 2), [(0, 127, 255)] * 8)
    assert response.headers["X-GPU-Type"] == "T4"  # ryla-demo's class ran it
    assert float(response.headers["X-Cost-USD"]) > 0


class Recording:
    """Owners that remember what reached them (to see what the front door forwarded)."""

    def __init__(self, inner: LocalOwners) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.outcomes: list[Outcome] = []

    async def call(self, app, cls, path, values, as_json) -> Outcome:  # noqa: ANN001
        self.calls.append((app, path, values))
        outcome = await self.inner.call(app, cls, path, values, as_json)
        self.outcomes.append(outcome)
        return outcome


@pytest.fixture()
def owners(standin) -> Recording:
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    return Recording(LocalOwners(fleet_owners(MODULE, FLEET.parent), comfy))


def front_door(owners: Recording, chains: tuple[Chain, ...] = ()) -> httpx.AsyncClient:
    app = create_fleet_app(
        MODULE.SETTINGS, MODULE.FORWARDS, MODULE.CHAINS + chains, MODULE.RETIRED, owners
    )
    return client_for(app)


async def test_a_bad_body_is_refused_at_the_front_door_and_never_forwarded(
    owners: Recording,
) -> None:
    async with front_door(owners) as client:
        response = await client.post("/flux-lora", json={**FLUX, "steps": "many"})
        renamed = await client.post("/flux-lora", json=LORA)
    assert response.status_code == 422 and response.json()["type"] == "validation_error"
    assert "steps" in response.json()["error"]
    assert [(app, path) for app, path, _ in owners.calls] == [("ryla-flux", "/flux-dev-lora")]
    assert renamed.status_code != 422


async def test_a_chain_runs_its_steps_across_two_apps_and_adds_up_cost_and_time(
    owners: Recording,
) -> None:
    async with front_door(owners) as client:
        response = await client.post(
            "/demo-invert-scale", json={"size": 4, "color": 0x00FF00, "scale_by": 2.0}
        )
    assert response.status_code == 200, response.text
    assert pixels(response.content) == ((8, 8), [(255, 0, 255)] * 64)  # inverted, then scaled
    assert [(app, path) for app, path, _ in owners.calls] == [
        ("ryla-demo", "/invert"),
        ("ryla-demo", "/scale"),
    ]
    first, second = owners.outcomes
    assert owners.calls[1][2]["image"] == first.data_url()  # output -> next step's input
    assert first.data_url().startswith("data:image/png;base64,")
    for header in ("X-Cost-USD", "X-Execution-Time-Sec"):
        steps = float(first.header(header)) + float(second.header(header))
        assert float(response.headers[header]) == pytest.approx(steps, abs=2e-6)
    assert response.headers["X-GPU-Type"] == "T4"


async def test_an_animated_webp_passes_from_one_step_to_the_next(owners: Recording) -> None:
    chain = Chain(
        "/animate-then-scale",
        NoFields,
        (
            Step("clip", "ryla-demo", "ComfyUI", "/animate", values={"frames": 3}),
            Step("scaled", "ryla-demo", "ComfyUI", "/scale", outputs={"image": "clip"}),
        ),
        timeout=60,
    )
    async with front_door(owners, (chain,)) as client:
        response = await client.post("/animate-then-scale", json={})
    assert response.status_code == 200, response.text
    assert owners.calls[1][2]["image"].startswith("data:image/webp;base64,")
    assert response.headers["x-frames"] == "3"  # the earlier step's headers pass on


async def test_a_failing_step_keeps_its_status_and_error_body(owners: Recording) -> None:
    chain = Chain(
        "/scale-then-invert",
        NoFields,
        (
            Step("canvas", "ryla-demo", "ComfyUI", "/invert", values={"width": 4}),
            Step("scaled", "ryla-demo", "ComfyUI", "/scale", values={"image": "data:image/png;"
                 "base64," + base64.b64encode(b"not a png").decode()}),
            Step("never", "ryla-demo", "ComfyUI", "/invert"),
        ),
        timeout=60,
    )  # fmt: skip
    async with front_door(owners, (chain,)) as client:
        response = await client.post("/scale-then-invert", json={})
    failed = owners.outcomes[-1]
    assert response.status_code == failed.status == 422
    assert response.content == failed.body  # the step's own {error, details, type}
    assert response.json()["details"][0]["field"] == "image"
    assert response.headers["X-Chain-Step"] == "scaled"
    assert [path for _, path, _ in owners.calls] == ["/invert", "/scale"]  # stopped there
    spent = float(owners.outcomes[0].header("X-Cost-USD"))
    assert float(response.headers["X-Cost-USD"]) == pytest.approx(spent, abs=1e-6)


class FakeRemote:
    """Stands in for a deployed class's ``run_request`` (``.remote.aio``)."""

    def __init__(self, answer: dict[str, Any] | Exception) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []
        self.remote = self
        self.run_request = self

    def __call__(self) -> FakeRemote:  # modal.Cls.from_name(...)() gives an instance
        return self

    async def aio(self, *args: Any) -> dict[str, Any]:
        self.calls.append(args)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_on_modal_a_route_is_a_call_of_the_owning_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import modal

    from generator.runtime.fleet import ModalOwners

    answer = Outcome(200, b"png", "image/png", {"x-gpu-type": "T4"}).as_dict()
    fake, looked_up = FakeRemote(answer), []

    def from_name(app: str, cls: str, **_: Any) -> FakeRemote:
        looked_up.append((app, cls))
        return fake

    monkeypatch.setattr(modal.Cls, "from_name", from_name)
    app = create_fleet_app(
        MODULE.SETTINGS, MODULE.FORWARDS, MODULE.CHAINS, MODULE.RETIRED, ModalOwners()
    )
    async with client_for(app) as client:
        response = await client.post("/flux-lora", json=LORA)
        fake.answer = RuntimeError("app not found")
        failed = await client.post("/invert", json={})
    assert looked_up == [("ryla-flux", "ComfyUI"), ("ryla-demo", "ComfyUI")]
    assert fake.calls[0][0] == "/flux-dev-lora" and fake.calls[0][1]["lora_id"] == "c1"
    assert response.status_code == 200 and response.content == b"png"
    assert response.headers["x-gpu-type"] == "T4"
    assert failed.status_code == 502 and failed.json()["type"] == "upstream_unavailable"
    assert "app not found" in failed.json()["details"]


async def test_a_client_that_leaves_a_chain_stops_its_run_and_later_steps(slow_standin) -> None:
    import asyncio
    import threading

    import uvicorn

    from generator.standin import free_port

    comfy = RemoteComfy(slow_standin.url, base_dir=slow_standin.base_dir)
    owners = Recording(LocalOwners(fleet_owners(MODULE, FLEET.parent), comfy))
    chain = Chain(
        "/blur-then-invert",
        NoFields,
        (
            Step("slow", "ryla-demo", "ComfyUI", "/blur", values={"sigma": 1.0}),
            Step("after", "ryla-demo", "ComfyUI", "/invert"),
        ),
        timeout=60,
    )
    app = create_fleet_app(MODULE.SETTINGS, (), (chain,), (), owners)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(timeout=0.4) as client:
            with pytest.raises(httpx.ReadTimeout):  # the client gives up and disconnects
                await client.post(f"http://127.0.0.1:{port}/blur-then-invert", json={})
        for _ in range(100):
            queue = slow_standin.queue()
            if not queue["queue_running"] and not queue["queue_pending"]:
                break
            await asyncio.sleep(0.05)
        assert queue == {"queue_running": [], "queue_pending": []}
        await asyncio.sleep(0.3)
        assert [path for _, path, _ in owners.calls] == ["/blur"]  # /invert never started
        history = slow_standin.history()
        assert all(h.get("status", {}).get("status_str") != "success" for h in history.values())
    finally:
        server.should_exit = True
        thread.join(5)
