"""Pictures as the report embeds them: encoded bytes and ``data:`` URIs.

Slider views are JPEG (quality 92, 4:4:4) scaled to a width a page shows whole; detail crops are
lossless PNG at full resolution, so what a crop shows is the pixels themselves.
"""

from __future__ import annotations

import base64
import dataclasses
import io

import numpy as np
from PIL import Image

JPEG_QUALITY = 92


@dataclasses.dataclass(frozen=True)
class Picture:
    """An encoded picture: ``data`` in ``mime`` format, ``width`` x ``height`` pixels."""

    data: bytes
    mime: str
    width: int
    height: int

    def uri(self) -> str:
        return f"data:{self.mime};base64," + base64.b64encode(self.data).decode("ascii")


def to_codes(rgb: np.ndarray) -> np.ndarray:
    """Float R'G'B' ``[H, W, 3]`` in [0, 1] -> uint8 codes (rounded)."""
    return np.clip(np.rint(np.asarray(rgb, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, kind: str) -> Picture:
    """``kind``: ``"jpeg"`` (views) or ``"png"`` (crops)."""
    image = Image.fromarray(to_codes(rgb))
    buffer = io.BytesIO()
    if kind == "jpeg":
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
        mime = "image/jpeg"
    else:
        image.save(buffer, format="PNG", optimize=False, compress_level=6)
        mime = "image/png"
    return Picture(buffer.getvalue(), mime, image.width, image.height)
