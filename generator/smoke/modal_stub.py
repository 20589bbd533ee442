"""A stand-in for the ``modal`` package, so a generated module imports where Modal is absent.

GPU machines used for ``ryla-gen smoke`` often lack ``modal``; the generated module only needs
its names at import time (image and app builders, decorators). Every attribute and call returns
the same permissive object, and a decorator call returns what it decorates.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any


class _Anything:
    def __getattr__(self, name: str) -> _Anything:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (
            len(args) == 1
            and not kwargs
            and callable(args[0])
            and not isinstance(args[0], _Anything)
        ):
            return args[0]  # used as a decorator
        return self


def install() -> None:
    """Make ``import modal`` succeed when the real package is not installed."""
    try:
        import modal  # noqa: F401
    except ImportError:
        stub = ModuleType("modal")
        anything = _Anything()
        stub.__getattr__ = lambda name: anything  # type: ignore[method-assign]
        sys.modules["modal"] = stub
