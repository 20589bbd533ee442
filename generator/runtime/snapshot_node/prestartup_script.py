"""Runs before ComfyUI imports its model management: with ``RYLA_SNAPSHOT=1`` and no GPU yet
attached (the pre-snapshot phase), device selection falls back to the CPU instead of failing."""

import os

if os.environ.get("RYLA_SNAPSHOT") == "1":
    import torch

    _current_device = torch.cuda.current_device

    def _current_device_or_cpu():  # ComfyUI asks for the device while it imports
        return _current_device() if torch.cuda.is_available() else "cpu"

    torch.cuda.current_device = _current_device_or_cpu
