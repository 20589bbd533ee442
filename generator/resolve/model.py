"""The resolved model the templates print: every decision is made before rendering.

Built by :mod:`generator.resolve` from validated spec files and their workflows.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

from ..diagnostics import Location
from .pyliteral import py_string


@dataclass(frozen=True)
class RequestField:
    """One field of a generated pydantic request model."""

    name: str
    annotation: str  # e.g. "int", "str | None", 'Literal["1:1", "16:9"]'
    field_args: str  # rendered arguments of pydantic's Field(...)


def docstring(text: str, indent: str = "    ") -> str:
    """Docstring text wrapped to fit generated lines (first line after the opening quotes)."""
    lines = textwrap.wrap(text, width=88, break_long_words=False, break_on_hyphens=False)
    if len(lines) <= 1:
        return text
    return f"\n{indent}".join(lines) + f"\n{indent}"


@dataclass(frozen=True)
class ParamDoc:
    """One request field as the endpoint reference (docs/ENDPOINTS.md) shows it."""

    name: str
    type: str
    default: str
    constraints: str
    description: str


@dataclass(frozen=True)
class ParamModel:
    """One parameter as the runtime applies it (rendered as a runtime ``Param``)."""

    name: str
    kind: str  # value | seed | image | video | mask
    targets: tuple[tuple[str, str], ...]  # (node id, input name)
    format: str | None = None
    map: dict[str, Any] | None = None
    prepend_to: str | None = None
    separator: str = ", "
    sets: dict[str, dict[str, Any]] | None = None
    header: str | None = None
    many: bool = False
    volume_file: str | None = None  # e.g. "loras/flux-character-{lora_id}.safetensors"
    blank_default: str | None = None  # the value an empty string is replaced with
    min_side: int | None = None  # images: each side at least this many pixels
    max_pixels: int | None = None  # images: width x height at most this
    node_errors: dict[str, str] | None = None  # node message part -> 422 message
    node_warnings: dict[str, str] | None = None  # logged line part -> 422 message

    @property
    def runtime_args(self) -> str:
        """Keyword arguments of the runtime ``Param(...)`` that differ from its defaults."""
        args = [repr(self.name)]
        if self.kind != "value":
            args.append(f"kind={self.kind!r}")
        if self.targets:
            targets = ", ".join(f"Target({n!r}, {i!r})" for n, i in self.targets)
            args.append(f"targets=({targets},)")
        for key in (
            "format",
            "map",
            "prepend_to",
            "sets",
            "header",
            "volume_file",
            "blank_default",
            "min_side",
            "max_pixels",
            "node_errors",
            "node_warnings",
        ):
            value = getattr(self, key)
            if value is not None:
                args.append(f"{key}={value!r}")
        if self.prepend_to is not None and self.separator != ", ":
            args.append(f"separator={self.separator!r}")
        if self.many:
            args.append("many=True")
        return ", ".join(args)


@dataclass(frozen=True)
class SpecPlaces:
    """Where an endpoint's parts stand in its spec, for errors found after resolving (the
    self-check of the rendered module). Never printed."""

    endpoint: Location  # the endpoint's path
    params: dict[str, Location] = field(default_factory=dict)  # each parameter's key
    examples: tuple[Location, ...] = ()
    warmup: Location | None = None


@dataclass(frozen=True)
class EndpointModel:
    path: str
    request_class: str
    summary: str
    description: str | None
    workflow_file: str
    fields: tuple[RequestField, ...]
    params: tuple[ParamModel, ...]
    outputs: tuple[str, ...]
    response: str
    timeout: int
    gpu: str
    headers: dict[str, str]
    require_one_of: tuple[tuple[str, ...], ...]
    prefix_nodes: tuple[str, ...]  # nodes whose filename_prefix is made unique per request
    examples: tuple[dict[str, Any], ...]
    source: str  # spec file that declared it
    warmup: dict[str, Any] | None = None  # request run at container start
    docs: tuple[ParamDoc, ...] = ()
    model_names: tuple[str, ...] = ()  # folder/filename of the models it declares
    client_workflow_max_nodes: int = 0  # > 0: the client sends the workflow (no file)
    max_body_bytes: int | None = None  # this route's body limit (default: the app's)
    activation_gb: float | None = None  # GPU memory a run needs beyond its models (measured)
    max_output_pixels: int = 0  # client workflows: width x height x frames x batch per node
    input_files: tuple[str, ...] = ()  # client workflows: input files they may load
    custom_node_names: tuple[str, ...] = ()  # repo@pin of its custom nodes
    private_nodes: tuple[str, ...] = ()  # loaders whose outputs are this endpoint's own
    private_files: tuple[str, ...] = ()  # folder/filename they load (a copy of its own)
    places: SpecPlaces | None = field(default=None, compare=False)
    constant_name: str = ""  # set when the name derived from the path is taken (unique_names)

    @property
    def source_label(self) -> str:
        if self.client_workflow_max_nodes:
            return "the workflow in the request"
        return f"comfy_workflows/{self.workflow_file}"

    @property
    def docstring(self) -> str:
        extra = f" {self.description}" if self.description else ""
        return docstring(f"Request body of POST {self.path}.{extra}")

    @property
    def anchor(self) -> str:
        """The Markdown heading anchor of this endpoint in docs/ENDPOINTS.md."""
        return re.sub(r"[^a-z0-9 _-]", "", self.path.lower()).replace(" ", "-")

    @property
    def constant(self) -> str:
        """Module-level constant holding this endpoint's runtime ``Endpoint``."""
        if self.constant_name:
            return self.constant_name
        name = re.sub(r"[^A-Za-z0-9]+", "_", self.path).strip("_").upper()
        return name if not name[:1].isdigit() else "E_" + name


@dataclass(frozen=True)
class ModelFileModel:
    folder: str
    filename: str
    repo: str | None
    file: str | None
    revision: str
    url: str | None
    sha256: str | None
    size_gb: float | None
    repo_type: str = "model"
    where: str = field(default="", compare=False)  # spec position that declared it
    arch: str | None = None  # declared architecture (resolve/arch.py infers the rest)
    unpack: str | None = None  # the source is a .zip archive: this member of it is the file

    @property
    def source(self) -> str:
        """Where the file comes from, as a user reads it."""
        origin = self.url or f"hf:{self.repo}/{self.file}@{self.revision}"
        return f"{origin} (member {self.unpack})" if self.unpack else origin

    @property
    def runtime_args(self) -> str:
        args = [f"folder={self.folder!r}", f"filename={self.filename!r}"]
        if self.url:
            args.append(f"url={self.url!r}")
        else:
            args += [f"repo={self.repo!r}", f"file={self.file!r}"]
            if self.revision != "main":
                args.append(f"revision={self.revision!r}")
            if self.repo_type != "model":
                args.append(f"repo_type={self.repo_type!r}")
        if self.unpack:
            args.append(f"unpack={self.unpack!r}")
        if self.sha256:
            args.append(f"sha256={self.sha256!r}")
        return ", ".join(args)


@dataclass(frozen=True)
class CustomNodeModel:
    key: str
    git: str | None
    commit: str | None
    registry: str | None
    version: str | None
    directory: str
    pip: tuple[str, ...]
    apt: tuple[str, ...]

    @property
    def pin(self) -> str:
        return self.commit or self.version or ""

    @property
    def install_commands(self) -> tuple[str, ...]:
        target = f"/root/comfy/ComfyUI/custom_nodes/{self.directory}"
        if self.git:
            return (
                f"git clone --filter=blob:none {self.git} {target}",
                f"git -C {target} checkout --quiet {self.commit}",
                f"cd {target} && (test ! -f requirements.txt || pip install -r requirements.txt)",
            )
        return (f"comfy node install {self.registry}@{self.version}",)


@dataclass(frozen=True)
class ClassModel:
    """One Modal class with its own GPU; its ASGI app serves ``endpoints``."""

    name: str
    gpu: str
    timeout: int
    usd_per_second: float
    endpoints: tuple[EndpointModel, ...]
    comfy_args: tuple[str, ...] = ()  # ComfyUI launch flags (residency plan + the app's own)
    plan_note: str = ""  # why those flags, one line, shown in the generated module
    pin_models: tuple[str, ...] = ()  # model files the plan keeps loaded (helper node)
    memory_mb: int | None = None  # Modal memory= request from the plan

    @property
    def constant(self) -> str:
        """Name of the module-level tuple of this class's endpoints."""
        return self._snake + "_ENDPOINTS"

    @property
    def volume_folders(self) -> tuple[str, ...]:
        """Models-volume folders ComfyUI must list live (files written by training functions)."""
        files = (p.volume_file for e in self.endpoints for p in e.params if p.volume_file)
        return tuple(sorted({f.split("/", 1)[0] for f in files}))

    @property
    def args_constant(self) -> str:
        return self._snake + "_COMFY_ARGS"

    @property
    def settings_constant(self) -> str:
        return self._snake + "_SETTINGS"

    @property
    def _snake(self) -> str:
        return self.name.upper()

    @property
    def docstring(self) -> str:
        paths = ", ".join(e.path for e in self.endpoints)
        return docstring(f"Serves {paths} on {self.gpu}.")

    @property
    def url_label(self) -> str:
        return f"{self.name.lower()}-fastapi-app"


@dataclass(frozen=True)
class RetiredModel:
    """A route that answers 410 Gone naming its replacement."""

    path: str
    use: str
    reason: str
    app: str  # the app whose spec retired it (its own URL answers 410 too)
    source: str

    @property
    def runtime_args(self) -> str:
        return f"{self.path!r}, use={self.use!r}, reason={py_string(self.reason)}"


@dataclass(frozen=True)
class ForwardModel:
    """A route of the fleet front door, run by the class owning it."""

    app: str
    cls: str
    endpoint: EndpointModel  # as the front door serves it (path, request class)
    own: bool  # the fleet app's own class (its request model is rendered with the class)
    owner_path: str = ""  # the path in the owning app when it differs (reuse ... as:)

    @property
    def path(self) -> str:
        return self.endpoint.path

    @property
    def runtime_args(self) -> str:
        ep = self.endpoint
        args = [
            repr(ep.path),
            f"app={self.app!r}",
            f"cls={self.cls!r}",
            f"request_model={ep.request_class}",
            f"timeout={ep.timeout}",
            f"summary={py_string(ep.summary)}",
        ]
        if self.owner_path:
            args.append(f"owner_path={self.owner_path!r}")
        if ep.max_body_bytes:
            args.append(f"max_body_bytes={ep.max_body_bytes}")
        return ", ".join(args)


@dataclass(frozen=True)
class ChainStepModel:
    name: str
    app: str
    cls: str
    path: str
    inputs: dict[str, str]  # step field -> chain field
    outputs: dict[str, str]  # step field -> earlier step whose output it receives
    values: dict[str, Any]  # step field -> constant

    @property
    def runtime_args(self) -> str:
        args = [f"{self.name!r}", f"app={self.app!r}", f"cls={self.cls!r}", f"path={self.path!r}"]
        for key in ("inputs", "outputs", "values"):
            if getattr(self, key):
                args.append(f"{key}={getattr(self, key)!r}")
        return ", ".join(args)


@dataclass(frozen=True)
class ChainModel:
    """A front-door route running endpoints of any apps one after another."""

    path: str
    request_class: str
    summary: str
    description: str | None
    fields: tuple[RequestField, ...]
    docs: tuple[ParamDoc, ...]
    steps: tuple[ChainStepModel, ...]
    timeout: int  # the steps' timeouts added up
    source: str
    examples: tuple[dict[str, Any], ...] = ()

    @property
    def constant(self) -> str:
        name = re.sub(r"[^A-Za-z0-9]+", "_", self.path).strip("_").upper()
        return "CHAIN_" + name

    @property
    def docstring(self) -> str:
        extra = f" {self.description}" if self.description else ""
        return docstring(f"Request body of POST {self.path} (a chain).{extra}")

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9 _-]", "", self.path.lower()).replace(" ", "-")


@dataclass(frozen=True)
class FleetModel:
    """The fleet's one URL: a CPU front door in the app that declares ``fleet: true``."""

    label: str  # Modal web label: the URL the default class had (clients keep it)
    timeout: int
    forwards: tuple[ForwardModel, ...]
    chains: tuple[ChainModel, ...]
    retired: tuple[RetiredModel, ...]
    modules: dict[str, str]  # owning app -> generated module name (ryla-gen dev loads them)
    concurrent_inputs: int = 100  # it only waits on other containers

    @property
    def rendered_forwards(self) -> tuple[ForwardModel, ...]:
        """Forwards of other apps: their request models are rendered in the front door's part."""
        return tuple(f for f in self.forwards if not f.own)


SHARED_WARMUP_CHARS = 300  # a value longer than this, sent by several warm-ups, is printed once


@dataclass(frozen=True)
class AppModel:
    name: str
    module: str
    description: str
    sources: tuple[str, ...]
    spec_version: int
    gpu: str
    scaledown_window: int
    min_containers: int
    max_containers: int | None
    concurrent_inputs: int
    volumes: dict[str, str]
    models_volume: str
    secrets: tuple[str, ...]
    comfyui_version: str
    memory_snapshot: bool
    auth: str
    auth_secret: str | None
    webhook_secret: str | None
    comfy_args: tuple[str, ...]
    classes: tuple[ClassModel, ...]
    models: tuple[ModelFileModel, ...]
    custom_nodes: tuple[CustomNodeModel, ...]
    apt_packages: tuple[str, ...]
    pip_packages: tuple[str, ...]
    workflow_files: tuple[str, ...] = field(default=())
    training: tuple[TrainingModel, ...] = ()
    training_images: tuple[TrainingImageModel, ...] = ()
    training_volume_sets: tuple[NamedSet, ...] = ()
    training_secret_sets: tuple[NamedSet, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)  # AppSettings keyword arguments
    retired: tuple[RetiredModel, ...] = ()  # declared in this app's specs
    fleet: FleetModel | None = None
    where: Location | None = field(default=None, compare=False)  # the app's name in its spec

    @property
    def warmup_media(self) -> dict[str, str]:
        """Long warm-up values (example images) that two or more endpoints send, value -> the
        module constant printed once in their stead (``WARMUP_<first field>``)."""
        fields: dict[str, list[str]] = {}
        for cls in self.classes:
            for ep in cls.endpoints:
                for key, value in (ep.warmup or {}).items():
                    if isinstance(value, str) and len(value) > SHARED_WARMUP_CHARS:
                        fields.setdefault(value, []).append(key)
        names: dict[str, str] = {}
        for value, keys in fields.items():
            if len(keys) < 2:
                continue
            name, n = f"WARMUP_{keys[0].upper()}", 2
            while name in names.values():
                name, n = f"WARMUP_{keys[0].upper()}_{n}", n + 1
            names[value] = name
        return names

    @property
    def served_retired(self) -> tuple[RetiredModel, ...]:
        """Retired routes this app's URL answers: the fleet's all, others their own."""
        return self.fleet.retired if self.fleet else self.retired

    @property
    def download_timeout(self) -> int:
        """Seconds the model build step may run: an hour plus 20 s per declared GB (50 MB/s at
        the slowest), at most Modal's 24 h; Modal's default (1 h) cut large first builds short."""
        total = sum(m.size_gb or 0.0 for m in self.models)
        return int(min(86400, 3600 + 20 * total))

    @property
    def template(self) -> str:
        """An app holds endpoints (a ComfyUI server per GPU) or training (functions), not both."""
        return "training.py.j2" if self.training else "app.py.j2"

    @property
    def heading(self) -> str:
        """The module docstring's first paragraph (name and description), wrapped to fit."""
        text = f"{self.name}: {self.description}"
        return "\n".join(textwrap.wrap(text, 88, break_long_words=False, break_on_hyphens=False))

    @property
    def sources_docstring(self) -> str:
        """The module docstring's line naming the source specs, wrapped to fit."""
        text = (
            f"Generated by ryla-gen from {', '.join(self.sources)} "
            f"(spec format v{self.spec_version})."
        )
        return "\n".join(textwrap.wrap(text, 88, break_long_words=False, break_on_hyphens=False))

    @property
    def endpoints(self) -> tuple[EndpointModel, ...]:
        return tuple(e for c in self.classes for e in c.endpoints)

    @property
    def endpoint_count(self) -> int:
        return len(self.endpoints)

    @property
    def training_count(self) -> int:
        return len(self.training)

    @property
    def _fields(self) -> list[RequestField]:
        fields = [f for e in self.endpoints for f in e.fields]
        if self.fleet:
            fields += [f for fw in self.fleet.rendered_forwards for f in fw.endpoint.fields]
            fields += [f for c in self.fleet.chains for f in c.fields]
        return fields

    @property
    def typing_imports(self) -> list[str]:
        names = []
        if any("Any]" in f.annotation for f in self._fields):
            names.append("Any")
        if any("Literal[" in f.annotation for f in self._fields):
            names.append("Literal")
        return names

    @property
    def pydantic_imports(self) -> list[str]:
        uses_alias = any("AliasChoices(" in f.field_args for f in self._fields)
        return (["AliasChoices"] if uses_alias else []) + ["Field"]

    @property
    def config_imports(self) -> list[str]:
        names = ["AppSettings", "Endpoint", "RequestModel", "load_workflows"]
        names += ["Param"] if any(e.params for e in self.endpoints) else []
        names += ["ModelFile"] if self.models else []
        if any(f.annotation.startswith("OneOrMany") for f in self._fields):
            names.append("OneOrMany")
        if any(p.targets for e in self.endpoints for p in e.params):
            names.append("Target")
        if self.served_retired:
            names.append("Retired")
        if self.fleet:
            names += ["Forward"] + (["Chain", "Step"] if self.fleet.chains else [])
        return sorted(names)

    def url(self, cls: ClassModel, workspace: str = "<workspace>") -> str:
        if self.fleet:  # every class is reached through the front door
            return self.fleet_url(workspace)
        return f"https://{workspace}--{self.name}-{cls.url_label}.modal.run"

    def fleet_url(self, workspace: str = "<workspace>") -> str:
        assert self.fleet is not None
        return f"https://{workspace}--{self.fleet.label}.modal.run"


@dataclass(frozen=True)
class TrainingParamModel:
    """One parameter of a generated training function's signature."""

    name: str
    annotation: str  # e.g. "str", "list[str]", "dict | None"
    default: str | None  # Python literal of the default; None: the caller must pass it


@dataclass(frozen=True)
class TrainingOutputModel:
    name: str
    volume: str  # Modal Volume name
    mount: str
    path: str  # pattern in the volume, e.g. loras/flux-character-{character_id}.safetensors


@dataclass(frozen=True)
class TrainingImageModel:
    """A training's container image (training declaring the same image share one)."""

    constant: str
    python_version: str
    apt: tuple[str, ...]
    pip: tuple[str, ...]
    commands: tuple[str, ...]
    env: dict[str, str]

    @property
    def key(self) -> tuple:
        """Equal for images built alike (whatever they are named)."""
        env = tuple(sorted(self.env.items()))
        return (self.python_version, self.apt, self.pip, self.commands, env)


@dataclass(frozen=True)
class TrainingModel:
    """A generated Modal function started with ``.spawn()`` (a trainer)."""

    function: str
    summary: str
    description: str | None
    gpu: str
    timeout: int
    volumes_name: str  # module-level dict of its volumes
    secrets_name: str  # module-level list of its secrets
    image: TrainingImageModel
    params: tuple[TrainingParamModel, ...]
    runtime: Any  # the generator.runtime.training.TrainingFunction the module declares
    outputs: tuple[TrainingOutputModel, ...]
    source: str
    docs: tuple[ParamDoc, ...] = ()
    trainer: str = ""  # what runs, as a reader names it: repo@commit or name==version

    @property
    def constant(self) -> str:
        return self.function.upper()

    @property
    def docstring(self) -> str:
        extra = f" {self.description}" if self.description else ""
        return docstring(
            f"{self.summary}{extra} Returns the result dictionary; a failed run answers with "
            "status 'failed' and the trainer's last log lines."
        )


@dataclass(frozen=True)
class NamedSet:
    """A module-level collection the generated training functions share (volumes, secrets)."""

    name: str
    volumes: dict[str, str] = field(default_factory=dict)  # mount -> Modal Volume name
    secrets: tuple[str, ...] = ()
