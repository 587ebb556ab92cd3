"""The engine as the run path's ``process``: source frames in, float32 arrays out.

Every command-line host that pumps a video (:mod:`vs_superres.media.pump`) through an
:class:`~vs_superres.runtime.upscaler.Upscaler` does the same two translations, so they are
written here once.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np


def upscaled(engine: Any, inputs: Any, scene_starts: Any = None) -> Iterator[np.ndarray]:
    """``engine.stream`` over the pump's inputs (frames with ``.rgb``; ``inputs.total``, the
    container's frame count, which clip-level statistics such as UltraVSR's pick frames by), cut
    at ``scene_starts`` (as ``Upscaler.stream`` takes them)."""
    import torch

    for out in engine.stream((torch.from_numpy(frame.rgb) for frame in inputs), scene_starts=scene_starts, total=inputs.total):
        yield out.numpy()
