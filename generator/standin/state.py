"""The running stand-in: catalog, validator, queue, executor, worker thread and event hub."""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import Catalog, CatalogFiles
from .events import EventHub
from .executor import PromptExecutor, PromptWorker
from .files import StandinDirs
from .prompt_queue import PromptQueue, QueueItem
from .validation import PromptValidator, ValidationResult

SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
"""``extra_data`` entries ComfyUI keeps out of the queue and history listings."""


@dataclass(frozen=True)
class StandinConfig:
    """How to run a stand-in: its base directory, optional catalog file(s), the blur delay."""

    base_dir: Path
    object_info: CatalogFiles = None
    node_delay: float = 0.0


@dataclass(frozen=True)
class Submission:
    """Answer to ``POST /prompt``: HTTP status and JSON body."""

    status: int
    body: dict[str, Any]


class Standin:
    """One stand-in server's state; ``start``/``stop`` run on the server's event loop."""

    def __init__(self, config: StandinConfig) -> None:
        self.dirs = StandinDirs(Path(config.base_dir))
        self.dirs.create()
        self.catalog = Catalog.load(self.dirs.input, config.object_info)
        self.validator = PromptValidator(self.catalog, self.dirs)
        self.node_delay = config.node_delay
        self.queue = PromptQueue(on_change=self._announce_queue)
        self.hub = EventHub(queue_remaining=self.queue.remaining)
        self.executor = PromptExecutor(
            self.catalog, self.dirs, self.hub.send, threading.Event(), lambda: self.node_delay
        )
        self.worker = PromptWorker(self.queue, self.executor, self.hub.send)
        self._number = 0
        self._number_lock = threading.Lock()

    async def start(self) -> None:
        await self.hub.start()
        self.worker.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self.worker.stop)
        await self.hub.stop()

    def submit(self, body: Any) -> Submission:
        """Validate and queue a ``POST /prompt`` body.

        Raises ``TypeError``/``AttributeError``/``ValueError`` for bodies ComfyUI answers with a
        500 (a prompt that is not an object of nodes, for instance).
        """
        number = self._take_number(body)
        if "prompt" not in body:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return Submission(400, {"error": error, "node_errors": {}})
        prompt = body["prompt"]
        prompt_id = str(body.get("prompt_id", uuid.uuid4()))
        result: ValidationResult = self.validator.validate(
            prompt, body.get("partial_execution_targets")
        )
        extra_data = dict(body.get("extra_data", {}))
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if not result.ok:
            return Submission(400, {"error": result.error, "node_errors": result.node_errors})
        sensitive = {
            key: extra_data.pop(key) for key in SENSITIVE_EXTRA_DATA_KEYS if key in extra_data
        }
        item = QueueItem(number, prompt_id, prompt, extra_data, result.outputs, sensitive)
        self.queue.put(item)
        answer = {"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors}
        return Submission(200, answer)

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running prompt (only if it is ``prompt_id``, when given)."""
        if prompt_id and not self.queue.is_running(prompt_id):
            return
        self.executor.interrupt.set()

    def free_memory(self) -> None:
        """``POST /free`` with ``free_memory``: forget cached results before the next prompt."""
        self.executor.drop_cache = True

    def queue_listing(self) -> dict[str, list[Any]]:
        """``GET /queue``."""
        running, pending = self.queue.snapshot()
        return {
            "queue_running": [item.public() for item in running],
            "queue_pending": [item.public() for item in pending],
        }

    def _take_number(self, body: dict[str, Any]) -> int | float:
        """Queue position: the body's ``number``, else the next counter (negative if ``front``)."""
        if "number" in body:
            return float(body["number"])
        with self._number_lock:
            number = self._number
            self._number += 1
        return -number if "front" in body and body["front"] else number

    def _announce_queue(self, remaining: int) -> None:
        self.hub.send("status", {"status": {"exec_info": {"queue_remaining": remaining}}})
