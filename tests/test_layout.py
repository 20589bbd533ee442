"""The package's layout rules (ARCHITECTURE.md): stages import only downwards, no circles.

Read from the source with ``ast``: every import counts, also one inside a function or under
``if TYPE_CHECKING:`` (a type-only import still ties the two modules' designs together).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "generator"

# What each part of the package may import from the rest of it (besides itself).
ALLOWED = {
    "diagnostics": set(),
    "shipped": set(),
    "spec": {"diagnostics"},
    "comfy": set(),
    "resolve": {"diagnostics", "spec", "comfy", "runtime", "shipped"},
    "render": {"resolve", "shipped"},
    "runtime": {"comfy"},
    "standin": set(),
    "quality": {"resolve"},
    "smoke": {"resolve", "runtime", "quality"},
    "api": {"resolve", "render", "runtime"},
    "dev": {"runtime"},
    "cli": {
        "diagnostics",
        "spec",
        "comfy",
        "resolve",
        "render",
        "runtime",
        "quality",
        "dev",
        "smoke",
        "api",
    },
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules of the package this file imports at run time (absolute names)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("generator"):
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("generator"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    found.discard(module)
    return {name for name in found if name in MODULES}


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {_module_name(p) for p in FILES}
GRAPH = {_module_name(p): _imports(p) for p in FILES}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_circles() -> None:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            walk(module, [module])
    assert cycles == [], "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _part(m)))
def test_stage_imports_only_what_it_may(module: str) -> None:
    part = _part(module)
    assert part in ALLOWED, f"{module}: new top-level part {part!r}; add it to ARCHITECTURE.md"
    bad = sorted(
        m for m in GRAPH[module] if _part(m) != part and _part(m) not in ALLOWED[part] | {""}
    )
    assert bad == [], f"{module} may not import {bad} (ARCHITECTURE.md, 'What may import what')"


def test_runtime_ships_without_build_time_dependencies() -> None:
    """The container imports generator.runtime only: no jinja2/yaml/click through it."""
    build_only = {"yaml", "click", "jsonschema"}
    for path in sorted((PACKAGE / "runtime").rglob("*.py")) + sorted(
        (PACKAGE / "comfy").rglob("*.py")
    ):
        tree = ast.parse(path.read_text())
        names = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and not node.level
        }
        assert not names & build_only, f"{path.name} imports {sorted(names & build_only)}"
