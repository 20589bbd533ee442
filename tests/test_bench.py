"""`ryla-gen bench` against `ryla-gen dev` + the ComfyUI stand-in, and its parts on their own.

The served project is a copy of the model-free ryla-demo app plus one endpoint that always
fails (`/broken`: LoadImage of a file that does not exist, so ComfyUI rejects the prompt).
The dev server's access log is the independent record of the requests the bench made.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image

from generator.cli import main
from generator.quality.checks import check_body, check_file
from generator.quality.cold import ColdStartError, ModalColdStarter
from generator.quality.report import fmt_rate, fmt_seconds, fmt_usd
from generator.quality.results import percentile
from generator.quality.targets import SelectionError, select_targets
from generator.resolve.gpus import GPU_TYPES
from generator.resolve.project import Project, load_project
from generator.standin import StandinProcess, free_port

REPO = Path(__file__).resolve().parents[1]
DEMO_PATHS = ["/invert", "/scale", "/blur", "/animate"]
PASSING = DEMO_PATHS
T4_PRICE = GPU_TYPES["T4"].usd_per_second

BROKEN_WORKFLOW = {
    "1": {
        "class_type": "LoadImage",
        "inputs": {"image": "missing-on-purpose.png"},
        "_meta": {"title": "Missing Image"},
    },
    "2": {
        "class_type": "SaveImage",
        "inputs": {"images": ["1", 0], "filename_prefix": "ryla/demo-broken"},
        "_meta": {"title": "Save Image"},
    },
}
BROKEN_SPEC = """\
# Fails on purpose: its workflow loads an input file that does not exist.
version: 1
app: ryla-demo
endpoints:
  - path: /broken
    workflow: demo-broken.json
    summary: Always fails (LoadImage of a missing file).
    output: {title: Save Image}
    examples:
      - {}
"""
ACCESS_LINE = re.compile(r'"POST (?P<path>/\S+) HTTP/1\.1" (?P<status>\d{3})')


@dataclass
class Served:
    """The temp project, its dev server's URL and its access log."""

    root: Path
    url: str
    log: Path

    def log_offset(self) -> int:
        return self.log.stat().st_size

    def requests_since(self, offset: int) -> Counter[tuple[str, int]]:
        """(path, status) of every POST the dev server logged after ``offset``."""
        text = self.log.read_bytes()[offset:].decode("utf-8", "replace")
        return Counter((m["path"], int(m["status"])) for m in ACCESS_LINE.finditer(text))


def _make_project(root: Path) -> None:
    (root / "specs").mkdir(parents=True)
    (root / "comfy_workflows").mkdir()
    shutil.copy(REPO / "specs" / "ryla-demo.yaml", root / "specs")
    for workflow in (REPO / "comfy_workflows").glob("demo-*.json"):
        shutil.copy(workflow, root / "comfy_workflows")
    (root / "specs" / "broken.yaml").write_text(BROKEN_SPEC)
    (root / "comfy_workflows" / "demo-broken.json").write_text(json.dumps(BROKEN_WORKFLOW))


def _wait_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ryla-gen dev exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/health", trust_env=False, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"ryla-gen dev did not come up:\n{log.read_text()}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`ryla-gen build` + `ryla-gen dev ryla-demo` (child process) against a stand-in process."""
    root = tmp_path_factory.mktemp("bench-project")
    _make_project(root)
    build = subprocess.run(
        [sys.executable, "-m", "generator.cli", "build"], cwd=root, capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr
    standin = StandinProcess(root / "comfy").start()
    port = free_port()
    log = root / "dev.log"
    with log.open("wb") as sink:
        dev = subprocess.Popen(
            [sys.executable, "-m", "generator.cli", "dev", "ryla-demo"]
            + ["--comfy-url", standin.url, "--port", str(port)],
            cwd=root,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_up(url, dev, log)
        yield Served(root, url, log)
    finally:
        dev.terminate()
        dev.wait(timeout=10)
        standin.stop()


def _bench(served: Served, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.chdir(served.root)
    result = CliRunner().invoke(main, ["bench", "--base-url", served.url, *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _table(markdown: str) -> list[dict[str, str]]:
    """The Markdown table as dicts keyed by column header."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    return [
        dict(zip(header, (c.strip() for c in line.strip("|").split(" | ")), strict=True))
        for line in lines[2:]
    ]


def _mark(target: dict) -> str:
    return {"pass": "✅ pass", "fail": "❌ fail", "n/a": "– n/a"}[target["verdict"]] + (
        "*" if target["gated"] else ""
    )


RUNS = 3


@pytest.fixture(scope="module")
def full_run(served: Served, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One bench of every endpoint of the app, gated on success (so it must fail)."""
    offset = served.log_offset()
    out = tmp_path_factory.mktemp("reports-all")
    with pytest.MonkeyPatch.context() as monkeypatch:
        status, output = _bench(
            served, monkeypatch, "--app", "ryla-demo", "--runs", str(RUNS),
            "--concurrency", "2", "--min-success", "0.95", "--out", str(out),
        )  # fmt: skip
    report = json.loads((out / "ENDPOINT-QUALITY.json").read_text())
    return {
        "status": status,
        "output": output,
        "report": report,
        "by_path": {e["path"]: e for e in report["endpoints"]},
        "markdown": (out / "ENDPOINT-QUALITY.md").read_text(),
        "out": out,
        "logged": served.requests_since(offset),
    }


def test_counts_match_the_requests_the_server_saw(full_run: dict) -> None:
    by_path, logged = full_run["by_path"], full_run["logged"]
    assert sorted(by_path) == sorted(DEMO_PATHS + ["/broken"])
    for path, e in by_path.items():
        assert e["planned"] == e["requests"] == len(e["samples"]) == 1 + RUNS, path
        assert [s["phase"] for s in e["samples"]].count("first") == 1
        assert sum(n for (p, _), n in logged.items() if p == path) == e["requests"], path
        ok_logged = sum(n for (p, status), n in logged.items() if p == path and status == 200)
        assert e["successes"] == ok_logged == sum(s["ok"] for s in e["samples"]), path
        assert e["failures"] == e["requests"] - e["successes"]
        assert e["success_rate"] == pytest.approx(e["successes"] / e["requests"])
    for path in PASSING:
        assert by_path[path]["successes"] == 1 + RUNS, by_path[path]["errors"]


def test_failing_endpoint_is_counted_as_failure(full_run: dict) -> None:
    broken = full_run["by_path"]["/broken"]
    assert broken["successes"] == 0 and broken["success_rate"] == 0.0
    assert broken["errors"] == {"500 prompt_rejected": 1 + RUNS}
    assert full_run["logged"][("/broken", 500)] == 1 + RUNS
    assert broken["warm"]["total_s"] is None and broken["cost"]["total_usd"] is None
    assert {t["verdict"] for t in broken["targets"].values()} == {"fail"}
    assert full_run["status"] == 1  # --min-success 0.95 gates the deploy
    assert not full_run["report"]["gate"]["passed"]
    assert "/broken: success" in " ".join(full_run["report"]["gate"]["failures"])
    assert "target missed: /broken" in full_run["output"]


def test_latency_and_cost_figures_follow_the_samples(full_run: dict) -> None:
    for path in PASSING:
        e = full_run["by_path"][path]
        warm = [s["total_s"] for s in e["samples"] if s["phase"] == "warm" and s["ok"]]
        spread = e["warm"]["total_s"]
        assert min(warm) <= spread["p50"] <= spread["p90"] <= max(warm)
        assert spread["p50"] == pytest.approx(percentile(warm, 50))
        assert (spread["min"], spread["max"]) == (min(warm), max(warm))
        for s in e["samples"]:
            assert 0 < s["ttfb_s"] <= s["total_s"]
            assert s["cost_source"] == "header"  # X-Cost-USD = execution time × T4 price
            assert s["cost_usd"] == pytest.approx(s["execution_s"] * T4_PRICE, abs=1.5e-6)
        cost = e["cost"]
        assert cost["total_usd"] == pytest.approx(sum(s["cost_usd"] for s in e["samples"]))
        assert cost["outputs"] == 1 + RUNS
        assert cost["per_output_usd"] == pytest.approx(cost["total_usd"] / cost["outputs"])
        assert e["targets"]["p50"]["value"] == spread["p50"]
        assert e["targets"]["cold"]["value"] == e["first"]["total_s"]


def test_outputs_are_checked(full_run: dict) -> None:
    by_path = full_run["by_path"]
    checks = {p: by_path[p]["samples"][0]["checks"][0] for p in PASSING}
    assert (checks["/invert"]["format"], checks["/invert"]["width"]) == ("PNG", 64)
    assert (checks["/blur"]["width"], checks["/blur"]["height"]) == (256, 256)
    assert (checks["/scale"]["width"], checks["/scale"]["height"]) == (4, 4)  # 2×2, scale_by 2
    assert checks["/animate"]["media_type"] == "image/webp"
    assert checks["/animate"]["format"] == "WEBP"
    assert (checks["/animate"]["status"], checks["/animate"]["frames"]) == ("ok", 4)  # X-Frames
    assert by_path["/invert"]["outputs"]["kinds"] == ["PNG 64×64"]


def test_markdown_table_matches_json(full_run: dict) -> None:
    report, rows = full_run["report"], _table(full_run["markdown"])
    assert [r["Endpoint"] for r in rows] == [f"`{e['path']}`" for e in report["endpoints"]]
    for row, e in zip(rows, report["endpoints"], strict=True):
        assert row["Requests"] == str(e["requests"])
        assert row["OK"] == str(e["successes"])
        assert row["Success"] == fmt_rate(e["success_rate"])
        assert row["p50 (s)"] == fmt_seconds((e["warm"]["total_s"] or {}).get("p50"))
        assert row["$/output"] == fmt_usd(e["cost"]["per_output_usd"])
        assert row["First ≤ 60 s"] == _mark(e["targets"]["cold"])
        assert row["p50 ≤ 30 s"] == _mark(e["targets"]["p50"])
        assert row["Success ≥ 95 %"] == _mark(e["targets"]["success"])
    assert rows[[r["Endpoint"] for r in rows].index("`/broken`")]["Success ≥ 95 %"] == "❌ fail*"
    assert rows[[r["Endpoint"] for r in rows].index("`/invert`")]["Success ≥ 95 %"] == "✅ pass*"


def test_charts_are_valid_pngs(full_run: dict) -> None:
    for name in ("latency", "cost"):
        path = full_run["out"] / f"ENDPOINT-QUALITY-{name}.png"
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 100
            assert len(image.convert("RGB").getcolors(1 << 16) or []) > 3  # not blank
        assert f"ENDPOINT-QUALITY-{name}.png" in full_run["markdown"]


def test_gate_passes_when_only_passing_endpoints_are_selected(
    served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    offset = served.log_offset()
    status, output = _bench(
        served, monkeypatch, "--endpoint", "/invert", "--endpoint", "animate", "--runs", "2",
        "--min-success", "0.95", "--max-p50", "30", "--max-cold", "60", "--out", str(tmp_path),
    )  # fmt: skip
    assert status == 0, output
    report = json.loads((tmp_path / "ENDPOINT-QUALITY.json").read_text())
    assert [e["path"] for e in report["endpoints"]] == ["/invert", "/animate"]
    assert report["gate"] == {"passed": True, "failures": []}
    rows = _table((tmp_path / "ENDPOINT-QUALITY.md").read_text())
    assert [r["Endpoint"] for r in rows] == ["`/invert`", "`/animate`"]
    assert all(r[c] == "✅ pass*" for r in rows for c in ("First ≤ 60 s", "p50 ≤ 30 s")), rows
    assert sum(served.requests_since(offset).values()) == 2 * 3


def test_cold_is_refused_against_a_base_url(
    served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    status, output = _bench(served, monkeypatch, "--cold", "--out", str(tmp_path))
    assert status == 2 and "--cold needs a deployed app" in output
    assert not (tmp_path / "ENDPOINT-QUALITY.md").exists()


def test_ctrl_c_writes_what_was_measured(served: Served, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "generator.cli", "bench", "--base-url", served.url]
    command += ["--endpoint", "/invert", "--runs", "100000", "--out", str(tmp_path)]
    bench = subprocess.Popen(command, cwd=served.root, stderr=subprocess.PIPE, text=True)
    assert bench.stderr is not None
    for line in bench.stderr:  # wait for some warm requests to complete
        if "[5/" in line:
            break
    bench.send_signal(signal.SIGINT)
    _, rest = bench.communicate(timeout=20)
    assert bench.returncode == 130, rest
    report = json.loads((tmp_path / "ENDPOINT-QUALITY.json").read_text())
    assert report["interrupted"] and report["interrupted_by"] == "Ctrl-C"
    (invert,) = report["endpoints"]
    assert 5 <= invert["requests"] < invert["planned"]
    assert invert["successes"] == invert["requests"] == len(invert["samples"])
    assert "Interrupted (Ctrl-C)" in (tmp_path / "ENDPOINT-QUALITY.md").read_text()


# --- the parts on their own


def _image(fmt: str, frames: int = 1, **save: object) -> bytes:
    images = [Image.new("RGB", (8, 6), (i * 60, 0, 0)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format=fmt, save_all=frames > 1, append_images=images[1:], **save)
    return buffer.getvalue()


def test_image_checks() -> None:
    png = check_file(_image("PNG"), "image/png")
    assert (png.status, png.format, png.width, png.height, png.frames) == ("ok", "PNG", 8, 6, 1)
    gif = check_file(_image("GIF", frames=3, duration=100, loop=0), "image/gif")
    assert (gif.status, gif.frames, gif.duration_s) == ("ok", 3, 0.3)
    assert gif.summary == "GIF 8×6, 3 fr, 0.30 s"
    wrong = check_file(_image("PNG"), "image/jpeg")
    assert wrong.status == "failed" and "is PNG" in (wrong.reason or "")
    assert check_file(b"not an image", "image/png").status == "failed"
    assert check_file(b"", "image/png").status == "failed"
    assert check_file(b"ID3", "audio/mpeg").status == "unchecked"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _mp4(frames: int, timescale: int = 1000, duration: int = 2000) -> bytes:
    mvhd = _box(b"mvhd", bytes(4) + bytes(8) + struct.pack(">II", timescale, duration) + bytes(80))
    tkhd_body = bytes(4) + bytes(20) + bytes(8 + 8 + 36) + struct.pack(">II", 320 << 16, 240 << 16)
    hdlr = _box(b"hdlr", bytes(4) + bytes(4) + b"vide" + bytes(12) + b"\0")
    stts = _box(
        b"stts", bytes(4) + struct.pack(">I", 2) + struct.pack(">IIII", frames - 1, 512, 1, 512)
    )
    stbl = _box(b"stbl", stts)
    mdia = _box(b"mdia", hdlr + _box(b"minf", stbl))
    trak = _box(b"trak", _box(b"tkhd", tkhd_body) + mdia)
    return _box(b"ftyp", b"isom" + bytes(4)) + _box(b"moov", mvhd + trak) + _box(b"mdat", b"x")


def test_frame_count_is_checked_against_x_frames() -> None:
    webp = _image("WEBP", frames=3, duration=100, loop=0)
    assert check_body(webp, "image/webp", expected_frames=3)[0].status == "ok"
    short = check_body(webp, "image/webp", expected_frames=4)[0]
    assert (short.status, short.reason) == ("failed", "X-Frames says 4, the file has 3 frame(s)")
    assert check_body(_mp4(frames=48), "video/mp4", expected_frames=33)[0].status == "failed"
    assert check_body(_mp4(frames=48), "video/mp4", expected_frames=48)[0].status == "ok"


def test_mp4_check_reads_boxes() -> None:
    check = check_file(_mp4(frames=48), "video/mp4")
    assert (check.status, check.width, check.height) == ("ok", 320, 240)
    assert (check.frames, check.duration_s) == (48, 2.0)
    assert check_file(b"\0\0\0\x08free", "video/mp4").status == "failed"
    assert check_file(b"\0\0\0\xffmoov", "video/mp4").status == "failed"  # overruns the file


def test_json_response_checks_every_file() -> None:
    import base64

    files = [
        {"media_type": "image/png", "data": base64.b64encode(_image("PNG")).decode()},
        {"media_type": "image/webp", "data": base64.b64encode(_image("WEBP")).decode()},
    ]
    checks = check_body(json.dumps({"files": files}).encode(), "application/json")
    assert [c.format for c in checks] == ["PNG", "WEBP"]
    assert check_body(b"{}", "application/json")[0].status == "failed"


def test_percentile_interpolates() -> None:
    assert percentile([3.0], 90) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 90) == pytest.approx(3.7)


def test_workspace_urls_are_modal_urls() -> None:
    apps, _ = load_project(Project.at(REPO, [REPO / "specs" / "ryla-demo.yaml"]))
    (target,) = select_targets(apps, ["ryla-demo"], ["/invert"], workspace="acme")
    assert target.url == "https://acme--ryla-demo-comfyui-fastapi-app.modal.run/invert"
    assert target.gpu == "T4" and target.examples
    with pytest.raises(SelectionError, match="no endpoint /nope"):
        select_targets(apps, (), ["/nope"], workspace="acme")
    with pytest.raises(SelectionError, match="exactly one"):
        select_targets(apps, workspace="acme", base_url="http://127.0.0.1:1")


async def test_cold_starter_stops_the_apps_containers() -> None:
    listed = [
        [{"Container ID": "ta-1", "App ID": "ap-1", "App Name": "ryla-demo"},
         {"Container ID": "ta-2", "App ID": "ap-2", "App Name": "other"}],
        [],
    ]  # fmt: skip
    calls: list[list[str]] = []

    async def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(command[1:])
        out = json.dumps(listed.pop(0)) if "list" in command else ""
        return subprocess.CompletedProcess(command, 0, out, "")

    starter = ModalColdStarter("dev", modal=["modal"], run=run, poll_s=0)
    assert await starter.stop_all("ryla-demo") == 1
    assert calls == [
        ["container", "list", "--json", "--env", "dev"],
        ["container", "stop", "-y", "ta-1"],
        ["container", "list", "--json", "--env", "dev"],
    ]

    async def failing(command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "Error: not authenticated")

    with pytest.raises(ColdStartError, match="not authenticated"):
        await ModalColdStarter(run=failing).stop_all("ryla-demo")
    with pytest.raises(ColdStartError, match="failed"):
        await ModalColdStarter(modal=["/nonexistent/modal"]).stop_all("ryla-demo")
