"""ComfyUI custom nodes for vs-superres (imported as ``vs_superres.comfy_nodes``).

The nodes are a thin adapter over :mod:`vs_superres.engine`; they are not written yet (no
issue has asked for them so far). The package exists so that the installed layout is final.
"""

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
