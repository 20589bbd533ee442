"""Code that runs inside the generated Modal container next to ComfyUI."""
