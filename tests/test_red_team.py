"""Cases found by trying to break ryla-gen from outside (issues 11 and 12), each a class.

Spec cases copy ``specs/ryla-demo.yaml`` and its workflows into a temporary project, change one
thing and run the real CLI: the answer must be ``file:line:col: error: …`` and exit 2, never a
traceback or a hang. Serving cases call the runtime's own checks.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from generator.cli import main
from generator.runtime import urls
from generator.runtime.media import load_media

REPO = Path(__file__).resolve().parents[1]
SPEC = "specs/ryla-demo.yaml"
LOCATED = re.compile(r"^specs/ryla-demo\.yaml:\d+:\d+: error: ", re.M)


def demo_project(tmp_path: Path, edit) -> Path:
    """ryla-demo's spec (changed by ``edit``) and its workflows in a fresh project."""
    (tmp_path / "specs").mkdir()
    (tmp_path / "comfy_workflows").mkdir()
    for workflow in (REPO / "comfy_workflows").glob("demo-*.json"):
        shutil.copy(workflow, tmp_path / "comfy_workflows" / workflow.name)
    text = (REPO / SPEC).read_text(encoding="utf-8")
    changed = edit(text)
    assert changed != text, "the edit must change the spec"
    (tmp_path / SPEC).write_text(changed, encoding="utf-8")
    return tmp_path


def after_auth(line: str):
    """An edit adding ``line`` to the app block (after ``auth: proxy``)."""
    return lambda text: text.replace("  auth: proxy\n", f"  auth: proxy\n{line}\n", 1)


ALIAS_BOMB = "\n".join(
    f"  x-l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" if i else "  x-l0: &l0 [lol]"
    for i in range(9)
)

SPEC_CASES = {
    # Path(...).resolve() raised ValueError on the NUL: a traceback instead of an error.
    "workflow name with a NUL": (
        lambda t: t.replace("workflow: demo-invert.json", 'workflow: "demo\\0invert.json"'),
        "contains a control character",
    ),
    # The position-keeping loader followed the alias into itself: RecursionError.
    "alias inside its own anchor": (
        after_auth("  x-loop: &l [*l]"),
        "an alias refers to a node that contains it",
    ),
    "merge of a mapping into itself": (
        after_auth("  x-loop: &m {a: 1, <<: *m}"),
        "an alias refers to a node that contains it",
    ),
    # Nine levels of nine aliases expand to 387 million values: validate never finished.
    "alias bomb": (after_auth(ALIAS_BOMB), "expands to more than"),
    # validate said "ok"; build failed writing UTF-8, with no position.
    "lone surrogate in a description": (
        lambda t: t.replace("description: Canvas width in pixels.", 'description: "a\\ud800b"'),
        "U+D800 is not a character",
    ),
    # validate said "ok", then build died in Modal's own mount check (traceback) or, for
    # '/a' next to '/a/', one Volume silently replaced the other.
    "Volume mounted at the root": (
        lambda t: t.replace("volumes: {}", "volumes: {/: ryla-models}"),
        "cannot be mounted at '/'",
    ),
    "Volume mount path with '..'": (
        lambda t: t.replace("volumes: {}", "volumes: {/root/../etc: ryla-models}"),
        "is not canonical ('/etc')",
    ),
    "two mount paths that are one": (
        lambda t: t.replace("volumes: {}", "volumes: {/a: one, /a/: two}"),
        "is not canonical ('/a')",
    ),
    "one Volume at two paths": (
        lambda t: t.replace("volumes: {}", "volumes: {/a: one, /b: one}"),
        "is mounted at both",
    ),
    # "ok": the self-check never decoded media, so a broken example image (also the warm-up)
    # validated and was refused by the container with a 422.
    "example image that is not base64": (
        lambda t: t.replace("iVBORw0KGgo", "iVBORw0K!!Ggo", 1),
        "example 1: image: not valid base64",
    ),
    "example image that is a cut-off PNG": (
        lambda t: t.replace("ErkJggg==", "", 1),
        "example 1: image:",
    ),
}

WORKFLOW_CASES = {
    # json.loads recursed past Python's limit: RecursionError traceback.
    "nested 5000 deep": (
        lambda t: (
            t.rstrip().removesuffix("}")
            + ', "9": {"class_type": "X", "inputs": {"a": '
            + "[" * 5000
            + "]" * 5000
            + "}}}"
        ),
        "JSON nested too deep",
    ),
    # Python's json reads NaN; the endpoint then sent ComfyUI a non-finite canvas width.
    "NaN literal": (
        lambda t: t.replace('"width": 64', '"width": NaN'),
        "NaN is not a JSON number",
    ),
}


@pytest.mark.parametrize("case", WORKFLOW_CASES, ids=list(WORKFLOW_CASES))
def test_broken_workflow_is_a_located_error(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit, message = WORKFLOW_CASES[case]
    project = demo_project(tmp_path, lambda t: t + "\n")
    workflow = project / "comfy_workflows/demo-invert.json"
    original = workflow.read_text(encoding="utf-8")
    assert edit(original) != original
    workflow.write_text(edit(original), encoding="utf-8")
    monkeypatch.chdir(project)
    monkeypatch.setenv("RYLA_GEN_NO_CACHE", "1")
    result = CliRunner().invoke(main, ["validate", "specs/"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 2, result.output
    assert re.search(r"^\S+:\d+:\d+: error: .*" + re.escape(message), result.output, re.M)


@pytest.mark.parametrize("case", SPEC_CASES, ids=list(SPEC_CASES))
@pytest.mark.parametrize("command", ["validate", "build"])
def test_broken_spec_is_a_located_error(
    case: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit, message = SPEC_CASES[case]
    monkeypatch.chdir(demo_project(tmp_path, edit))
    monkeypatch.setenv("RYLA_GEN_NO_CACHE", "1")
    result = CliRunner().invoke(main, [command, "specs/"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 2, result.output
    assert LOCATED.search(result.output), result.output
    assert message in result.output
    assert not (tmp_path / "generated").exists()


# --- URL inputs: IPv6 forms that carry a private IPv4 address ------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254 (cloud metadata)
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "::7f00:1",  # IPv4-compatible 127.0.0.1
    ],
)
def test_ipv6_forms_of_private_ipv4_addresses_are_refused(address: str) -> None:
    assert not urls.is_public(address)


def test_ipv6_forms_of_public_ipv4_addresses_stay_public() -> None:
    assert urls.is_public("64:ff9b::101:101")  # NAT64 of 1.1.1.1
    assert urls.is_public("2002:101:101::1")  # 6to4 of 1.1.1.1
    assert urls.is_public("2606:4700:4700::1111")


def test_a_nat64_url_of_loopback_is_refused_before_any_connection() -> None:
    with pytest.raises(urls.UrlError, match="private, loopback or link-local"):
        asyncio.run(urls.check_url("http://[64:ff9b::7f00:1]/x.png", allow_private=False))


# --- inline media: what ordinary tools produce is accepted --------------------------------------

LIMITS = {"max_bytes": 1 << 20, "max_pixels": 10_000, "allow_private": False}


def png_base64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_base64_wrapped_at_76_columns_is_decoded() -> None:
    """`base64 image.png` wraps its output; that whitespace is not part of the data."""
    encoded = png_base64()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert "\n" in wrapped
    media = asyncio.run(load_media(f"data:image/png;base64,{wrapped}\r\n", "image", **LIMITS))
    assert media.data == base64.b64decode(encoded)


def test_data_url_scheme_and_type_are_case_insensitive() -> None:
    """RFC 2397: `DATA:IMAGE/PNG;BASE64,` is the same data URL."""
    encoded = png_base64()
    media = asyncio.run(load_media(f"DATA:IMAGE/PNG;BASE64,{encoded}", "image", **LIMITS))
    assert media.data == base64.b64decode(encoded)
    assert media.media_type == "image/png"


# --- request bodies: an encoding the server does not decode is refused ----------------------------


async def test_a_content_encoded_body_is_refused_not_misread(standin) -> None:
    """Plain JSON declared gzip ran (200) as if decoded; real gzip got "cannot parse"."""
    import gzip

    from test_runtime_app import DEMO, client_for

    from generator.runtime.backends import RemoteComfy
    from generator.runtime.server import create_app

    comfy = RemoteComfy(standin.url, base_dir=standin.base_dir)
    app = create_app(DEMO.SETTINGS, DEMO.ENDPOINTS, comfy, DEMO.WORKFLOWS)
    body = b'{"width": 64}'
    async with client_for(app) as client:
        for content in (body, gzip.compress(body)):
            for path in ("/invert", "/jobs/invert"):
                response = await client.post(
                    path,
                    content=content,
                    headers={"content-type": "application/json", "content-encoding": "gzip"},
                )
                assert response.status_code == 400, (path, response.text)
                assert "Content-Encoding" in response.json()["error"]
        plain = await client.post(
            "/invert",
            content=body,
            headers={"content-type": "application/json", "content-encoding": "identity"},
        )
        assert plain.status_code == 200, plain.text
    await comfy.client.aclose()
