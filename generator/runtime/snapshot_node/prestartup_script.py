"""Runs before ComfyUI imports torch. With ``RYLA_SNAPSHOT=1`` and no GPU attached yet (the
pre-snapshot phase), ComfyUI's device selection must fall back to the CPU instead of failing.

Importing torch here would come before ComfyUI's own start-up settings ("torch already
imported"); instead a one-shot import hook patches ``torch.cuda.current_device`` at the moment
ComfyUI itself imports ``comfy.model_management`` (torch is loaded by then).
"""

import importlib
import os
import sys


class _CpuFallbackOnModelManagement:
    def find_spec(self, name, path=None, target=None):
        if name != "comfy.model_management":
            return None
        sys.meta_path.remove(self)
        torch = importlib.import_module("torch")
        current_device = torch.cuda.current_device

        def current_device_or_cpu():  # ComfyUI asks for the device while it imports
            return current_device() if torch.cuda.is_available() else "cpu"

        torch.cuda.current_device = current_device_or_cpu
        return None  # the usual finders load the module


if os.environ.get("RYLA_SNAPSHOT") == "1":
    sys.meta_path.insert(0, _CpuFallbackOnModelManagement())
