"""``python -m generator.standin``: serve the ComfyUI stand-in until SIGTERM/SIGINT.

Prints ``ComfyUI stand-in listening on http://HOST:PORT`` once it accepts connections. Without
``--base-dir`` the input/output/temp folders live in a temporary directory removed at exit.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
from pathlib import Path

from .harness import READY_MESSAGE, make_server
from .server import create_app
from .state import StandinConfig


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m generator.standin", description="ComfyUI stand-in server for tests"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument(
        "--object-info",
        type=Path,
        action="append",
        help="catalog to load (GET /object_info JSON); repeat to merge core and custom nodes",
    )
    parser.add_argument("--base-dir", type=Path, help="folder holding input/, output/, temp/")
    parser.add_argument(
        "--node-delay", type=float, default=0.0, help="seconds each ImageBlur takes"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    with tempfile.TemporaryDirectory(prefix="standin-") as scratch:
        config = StandinConfig(args.base_dir or Path(scratch), args.object_info, args.node_delay)
        url = f"http://{args.host}:{args.port}"
        server = make_server(
            create_app(config),
            args.host,
            args.port,
            on_ready=lambda: print(f"{READY_MESSAGE} {url}", flush=True),
        )
        # uvicorn re-raises the stop signal after its graceful shutdown; handling it here lets
        # the process finish normally (exit status 0) instead of dying from that signal.
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda signum, frame: None)
        server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
