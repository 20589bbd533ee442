"""Property-based API tests (schemathesis) of generated apps served by uvicorn on the stand-in.

Every operation of ryla-demo, and the monolith's client-workflow route (its reused endpoints
need models and custom nodes the stand-in does not have), gets seeded, bounded positive and
negative requests; each answer must not be a 5xx, its status must be documented, its body,
headers and content type must match the documented schema, and schema-violating requests must
be refused. (Not checked: that every schema-valid request is accepted - an image field holding
"" is valid JSON Schema but not an image - and that a cancelled job disappears: its status
stays readable as ``cancelled``.)
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from helpers import REPO
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_runtime_app import DEMO, MONOLITH

from generator.dev import dev_app
from generator.runtime.backends import RemoteComfy
from generator.runtime.server import create_app
from generator.standin import free_port, run_in_thread

EXAMPLES = 40  # per operation and generation mode
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    response_headers_conformance,
    content_type_conformance,
    negative_data_rejection,  # "5" for an int, true for 1, unknown fields: refused
]
WORKFLOW_ROUTE = [e for e in MONOLITH.ENDPOINTS if e.path == "/workflow"]
APPS = ["ryla-demo", "ryla-comfyui", "ryla-comfyui-front-door"]
ONLY = {"ryla-comfyui-front-door": {"/workflow", "/health"}}  # the rest needs real models


def build(name: str, standin) -> FastAPI:
    """ryla-demo and the monolith's /workflow class as create_app serves them; the monolith's
    public URL (the fleet front door, forwarding /workflow to that class) as ryla-gen dev does."""
    if name == "ryla-comfyui-front-door":
        return dev_app(REPO / "generated" / "ryla_comfyui.py", standin.url, str(standin.base_dir))
    module_settings, endpoints = (
        (DEMO.SETTINGS, DEMO.ENDPOINTS)
        if name == "ryla-demo"
        else (MONOLITH.SETTINGS, WORKFLOW_ROUTE)
    )
    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    app_settings = dataclasses.replace(module_settings, max_body_bytes=1024 * 1024)
    return create_app(app_settings, endpoints, comfy, DEMO.WORKFLOWS)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, dict]]]:
    """Each app under uvicorn (its own thread and event loop), one stand-in behind them all."""
    base = tmp_path_factory.mktemp("schemathesis")
    with run_in_thread(Path(base) / "standin") as standin:
        servers, urls = [], {}
        for name in APPS:
            app = build(name, standin)
            port = free_port()
            config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            servers.append((server, thread))
            urls[name] = (f"http://127.0.0.1:{port}", app.openapi())
        for server, _ in servers:
            while not server.started:
                time.sleep(0.01)
        yield urls
        for server, thread in servers:
            server.should_exit = True
            thread.join(10)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("app_name", APPS)
def test_every_operation_conforms_to_its_schema(served, app_name: str, mode) -> None:
    base_url, openapi = served[app_name]
    schema = schemathesis.openapi.from_dict(openapi)
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if app_name in ONLY and operation.path not in ONLY[app_name]:
            continue
        test = _conformance_test(operation, mode, base_url, failures)
        try:
            calls += test()
        except Unsatisfiable:  # nothing to make invalid (e.g. GET /health has no input)
            assert mode is GenerationMode.NEGATIVE
    print(f"{app_name} {mode.value}: {calls} requests, {len(failures)} failures")
    assert calls > 0
    assert failures == [], "\n".join(sorted(set(failures)))


def _conformance_test(operation, mode, base_url: str, failures: list[str]):
    """A seeded hypothesis test of one operation; returns how many requests it sent."""
    calls = [0]

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # seeded: the same requests on every run
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:
        calls[0] += 1
        try:
            case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=60)
        except Exception as exc:  # noqa: BLE001 - keep going: report every failing operation
            failures.append(f"{operation.label}: {' '.join(str(exc).split())[:300]}")

    def run() -> int:
        check()
        return calls[0]

    return run
