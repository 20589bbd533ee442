"""What a generated module declares: its app settings, endpoints, parameters and models.

Generated modules build these objects from literals; the runtime reads them. Plain frozen
dataclasses, so a reviewer reads the generated module like a table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic.fields import FieldInfo

# The input a private endpoint's loader nodes get (value: the endpoint's path). ComfyUI keys its
# output cache by every input a node is given and passes a node only the inputs it declares, so
# the loader runs as before while its output (and all built on it) is cached apart. ryla-gen's
# helper node (``snapshot_node/residency.py``) never pins such an entry.
PRIVATE_INPUT = "ryla_private"


def choice_key(value: Any) -> str:
    """How a request value is looked up in ``map`` and ``sets`` (booleans as true/false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


OneOrMany = Annotated[list[str], BeforeValidator(_one_or_many)]
"""A media list field that also accepts a single item (legacy clients send one)."""


def field_keys(name: str, info: FieldInfo) -> set[str]:
    """Every key a client may send a request field under: its name and its aliases."""
    alias = info.validation_alias
    choices = getattr(alias, "choices", None) or ([alias] if alias else [])
    return {name, info.alias or name, *(c for c in choices if isinstance(c, str))}


class RequestModel(BaseModel):
    """Base of the generated request models: unknown fields refused, and strict types, so
    ``"5"`` is not 5 and ``true`` is not 1; JSON ``78.0`` still counts as the integer 78 (JSON
    Schema calls it one)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    _int_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        keys: set[str] = set()
        for name, info in cls.model_fields.items():
            if info.annotation in (int, int | None):
                keys.update(field_keys(name, info))
        cls._int_keys = frozenset(keys)

    @model_validator(mode="before")
    @classmethod
    def _integral_floats(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {
            k: int(v) if k in cls._int_keys and isinstance(v, float) and v.is_integer() else v
            for k, v in data.items()
        }


@dataclass(frozen=True)
class Target:
    """A node input in the workflow: node id and input name."""

    node: str
    input: str


@dataclass(frozen=True)
class Param:
    """How one request field changes the workflow.

    kind: ``value`` (set as given), ``seed`` (random when omitted), or a media kind
    (``image``, ``video``, ``mask``: decoded, uploaded, and the stored file name set).
    """

    name: str
    kind: str = "value"
    targets: tuple[Target, ...] = ()
    format: str | None = None  # e.g. "character-{lora_id}.safetensors"
    map: Mapping[str, Any] | None = None  # bound value per request value ("true"/"false" keys)
    prepend_to: str | None = None  # trigger words: prefixed to another string field
    separator: str = ", "
    sets: Mapping[str, Mapping[str, Any]] | None = None  # per choice, other fields' values
    header: str | None = None  # response header reporting the used value
    many: bool = False  # a list of media items, one per target
    volume_file: str | None = None  # models-volume file it loads (404 when missing)
    blank_default: str | None = None  # an empty (or blank) string sent gets this value
    min_side: int | None = None  # images: each side at least this many pixels (422 otherwise)
    max_pixels: int | None = None  # images: width x height at most this (within the app's)
    # a node error whose message contains a key (any case) means this value is unusable: 422
    node_errors: Mapping[str, str] | None = None
    # a logged line containing a key means the run went on without this value: 422
    node_warnings: Mapping[str, str] | None = None

    def pixel_limit(self, app_limit: int) -> int:
        """Pixels an image of this parameter may have: its own limit within the app's."""
        return app_limit if self.max_pixels is None else min(app_limit, self.max_pixels)


@dataclass(frozen=True)
class Endpoint:
    path: str
    request_model: type[BaseModel]
    workflow: str  # file name under the workflows directory
    params: tuple[Param, ...]
    outputs: tuple[str, ...]  # node ids whose files are returned
    timeout: float  # seconds for one run, enforced per request
    summary: str = ""
    response: str = "raw"  # raw bytes, or json with base64
    headers: Mapping[str, str] = field(default_factory=dict)
    require_one_of: tuple[tuple[str, ...], ...] = ()
    prefix_nodes: tuple[str, ...] = ()  # nodes whose filename_prefix is unique per request
    private_nodes: tuple[str, ...] = ()  # loaders cached apart (PRIVATE_INPUT): private_models
    warmup: Mapping[str, Any] | None = None  # request run once at container start
    client_workflow_max_nodes: int = 0  # > 0: the request carries the workflow (``/workflow``)
    max_body_bytes: int | None = None  # this route's request body limit (default: the app's)
    max_output_pixels: int = 0  # client workflows: width x height x frames x batch per node
    input_files: tuple[str, ...] = ()  # client workflows: input-folder files they may load


@dataclass(frozen=True)
class Retired:
    """A route no longer served: 410 Gone, naming the route to use instead."""

    path: str
    use: str
    reason: str = ""


@dataclass(frozen=True)
class Forward:
    """A route of the fleet front door that runs in the app owning it (a Modal call to its
    class's ``run_request``; in ``ryla-gen dev`` in-process against the same ComfyUI)."""

    path: str
    app: str
    cls: str
    request_model: type[BaseModel]
    timeout: float
    summary: str = ""
    owner_path: str = ""  # the path in the owning app, when the front door uses another
    max_body_bytes: int | None = None  # the owning endpoint's body limit (default: the app's)

    @property
    def target(self) -> str:
        return self.owner_path or self.path


@dataclass(frozen=True)
class Step:
    """One step of a chain: a request to ``path`` of class ``cls`` of ``app``.

    ``inputs``: step field -> chain field; ``outputs``: step field -> an earlier step whose
    output file it receives (as a data URL); ``values``: step field -> constant."""

    name: str
    app: str
    cls: str
    path: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chain:
    """A front-door route running its steps in order; the last step's output answers."""

    path: str
    request_model: type[BaseModel]
    steps: tuple[Step, ...]
    timeout: float
    summary: str = ""


@dataclass(frozen=True)
class ModelFile:
    """A model file in the shared models volume, linked into ``ComfyUI/models/<folder>``."""

    folder: str
    filename: str
    repo: str | None = None
    file: str | None = None
    revision: str = "main"
    repo_type: str = "model"
    url: str | None = None
    unpack: str | None = None  # the source is a .zip archive: this member of it is the file
    sha256: str | None = None  # of the file ComfyUI sees (the member, for an archive)


@dataclass(frozen=True)
class AppSettings:
    name: str
    gpu: str
    usd_per_second: float
    auth: str = "proxy"  # proxy (enforced by Modal) | bearer | none
    auth_token_env: str = "RYLA_API_TOKEN"
    webhook_secret_env: str = "RYLA_WEBHOOK_SECRET"
    max_body_bytes: int = 64 * 1024 * 1024
    max_image_pixels: int = 64 * 1024 * 1024
    allow_private_urls: bool = False
    download_timeout: float = 60.0  # seconds for one URL input, redirects included
    download_max_bytes: int = 64 * 1024 * 1024
    max_pending_jobs: int = 32  # per container: more answer 429
    job_ttl_seconds: float = 3600.0  # local job records are forgotten this long after the end

    def body_limit(self, endpoint: Endpoint) -> int:
        return endpoint.max_body_bytes or self.max_body_bytes


def load_workflows(
    workflows_dir: str | os.PathLike[str], endpoints: Iterable[Endpoint]
) -> dict[str, dict[str, Any]]:
    """Each endpoint's workflow JSON, read once (routes whose client sends it have none)."""
    return {
        e.workflow: json.loads((Path(workflows_dir) / e.workflow).read_text(encoding="utf-8"))
        for e in endpoints
        if e.workflow
    }
