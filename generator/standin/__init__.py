"""ComfyUI stand-in: a small server speaking ComfyUI 0.3.64's HTTP and WebSocket protocol.

It validates prompts against a node catalog (built-in, or a recorded ``object_info.json``),
queues them, executes image nodes with Pillow, caches results like ComfyUI and reports progress
on ``/ws``, so the generated runtime can be tested without ComfyUI. Start it with
``python -m generator.standin`` or, in tests, with :func:`run_in_thread` / :class:`StandinProcess`.
"""

from .harness import EventRecorder, StandinProcess, StandinThread, free_port, run_in_thread
from .server import create_app
from .state import Standin, StandinConfig

__all__ = [
    "EventRecorder",
    "Standin",
    "StandinConfig",
    "StandinProcess",
    "StandinThread",
    "create_app",
    "free_port",
    "run_in_thread",
]
