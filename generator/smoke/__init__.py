"""``ryla-gen smoke``: every endpoint executed on a real ComfyUI with synthetic weights.

``synth.py`` (run in ComfyUI's Python) builds random-weight files of the real architectures;
``targets.py`` decides which files an app needs and which endpoints can run; ``run.py`` serves
the generated app around ComfyUI and measures; ``checks.py`` checks outputs; ``store.py`` keeps
results by endpoint and commit (resumable); ``report.py`` prints them.
"""
