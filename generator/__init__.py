"""ryla-gen: YAML specs + ComfyUI workflows -> Modal GPU endpoints.

Kept empty on purpose: ``generator.runtime`` is shipped into containers and must not pull in
the build-time dependencies (jinja2, yaml, click) through this package's import.
"""
