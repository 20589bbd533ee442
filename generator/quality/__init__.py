"""``ryla-gen bench``: measure endpoints with their spec ``examples:`` and report on quality.

- :mod:`.targets` selects endpoints and forms their URLs (Modal's, or a ``--base-url``);
- :mod:`.measure` sends one request (streamed: time to first byte, total time, cost);
- :mod:`.checks` decodes outputs (image size, animation frames, MP4 duration and frames);
- :mod:`.runner` runs first/cold + warm requests with a concurrency limit;
- :mod:`.cold` stops a deployed app's containers for ``--cold``;
- :mod:`.results`, :mod:`.report`, :mod:`.charts` turn samples into figures, verdicts,
  ``reports/ENDPOINT-QUALITY.{md,json}`` and PNG charts;
- :mod:`.command` ties it together for the CLI.
"""

from .command import BenchArgs, BenchUsageError, run_command

__all__ = ["BenchArgs", "BenchUsageError", "run_command"]
