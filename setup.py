"""Ships the top-level templates/ and catalog/ inside the wheel, as ``generator.templates`` and
``generator.catalog``.

Everything else is declared in pyproject.toml. The folders stay at the repository root (where
the project's layout keeps them); setuptools maps them into the package so that a plain
``pip install .`` (no checkout needed afterwards) renders and validates alike: see
generator/shipped.py.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["generator*"]), "generator.templates", "generator.catalog"],
    package_dir={"generator.templates": "templates", "generator.catalog": "catalog"},
    package_data={
        "generator": ["spec/*.json"],
        "generator.templates": ["*.j2", "clients/**/*"],
        "generator.catalog": ["*.json"],
    },
    exclude_package_data={"generator.templates": ["clients/**/node_modules/**"]},
)
