"""Run the nodes from a clone of the repository in ``ComfyUI/custom_nodes/`` (no pip install).

ComfyUI imports ``custom_nodes/<folder>/__init__.py``. The repository's root ``__init__.py``
(:data:`ROOT_INIT`) loads this file by path and calls :func:`mount`, which makes the clone's
folders importable under the names an installed package has (``vs_superres``,
``vs_superres.models`` from ``models/``, ``vs_superres.comfy_nodes`` from ``comfy_nodes/``, ...)
without putting the clone on ``sys.path`` (its ``models/`` must never shadow another pack's).
An installed ``vs_superres`` is used instead when there is one. This file imports only the
standard library: it runs before ``vs_superres`` exists.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

#: The repository root's ``__init__.py``: what ComfyUI runs for a clone in custom_nodes/.
ROOT_INIT = '''"""ComfyUI loads this file when the repository is cloned into ComfyUI/custom_nodes/ (docs/comfyui.md)."""
import importlib.util as _util
import os as _os

_here = _os.path.dirname(_os.path.abspath(__file__))
_spec = _util.spec_from_file_location("vs_superres_checkout", _os.path.join(_here, "comfy_nodes", "checkout.py"))
_checkout = _util.module_from_spec(_spec)
_spec.loader.exec_module(_checkout)
NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _checkout.mount(_here)
'''


def mount(root: str | Path) -> tuple[dict, dict]:
    """Import the nodes from the clone at ``root`` (or from an installed ``vs_superres``)."""
    root = Path(root).resolve()
    if "vs_superres" not in sys.modules and importlib.util.find_spec("vs_superres") is None:
        # The package's own folder first, then the root: vs_superres.models -> root/models etc.,
        # as setup.py maps them.
        spec = importlib.util.spec_from_file_location(
            "vs_superres", root / "vs_superres" / "__init__.py",
            submodule_search_locations=[str(root / "vs_superres"), str(root)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["vs_superres"] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules["vs_superres"]
            raise
    from vs_superres.comfy_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    return NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
