"""The spec format, version 1, as typed models.

This module is the single description of what a spec file may contain: pydantic parses it, and
the JSON Schema shipped for editors (``ryla-gen schema``) is generated from the same classes.
Semantic checks that need the workflow or other files live in :mod:`generator.resolve`.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from .base import Commit, Identifier, ModalName, Name, Sha256, Timeout
from .base import StrictModel as _Strict
from .base import shape as _shape
from .training import TrainingFunction, TrainingLink

SPEC_VERSION = 1

ParamType = Literal["string", "int", "float", "bool", "enum", "seed", "image", "video", "mask"]
AuthMode = Literal["proxy", "bearer", "none"]
ResponseMode = Literal["raw", "json"]


class NodeRef(_Strict):
    """A node, by id or by its ``_meta.title``."""

    node: str | None = Field(None, description="Node id in the API-format workflow.")
    title: str | None = Field(None, description="The node's _meta.title (must be unique).")

    @model_validator(mode="after")
    def _one_target(self) -> NodeRef:
        if (self.node is None) == (self.title is None):
            raise ValueError("give exactly one of 'node' or 'title'")
        return self


class InputRef(NodeRef):
    """A node input, by node id or by the node's ``_meta.title``."""

    input: str = Field(description="Input name on that node, e.g. 'text' or 'seed'.")


class FieldSpec(_Strict):
    """A typed request field: what endpoint parameters and chain parameters share."""

    type: ParamType
    description: str | None = None
    required: bool = False
    default: Any = Field(
        None, description="Value when the request omits the field; for seed: an int or 'random'."
    )
    min: int | float | None = None
    max: int | float | None = None
    multiple_of: int | float | None = Field(None, gt=0)
    choices: list[str | int | float] | None = Field(None, description="Allowed values (enum).")
    aliases: list[Identifier] = Field(
        default_factory=list, description="Legacy field names accepted in requests."
    )


class Parameter(FieldSpec):
    """One request field and the node inputs it sets."""

    max_items: int | None = Field(None, description="Accept a list of up to N media items.")
    min_side: int | None = Field(
        None, gt=0, description="Images: each side at least this many pixels (else 422)."
    )
    max_pixels: int | None = Field(
        None,
        gt=0,
        description="Images: width x height at most this (else 422), within the app's limit.",
    )
    bind: Annotated[
        Annotated[InputRef, Tag("mapping")] | Annotated[list[InputRef], Tag("many")],
        Discriminator(_shape),
    ] = Field(default_factory=list, description="Node input(s) this parameter sets.")
    format: str | None = Field(
        None,
        description="Derive the bound value, e.g. 'loras/character-{lora_id}.safetensors'.",
    )
    from_training: TrainingLink | None = Field(
        None,
        description="The training whose output this format names (e.g. train_flux_lora): the two "
        "file-name patterns must agree.",
    )
    prepend_to: Identifier | None = Field(
        None, description="Prefix this value to another string parameter (trigger words)."
    )
    separator: str = Field(", ", description="Joins the value and the target (prepend_to).")
    blank_is_default: bool = Field(
        False,
        description="A string sent empty (or only spaces) gets the default, as an omitted one.",
    )
    map: dict[str, int | float | str | bool] | None = Field(
        None,
        description="Bound value per request value (keys as strings; booleans 'true'/'false').",
    )
    sets: dict[str, dict[Identifier, int | float | str]] | None = Field(
        None, description="Per choice, values for other parameters (aspect_ratio -> width/height)."
    )
    header: str | None = Field(None, description="Response header reporting the used value.")
    node_errors: dict[str, str] | None = Field(
        None,
        description="Errors a node raises when this field's value is unusable (a photo without a "
        "face): a node error whose message contains a key (any case) answers 422 naming the "
        "field, with the value as the message, instead of 500.",
    )
    node_warnings: dict[str, str] | None = Field(
        None,
        description="Lines a node logs when it goes on without this field's value (PuLID and "
        "ReActor log that they found no face and return the unchanged model or image): when "
        "the run's log contains a key (any case), its output is withheld and the answer is 422 "
        "naming the field, with the value as the message.",
    )
    ignored: bool = Field(
        False, description="Accepted for client compatibility but has no effect (no binding)."
    )

    @property
    def bindings(self) -> list[InputRef]:
        return self.bind if isinstance(self.bind, list) else [self.bind]


class Output(NodeRef):
    """Which node's files the endpoint returns."""

    response: ResponseMode = Field(
        "raw", description="raw: the file's bytes (today's wire format); json: base64 in JSON."
    )


class Model(_Strict):
    """A model file fetched into the shared models volume and linked into ComfyUI."""

    repo: str | None = Field(None, description="Hugging Face repository, e.g. Comfy-Org/x.")
    file: str | None = Field(None, description="Path of the file inside the repository.")
    revision: str = "main"
    repo_type: Literal["model", "dataset"] = Field("model", description="Hugging Face repo kind.")
    url: str | None = Field(None, description="Direct download URL (instead of repo/file).")
    folder: str = Field(description="ComfyUI models sub-folder, e.g. checkpoints, loras, vae.")
    name: str | None = Field(None, description="File name ComfyUI sees (default: basename).")
    unpack: str | None = Field(
        None,
        description="The source is a .zip archive: this member of it (its path in the archive, "
        "or a name found once in it) is the file; entries naming the same archive share one "
        "download. For files a custom node would otherwise fetch as an archive at run time.",
    )
    sha256: Sha256 | None = Field(None, description="Digest of the file ComfyUI sees.")
    size_gb: float | None = Field(None, gt=0, description="Size, for the residency plan.")
    arch: str | None = Field(
        None,
        description="Architecture of the file, e.g. sdxl-checkpoint, flux-dev, t5-xxl "
        "(default: inferred from repo/file; `ryla-gen smoke` builds a synthetic file of it).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Model:
        if self.url is None and (self.repo is None or self.file is None):
            raise ValueError("give either 'repo' and 'file', or 'url'")
        if self.url is not None and (self.repo is not None or self.file is not None):
            raise ValueError("give either 'repo' and 'file', or 'url', not both")
        if self.url is not None and not re.match(r"^https://", self.url):
            raise ValueError("model url must start with https://")
        if self.unpack is not None:
            source = (self.url or self.file or "").split("?", 1)[0]
            if not source.lower().endswith(".zip"):
                raise ValueError(f"'unpack' takes a member of a .zip archive; {source} is not one")
            parts = self.unpack.replace("\\", "/").split("/")
            if self.unpack.startswith("/") or any(p in ("", ".", "..") for p in parts):
                raise ValueError(
                    f"'unpack' must be a relative path inside the archive: {self.unpack!r}"
                )
        return self

    @property
    def filename(self) -> str:
        return self.name or (self.unpack or self.file or self.url or "").rsplit("/", 1)[-1]


class CustomNode(_Strict):
    """A custom-node pack installed into ComfyUI, pinned."""

    git: str | None = Field(None, description="Repository URL (https).")
    commit: Commit | None = Field(None, description="Pinned 40-hex commit.")
    registry: str | None = Field(None, description="Comfy registry id (instead of git).")
    version: str | None = Field(None, description="Registry version.")
    nodes: list[str] = Field(default_factory=list, description="Node classes it provides.")
    pip: list[str] = Field(default_factory=list)
    apt: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _pinned(self) -> CustomNode:
        if self.git is not None:
            if self.registry is not None:
                raise ValueError("give either 'git' or 'registry', not both")
            if self.commit is None:
                raise ValueError("a git custom node must be pinned with 'commit' (40 hex digits)")
            if not self.git.startswith("https://"):
                raise ValueError("custom node git URL must start with https://")
        elif self.registry is not None:
            if self.version is None:
                raise ValueError("a registry custom node must be pinned with 'version'")
        else:
            raise ValueError("give 'git' + 'commit' or 'registry' + 'version'")
        return self

    @property
    def key(self) -> str:
        return (self.git or self.registry or "").rstrip("/").removesuffix(".git").lower()

    @property
    def pin(self) -> str:
        return self.commit or self.version or ""


class Endpoint(_Strict):
    """One POST route of an app."""

    path: str = Field(pattern=r"^/[A-Za-z0-9._/-]+$", description="URL path, e.g. /flux.")
    workflow: str = Field(description="API-format workflow JSON, relative to comfy_workflows/.")
    summary: str | None = None
    description: str | None = None
    gpu: str | None = Field(None, description="GPU for this endpoint (default: the app's).")
    timeout: Timeout | None = Field(None, description="Seconds (default: the app's).")
    parameters: dict[Identifier, Parameter] = Field(default_factory=dict)
    require_one_of: list[list[Identifier]] = Field(
        default_factory=list, description="Groups of parameters of which exactly one is given."
    )
    output: Output
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra response headers; values may use {param}."
    )
    models: list[Model] = Field(default_factory=list)
    custom_nodes: list[CustomNode] = Field(default_factory=list)
    examples: list[dict[str, Any]] = Field(default_factory=list)
    max_body_mb: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Request body limit of this route in MiB (default: the "
        "app's limits.max_body_mb); raise it for video inputs sent inline.",
    )
    activation_gb: float | None = Field(
        None,
        gt=0,
        le=1024,
        description="GPU memory one run needs beyond its declared models (activations, video "
        "decoding) at the examples' size, as `ryla-gen smoke` measures it (peak reserved less "
        "the declared size_gb); the residency plan keeps at least this free (default: a tenth "
        "of the GPU).",
    )
    private_models: bool = Field(
        False,
        description="Load this endpoint's diffusion models (the nodes naming a unet_name or "
        "ckpt_name) apart from the other endpoints': for graphs whose custom nodes change the "
        "model they are given in place (x-flux's ApplyFluxIPAdapter swaps Flux's blocks for its "
        "own), so no other endpoint runs on a changed model. Costs a load of its own when the "
        "endpoints alternate.",
    )
    warmup: bool | dict[str, Any] = Field(
        True,
        description="Request run at container start before serving: true = the first example "
        "at its real size with the cheapest settings (steps at their minimum); a mapping = "
        "this request (a typical one: same sizes as real traffic); false = none.",
    )


class WorkflowRoute(_Strict):
    """A route that runs an API-format workflow the client sends: ``{"workflow": {...}}``.

    The graph is checked against the running ComfyUI's node catalog before it is queued;
    every output file is returned."""

    path: str = Field(pattern=r"^/[A-Za-z0-9._/-]+$", description="URL path, e.g. /workflow.")
    summary: str | None = None
    gpu: str | None = Field(None, description="GPU for this route (default: the app's).")
    timeout: Timeout | None = Field(None, description="Seconds (default: the app's).")
    max_nodes: int = Field(200, ge=1, description="Largest graph accepted.")
    max_output_pixels: int = Field(
        64 * 1024 * 1024,
        ge=1,
        description="Output budget: width x height x frames x batch of any node in the graph "
        "(estimated from its inputs before it is queued; more is a 422 naming the node).",
    )
    input_files: list[str] = Field(
        default_factory=list,
        description="Files of ComfyUI's input folder that client graphs may load (shipped by "
        "the operator); any other name, e.g. another request's upload, is a 422.",
    )
    max_body_mb: int | None = Field(
        None, ge=1, le=4096, description="Request body limit of this route in MiB."
    )
    models: list[Model] = Field(default_factory=list)
    custom_nodes: list[CustomNode] = Field(default_factory=list)
    examples: list[dict[str, Any]] = Field(default_factory=list)


class Reuse(_Strict):
    """Serve an endpoint of another app here too: co-located (run: here, its models and custom
    nodes installed here) or, in the fleet app, forwarded to its owner (run: owner, e.g. an old
    path). A fleet app forwards every other app's endpoint without being told."""

    app: Name = Field(description="The app whose endpoint is reused.")
    path: str = Field(description="The endpoint's path in that app.")
    as_path: str | None = Field(
        None, alias="as", pattern=r"^/[A-Za-z0-9._/-]+$", description="Path here (default: same)."
    )
    run: Literal["here", "owner"] = Field(
        "here",
        description="here: co-locate (this app installs the endpoint's models and runs it); "
        "owner: the fleet app forwards the route (under its 'as' path) to the owning app.",
    )


class Retired(_Strict):
    """A route no longer served: it answers 410 Gone naming the route to use instead."""

    path: str = Field(pattern=r"^/[A-Za-z0-9._/-]+$", description="The retired path, e.g. /wan2.")
    use: str = Field(
        pattern=r"^/[A-Za-z0-9._/-]+$",
        description="The route that replaces it (served by some app of the fleet), e.g. /wan2.6.",
    )
    reason: str = Field(description="Why it was retired, shown in the 410 body's details.")


class ChainParameter(FieldSpec):
    """One request field of a chain: typed and checked like an endpoint parameter, not bound to
    a node (the steps' ``inputs`` say where it goes)."""


ChainSource = Annotated[
    str,
    Field(
        pattern=r"^[a-z_][a-z0-9_]*(\.output)?$",
        description="A chain parameter's name, or '<step>.output': that earlier step's output "
        "file as a data URL (e.g. an animated WEBP for a source_video field).",
    ),
]


class ChainStep(_Strict):
    """One step of a chain: a request to an endpoint of some app of the fleet."""

    name: Identifier = Field(description="Names the step (errors, '<name>.output').")
    app: Name = Field(description="The app serving the endpoint.")
    path: str = Field(pattern=r"^/[A-Za-z0-9._/-]+$", description="The endpoint's path there.")
    inputs: dict[Identifier, ChainSource] = Field(
        default_factory=dict,
        description="Step request field -> where its value comes from (chain parameter or "
        "'<step>.output'); an omitted optional chain parameter leaves the step's default.",
    )
    values: dict[Identifier, Any] = Field(
        default_factory=dict, description="Step request field -> a constant."
    )


class Chain(_Strict):
    """A route that runs a sequence of endpoints (of any apps), feeding each step's output to
    the next; it runs on the fleet's CPU front door, so no GPU waits for another."""

    path: str = Field(pattern=r"^/[A-Za-z0-9._/-]+$", description="URL path, e.g. /qwen-faceswap.")
    summary: str | None = None
    description: str | None = None
    parameters: dict[Identifier, ChainParameter] = Field(default_factory=dict)
    steps: list[ChainStep] = Field(min_length=1, description="Run in order; the last answers.")
    examples: list[dict[str, Any]] = Field(default_factory=list)


class Limits(_Strict):
    """What one request may cost a container: body size, URL downloads, pending jobs."""

    max_body_mb: int = Field(64, ge=1, le=4096, description="Request body limit in MiB.")
    download_timeout: int = Field(
        60, ge=1, le=3600, description="Seconds for one URL input download, redirects included."
    )
    download_max_mb: int = Field(64, ge=1, le=16384, description="Largest URL input in MiB.")
    max_pending_jobs: int = Field(
        32, ge=1, le=100000, description="Unfinished jobs one container accepts (more: 429)."
    )


class App(_Strict):
    """A Modal app: settings shared by its endpoints."""

    name: Name
    description: str | None = None
    gpu: str = "L40S"
    timeout: Timeout = 1800
    scaledown_window: int = Field(300, ge=2, le=3600)
    min_containers: int = Field(0, ge=0, le=1000)
    max_containers: int | None = Field(
        None, ge=1, le=1000, description="Upper bound on containers; required with auth: none."
    )
    limits: Limits = Field(default_factory=Limits)
    concurrent_inputs: int = Field(5, ge=1, le=1000)
    volumes: dict[str, ModalName] = Field(
        default_factory=lambda: {"/root/models": "ryla-models", "/cache": "hf-hub-cache"},
        description="Mount path -> Modal Volume name.",
    )
    models_volume: str = Field("/root/models", description="Mount path holding model files.")
    secrets: list[ModalName] = Field(default_factory=list)
    comfyui_version: str = Field("0.3.71", pattern=r"^\d+\.\d+\.\d+$")
    memory_snapshot: bool = Field(
        True,
        description="Start ComfyUI before a CPU memory snapshot (faster cold starts); turn off "
        "for custom nodes that touch the GPU when they are imported.",
    )
    auth: AuthMode = Field(
        "proxy", description="proxy: Modal proxy auth; bearer: token from a Secret; none."
    )
    auth_secret: ModalName | None = Field(
        None, description="Secret holding RYLA_API_TOKEN (auth: bearer)."
    )
    webhook_secret: ModalName | None = Field(
        None, description="Modal Secret holding RYLA_WEBHOOK_SECRET (job webhooks are signed)."
    )
    cost_per_second: float | None = Field(
        None, gt=0, description="Override of the GPU price used for X-Cost-USD."
    )
    comfy_args: list[str] = Field(default_factory=list, description="Extra ComfyUI flags.")
    fleet: bool = Field(
        False,
        description="This app's URL is the fleet's one URL: a CPU front door answers every route "
        "of every app (other apps' endpoints run in their app, called over Modal; list one under "
        "reuse: to run it here instead), the chains and the retired routes; 404 lists the routes.",
    )

    @field_validator("volumes")
    @classmethod
    def _absolute_mounts(cls, value: dict[str, str]) -> dict[str, str]:
        """Modal's rules for mount paths (it refuses the rest at deploy, or merges '/a' and
        '/a/' silently): absolute and canonical, not '/', '/root' or '/tmp', one path a Volume."""
        seen: dict[str, str] = {}
        for mount, volume in value.items():
            if not mount.startswith("/"):
                raise ValueError(f"volume mount path '{mount}' must be absolute")
            if posixpath.normpath(mount) != mount or any(ord(c) < 32 for c in mount):
                canonical = posixpath.normpath(mount)
                raise ValueError(f"volume mount path {mount!r} is not canonical ({canonical!r})")
            if mount in ("/", "/root", "/tmp"):
                raise ValueError(f"a Volume cannot be mounted at '{mount}' (Modal refuses it)")
            if volume in seen:
                raise ValueError(
                    f"Volume '{volume}' is mounted at both '{seen[volume]}' and '{mount}' "
                    "(Modal mounts a Volume at one path)"
                )
            seen[volume] = mount
        return value


class AppRef(_Strict):
    """Adds this file's endpoints to an app defined in another spec file."""

    name: Name


class SpecFile(_Strict):
    """A spec file: defines an app (with endpoints or training) or adds them to one."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        title="ryla-gen spec",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    version: Literal[1] = Field(description="Spec format version.")
    app: Annotated[
        Annotated[App, Tag("mapping")] | Annotated[Name, Tag("scalar")],
        Discriminator(_shape),
    ] = Field(description="The app this file defines (mapping) or adds endpoints to (its name).")
    endpoints: list[Endpoint] = Field(default_factory=list)
    workflow_routes: list[WorkflowRoute] = Field(
        default_factory=list, description="Routes running a workflow the client sends."
    )
    reuse: list[Reuse] = Field(
        default_factory=list, description="Endpoints of other apps this app serves too."
    )
    training: list[TrainingFunction] = Field(
        default_factory=list, description="GPU functions started with .spawn() (trainers)."
    )
    chains: list[Chain] = Field(
        default_factory=list,
        description="Routes running endpoints one after another (only in the fleet app).",
    )
    retired: list[Retired] = Field(
        default_factory=list, description="Routes that answer 410 Gone naming their replacement."
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of spec files, generated from the models above."""
    return SpecFile.model_json_schema()
