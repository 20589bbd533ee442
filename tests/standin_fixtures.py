"""Fixtures that start the ComfyUI stand-in (owned by the stand-in work)."""
