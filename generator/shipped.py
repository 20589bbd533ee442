"""Data folders of the checkout that ``build`` reads, found the same way in every install.

The repository keeps them at its root (``templates/``, ``catalog/``); ``setup.py`` maps each into
the wheel as a package (``generator/templates/``, ``generator/catalog/``). A source or editable
install reads the checkout's folder, a wheel its own copy.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SHIPPED = ("templates", "catalog")  # setup.py maps exactly these


def shipped_dir(name: str) -> Path:
    """The folder ``name`` (one of ``SHIPPED``): the wheel's copy, else the checkout's."""
    assert name in SHIPPED, name
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name
