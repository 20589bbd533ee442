"""The container image every generated app starts from: one place for its pins."""

PYTHON_VERSION = "3.11"
COMFY_CLI = "comfy-cli==1.5.3"
# What generator.runtime needs inside the container (ComfyUI brings torch and the rest).
RUNTIME_PACKAGES = (
    "fastapi[standard]==0.115.4",
    "httpx==0.28.1",
    "websockets==15.0.1",
    "sniffio==1.3.1",  # httpcore re-tries a failing import of it on every request otherwise
    "huggingface_hub[hf_transfer]==0.34.4",
)
# What generator.runtime.training needs next to a trainer (which brings torch and the rest).
TRAINING_RUNTIME_PACKAGES = ("httpx==0.28.1", "jinja2==3.1.6", "hf_transfer==0.1.9")
HF_ENV = {"HF_HUB_ENABLE_HF_TRANSFER": "1", "HF_HUB_CACHE": "/cache"}
COMFY_DIR = "/root/comfy/ComfyUI"
REMOTE_WORKFLOWS = "/root/comfy_workflows"
