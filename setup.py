"""Ships the top-level templates/ inside the wheel, as the package ``generator.templates``.

Everything else is declared in pyproject.toml. The templates stay at the repository root (where
the project's layout keeps them); setuptools maps them into the package so that a plain
``pip install .`` (no checkout needed afterwards) can render: see render/files.templates_dir.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["generator*"]), "generator.templates"],
    package_dir={"generator.templates": "templates"},
    package_data={
        "generator": ["spec/*.json"],
        "generator.templates": ["*.j2", "clients/**/*"],
    },
    exclude_package_data={"generator.templates": ["clients/**/node_modules/**"]},
)
