"""The self-check: every rendered module compiles, imports, and serves its own examples.

Validation is an invariant, not a list of rules: after resolving, each app's module is rendered
in memory, compiled and executed in isolation, and every example and warm-up request goes
through the module's own request model and the runtime's ``apply_request`` (the code that
serves). Whatever fails becomes an error at the spec key responsible for it (the example, the
parameter, the endpoint, else the app), so a kind of mistake no rule knows still cannot pass.

Isolation and speed: the module runs in a fresh namespace whose imports of ``modal`` and of the
container-only runtime (ComfyUI process, FastAPI server, jobs) are stand-ins accepting any use;
pydantic, the runtime's ``config`` (what the module declares) and ``training`` are real. The
real ``modal`` import of every generated module is the build test's (``tests/test_build.py``).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from ..diagnostics import Location
from ..resolve.endpoints import is_latin1
from ..resolve.model import AppModel, EndpointModel
from ..runtime.apply import apply_request
from ..runtime.config import AppSettings, Endpoint, Param
from ..runtime.media import MediaError, decode_base64, is_url, verify_media
from ..runtime.urls import UrlError, parse_url

Problem = tuple[Location, str]

_REAL = ("generator.runtime.config", "generator.runtime.training")
"""Runtime modules the check imports for real; the rest of the runtime only runs in a container."""

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token


class _Stand(ModuleType):
    """A module, class, object or decorator that accepts any use (``modal``, server code)."""

    def __init__(self, name: str = "stand-in") -> None:
        super().__init__(name)

    def __getattr__(self, name: str) -> _Stand:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stand(f"{self.__name__}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and (isinstance(args[0], type) or callable(args[0])):
            return args[0]  # a decorator keeps what it decorates
        return _Stand(self.__name__ + "()")

    def __add__(self, other: Any) -> _Stand:
        return self

    __radd__ = __add__


def _isolated_import(
    name: str,
    globals: dict[str, Any] | None = None,
    locals: dict[str, Any] | None = None,
    fromlist: tuple[str, ...] = (),
    level: int = 0,
) -> Any:
    if name == "modal" or (name.startswith("generator.") and name not in _REAL):
        return _Stand(name)
    return builtins.__import__(name, globals, locals, fromlist, level)


@contextlib.contextmanager
def isolated_module(source: str, filename: str) -> Iterator[dict[str, Any]]:
    """Compile and run a rendered module in a fresh namespace (warnings are errors); it is
    registered in ``sys.modules`` while in use, for pydantic to resolve its annotations."""
    name = f"ryla_selfcheck_{Path(filename).stem}"
    module = ModuleType(name)
    module.__file__ = filename
    module.__dict__["__builtins__"] = {**vars(builtins), "__import__": _isolated_import}
    code = compile(source, filename, "exec", dont_inherit=True)  # not our __future__ flags
    sys.modules[name] = module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            exec(code, module.__dict__)  # noqa: S102 - our own rendering, checked before it ships
            yield module.__dict__
    finally:
        sys.modules.pop(name, None)


def check_app(
    app: AppModel, source: str, filename: str, workflows_dir: Path, fallback: Location
) -> list[Problem]:
    """Problems of one rendered module, each at the spec key responsible for it."""
    where = app.where or fallback
    problems: list[Problem] = []
    try:
        with isolated_module(source, filename) as namespace:
            endpoints = {e.path: e for e in namespace.get("ENDPOINTS", ())}
            for model in app.endpoints:
                runtime = endpoints.get(model.path)
                if runtime is None:
                    place = model.places.endpoint if model.places else where
                    problems.append((place, f"{model.path}: the rendered module does not serve it"))
                    continue
                problems += _check_requests(model, runtime, workflows_dir, where)
            chains = {c.path: c for c in namespace.get("CHAINS", ())}
            for chain in app.fleet.chains if app.fleet else ():
                model = chains.get(chain.path)
                for i, example in enumerate(chain.examples if model else ()):
                    problem = _refused(model.request_model, example)
                    if problem:
                        problems.append((where, f"{chain.path}: example {i + 1}: {problem}"))
    except Exception as exc:  # noqa: BLE001 - any failure is the spec's, reported at its place
        return [(_place_of_failure(app, source, filename, exc, where), _describe(exc, filename))]
    return problems


def _check_requests(
    model: EndpointModel, runtime: Endpoint, workflows_dir: Path, fallback: Location
) -> list[Problem]:
    places = model.places
    workflow: dict[str, Any] = {}
    if runtime.workflow:
        try:
            workflow = json.loads((workflows_dir / runtime.workflow).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return [(places.endpoint if places else fallback, f"{model.path}: {exc}")]
    requests: list[tuple[str, dict[str, Any], Location]] = [
        (f"example {i + 1}", dict(ex), places.examples[i] if places else fallback)
        for i, ex in enumerate(model.examples)
    ]
    if runtime.warmup is not None:
        place = (places.warmup or places.endpoint) if places else fallback
        requests.append(("warm-up", dict(runtime.warmup), place))
    problems = []
    for label, request, place in requests:
        problem = _serve(runtime, workflow, request)
        if problem:
            problems.append((place, f"{model.path}: {label}: {problem}"))
    return problems


def _serve(endpoint: Endpoint, workflow: dict[str, Any], request: dict[str, Any]) -> str | None:
    """Why the container would refuse or fail this request, or None when it would run it."""
    problem = _refused(endpoint.request_model, request)
    if problem:
        return problem
    values = endpoint.request_model.model_validate(request).model_dump(by_alias=True)
    if endpoint.client_workflow_max_nodes:
        return None
    for p in endpoint.params:
        if p.kind in ("image", "video", "mask") and values.get(p.name) is not None:
            for item in values[p.name] if p.many else [values[p.name]]:
                problem = _media_problem(str(item), p)
                if problem:
                    return f"{p.name}: {problem}"
    uploads = {
        p.name: ["selfcheck.png"] * (len(values.get(p.name) or []) if p.many else 1)
        for p in endpoint.params
        if p.kind in ("image", "video", "mask") and values.get(p.name) is not None
    }
    try:
        applied = apply_request(endpoint, workflow, values, uploads)
    except Exception as exc:  # noqa: BLE001 - whatever the runtime would answer with a 500
        return f"applying it to the workflow fails: {type(exc).__name__}: {exc}"
    for name, value in applied.headers.items():
        if not _TOKEN.match(name):
            return f"response header name {name!r} is not an HTTP token"
        if "\r" in value or "\n" in value or not value.isprintable() or not is_latin1(value):
            return f"response header {name} would carry {value!r}, which HTTP cannot send"
    return None


def _media_problem(value: str, param: Param) -> str | None:
    """Why the container would refuse this media value (a URL: only its form, no download):
    the runtime's own check of media bytes (a header-only MP4 example passed before)."""
    value = value.strip()
    try:
        if is_url(value):
            parse_url(value)
            return None
        data = decode_base64(value, max_bytes=AppSettings.max_body_bytes)
        limit = param.pixel_limit(AppSettings.max_image_pixels)
        verify_media(data, param.kind, max_pixels=limit, min_side=param.min_side)
    except (MediaError, UrlError) as exc:
        return str(exc)
    return None


def _refused(model: Any, request: dict[str, Any]) -> str | None:
    """Why the generated request model refuses ``request`` (as the server would, 422)."""
    try:
        model.model_validate(request)
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError or a model bug
        errors = getattr(exc, "errors", None)
        if callable(errors):
            first = errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "body"
            return f"the generated request model refuses it: {field}: {first['msg']}"
        return f"the generated request model fails: {type(exc).__name__}: {exc}"
    return None


def _describe(exc: BaseException, filename: str) -> str:
    if isinstance(exc, SyntaxError):
        return f"the rendered module does not compile: {exc.msg} ({filename}, line {exc.lineno})"
    return f"the rendered module does not import: {type(exc).__name__}: {exc}"


def _failing_line(exc: BaseException, filename: str) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _place_of_failure(
    app: AppModel, source: str, filename: str, exc: BaseException, fallback: Location
) -> Location:
    """The spec key behind the failing line: a request model's field, else its endpoint."""
    line = _failing_line(exc, filename)
    if line is None:
        return fallback
    lines = source.splitlines()[:line]
    owners = {e.request_class: e for e in app.endpoints} | {e.constant: e for e in app.endpoints}
    field_name = None
    for n, text in enumerate(reversed(lines)):
        owner = re.match(r"^class (\w+)\((?:BaseModel|RequestModel)\)|^(\w+) = Endpoint\(", text)
        if owner:
            endpoint = owners.get(owner.group(1) or owner.group(2))
            if endpoint is None or endpoint.places is None:
                return fallback
            names = {f.name: p.name for f, p in zip(endpoint.fields, endpoint.params, strict=False)}
            if field_name is None:  # a class fails as a whole: the message names the field
                found = [py for py in names if re.search(rf"\b{re.escape(py)}\b", str(exc))]
                field_name = found[0] if found else None
            wire = names.get(field_name or "", field_name)
            return endpoint.places.params.get(wire or "", endpoint.places.endpoint)
        field = re.match(r"^    (\w+): ", text)
        if field and field_name is None:
            field_name = field.group(1)
        if n and re.match(r"^[^\s)]", text):
            return fallback  # a statement of the module outside any endpoint
    return fallback


def check_apps(
    apps: list[AppModel],
    render: Callable[[AppModel], str],
    workflows_dir: Path,
    fallback: Location,
    templates: Path,
) -> list[Problem]:
    """Every app's module rendered by ``render`` (unformatted is fine: same code) and checked.

    An app whose inputs passed before is not checked again (see :func:`_passed_key`)."""
    problems: list[Problem] = []
    for app in apps:
        key = _passed_key(app, workflows_dir, templates)
        if key is not None and (cache_dir() / key).exists():
            continue
        filename = f"generated/{app.module}.py"
        try:
            source = render(app)
        except Exception as exc:  # noqa: BLE001 - a template that cannot print this spec
            problems.append((app.where or fallback, f"cannot render {filename}: {exc}"))
            continue
        found = check_app(app, source, filename, workflows_dir, fallback)
        problems += found
        if not found and key is not None:
            with contextlib.suppress(OSError):
                cache_dir().mkdir(parents=True, exist_ok=True)
                (cache_dir() / key).touch()
    return problems


def cache_dir() -> Path:
    """Keys of apps whose self-check passed: one empty file each (``RYLA_GEN_NO_CACHE=1``: none)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ryla-gen" / "passed"


_CODE = tuple(
    Path(__file__).resolve().parents[1] / part
    for part in (
        "render/selfcheck.py",
        "runtime/apply.py",
        "runtime/config.py",
        "runtime/media.py",
        "runtime/urls.py",
    )
)


def _passed_key(app: AppModel, workflows_dir: Path, templates: Path) -> str | None:
    """A digest of everything the check's outcome depends on: the resolved app (all the
    template prints, examples and warm-ups included), the templates, the checking and runtime
    code, the workflows it reads, and the Python and pydantic versions. None: do not cache."""
    if os.environ.get("RYLA_GEN_NO_CACHE"):
        return None
    import pydantic

    digest = hashlib.sha256(repr(app).encode())
    digest.update(f"{sys.version}|{pydantic.VERSION}".encode())
    try:
        for path in (*sorted(templates.glob("*.j2")), *_CODE):
            digest.update(path.read_bytes())
        for name in app.workflow_files:
            digest.update(name.encode() + (workflows_dir / name).read_bytes())
    except OSError:
        return None
    return digest.hexdigest()
