"""VapourSynth host: the native ``core.superres`` plugin and its Python bridge.

Installing vs-superres into a Python that has the ``vapoursynth`` wheel compiles
``superres.c`` and places it in ``<site-packages>/vapoursynth/plugins/``, so scripts use it
without importing anything of ours::

    import vapoursynth as vs
    core = vs.core
    clip = core.resize.Bicubic(src, format=vs.RGBS, matrix_in_s="709")
    up = core.superres.DITN(clip)                  # or UltraVSR(clip), Upscale(clip, model=...)
    up.set_output()

The plugin calls :mod:`vs_superres.vapoursynth.bridge`, which checks VapourSynth-specific
things and otherwise hands frames to :class:`vs_superres.engine.Upscaler`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PLUGIN_STEM = "vs_superres"


def plugin_path() -> Path | None:
    """Where the installed native plugin is, or None when it was not built."""
    spec = importlib.util.find_spec("vapoursynth")
    if spec is None:
        return None
    folders = [Path(p) / "plugins" for p in spec.submodule_search_locations or []]
    if spec.origin:
        folders.append(Path(spec.origin).parent / "plugins")
    suffix = {"win32": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")
    return next((f / (PLUGIN_STEM + suffix) for f in folders if (f / (PLUGIN_STEM + suffix)).is_file()), None)
