"""Showing a smaller picture at a larger one's size, with a named classic resampler.

An input compared with outputs four times its size is shown upscaled so the two line up
pixel for pixel; the report names the resampler (Pillow's filters on float samples, no
rounding: ``lanczos`` is Lanczos-3, ``bicubic`` Keys' cubic with a = -0.5, ``bilinear``,
``nearest``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from vs_superres.contracts.errors import InvalidOption

RESAMPLERS = {
    "lanczos": (Image.Resampling.LANCZOS, "Lanczos-3"),
    "bicubic": (Image.Resampling.BICUBIC, "bicubic (a = -0.5)"),
    "bilinear": (Image.Resampling.BILINEAR, "bilinear"),
    "nearest": (Image.Resampling.NEAREST, "nearest neighbour"),
}


def check_resampler(name: str) -> str:
    if name not in RESAMPLERS:
        raise InvalidOption(f"resampler must be one of {', '.join(RESAMPLERS)}, got {name!r}", option="resampler")
    return name


def resampler_title(name: str) -> str:
    return RESAMPLERS[check_resampler(name)][1]


def resize(rgb: np.ndarray, width: int, height: int, resampler: str = "lanczos") -> np.ndarray:
    """``rgb`` float ``[H, W, 3]`` resized to ``[height, width, 3]`` float32, clipped to [0, 1]
    (Lanczos and bicubic overshoot at edges)."""
    if rgb.shape[:2] == (height, width):
        return np.asarray(rgb, dtype=np.float32)
    method = RESAMPLERS[check_resampler(resampler)][0]
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c], dtype=np.float32)).resize((width, height), method))
              for c in range(3)]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0)


def resample_title_or_none(name: str, scale: float) -> str | None:
    """How a clip shown ``scale`` times its size is labelled: ``"Lanczos-3 x4"``, or None at 1."""
    return None if abs(scale - 1.0) < 1e-9 else f"{resampler_title(name)} x{scale:.4g}"
