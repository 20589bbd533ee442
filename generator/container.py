"""The container image every generated app starts from: one place for its pins."""

PYTHON_VERSION = "3.11"
COMFY_CLI = "comfy-cli==1.5.3"
# What generator.runtime needs inside the container (ComfyUI brings torch and the rest).
RUNTIME_PACKAGES = (
    "fastapi[standard]==0.115.4",
    "httpx==0.28.1",
    "websockets==15.0.1",
    "huggingface_hub[hf_transfer]==0.34.4",
)
COMFY_DIR = "/root/comfy/ComfyUI"
REMOTE_WORKFLOWS = "/root/comfy_workflows"
