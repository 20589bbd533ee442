"""Baselines for the overhead benchmark: minimal hand-written ComfyUI API clients.

``direct_run``: what anybody would write against ComfyUI directly: a WebSocket per run,
``POST /prompt``, wait for the prompt's ``executing {node: null}``, ``GET /view`` of the first
output file. ``DirectSession``: the same with one WebSocket kept open across runs (the stricter
baseline: no connection set-up per run). No error handling beyond failing loudly. Pass a shared
``httpx.AsyncClient`` (keep-alive) for a fair comparison.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect


async def direct_run(
    base_url: str, prompt: dict[str, Any], *, http: httpx.AsyncClient | None = None
) -> bytes:
    """Run ``prompt`` on ComfyUI at ``base_url``; return the bytes of its first output file."""
    if http is None:
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as own:
            return await direct_run(base_url, prompt, http=own)
    client_id = uuid.uuid4().hex
    ws_url = "ws" + base_url.rstrip("/").removeprefix("http") + f"/ws?clientId={client_id}"
    async with connect(ws_url, compression=None, max_size=None, proxy=None) as ws:
        return await _run_on(ws, base_url, client_id, prompt, http)


class DirectSession:
    """One WebSocket for many sequential runs (``async with DirectSession(url, http) as s``)."""

    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url, self.http = base_url.rstrip("/"), http
        self.client_id = uuid.uuid4().hex
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> DirectSession:
        ws_url = "ws" + self.base_url.removeprefix("http") + f"/ws?clientId={self.client_id}"
        self._ws = await connect(ws_url, compression=None, max_size=None, proxy=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._ws is not None
        self._ws.transport.abort()

    async def run(self, prompt: dict[str, Any]) -> bytes:
        assert self._ws is not None
        return await _run_on(self._ws, self.base_url, self.client_id, prompt, self.http)

    async def run_many(self, prompts: list[dict[str, Any]]) -> list[float]:
        """Post every prompt at once, follow them all on the one socket, fetch each first file;
        returns each prompt's latency in seconds (post to file in hand)."""
        assert self._ws is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        done: dict[str, asyncio.Future[dict[str, Any]]] = {}
        first: dict[str, dict[str, Any]] = {}

        async def post(prompt: dict[str, Any]) -> str:
            body = {"prompt": prompt, "client_id": self.client_id}
            resp = await self.http.post(f"{self.base_url}/prompt", json=body)
            resp.raise_for_status()
            prompt_id = resp.json()["prompt_id"]
            done.setdefault(prompt_id, loop.create_future())
            return prompt_id

        async def read() -> None:
            async for raw in self._ws:
                if isinstance(raw, bytes):
                    continue
                msg = json.loads(raw)
                prompt_id = msg["data"].get("prompt_id")
                if not isinstance(prompt_id, str):
                    continue
                future = done.setdefault(prompt_id, loop.create_future())
                if msg["type"] == "executed" and prompt_id not in first:
                    first[prompt_id] = next(iter(msg["data"]["output"].values()))[0]
                if msg["type"] == "executing" and msg["data"]["node"] is None:
                    future.set_result(first[prompt_id])
                    if len(first) == len(prompts) and all(f.done() for f in done.values()):
                        return

        async def one(prompt: dict[str, Any]) -> float:
            prompt_id = await post(prompt)
            view = await self.http.get(f"{self.base_url}/view", params=await done[prompt_id])
            view.raise_for_status()
            return loop.time() - started

        reader = asyncio.create_task(read())
        try:
            return list(await asyncio.gather(*(one(p) for p in prompts)))
        finally:
            reader.cancel()


async def _run_on(
    ws: ClientConnection,
    base_url: str,
    client_id: str,
    prompt: dict[str, Any],
    http: httpx.AsyncClient,
) -> bytes:
    resp = await http.post(f"{base_url}/prompt", json={"prompt": prompt, "client_id": client_id})
    resp.raise_for_status()
    prompt_id = resp.json()["prompt_id"]
    first_file: dict[str, Any] | None = None
    async for raw in ws:
        if isinstance(raw, bytes):
            continue
        msg = json.loads(raw)
        data = msg["data"]
        if data.get("prompt_id") != prompt_id:
            continue
        if msg["type"] == "execution_error":
            raise RuntimeError(data.get("exception_message"))
        if msg["type"] == "executed" and first_file is None:
            first_file = next(iter(data["output"].values()))[0]
        if msg["type"] == "executing" and data["node"] is None:
            break
    if first_file is None:
        raise RuntimeError("prompt produced no output file")
    view = await http.get(f"{base_url}/view", params=first_file)
    view.raise_for_status()
    return view.content
