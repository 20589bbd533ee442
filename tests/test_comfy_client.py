"""ComfyClient against the ComfyUI stand-in: outputs, typed errors, timeout, cancel, crash."""

from __future__ import annotations

import asyncio
import io
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from PIL import Image

from generator.runtime.comfy_client import ComfyClient, FileRef, RunResult
from generator.runtime.errors import (
    ComfyUnavailable,
    ExecutionFailed,
    PromptRejected,
    RunInterrupted,
    RunTimeout,
)

T = TypeVar("T")


def _with_client(url: str, body: Callable[[ComfyClient], Awaitable[T]]) -> T:
    """Run ``body(client)`` in a fresh event loop and close the client afterwards."""

    async def main() -> T:
        async with ComfyClient(url) as client:
            return await body(client)

    return asyncio.run(main())


def _prefix() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


def _invert_prompt(color: int = 0x123456, size: int = 16) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": _prefix()},
        },
    }


def _load_save_prompt(image: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {
            "class_type": "SaveImage",
            "inputs": {"images": ["1", 0], "filename_prefix": _prefix()},
        },
    }


def _slow_prompt(blurs: int = 4) -> dict[str, Any]:
    prompt: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x808080},
        }
    }
    for i in range(2, blurs + 2):
        prompt[str(i)] = {
            "class_type": "ImageBlur",
            "inputs": {"image": [str(i - 1), 0], "blur_radius": 3, "sigma": 1.0},
        }
    prompt[str(blurs + 2)] = {
        "class_type": "PreviewImage",
        "inputs": {"images": [str(blurs + 1), 0]},
    }
    return prompt


def _png(color: tuple[int, int, int], size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def _pixel(data: bytes) -> tuple[int, ...]:
    return Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))


# ------------------------------------------------------------------ results


def test_run_returns_output_file_with_expected_pixels(standin) -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    async def body(client: ComfyClient) -> tuple[RunResult, bytes, str]:
        assert await client.ready()
        result = await client.run(
            _invert_prompt(), timeout=30, on_event=lambda k, d: events.append((k, d))
        )
        data, media_type = await client.fetch(result.outputs["3"][0])
        return result, data, media_type

    result, data, media_type = _with_client(standin.url, body)
    assert list(result.outputs) == ["3"]
    [ref] = result.outputs["3"]
    assert (ref.kind, ref.type, ref.animated) == ("images", "output", False)
    assert ref.filename.endswith(".png")
    assert media_type == "image/png"
    assert _pixel(data) == (0xFF - 0x12, 0xFF - 0x34, 0xFF - 0x56)
    assert 0 < result.elapsed < 30

    kinds = [kind for kind, _ in events]
    assert kinds[0] == "execution_start"
    assert {"executed", "execution_success"} <= set(kinds)
    assert kinds[-1] == "executing" and events[-1][1]["node"] is None
    assert all(data["prompt_id"] == result.prompt_id for _, data in events)
    executing = [d["node"] for k, d in events if k == "executing" and d["node"] is not None]
    assert executing[-1] == "3"


def test_each_run_has_its_own_prompt_id(standin) -> None:
    async def body(client: ComfyClient) -> list[RunResult]:
        return list(
            await asyncio.gather(
                client.run(_invert_prompt(0x000000), timeout=30),
                client.run(_invert_prompt(0xFFFFFF), timeout=30),
            )
        )

    first, second = _with_client(standin.url, body)
    assert first.prompt_id != second.prompt_id
    assert first.outputs["3"][0].filename != second.outputs["3"][0].filename


def test_animated_webp_is_flagged(standin) -> None:
    prompt = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 16, "height": 16, "batch_size": 3, "color": 0xFF0000},
        },
        "2": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["1", 0],
                "filename_prefix": _prefix(),
                "fps": 6.0,
                "lossless": False,
                "quality": 80,
                "method": "default",
            },
        },
    }

    async def body(client: ComfyClient) -> tuple[FileRef, str]:
        result = await client.run(prompt, timeout=30)
        ref = result.outputs["2"][0]
        return ref, (await client.fetch(ref))[1]

    ref, media_type = _with_client(standin.url, body)
    assert ref.animated and ref.filename.endswith(".webp")
    assert media_type == "image/webp"


def test_upload_honours_server_side_rename(standin) -> None:
    name = f"up_{uuid.uuid4().hex[:8]}.png"

    async def body(client: ComfyClient) -> tuple[str, str, bytes]:
        first = await client.upload(_png((255, 0, 0)), name)
        second = await client.upload(_png((0, 0, 255)), name)
        result = await client.run(_load_save_prompt(second), timeout=30)
        data, _ = await client.fetch(result.outputs["2"][0])
        return first, second, data

    first, second, data = _with_client(standin.url, body)
    assert first == name
    assert second != first and second.endswith(".png")
    assert _pixel(data) == (0, 0, 255)


def test_upload_into_subfolder_returns_loadimage_path(standin) -> None:
    async def body(client: ComfyClient) -> str:
        return await client.upload(_png((1, 2, 3)), f"{uuid.uuid4().hex[:8]}.png", "sub")

    assert _with_client(standin.url, body).startswith("sub/")


def test_delete_history_drops_the_prompt(standin) -> None:
    async def body(client: ComfyClient) -> dict[str, Any]:
        result = await client.run(_invert_prompt(), timeout=30)
        await client.delete_history(result.prompt_id)
        async with httpx.AsyncClient(base_url=standin.url) as http:
            return (await http.get(f"/history/{result.prompt_id}")).json()

    assert _with_client(standin.url, body) == {}


# ------------------------------------------------------------------- errors


def test_rejected_prompt_names_node_class_and_input(standin) -> None:
    prompt = _invert_prompt()
    prompt["1"]["inputs"]["width"] = 0

    with pytest.raises(PromptRejected) as info:
        _with_client(standin.url, lambda client: client.run(prompt, timeout=30))
    entries = list(info.value.entries())
    assert info.value.error["type"] == "prompt_outputs_failed_validation"
    assert [(e.node_id, e.class_type, e.input_name) for e in entries] == [
        ("1", "EmptyImage", "width")
    ]
    assert entries[0].error_type == "value_smaller_than_min"
    assert "width" in str(info.value)


def test_partially_valid_prompt_is_rejected_and_not_left_queued(standin) -> None:
    prompt = _invert_prompt()
    prompt["4"] = {
        "class_type": "EmptyImage",
        "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": "red"},
    }
    prompt["5"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["4", 0], "filename_prefix": "x"},
    }

    async def body(client: ComfyClient) -> PromptRejected:
        with pytest.raises(PromptRejected) as info:
            await client.run(prompt, timeout=30)
        queue = await client.queue()
        assert queue.running == [] and queue.pending == []
        return info.value

    error = _with_client(standin.url, body)
    assert [(e.node_id, e.input_name) for e in error.entries()] == [("4", "color")]


def test_unknown_node_class_is_rejected_with_node_id(standin) -> None:
    prompt = _invert_prompt()
    prompt["2"]["class_type"] = "NoSuchNode"

    with pytest.raises(PromptRejected) as info:
        _with_client(standin.url, lambda client: client.run(prompt, timeout=30))
    [entry] = info.value.entries()
    assert entry.node_id == "2"
    assert "NoSuchNode" in entry.message


def test_runtime_error_raises_execution_failed(standin) -> None:
    async def body(client: ComfyClient) -> RunResult:
        name = await client.upload(b"this is not an image", f"bad_{uuid.uuid4().hex[:8]}.png")
        return await client.run(_load_save_prompt(name), timeout=30)

    with pytest.raises(ExecutionFailed) as info:
        _with_client(standin.url, body)
    assert (info.value.node_id, info.value.node_type) == ("1", "LoadImage")
    assert "UnidentifiedImageError" in info.value.exception_type
    assert info.value.traceback


def test_nothing_listening_raises_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def body(client: ComfyClient) -> bool:
        assert not await client.ready()
        await client.run(_invert_prompt(), timeout=5)
        return True

    with pytest.raises(ComfyUnavailable):
        _with_client(url, body)


# -------------------------------------------------- timeout, cancel, crash


def test_timeout_interrupts_running_prompt_and_empties_queue(slow_standin) -> None:
    async def body(client: ComfyClient) -> tuple[RunTimeout, list[str], list[str]]:
        with pytest.raises(RunTimeout) as info:
            await client.run(_slow_prompt(), timeout=0.3)
        queue = await client.queue()
        return info.value, queue.running, queue.pending

    error, running, pending = _with_client(slow_standin.url, body)
    assert error.state == "running"
    assert running == [] and pending == []


def test_timeout_while_pending_dequeues(slow_standin) -> None:
    async def body(client: ComfyClient) -> tuple[RunTimeout, RunResult, list[str]]:
        busy = asyncio.create_task(client.run(_slow_prompt(2), timeout=30))
        await asyncio.sleep(0.1)
        with pytest.raises(RunTimeout) as info:
            await client.run(_invert_prompt(), timeout=0.2)
        pending = (await client.queue()).pending
        return info.value, await busy, pending

    error, busy_result, pending = _with_client(slow_standin.url, body)
    assert error.state == "pending"
    assert pending == []
    assert busy_result.outputs["4"][0].type == "temp"


def test_cancellation_interrupts_the_prompt(slow_standin) -> None:
    async def body(client: ComfyClient) -> list[str]:
        started = asyncio.Event()

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "executing" and data.get("node") == "2":
                started.set()

        task = asyncio.create_task(client.run(_slow_prompt(), timeout=30, on_event=on_event))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        queue = await client.queue()
        return queue.running + queue.pending

    assert _with_client(slow_standin.url, body) == []


def test_interrupt_from_elsewhere_raises_run_interrupted(slow_standin) -> None:
    async def body(client: ComfyClient) -> None:
        loop = asyncio.get_running_loop()

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "executing" and data.get("node") == "2":
                loop.create_task(client.interrupt())

        await client.run(_slow_prompt(), timeout=30, on_event=on_event)

    with pytest.raises(RunInterrupted) as info:
        _with_client(slow_standin.url, body)
    assert info.value.node_type == "ImageBlur"


def test_repeated_cancellation_still_interrupts(slow_standin) -> None:
    async def body(client: ComfyClient) -> float:
        started = asyncio.Event()

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "executing" and data.get("node") == "2":
                started.set()

        task = asyncio.create_task(client.run(_slow_prompt(6), timeout=30, on_event=on_event))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        await asyncio.sleep(0)  # the run is now awaiting its shielded abort
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancelled_at = asyncio.get_running_loop().time()
        while (await client.queue()).running:
            await asyncio.sleep(0.02)
        return asyncio.get_running_loop().time() - cancelled_at

    assert _with_client(slow_standin.url, body) < 1.5  # the prompt had ~3 s of work left


def test_killed_mid_run_raises_unavailable(standin_process) -> None:
    async def body(client: ComfyClient) -> RunResult:
        loop = asyncio.get_running_loop()

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "executing" and data.get("node") == "2":
                loop.call_soon(standin_process.kill)

        return await client.run(_slow_prompt(), timeout=30, on_event=on_event)

    with pytest.raises(ComfyUnavailable):
        _with_client(standin_process.url, body)


# ------------------------------------------------------------ pure parsing


def test_rejection_entries_flatten_every_node_error() -> None:
    error = PromptRejected(
        {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"},
        {
            "1": {
                "errors": [
                    {
                        "type": "value_bigger_than_max",
                        "message": "Value 99999 bigger than max of 16384",
                        "details": "height",
                        "extra_info": {"input_name": "height", "received_value": 99999},
                    },
                    {
                        "type": "value_smaller_than_min",
                        "message": "Value 0 smaller than min of 1",
                        "details": "width",
                        "extra_info": {"input_name": "width"},
                    },
                ],
                "dependent_outputs": ["2"],
                "class_type": "EmptyImage",
            },
            "2": {
                "errors": [
                    {"type": "exception_during_validation", "message": "m", "details": "'99'"}
                ],
                "class_type": "SaveImage",
            },
        },
    )
    flat = [(e.node_id, e.class_type, e.input_name, e.error_type) for e in error.entries()]
    assert flat == [
        ("1", "EmptyImage", "height", "value_bigger_than_max"),
        ("1", "EmptyImage", "width", "value_smaller_than_min"),
        ("2", "SaveImage", None, "exception_during_validation"),
    ]


def test_rejection_without_node_errors_yields_the_top_level_error() -> None:
    unknown = PromptRejected(
        {
            "type": "invalid_prompt",
            "message": "Cannot execute because node NoSuchNode does not exist.",
            "details": "Node ID '#1'",
            "extra_info": {},
        },
        {},
    )
    [entry] = unknown.entries()
    assert (entry.node_id, entry.error_type) == ("1", "invalid_prompt")

    no_outputs = PromptRejected(
        {"type": "prompt_no_outputs", "message": "Prompt has no outputs"}, {}
    )
    [entry] = no_outputs.entries()
    assert (entry.node_id, entry.class_type, entry.input_name) == (None, None, None)
    assert str(no_outputs).startswith("Prompt has no outputs")


# ------------------------------------------------- one WebSocket, honest timing


def test_concurrent_runs_share_one_websocket_and_each_gets_its_own_output(standin) -> None:
    hub = standin.standin.hub
    connected: list[str] = []
    connect = hub.connect

    def counting(sid: str, socket: Any) -> None:
        connected.append(sid)
        connect(sid, socket)

    hub.connect = counting
    colors = [0x100000 * i + 0x0A0B0C for i in range(8)]

    async def body(client: ComfyClient) -> list[tuple[int, ...]]:
        results = await asyncio.gather(*(client.run(_invert_prompt(c), timeout=30) for c in colors))
        return [_pixel((await client.fetch(r.outputs["3"][0]))[0]) for r in results]

    pixels = _with_client(standin.url, body)
    assert pixels == [tuple(255 - ((c >> s) & 0xFF) for s in (16, 8, 0)) for c in colors]
    assert len(connected) == 1


def test_execution_time_excludes_the_wait_behind_other_prompts(slow_standin) -> None:
    async def body(client: ComfyClient) -> tuple[list[RunResult], float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*(client.run(_slow_prompt(2), timeout=30) for _ in range(3)))
        return list(results), loop.time() - started

    results, wall = _with_client(slow_standin.url, body)
    assert sum(r.execution for r in results) <= wall  # one prompt at a time: no double count
    waited = max(results, key=lambda r: r.queue)
    assert waited.queue >= min(r.execution for r in results)  # it waited for another's run
    assert all(r.execution + r.queue <= r.elapsed + 0.01 for r in results)


def test_a_websocket_lost_mid_run_is_reopened_and_the_run_completes(slow_standin) -> None:
    """Events sent while the socket was down are recovered from /history, outputs included."""

    async def body(client: ComfyClient) -> RunResult:
        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "executing" and data.get("node") == "2":
                client._ws.transport.abort()  # the connection breaks mid-run

        return await client.run(_slow_prompt(), timeout=30, on_event=on_event)

    result = _with_client(slow_standin.url, body)
    assert [ref.type for ref in result.outputs["6"]] == ["temp"]  # the PreviewImage's file


def test_the_next_run_reopens_a_websocket_lost_between_runs(standin) -> None:
    async def body(client: ComfyClient) -> RunResult:
        await client.run(_invert_prompt(), timeout=30)
        client._ws.transport.abort()
        await asyncio.sleep(0.05)
        return await client.run(_invert_prompt(0x654321), timeout=30)

    assert _with_client(standin.url, body).outputs["3"]


def test_log_lines_reach_only_the_prompt_comfyui_was_running() -> None:
    """ComfyUI's ``logs`` events carry no prompt id: a line belongs to the prompt between its
    ``execution_start`` and ``executing {node: null}``; a line outside any run, or of a prompt
    that watches nothing, is nobody's."""
    import json

    from generator.runtime.comfy_client import _Run

    client = ComfyClient("http://127.0.0.1:9")
    watch = ("no face",)
    first, second, blind = _Run(watch), _Run(watch), _Run()
    client._runs.update({"p1": first, "p2": second, "p3": blind})

    def send(kind: str, **data: Any) -> None:
        client._route(json.dumps({"type": kind, "data": data}))

    def say(line: str) -> None:
        send("logs", entries=[{"t": "2026-12-05T00:00:00", "m": line}], size=None)

    say("No face found before any prompt\n")
    send("execution_start", prompt_id="p1", timestamp=1)
    say("got an image\n")
    send("executing", node=None, prompt_id="p1")
    say("WARNING: No Face detected (between prompts)\n")
    send("execution_start", prompt_id="p2", timestamp=2)
    say("PuLID warning: No faces detected in any of the given images\n")
    send("executing", node=None, prompt_id="p2")
    send("execution_start", prompt_id="p3", timestamp=3)
    say("no face at all\n")
    for run in (first, second, blind):
        while not run.events.empty():
            kind, data = run.events.get_nowait()
            if kind == "logs":
                run.read_logs(data)
    assert (first.noticed, second.noticed, blind.noticed) == ([], ["no face"], [])
