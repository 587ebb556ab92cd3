"""VapourSynth host: the native ``core.superres`` plugin and its Python bridge.

Installing vs-superres into a Python that has the ``vapoursynth`` wheel compiles
``superres.c`` and places it in ``<site-packages>/vapoursynth/plugins/``, so scripts use it
without importing anything of ours::

    import vapoursynth as vs
    core = vs.core
    clip = core.resize.Bicubic(src, format=vs.RGBS, matrix_in_s="709")
    up = core.superres.DITN(clip)                  # or Upscale(clip, model=...)
    up = core.superres.UltraVSR(clip, base="sd-2.1-base/", checkpoint="UltraVSR.pkl", strength=0.3)
    up.set_output()

Each function has its own typed signature: ``DITN`` takes the image-model arguments (model,
device, dtype, tile, overlap, weights), ``UltraVSR`` the video ones (window, window_overlap)
and UltraVSR's options (checkpoint, base, strength, clip_iqa, prompt, color_fix, its tiling,
seed, and ``sample_latent``/``merge_lora`` as 0/1), ``Upscale`` all of them. Temporal models
request exactly the input frames of the windows an output frame needs, so output does not
depend on request order or seeking; scene cuts come from ``_SceneChangePrev/_SceneChangeNext``.

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
