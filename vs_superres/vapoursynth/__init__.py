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

There is one function per model family, named by the family (``DITN``, ``UltraVSR``), plus
``Upscale``, which takes any model. Each has its own typed signature, derived from the option
declarations (the engine's, :mod:`vs_superres.runtime.engine_options`, that apply to the
family's models, and the family's own ``OptionSet``; ``Upscale`` takes all of them) by
:mod:`vs_superres.vapoursynth.signatures`; VapourSynth has no booleans, so boolean options are
0/1 ints. ``inspect.signature(core.superres.UltraVSR)`` (or its ``.signature``) lists a
function's arguments (``help()`` on a VapourSynth function only describes VapourSynth's
``Function`` class), and ``help(Upscaler)`` (``from vs_superres import Upscaler``) or
``superres upscale --help`` what each option means and accepts.
Temporal models request exactly the input frames of the windows an output frame needs, so
output does not depend on request order or seeking; scene cuts come from
``_SceneChangePrev/_SceneChangeNext``.

The plugin calls :mod:`vs_superres.vapoursynth.bridge`, which checks VapourSynth-specific
things and otherwise hands frames to :class:`vs_superres.runtime.upscaler.Upscaler`.
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
