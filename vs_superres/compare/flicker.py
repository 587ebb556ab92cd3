"""Temporal instability (flicker) of a video, measured against the motion of the input.

We follow the warping error of Lai et al., "Learning Blind Video Temporal Consistency" (ECCV
2018), the E*warp the video-SR papers report (Upscale-A-Video, MGLD-VSR, STAR: ×10⁻³):

    E_warp(t) = Σ_p M_t(p) · |O_t(p) − W(O_{t−1})(p)|² / (3 · Σ_p M_t(p))

``O`` is the frame compared (R'G'B' in [0, 1]); ``W`` warps the previous frame onto the current
one with the backward optical flow ``F_{t→t−1}`` (bilinear); ``M_t`` keeps the pixels that are
visible in both frames: the flow leads inside the picture and passes the forward-backward
check of Ruder et al. (2016), ``|F_b + F_f(p + F_b)|² ≤ 0.01 (|F_b|² + |F_f(p + F_b)|²) + 0.5``.
Where we differ from Lai et al.: the squared error is averaged over the three channels (theirs
sums them: our values are a third of theirs), and the flow is OpenCV's DIS (preset medium) on
the luma of the *input* clip, not FlowNet2: every output is judged against the same motion,
the one the source really has, so an output that invents motion (flicker, boiling texture)
scores worse, and a faithful one scores near zero whatever the scene does. The flow is
computed once at the input's size and scaled (positions and vectors) to each compared size.

OpenCV is the optional extra ``compare``: ``pip install 'vs-superres[compare]'``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vs_superres.contracts.errors import SuperResError

#: the fix named whenever OpenCV is missing
EXTRA_HINT = "pip install 'vs-superres[compare]', or leave flicker out (--no-flicker; flicker=False in Python)"


def require_opencv() -> Any:
    """OpenCV's module, or a one-line error naming the extra that provides it."""
    try:
        import cv2
    except ImportError as exc:
        raise SuperResError("measuring flicker needs OpenCV's optical flow, which is not installed: " + EXTRA_HINT) from exc
    return cv2


@dataclasses.dataclass(frozen=True)
class Motion:
    """The motion between two consecutive input frames, at the input's size: ``backward``
    ``[H, W, 2]`` (pixel offsets from frame t to frame t−1) and ``visible`` ``[H, W]`` bool
    (the mask ``M_t``)."""

    backward: np.ndarray
    visible: np.ndarray


def _grey_codes(rgb: np.ndarray) -> np.ndarray:
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def _sample(field: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, cv2: Any) -> np.ndarray:
    return cv2.remap(field, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def estimate_motion(previous: np.ndarray, current: np.ndarray) -> Motion:
    """DIS flow both ways between two input frames (R'G'B' ``[H, W, 3]``) and the mask."""
    cv2 = require_opencv()
    prev_grey, cur_grey = _grey_codes(previous), _grey_codes(current)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    backward = dis.calc(cur_grey, prev_grey, None)  # cur(p) ~ prev(p + backward(p))
    forward = dis.calc(prev_grey, cur_grey, None)
    h, w = cur_grey.shape
    xs, ys = _grid(h, w)
    map_x, map_y = xs + backward[..., 0], ys + backward[..., 1]
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    forward_there = _sample(forward, map_x, map_y, cv2)
    loop = backward + forward_there
    bound = 0.01 * ((backward ** 2).sum(-1) + (forward_there ** 2).sum(-1)) + 0.5
    return Motion(backward, inside & ((loop ** 2).sum(-1) <= bound))


def warp_error(previous: np.ndarray, current: np.ndarray, motion: Motion) -> float:
    """E_warp between two consecutive frames of one compared clip (any size that is a scale
    of the input's; module docstring), R'G'B' in [0, 1] ``[H, W, 3]``."""
    cv2 = require_opencv()
    h, w = current.shape[:2]
    mh, mw = motion.visible.shape
    if (h, w) == (mh, mw):
        backward, visible = motion.backward, motion.visible
    else:
        backward = cv2.resize(motion.backward, (w, h), interpolation=cv2.INTER_LINEAR)
        backward = backward * np.array([w / mw, h / mh], dtype=np.float32)
        visible = cv2.resize(motion.visible.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    xs, ys = _grid(h, w)
    map_x, map_y = xs + backward[..., 0], ys + backward[..., 1]
    visible = visible & (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    count = int(visible.sum())
    if count == 0:
        return float("nan")  # nothing is visible in both frames: no measure, not a zero
    warped = cv2.remap(np.ascontiguousarray(previous, dtype=np.float32), map_x, map_y,
                       interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = np.asarray(current, dtype=np.float32) - warped
    squared = (diff * diff).sum(-1)
    return float(squared[visible].sum(dtype=np.float64) / (3 * count))
