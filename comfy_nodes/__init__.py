"""ComfyUI custom nodes for vs-superres (imported as ``vs_superres.comfy_nodes``).

Both ComfyUI node APIs come from one definition of each node (:mod:`.nodes`, :mod:`.spec`):

- V1: :data:`NODE_CLASS_MAPPINGS` / :data:`NODE_DISPLAY_NAME_MAPPINGS` (plain classes, no
  ComfyUI import), loaded by every ComfyUI;
- V3: :func:`comfy_entrypoint` (``comfy_api.latest``), used by ComfyUI only for a module that
  exports no ``NODE_CLASS_MAPPINGS`` (V1 wins when a module has both). ``superres comfyui
  install --api v3`` writes such a module.

Importing this package imports neither ComfyUI nor torch. See docs/comfyui.md.
"""

from __future__ import annotations

from vs_superres.comfy_nodes.nodes import NODES
from vs_superres.comfy_nodes.v1 import v1_class

NODE_CLASS_MAPPINGS = {spec.node_id: v1_class(spec) for spec in NODES}
NODE_DISPLAY_NAME_MAPPINGS = {spec.node_id: spec.display_name for spec in NODES}


async def comfy_entrypoint():
    """ComfyUI's V3 entry point (imports ComfyUI's ``comfy_api`` on call)."""
    from vs_superres.comfy_nodes.v3 import comfy_entrypoint as entrypoint

    return await entrypoint()


__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "comfy_entrypoint"]
