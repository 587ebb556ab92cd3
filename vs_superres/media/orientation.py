"""EXIF orientation (tag 0x0112) applied to a decoded ``[H, W, ...]`` array.

The eight values mean what Pillow's ``ImageOps.exif_transpose`` does with them, so a picture
looks the same here as in a viewer. The result is a view (no copy); the caller's conversion
to float makes it contiguous.
"""

from __future__ import annotations

import numpy as np


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` as displayed: flipped and/or rotated by EXIF ``orientation`` (1..8)."""
    if orientation == 2:  # mirrored horizontally
        return pixels[:, ::-1]
    if orientation == 3:  # rotated 180 degrees
        return pixels[::-1, ::-1]
    if orientation == 4:  # mirrored vertically
        return pixels[::-1]
    if orientation == 5:  # mirrored along the main diagonal
        return pixels.swapaxes(0, 1)
    if orientation == 6:  # stored rotated 90 degrees anticlockwise: turn it clockwise
        return pixels[::-1].swapaxes(0, 1)
    if orientation == 7:  # mirrored along the anti-diagonal
        return pixels[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:  # stored rotated 90 degrees clockwise: turn it anticlockwise
        return pixels[:, ::-1].swapaxes(0, 1)
    return pixels
