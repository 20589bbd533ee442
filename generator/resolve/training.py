"""Resolving training functions: spec ``training:`` -> :class:`TrainingModel`, and the checks
that tie them to the endpoints that load their outputs.

The runtime's own types (:mod:`generator.runtime.training`) are built here and checked with the
runtime's rules, so a default that a call could not pass is a spec error, and the generated
module declares exactly what was checked.
"""

from __future__ import annotations

import dataclasses
import keyword
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

import jinja2
from jinja2 import meta

from ..diagnostics import Diagnostics, Location
from ..runtime.media import media_formats
from ..runtime.training import (
    CONTEXT_NAMES,
    LOG_FILE,
    OUTPUT_DIR,
    RESERVED_RESULT_KEYS,
    Arg,
    Output,
    TrainingError,
    TrainingFunction,
    template_environment,
)
from ..spec.format import App, Parameter
from ..spec.load import LoadedSpec
from ..spec.training import TrainingArgument, TrainingLinkSpec, TrainingOption, TrainingOutput
from ..spec.training import TrainingFunction as TrainingSpec
from . import container
from .fields import limits, table_text
from .gpus import parse_gpu
from .model import (
    NamedSet,
    ParamDoc,
    TrainingImageModel,
    TrainingModel,
    TrainingOutputModel,
    TrainingParamModel,
)
from .pyliteral import py_literal
from .trainer_args import load_rules, located_problems, sample_context, script_arguments

MAX_TIMEOUT = 24 * 3600  # Modal's longest function timeout
TRAINER_DIR = "/root/trainer"
_ANNOTATIONS = {
    "string": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "url_list": "list[str]",
    "options": "dict",
}
_JINJA_GLOBALS = frozenset(template_environment().globals)
_URL_ONLY = ("min_items", "max_items", "media", "max_bytes", "caption", "formats")
_NUMERIC_ONLY = ("min", "max", "multiple_of")
_MODULE_NAMES = ("arguments", "run_training", "modal", "app", "volumes", "secrets")
"""Names a generated training function reads: an argument of that name would hide them."""


@dataclass(frozen=True)
class TrainingEntry:
    """A training as declared: its spec file and position, and the app it belongs to."""

    spec: LoadedSpec
    index: int
    training: TrainingSpec
    app: App

    def loc(self, *path: str | int, key: bool = False) -> Location:
        return self.spec.loc("training", self.index, *path, key=key)

    @property
    def volumes(self) -> dict[str, str]:
        return dict(
            self.training.volumes if self.training.volumes is not None else self.app.volumes
        )

    def output_mount(self, output: TrainingOutput) -> str:
        return output.volume or self.app.models_volume

    def volume_name(self, output: TrainingOutput) -> str:
        return self.volumes.get(self.output_mount(output), "")


def normalize_pattern(pattern: str) -> str:
    """A file-name pattern with its field names dropped: ``loras/x-{id}.st`` -> ``loras/x-{}.st``.

    Two patterns name the same files when their normalized forms are equal, whatever each side
    calls the id.
    """
    out = []
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError:
        return pattern  # malformed: reported where the pattern is declared
    for literal, name, _, _ in parsed:
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is not None:
            out.append("{}")
    return re.sub(r"/+", "/", "".join(out)).removeprefix("./").lstrip("/")


def pattern_fields(pattern: str) -> list[str]:
    """Field names of a format pattern; raises ValueError when it is malformed."""
    return [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]


# --- one training ---------------------------------------------------------------------------------


class _TrainingResolver:
    def __init__(self, entry: TrainingEntry, diags: Diagnostics):
        self.entry, self.training, self.diags = entry, entry.training, diags
        self.before = len(diags.errors)

    def error(self, message: str, *path: str | int, key: bool = False) -> None:
        self.diags.error(
            self.entry.loc(*path, key=key), f"training function {self.training.function}: {message}"
        )

    def resolve(self) -> TrainingModel | None:
        training, app = self.training, self.entry.app
        if keyword.iskeyword(training.function):
            self.error("the function name is a Python keyword", "function")
        gpu = self._gpu()
        timeout = training.timeout or app.timeout
        if timeout > MAX_TIMEOUT:
            self.error(f"timeout {timeout} s is over Modal's limit of {MAX_TIMEOUT} s", "timeout")
        volumes = self.entry.volumes
        for mount in volumes:
            if not mount.startswith("/"):
                self.error(f"volume mount path '{mount}' must be absolute", "volumes", mount)
        args = self._arguments()
        names = {a.name for a in args}
        url_lists = {a.name for a in args if a.type == "url_list"}
        self._templates(names)
        self._config_files(url_lists)
        self._outputs(args, volumes)
        self._result(names)
        if len(self.diags.errors) > self.before or gpu is None:
            return None
        trainer = training.image.trainer
        runtime = TrainingFunction(
            name=training.function,
            timeout=timeout,
            arguments=tuple(args),
            command=tuple(training.command),
            outputs=tuple(
                Output(name, self.entry.output_mount(o), o.path, o.trainer_file)
                for name, o in training.outputs.items()
            ),
            config_files=dict(training.config_files),
            result=dict(training.result),
            trainer_dir=TRAINER_DIR if trainer.git else None,
            log_lines=training.log_lines,
        )
        if trainer.git and trainer.commit:
            self._trainer_argv(runtime, trainer.git, trainer.commit)
        if len(self.diags.errors) > self.before:
            return None
        return TrainingModel(
            function=training.function,
            summary=training.summary or f"TrainingFunction {training.function}.",
            description=training.description,
            gpu=gpu,
            timeout=timeout,
            volumes_name="volumes",  # set by the app
            secrets_name="secrets",
            image=_image(training),
            params=tuple(_param(name, arg) for name, arg in training.arguments.items()),
            runtime=runtime,
            outputs=tuple(
                TrainingOutputModel(
                    name, self.entry.volume_name(o), self.entry.output_mount(o), o.path
                )
                for name, o in training.outputs.items()
            ),
            source=self.entry.spec.display,
            docs=tuple(d for name, arg in training.arguments.items() for d in _docs(name, arg)),
            trainer=f"{trainer.git}@{trainer.commit}" if trainer.git else str(trainer.package),
        )

    def _trainer_argv(self, runtime: TrainingFunction, git: str, commit: str) -> None:
        """The command, rendered for a call with default settings, against the argument rules
        of the pinned script (catalog/trainer-args.json); each problem at its command item."""
        context = sample_context(runtime)
        argv: list[str] = []
        origin: list[int] = []  # command item of each argv item
        env = template_environment()
        for index, item in enumerate(runtime.command):
            try:
                rendered = env.from_string(item).render(context)
            except jinja2.TemplateError:
                return  # reported by the template checks, or needs a real call's values
            if rendered != "":
                argv.append(rendered)
                origin.append(index)
        found = script_arguments(argv, TRAINER_DIR, load_rules(), git, commit)
        if found is None:
            return
        rules, arguments = found
        offset = len(argv) - len(arguments)
        for at, message in located_problems(arguments, rules):
            where = ("command", origin[offset + at]) if at is not None else ("command",)
            self.error(f"{rules.label}: {message}", *where)

    def _gpu(self) -> str | None:
        value = self.training.gpu or self.entry.app.gpu
        try:
            return parse_gpu(value).spec
        except ValueError as exc:
            where = ("gpu",) if self.training.gpu else ()
            self.error(str(exc), *where)
            return None

    # --- arguments

    def _arguments(self) -> list[Arg]:
        args = []
        optional_seen: str | None = None
        for name, spec in self.training.arguments.items():
            where = ("arguments", name)
            if name in CONTEXT_NAMES or name in _MODULE_NAMES or keyword.iskeyword(name):
                self.error(
                    f"argument name '{name}' is taken (template variables: "
                    f"{', '.join(CONTEXT_NAMES)}; names the generated function uses: "
                    f"{', '.join(_MODULE_NAMES)}; Python keywords)",
                    *where,
                    key=True,
                )
            if spec.required and optional_seen:
                self.error(
                    f"required argument '{name}' follows optional '{optional_seen}'; a Python "
                    "signature lists required arguments first",
                    *where,
                    key=True,
                )
            if not spec.required:
                optional_seen = optional_seen or name
            if spec.required and spec.default is not None:
                self.error(f"argument '{name}': a required argument cannot have a default", *where)
            args.append(self._arg(name, spec, where))
        return args

    def _arg(self, name: str, spec: TrainingArgument, where: tuple[str | int, ...]) -> Arg:
        kind = spec.type
        for key in _URL_ONLY:
            if getattr(spec, key) is not None and kind != "url_list":
                self.error(
                    f"argument '{name}': '{key}' is only for type url_list", *where, key, key=True
                )
        if spec.fields is not None and kind != "options":
            self.error(
                f"argument '{name}': 'fields' is only for type options", *where, "fields", key=True
            )
        if kind == "options" and not spec.fields:
            self.error(f"argument '{name}': type options needs 'fields'", *where, "type")
        if kind in ("url_list", "options"):
            for key in (*_NUMERIC_ONLY, "choices", "pattern"):
                if getattr(spec, key) is not None:
                    self.error(
                        f"argument '{name}': '{key}' does not apply to {kind}",
                        *where,
                        key,
                        key=True,
                    )
            if spec.default is not None:
                self.error(
                    f"argument '{name}': {kind} arguments take no default "
                    + ("(their fields have defaults)" if kind == "options" else ""),
                    *where,
                    "default",
                )
        if (
            spec.min_items is not None
            and spec.max_items is not None
            and spec.min_items > spec.max_items
        ):
            self.error(f"argument '{name}': min_items is above max_items", *where, "min_items")
        if spec.caption is not None:
            self._template(spec.caption, self._names(), (*where, "caption"), with_context=False)
        self._formats(name, spec, where)
        fields = tuple(
            self._option(name, field_name, option, (*where, "fields", field_name))
            for field_name, option in (spec.fields or {}).items()
        )
        arg = Arg(
            name,
            kind,
            required=spec.required,
            min=spec.min,
            max=spec.max,
            multiple_of=spec.multiple_of,
            choices=tuple(spec.choices) if spec.choices is not None else None,
            pattern=self._pattern(name, spec.pattern, where),
            min_items=spec.min_items,
            max_items=spec.max_items,
            media=spec.media,
            max_bytes=spec.max_bytes,
            caption=spec.caption,
            formats=tuple(spec.formats) if spec.formats is not None else None,
            fields=fields,
        )
        return self._with_default(arg, spec.default, where)

    def _formats(self, name: str, spec: TrainingArgument, where: tuple[str | int, ...]) -> None:
        if spec.formats is None:
            return
        known = media_formats(spec.media)
        for i, fmt in enumerate(spec.formats):
            if fmt not in known:
                self.error(
                    f"argument '{name}': format '{fmt}' is not one ryla-gen recognises"
                    f"{' for ' + spec.media if spec.media else ''} (known: {', '.join(known)})",
                    *where,
                    "formats",
                    i,
                )

    def _option(
        self, arg_name: str, name: str, spec: TrainingOption, where: tuple[str | int, ...]
    ) -> Arg:
        label = f"{arg_name}.{name}"
        option = Arg(
            name,
            spec.type,
            min=spec.min,
            max=spec.max,
            multiple_of=spec.multiple_of,
            choices=tuple(spec.choices) if spec.choices is not None else None,
            pattern=self._pattern(label, spec.pattern, where),
        )
        return self._with_default(option, spec.default, where)

    def _pattern(self, label: str, pattern: str | None, where: tuple[str | int, ...]) -> str | None:
        if pattern is None:
            return None
        try:
            re.compile(pattern)
        except re.error as exc:
            self.error(f"argument '{label}': pattern is not a regular expression: {exc}", *where)
            return None
        return pattern

    def _with_default(self, arg: Arg, default: object, where: tuple[str | int, ...]) -> Arg:
        """Constraints that fit the type, then the default checked by the runtime's rules."""
        kind, name = arg.type, arg.name
        if kind in ("url_list", "options"):
            return arg  # their keys are checked in _arg
        if kind not in ("int", "float") and any(getattr(arg, k) is not None for k in _NUMERIC_ONLY):
            self.error(f"argument '{name}': min/max/multiple_of need int or float", *where)
        if arg.pattern is not None and kind != "string":
            self.error(f"argument '{name}': 'pattern' is only for strings", *where, "pattern")
        if arg.min is not None and arg.max is not None and arg.min > arg.max:
            self.error(f"argument '{name}': min {arg.min} is above max {arg.max}", *where, "min")
        for choice in arg.choices or ():
            try:
                Arg(name, kind).check(choice)
            except TrainingError:
                self.error(f"argument '{name}': choice {choice!r} is not a {kind}", *where)
        if default is None:
            return arg
        try:
            checked = arg.check(default)
        except TrainingError as exc:
            self.error(f"default: {exc}", *where, "default")
            return arg
        return dataclasses.replace(arg, default=checked)

    # --- templates

    def _names(self) -> set[str]:
        return set(self.training.arguments)

    def _templates(self, names: set[str]) -> None:
        allowed = names | set(CONTEXT_NAMES)
        for i, item in enumerate(self.training.command):
            self._template(item, allowed, ("command", i))
        for name, template in self.training.config_files.items():
            self._template(template, allowed, ("config_files", name))

    def _template(
        self,
        text: str,
        allowed: set[str],
        where: tuple[str | int, ...],
        *,
        with_context: bool = True,
    ) -> None:
        label = ".".join(str(p) for p in where)
        try:
            ast = template_environment().parse(text)
        except jinja2.TemplateSyntaxError as exc:
            self.error(f"{label}: template line {exc.lineno}: {exc.message}", *where)
            return
        used = meta.find_undeclared_variables(ast) - _JINJA_GLOBALS
        unknown = sorted(used - allowed)
        if unknown:
            known = sorted(allowed)
            self.error(
                f"{label}: unknown template variable(s) {', '.join(unknown)}; "
                f"known: {', '.join(known)}",
                *where,
            )
        if with_context and "trainer_dir" in used and not self.training.image.trainer.git:
            self.error(
                f"{label}: trainer_dir is only set for a git trainer (image.trainer.git)", *where
            )

    def _config_files(self, url_lists: set[str]) -> None:
        taken = {OUTPUT_DIR, LOG_FILE} | url_lists
        for name in self.training.config_files:
            where = ("config_files", name)
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
                self.error(f"config file name '{name}' must be a plain file name", *where, key=True)
            elif name in taken:
                self.error(
                    f"config file name '{name}' is taken by the work folder's "
                    f"{'log' if name == LOG_FILE else 'folder ' + repr(name)}",
                    *where,
                    key=True,
                )

    # --- outputs and result

    def _outputs(self, args: list[Arg], volumes: Mapping[str, str]) -> None:
        by_name = {a.name: a for a in args}
        seen: dict[str, str] = {}
        for name, output in self.training.outputs.items():
            where = ("outputs", name)
            self._output_path(output.path, by_name, (*where, "path"))
            if _escapes(output.trainer_file):
                self.error(
                    f"output '{name}': trainer_file must stay inside the output folder",
                    *where,
                    "trainer_file",
                )
            mount = self.entry.output_mount(output)
            if mount not in volumes:
                self.error(
                    f"output '{name}': volume '{mount}' is not among the training's volumes "
                    f"({', '.join(volumes) or 'none'})",
                    *where,
                    *(("volume",) if output.volume else ()),
                )
            key = f"{mount}:{normalize_pattern(output.path)}"
            if key in seen:
                self.error(
                    f"output '{name}' writes the same files as output '{seen[key]}'",
                    *where,
                    "path",
                )
            seen[key] = name

    def _output_path(self, path: str, args: Mapping[str, Arg], where: tuple[str, ...]) -> None:
        try:
            fields = pattern_fields(path)
        except ValueError as exc:
            self.error(f"output path '{path}' is malformed: {exc}", *where)
            return
        if _escapes(path) or not path.strip("/"):
            self.error(f"output path '{path}' must be relative and stay inside the volume", *where)
        for field_name in fields:
            arg = args.get(field_name)
            if arg is None:
                self.error(f"output path uses '{{{field_name}}}', which is no argument", *where)
            elif arg.type == "int" or (arg.type == "string" and arg.pattern and arg.required):
                continue
            else:
                self.error(
                    f"output path uses '{{{field_name}}}': only required string arguments with "
                    "a 'pattern' (so no '/' or '..' reaches the file name) or ints may name "
                    "files",
                    *where,
                )

    def _result(self, names: set[str]) -> None:
        produced = {f"{o}_{s}" for o in self.training.outputs for s in ("path", "filename")}
        for key in self.training.result:
            if key in RESERVED_RESULT_KEYS or key in names or key in produced:
                self.error(
                    f"result key '{key}' is already set by the run (status, arguments, "
                    "outputs' _path/_filename)",
                    "result",
                    key,
                    key=True,
                )
        for key in produced & names:
            self.error(f"argument '{key}' clashes with an output's result key", "arguments", key)


def _escapes(path: str) -> bool:
    return path.startswith("/") or ".." in re.split(r"[/\\]", path)


def _image(training: TrainingSpec) -> TrainingImageModel:
    image, trainer = training.image, training.image.trainer
    if trainer.git:
        commands: tuple[str, ...] = (
            f"git clone --filter=blob:none {trainer.git} {TRAINER_DIR}",
            f"git -C {TRAINER_DIR} checkout --quiet {trainer.commit}",
        )
        if trainer.install:
            commands += (f"pip install {TRAINER_DIR}",)
        packages = tuple(image.pip)
    else:
        commands = ()
        packages = (*image.pip, str(trainer.package))
    apt = tuple(dict.fromkeys((*(("git",) if trainer.git else ()), *image.apt)))
    return TrainingImageModel(
        constant="",  # named by the app (training with equal images share one)
        python_version=image.python or container.PYTHON_VERSION,
        apt=apt,
        pip=(*packages, *container.TRAINING_RUNTIME_PACKAGES),
        commands=commands,
        env={**container.HF_ENV, **image.env},
    )


def _param(name: str, arg: TrainingArgument) -> TrainingParamModel:
    annotation = _ANNOTATIONS[arg.type]
    if arg.required:
        return TrainingParamModel(name, annotation, None)
    if arg.default is None:
        return TrainingParamModel(name, f"{annotation} | None", "None")
    return TrainingParamModel(name, annotation, py_literal(arg.default))


def _docs(name: str, arg: TrainingArgument) -> list[ParamDoc]:
    """The argument's row in docs/ENDPOINTS.md; an options argument adds a row per field."""
    kind = arg.type + (f" ({arg.media})" if arg.media else "")
    if arg.required:
        default = "required"
    elif arg.type == "options":
        default = "per field"
    else:
        default = _shown(arg.default)
    rows = [ParamDoc(name, kind, default, _constraints(arg), table_text(arg.description))]
    for field_name, option in (arg.fields or {}).items():
        rows.append(
            ParamDoc(
                f"{name}.{field_name}",
                option.type,
                _shown(option.default),
                _constraints(option),
                table_text(option.description),
            )
        )
    return rows


def _shown(value: object) -> str:
    return "—" if value is None else repr(value) if isinstance(value, str) else str(value)


def _constraints(arg: TrainingArgument | TrainingOption) -> str:
    constraints = limits(arg.min, arg.max, arg.multiple_of, None)
    if isinstance(arg, TrainingArgument) and (
        arg.min_items is not None or arg.max_items is not None
    ):
        low = "" if arg.min_items is None else arg.min_items
        high = "" if arg.max_items is None else arg.max_items
        constraints.append(f"{low}–{high} URLs")
    constraints += limits(None, None, None, arg.choices)
    if arg.pattern:
        constraints.append(f"`{arg.pattern}`".replace("|", "\\|"))
    return "; ".join(constraints)


# --- an app's training ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AppTraining:
    training: tuple[TrainingModel, ...] = ()
    images: tuple[TrainingImageModel, ...] = ()
    volume_sets: tuple[NamedSet, ...] = ()
    secret_sets: tuple[NamedSet, ...] = ()


def resolve_app_training(entries: list[TrainingEntry], app: App, diags: Diagnostics) -> AppTraining:
    """The app's training with shared images, volume and secret sets named for the module."""
    resolved = [(e, m) for e in entries if (m := _TrainingResolver(e, diags).resolve()) is not None]
    if len(resolved) != len(entries):
        return AppTraining()
    images: dict[tuple, tuple[TrainingImageModel, str]] = {}
    volume_sets: dict[tuple[tuple[str, str], ...], str] = {
        tuple(sorted(app.volumes.items())): "volumes"
    }
    secret_sets: dict[tuple[str, ...], str] = {tuple(app.secrets): "secrets"}
    training = []
    for entry, model in resolved:
        _, image = images.setdefault(model.image.key, (model.image, f"{model.function}_image"))
        volumes = volume_sets.setdefault(
            tuple(sorted(entry.volumes.items())), f"{model.function}_volumes"
        )
        secrets = tuple(
            entry.training.secrets if entry.training.secrets is not None else app.secrets
        )
        secret_name = secret_sets.setdefault(secrets, f"{model.function}_secrets")
        training.append(
            dataclasses.replace(
                model,
                image=_named(model.image, image),
                volumes_name=volumes,
                secrets_name=secret_name,
            )
        )
    return AppTraining(
        training=tuple(training),
        images=tuple(_named(image, name) for image, name in images.values()),
        volume_sets=tuple(NamedSet(n, volumes=dict(v)) for v, n in volume_sets.items()),
        secret_sets=tuple(NamedSet(n, secrets=s) for s, n in secret_sets.items()),
    )


def _named(image: TrainingImageModel, name: str) -> TrainingImageModel:
    return dataclasses.replace(image, constant=name)


# --- across the project: unique names, distinct outputs, endpoint links ----------------------


def check_project_training(
    entries: list[TrainingEntry],
    apps: Mapping[str, App],
    loaded: list[LoadedSpec],
    diags: Diagnostics,
) -> None:
    by_name: dict[str, TrainingEntry] = {}
    for entry in entries:
        name = entry.training.function
        if name in by_name:
            first = by_name[name]
            diags.error(
                entry.loc("function"),
                f"training function {name} is already defined at {first.loc('function')}; "
                "endpoints link to training functions by name, so names are unique across specs",
            )
            continue
        by_name[name] = entry
    _check_distinct_outputs(list(by_name.values()), diags)
    for spec in loaded:
        for i, endpoint in enumerate(spec.spec.endpoints):
            for name, param in endpoint.parameters.items():
                if param.from_training is None:
                    continue
                app = spec.spec.app
                app_def = app if isinstance(app, App) else apps.get(app)
                if app_def is None:
                    continue  # reported as an undefined app
                where = ("endpoints", i, "parameters", name)
                _check_link(spec, where, endpoint.path, name, param, app_def, by_name, diags)


def _check_distinct_outputs(entries: list[TrainingEntry], diags: Diagnostics) -> None:
    """Two training writing one pattern in one volume would overwrite each other's files."""
    seen: dict[tuple[str, str], tuple[TrainingEntry, str]] = {}
    for entry in entries:
        for name, output in entry.training.outputs.items():
            key = (entry.volume_name(output), normalize_pattern(output.path))
            if key not in seen:
                seen[key] = (entry, name)
                continue
            first, first_output = seen[key]
            diags.error(
                entry.loc("outputs", name, "path"),
                f"training function {entry.training.function}: output '{name}' writes "
                f"{output.path} into volume '{key[0]}', the same files as training function "
                f"{first.training.function} "
                f"({first.loc('outputs', first_output, 'path')}); give one of them another name",
            )


def _check_link(
    spec: LoadedSpec,
    where: tuple[str | int, ...],
    path: str,
    name: str,
    param: Parameter,
    app: App,
    training: Mapping[str, TrainingEntry],
    diags: Diagnostics,
) -> None:
    link = param.from_training
    if isinstance(link, TrainingLinkSpec):
        function_name, output_name, folder = link.training, link.output, link.folder
    else:
        function_name, output_name, folder = link, None, "loras"

    def error(message: str, *sub: str) -> None:
        diags.error(spec.loc(*where, *sub), f"{path}: parameter '{name}': {message}")

    entry = training.get(function_name)
    if entry is None:
        error(
            f"from_training: no training function named '{function_name}'; "
            f"training functions: {', '.join(training) or 'none'}",
            "from_training",
        )
        return
    outputs = entry.training.outputs
    if output_name is None and len(outputs) != 1:
        error(
            f"training function {function_name} has outputs {', '.join(outputs)}; name one "
            "(from_training: {training: ..., output: ...})",
            "from_training",
        )
        return
    output_name = output_name or next(iter(outputs))
    output = outputs.get(output_name)
    if output is None:
        error(f"training function {function_name} has no output '{output_name}'", "from_training")
        return
    if param.format is None:
        error("from_training needs 'format': the file name this parameter loads", "from_training")
        return
    loads = f"{folder.strip('/')}/{param.format}"
    endpoint_volume = app.volumes.get(app.models_volume, "")
    training_volume = entry.volume_name(output)
    agree = normalize_pattern(loads) == normalize_pattern(output.path)
    if not agree or endpoint_volume != training_volume:
        written = entry.loc("outputs", output_name, "path")
        error(
            f"loads {loads} from volume '{endpoint_volume}', but training function "
            f"{function_name} writes {output.path} into volume '{training_volume}' ({written}); "
            "the endpoint and the training function must name the file alike",
            "format",
        )
