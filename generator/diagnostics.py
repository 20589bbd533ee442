"""Errors are data: every problem found in specs or workflows, with its place in the source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, order=True)
class Location:
    """A place in a source file; line and column are 1-based (0 = unknown)."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col or 1}"
        return self.file


@dataclass(frozen=True, order=True)
class Diagnostic:
    location: Location
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message}"


@dataclass
class Diagnostics:
    """Collects diagnostics so a user sees every problem of a run at once."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, location: Location, message: str) -> None:
        self.items.append(Diagnostic(location, message, "error"))

    def warning(self, location: Location, message: str) -> None:
        self.items.append(Diagnostic(location, message, "warning"))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def sorted(self) -> list[Diagnostic]:
        return sorted(set(self.items))


class SpecError(Exception):
    """Raised when specs cannot be turned into a model; carries every diagnostic found."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


def display_path(path: Path, root: Path | None = None) -> str:
    """A path as the user should read it: relative to ``root`` (default: cwd) when inside it."""
    path = path.resolve()
    for base in (root, Path.cwd()):
        if base is None:
            continue
        try:
            return str(path.relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)
