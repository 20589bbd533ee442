"""Stage 3: the resolved model -> files (Modal modules in ``generated/``, ``docs/``), formatted,
compared with what is on disk (``build --check``) and written."""
