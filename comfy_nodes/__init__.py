"""ComfyUI custom nodes for vs-superres (imported as ``vs_superres.comfy_nodes``).

The nodes will be a thin adapter over :class:`vs_superres.Upscaler`, with their inputs derived
from the declared options (see "Adding a host" in ``docs/design.md``); they are not written yet
(issue 10). The package exists so that the installed layout is final.
"""

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
