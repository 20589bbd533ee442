"""Training functions in the spec format: long-running GPU functions started with ``.spawn()``.

A training is a generated Modal function: its typed arguments, the image its trainer runs in, how
the arguments become the trainer's command line and config files (Jinja templates), and the
files it leaves in a volume. An endpoint parameter that loads such a file names the training
(``from_training``), so the two file-name patterns are checked against each other.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from .base import Commit, Identifier, StrictModel, shape

TrainingArgType = Literal["string", "int", "float", "bool", "url_list", "options"]
OptionType = Literal["string", "int", "float", "bool"]
MediaKind = Literal["image", "video"]

PipPin = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+$",
        description="A pinned package, name==version.",
    ),
]


class _Value(StrictModel):
    """What arguments and option fields share: a description, a default, constraints."""

    description: str | None = None
    default: Any = Field(None, description="Value when the call omits it.")
    min: int | float | None = None
    max: int | float | None = None
    multiple_of: int | float | None = None
    choices: list[str | int | float] | None = Field(None, description="Allowed values.")
    pattern: str | None = Field(
        None, description="Regular expression a string must match in full (e.g. ids in paths)."
    )


class TrainingOption(_Value):
    """One field of an ``options`` argument (a mapping of trainer settings)."""

    type: OptionType


class TrainingArgument(_Value):
    """One argument of the generated function, in signature order."""

    type: TrainingArgType = Field(
        description="string, int, float, bool; url_list: http(s) URLs downloaded before the "
        "trainer starts; options: a mapping whose fields are declared in 'fields'."
    )
    required: bool = False
    min_items: int | None = Field(None, ge=0, description="url_list: fewest URLs.")
    max_items: int | None = Field(None, ge=1, description="url_list: most URLs.")
    media: MediaKind | None = Field(
        None, description="url_list: each download must be an image (or a video), by content."
    )
    max_bytes: int | None = Field(None, gt=0, description="url_list: size limit per download.")
    formats: list[str] | None = Field(
        None,
        description="url_list: the file types the trainer reads, by content (e.g. [mp4]); a "
        "download of another type fails the job before the trainer starts.",
    )
    caption: str | None = Field(
        None,
        description="url_list: Jinja template written next to each download as <name>.txt.",
    )
    fields: dict[Identifier, TrainingOption] | None = Field(
        None, description="options: the settings a call may override, with their defaults."
    )


class Trainer(StrictModel):
    """The training code, pinned: a git commit checked out at trainer_dir, or a package."""

    git: str | None = Field(None, description="Repository URL (https).")
    commit: Commit | None = Field(None, description="Pinned 40-hex commit.")
    install: bool = Field(True, description="git: pip install the checkout (with its deps).")
    package: PipPin | None = Field(None, description="A pinned package, e.g. name==1.2.3.")

    @model_validator(mode="after")
    def _pinned(self) -> Trainer:
        if self.git is not None:
            if self.package is not None:
                raise ValueError("give either 'git' + 'commit' or 'package', not both")
            if self.commit is None:
                raise ValueError("a git trainer must be pinned with 'commit' (40 hex digits)")
            if not self.git.startswith("https://"):
                raise ValueError("trainer git URL must start with https://")
        elif self.package is None:
            raise ValueError("give 'git' + 'commit' or 'package' (name==version)")
        return self


class TrainingImage(StrictModel):
    """The container the trainer runs in (Debian slim + these)."""

    python: str | None = Field(
        None, pattern=r"^3\.\d+$", description="Python version (default: ryla-gen's)."
    )
    apt: list[str] = Field(default_factory=list)
    pip: list[PipPin] = Field(default_factory=list, description="Pinned packages, installed first.")
    trainer: Trainer
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables.")


class TrainingOutput(StrictModel):
    """A file the trainer writes, stored in a volume under a name built from the arguments."""

    path: str = Field(
        description="Path in the volume with {argument} fields, e.g. "
        "'loras/flux-character-{character_id}.safetensors'; endpoints that load it declare "
        "the same pattern."
    )
    trainer_file: str = Field(
        description="The file the trainer writes, relative to {{ output_dir }}; a glob takes "
        "the last match in sorted order (e.g. the highest step)."
    )
    volume: str | None = Field(
        None, description="Mount path of the volume (default: the app's models_volume)."
    )
    description: str | None = None


class TrainingFunction(StrictModel):
    """A long-running GPU function of the app, started with .spawn()."""

    function: Identifier = Field(description="Modal function name (a Python identifier).")
    summary: str | None = None
    description: str | None = None
    gpu: str | None = Field(None, description="GPU (default: the app's).")
    timeout: int | None = Field(None, gt=0, description="Seconds (default: the app's).")
    volumes: dict[str, str] | None = Field(
        None, description="Mount path -> Modal Volume name (default: the app's)."
    )
    secrets: list[str] | None = Field(None, description="Modal Secrets (default: the app's).")
    image: TrainingImage
    arguments: dict[Identifier, TrainingArgument] = Field(
        default_factory=dict, description="The function's arguments, in signature order."
    )
    config_files: dict[str, str] = Field(
        default_factory=dict,
        description="File name -> Jinja template, written into {{ work_dir }} before the run.",
    )
    command: list[str] = Field(
        min_length=1,
        description="The trainer's argument list; each item a Jinja template (items that "
        "render empty are dropped). Variables: the arguments, inputs.<url_list argument> "
        "(its download folder), work_dir, output_dir, trainer_dir, python.",
    )
    outputs: dict[Identifier, TrainingOutput] = Field(
        min_length=1, description="Files stored after a successful run; result keys <name>_path."
    )
    result: dict[Identifier, str | int | float | bool] = Field(
        default_factory=dict, description="Constant fields of the result, e.g. model_type."
    )
    log_lines: int = Field(
        40, ge=1, le=1000, description="Trainer log lines returned when the training fails."
    )


class TrainingLinkSpec(StrictModel):
    """Which training output an endpoint parameter's file name refers to."""

    training: Identifier = Field(description="The training's function name.")
    output: Identifier | None = Field(None, description="Its output (default: its only one).")
    folder: str = Field(
        "loras",
        description="ComfyUI models folder the bound input reads, as a folder of the models "
        "volume.",
    )


TrainingLink = Annotated[
    Annotated[TrainingLinkSpec, Tag("mapping")] | Annotated[Identifier, Tag("scalar")],
    Discriminator(shape),
]
"""``from_training: train_flux_lora`` or
``from_training: {training: ..., output: ..., folder: ...}``."""
