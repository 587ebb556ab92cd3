"""ComfyUI loads this file when the repository is cloned into ComfyUI/custom_nodes/ (docs/comfyui.md)."""
import importlib.util as _util
import os as _os

_here = _os.path.dirname(_os.path.abspath(__file__))
_spec = _util.spec_from_file_location("vs_superres_checkout", _os.path.join(_here, "comfy_nodes", "checkout.py"))
_checkout = _util.module_from_spec(_spec)
_spec.loader.exec_module(_checkout)
NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _checkout.mount(_here)
