"""A training function in the container: check the arguments, download the inputs, run the trainer,
store its output in the volume, and answer with a result dictionary.

A generated training function calls :func:`run_training` with its declared
:class:`TrainingFunction`. Inputs are downloaded with the endpoints' URL rules (http(s) only, no
private addresses unless the training allows them, size-limited, checked by content); the trainer
runs as a subprocess whose log is kept; its output file is copied into the volume under the
declared name and the volume is committed. Any failure is an answer (``status: failed``, the
reason, the trainer's last log lines), not a traceback."""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .media import MediaError, fetch_url, sniff

ARG_TYPES = ("string", "int", "float", "bool", "url_list", "options")
SCALAR_TYPES = ("string", "int", "float", "bool")
DEFAULT_MAX_BYTES = {"image": 32 * 1024 * 1024, "video": 512 * 1024 * 1024}
FALLBACK_MAX_BYTES = 512 * 1024 * 1024
CONTEXT_NAMES = ("inputs", "work_dir", "output_dir", "trainer_dir", "python")
"""Template variables besides the arguments (argument names may not take them)."""
RESERVED_RESULT_KEYS = ("status", "error", "log_tail", "exit_code", "training_time_seconds")
OUTPUT_DIR = "output"
LOG_FILE = "trainer.log"
DOWNLOAD_CONCURRENCY = 4
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class TrainingError(Exception):
    """A training that cannot go on; the message is safe to return to the caller."""


class _Volume(Protocol):
    def commit(self) -> None: ...


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


@dataclass(frozen=True)
class Arg:
    """One argument of a training (or one field of an ``options`` argument) and its constraints."""

    name: str
    type: str
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    multiple_of: float | None = None
    choices: tuple[Any, ...] | None = None
    pattern: str | None = None
    min_items: int | None = None
    max_items: int | None = None
    media: str | None = None  # url_list: image | video, checked by content
    max_bytes: int | None = None  # url_list: per download
    caption: str | None = None  # url_list: template of <file>.txt next to each download
    formats: tuple[str, ...] | None = None  # url_list: file types the trainer reads (sniffed)
    fields: tuple[Arg, ...] = ()  # options

    @property
    def download_limit(self) -> int:
        return self.max_bytes or DEFAULT_MAX_BYTES.get(self.media or "", FALLBACK_MAX_BYTES)

    def resolve(self, value: Any) -> Any:
        """The value a run uses: the given one checked, else the default (options: filled)."""
        if value is None:
            if self.required:
                raise TrainingError(f"argument '{self.name}' is required")
            if self.type == "options":
                return {f.name: f.resolve(None) for f in self.fields}
            return self.default
        return self.check(value)

    def check(self, value: Any) -> Any:
        """``value`` if it has this type and meets the constraints; raises TrainingError."""
        label = f"argument '{self.name}'"
        if self.type == "options":
            return self._check_options(value, label)
        if self.type == "url_list":
            return self._check_urls(value, label)
        ok = {
            "string": isinstance(value, str),
            "int": _is_int(value),
            "float": _is_number(value),
            "bool": isinstance(value, bool),
        }[self.type]
        if not ok:
            raise TrainingError(f"{label} must be of type {self.type}, got {value!r}")
        if self.type == "float":
            value = float(value)
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise TrainingError(f"{label}: {value!r} is not one of {allowed}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise TrainingError(f"{label}: {value!r} does not match {self.pattern}")
        if self.type in ("int", "float"):
            if self.min is not None and value < self.min:
                raise TrainingError(f"{label}: {value!r} is below the minimum {self.min}")
            if self.max is not None and value > self.max:
                raise TrainingError(f"{label}: {value!r} is above the maximum {self.max}")
            if self.multiple_of and not _is_multiple(value, self.multiple_of):
                raise TrainingError(f"{label}: {value!r} is not a multiple of {self.multiple_of}")
        return value

    def _check_urls(self, value: Any, label: str) -> list[str]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TrainingError(f"{label} must be a list of URLs")
        urls = [v.strip() for v in value]
        if self.min_items is not None and len(urls) < self.min_items:
            raise TrainingError(f"{label}: at least {self.min_items} URL(s), got {len(urls)}")
        if self.max_items is not None and len(urls) > self.max_items:
            raise TrainingError(f"{label}: at most {self.max_items} URL(s), got {len(urls)}")
        for i, url in enumerate(urls):
            if not url.startswith(("http://", "https://")):
                raise TrainingError(f"{self.name}[{i}]: only http(s) URLs are accepted")
        return urls

    def _check_options(self, value: Any, label: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise TrainingError(f"{label} must be a mapping, got {value!r}")
        known = {f.name: f for f in self.fields}
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise TrainingError(
                f"{label}: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(known) or 'none'}"
            )
        resolved = {}
        for name, option in known.items():
            try:
                resolved[name] = option.resolve(value.get(name))
            except TrainingError as exc:
                raise TrainingError(f"{label}: {exc}") from None
        return resolved

    def parse_text(self, text: str) -> Any:
        """A value written on a command line (``--arg name=text``) as this argument's type.

        url_list: one URL (repeat the option for more) or a JSON list; options: a JSON object.
        """
        import json

        try:
            if self.type == "string":
                return text
            if self.type == "int":
                return int(text)
            if self.type == "float":
                return float(text)
            if self.type == "bool":
                if text.lower() in _TRUE + _FALSE:
                    return text.lower() in _TRUE
                raise ValueError(f"expected true or false, got {text!r}")
            if self.type == "url_list":
                return json.loads(text) if text.lstrip().startswith("[") else [text]
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            return data
        except ValueError as exc:
            raise TrainingError(f"argument '{self.name}' ({self.type}): {exc}") from None

    def field(self, name: str) -> Arg:
        for option in self.fields:
            if option.name == name:
                return option
        known = ", ".join(f.name for f in self.fields) or "none"
        raise TrainingError(f"argument '{self.name}' has no setting '{name}'; known: {known}")


def _is_multiple(value: float, step: float) -> bool:
    quotient = value / step
    return math.isclose(quotient, round(quotient), abs_tol=1e-9)


@dataclass(frozen=True)
class Output:
    """A file the trainer writes (``trainer_file``, a glob under the output folder), stored at
    ``mount/path`` with the arguments filled into ``path``."""

    name: str
    mount: str
    path: str
    trainer_file: str

    def target(self, values: Mapping[str, Any]) -> Path:
        relative = self.path.format_map(values)
        mount = Path(self.mount).resolve()
        target = (mount / relative).resolve()
        if "\x00" in relative or not target.is_relative_to(mount) or target == mount:
            raise TrainingError(f"output '{self.name}': {relative!r} leaves the volume")
        return target


@dataclass(frozen=True)
class TrainingFunction:
    """Everything a generated training function needs to run, as declared in its spec."""

    name: str
    timeout: int  # the Modal function's; the trainer gets a little less
    arguments: tuple[Arg, ...]
    command: tuple[str, ...]  # Jinja templates, one per argv item
    outputs: tuple[Output, ...]
    config_files: Mapping[str, str] = field(default_factory=dict)  # name -> Jinja template
    result: Mapping[str, Any] = field(default_factory=dict)  # constant result fields
    trainer_dir: str | None = None
    log_lines: int = 40
    allow_private_urls: bool = False  # tests and local runs fetch from 127.0.0.1

    def argument(self, name: str) -> Arg:
        for arg in self.arguments:
            if arg.name == name:
                return arg
        known = ", ".join(a.name for a in self.arguments)
        raise TrainingError(f"{self.name} has no argument '{name}'; its arguments: {known}")

    def check_arguments(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every argument's value for a run (defaults filled); raises TrainingError."""
        for name in given:
            self.argument(name)
        return {a.name: a.resolve(given.get(a.name)) for a in self.arguments}

    @property
    def trainer_timeout(self) -> float:
        """Time the trainer may take: the function's timeout less a margin to store the output."""
        return max(1.0, self.timeout - min(300, self.timeout // 10))


def template_environment() -> SandboxedEnvironment:
    """The Jinja environment of command lines and config files (also used to check specs)."""
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def render_command(training: TrainingFunction, context: Mapping[str, Any]) -> list[str]:
    """The trainer's argv: each item rendered; items that render empty are dropped."""
    env = template_environment()
    argv = [env.from_string(item).render(context) for item in training.command]
    return [item for item in argv if item != ""]


def render_config_files(
    training: TrainingFunction, context: Mapping[str, Any], work_dir: Path
) -> list[Path]:
    env = template_environment()
    written = []
    for name, template in training.config_files.items():
        path = work_dir / name
        path.write_text(env.from_string(template).render(context), encoding="utf-8")
        written.append(path)
    return written


def run_training(
    training: TrainingFunction,
    arguments: Mapping[str, Any],
    *,
    volumes: Mapping[str, _Volume] | None = None,
    work_root: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Run one training call end to end; never raises for a failed run (``status: failed``).

    ``volumes``: mount path -> Modal Volume; those holding outputs are committed after a
    successful run (none are given in local runs).
    """
    started = time.monotonic()
    run = _Run(training, started, values={k: v for k, v in arguments.items() if _echoed(v)})
    work_dir = Path(tempfile.mkdtemp(prefix=f"ryla-{training.name}-", dir=work_root))
    try:
        values = training.check_arguments(arguments)
        run.values = values
        stored = _train(training, values, work_dir, run)
        for mount in sorted({o.mount for o in training.outputs}):
            volume = (volumes or {}).get(mount)
            if volume is not None:
                volume.commit()
        return run.result("completed", **stored)
    except TrainingError as exc:
        return run.failed(str(exc))
    except Exception as exc:  # the training boundary: the caller polls for a result, not a trace
        traceback.print_exc()
        return run.failed(f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


@dataclass
class _Run:
    training: TrainingFunction
    started: float
    values: dict[str, Any] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def result(self, status: str, **extra: Any) -> dict[str, Any]:
        echoed = {k: v for k, v in self.values.items() if _echoed(v)}
        seconds = round(time.monotonic() - self.started, 1)
        return {
            "status": status,
            **echoed,
            **extra,
            "training_time_seconds": seconds,
            **self.training.result,
        }

    def failed(self, error: str) -> dict[str, Any]:
        print(f"[{self.training.name}] failed: {error}", file=sys.stderr, flush=True)
        extra: dict[str, Any] = {"error": error, "log_tail": "\n".join(self.log_tail)}
        if self.exit_code is not None:
            extra["exit_code"] = self.exit_code
        return self.result("failed", **extra)


def _echoed(value: Any) -> bool:
    """Arguments repeated in the result: scalars and settings, not the input URL lists."""
    return isinstance(value, (str, int, float, bool, Mapping))


def _train(
    training: TrainingFunction, values: dict[str, Any], work_dir: Path, run: _Run
) -> dict[str, Any]:
    inputs = _download_inputs(training, values, work_dir)
    output_dir = work_dir / OUTPUT_DIR
    output_dir.mkdir()
    context = {
        **values,
        "inputs": inputs,
        "work_dir": str(work_dir),
        "output_dir": str(output_dir),
        "trainer_dir": training.trainer_dir,
        "python": sys.executable,
    }
    try:
        render_config_files(training, context, work_dir)
        argv = render_command(training, context)
    except jinja2.TemplateError as exc:
        raise TrainingError(f"cannot render the trainer's command or config: {exc}") from None
    exit_code = _run_trainer(training, argv, work_dir, run)
    if exit_code != 0:
        run.exit_code = exit_code
        raise TrainingError(f"trainer exited with status {exit_code}")
    stored: dict[str, Any] = {}
    for output in training.outputs:
        produced = sorted(output_dir.glob(output.trainer_file))
        if not produced:
            raise TrainingError(
                f"trainer finished but wrote no {output.trainer_file} in its output folder"
            )
        target = output.target(values)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(produced[-1], partial)
        os.replace(partial, target)
        stored[f"{output.name}_path"] = str(target)
        stored[f"{output.name}_filename"] = target.name
        print(f"[{training.name}] stored {target}", flush=True)
    return stored


def _download_inputs(
    training: TrainingFunction, values: Mapping[str, Any], work_dir: Path
) -> dict[str, str]:
    """Each url_list argument's files into ``work_dir/<argument>/`` (0000.png, ...), with a
    caption file next to each when the argument declares one."""
    folders: dict[str, str] = {}
    for arg in training.arguments:
        if arg.type != "url_list":
            continue
        folder = work_dir / arg.name
        folder.mkdir()
        folders[arg.name] = str(folder)
        caption = None
        if arg.caption is not None:
            caption = template_environment().from_string(arg.caption).render(values)
        urls = values.get(arg.name) or []
        asyncio.run(_fetch_all(urls, arg, folder, caption, training.allow_private_urls))
        print(f"[{training.name}] downloaded {len(urls)} file(s) for {arg.name}", flush=True)
    return folders


async def _fetch_all(
    urls: Sequence[str], arg: Arg, folder: Path, caption: str | None, allow_private: bool
) -> None:
    """A few downloads at a time, each written out as soon as it is checked (memory stays at
    ``DOWNLOAD_CONCURRENCY`` files)."""
    limit = asyncio.Semaphore(DOWNLOAD_CONCURRENCY)

    async def fetch(i: int, url: str) -> None:
        async with limit:
            try:
                data = await fetch_url(
                    url, max_bytes=arg.download_limit, allow_private=allow_private
                )
            except MediaError as exc:
                raise TrainingError(f"{arg.name}[{i}]: {exc}") from None
            except (httpx.HTTPError, OSError) as exc:
                raise TrainingError(f"{arg.name}[{i}]: cannot fetch the URL: {exc}") from None
            sniffed = sniff(data)
            if arg.media and (sniffed is None or not sniffed[1].startswith(f"{arg.media}/")):
                raise TrainingError(f"{arg.name}[{i}]: not a supported {arg.media} file")
            if arg.formats and (sniffed is None or sniffed[0] not in arg.formats):
                found = sniffed[0].upper() if sniffed else "this file type"
                raise TrainingError(
                    f"{arg.name}[{i}]: {found} is not read by the trainer (it reads "
                    f"{', '.join(f.upper() for f in arg.formats)}); convert the file first"
                )
            (folder / f"{i:04d}.{sniffed[0] if sniffed else 'bin'}").write_bytes(data)
            if caption is not None:
                (folder / f"{i:04d}.txt").write_text(caption, encoding="utf-8")

    await asyncio.gather(*(fetch(i, u) for i, u in enumerate(urls)))


def _run_trainer(training: TrainingFunction, argv: list[str], work_dir: Path, run: _Run) -> int:
    """Run the trainer in its own session with its output teed to our log and kept in a tail.

    Past the training's trainer timeout the whole process group is stopped (TERM, then KILL).
    """
    tail: deque[str] = deque(maxlen=training.log_lines)
    print(f"[{training.name}] running: {' '.join(argv)}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        process = subprocess.Popen(
            argv,
            cwd=work_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise TrainingError(f"cannot start the trainer {argv[0]!r}: {exc}") from None
    assert process.stdout is not None
    reader = threading.Thread(
        target=_pump, args=(process.stdout, work_dir / LOG_FILE, tail), daemon=True
    )
    reader.start()
    try:
        exit_code = process.wait(timeout=training.trainer_timeout)
    except subprocess.TimeoutExpired:
        _stop(process)
        reader.join(timeout=10)
        run.log_tail = list(tail)
        raise TrainingError(
            f"trainer ran past {training.trainer_timeout:.0f} s (the training function's timeout "
            "less a margin to store its output) and was stopped"
        ) from None
    reader.join(timeout=10)
    run.log_tail = list(tail)
    return exit_code


def _pump(stream: Any, log_path: Path, tail: deque[str]) -> None:
    with log_path.open("wb") as log:
        for raw in iter(stream.readline, b""):
            log.write(raw)
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            sys.stdout.write(line + "\n")
            tail.append(line.rsplit("\r", 1)[-1])  # progress bars: the last state only
    stream.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
