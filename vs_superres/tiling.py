"""Spatial tiling with overlap, feathered blending and out-of-memory fallback.

Tile origins are multiples of the model's ``alignment`` so that patch-based networks (DITN
works on 8x8 patches) see the same patch grid as on the whole image. Along each interior
tile edge the outer 3/8 of the overlap zone is discarded (weight 0) and the middle quarter is
a linear crossfade with the neighbour, so every output pixel is taken from tiles in which it
lies at least ``3*overlap/8`` input pixels from a cut edge, and the weights of neighbouring
tiles sum to one (no seam, no brightness change). Models declare the overlap they need in
their descriptor (DITN's receptive field is 57 input pixels).
"""

from __future__ import annotations

import logging
import math
from typing import Callable, TypeVar

import torch

from .errors import Cancelled, SuperResError

log = logging.getLogger("vs_superres")

T = TypeVar("T")

MIN_TILE = 32
#: Fraction of each overlap zone, at either end, that a tile gives no weight to: the pixels
#: nearest a cut see the least context. The middle quarter is a linear crossfade.
DISCARD = 3 / 8


def tile_starts(length: int, tile: int, overlap: int, alignment: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the tiles along one axis of ``length`` input pixels."""
    if tile >= length:
        return [(0, length)]
    step = max(alignment, (tile - overlap) // alignment * alignment)
    last = -(-(length - tile) // alignment) * alignment  # no tile exceeds `tile` pixels
    starts = list(range(0, last, step)) + [last]
    spans = [(s, min(s + tile, length)) for s in starts]
    spans[-1] = (last, length)
    return spans


def _axis_weights(spans: list[tuple[int, int]], scale: int) -> list[torch.Tensor]:
    """Per-tile 1-D blend weights in output pixels; they sum to one along the axis."""
    out = []
    for i, (s, e) in enumerate(spans):
        w = torch.ones((e - s) * scale, dtype=torch.float32)
        x = torch.arange((e - s) * scale, dtype=torch.float32) + 0.5
        if i > 0:  # zone shared with the previous tile: [s, prev_stop)
            zone = (spans[i - 1][1] - s) * scale
            if zone > 0:
                w = w * ((x - zone * DISCARD) / (zone * (1 - 2 * DISCARD))).clamp(0, 1)
        if i + 1 < len(spans):  # zone shared with the next tile: [next_start, e)
            nxt = spans[i + 1][0]
            zone = (e - nxt) * scale
            if zone > 0:
                xz = x - (nxt - s) * scale
                w = w * (1 - ((xz - zone * DISCARD) / (zone * (1 - 2 * DISCARD))).clamp(0, 1))
        out.append(w)
    return out


def apply_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    scale: int,
    tile: int,
    overlap: int,
    alignment: int = 1,
    on_tile: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run ``fn`` (``[T,C,h,w] -> [T,C,s*h,s*w]``) over tiles of ``x`` and blend.

    Every tile carries all T frames, so video models keep their temporal context.
    """
    T, C, H, W = x.shape
    if tile >= H and tile >= W:
        if on_tile:
            on_tile(0, 1)
        out = fn(x)
        if on_tile:
            on_tile(1, 1)
        return out
    ys = tile_starts(H, tile, overlap, alignment)
    xs = tile_starts(W, tile, overlap, alignment)
    wy, wx = _axis_weights(ys, scale), _axis_weights(xs, scale)
    out = None
    norm = torch.zeros(H * scale, W * scale, dtype=torch.float32)
    total, done = len(ys) * len(xs), 0
    for (y0, y1), wyi in zip(ys, wy):
        for (x0, x1), wxi in zip(xs, wx):
            if on_tile:
                on_tile(done, total)
            piece = fn(x[:, :, y0:y1, x0:x1]).float().cpu()
            if out is None:
                out = torch.zeros(T, piece.shape[1], H * scale, W * scale, dtype=torch.float32)
            w = wyi[:, None] * wxi[None, :]
            out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] += piece * w
            norm[y0 * scale:y1 * scale, x0 * scale:x1 * scale] += w
            done += 1
    if on_tile:
        on_tile(done, total)
    return out / norm.clamp_min(1e-12)


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    msg = str(err).lower()
    return isinstance(err, RuntimeError) and (
        "out of memory" in msg or "can't allocate memory" in msg or "not enough memory" in msg
    )


def auto_tile(height: int, width: int, frames: int, bytes_per_pixel: int, free_bytes: int, alignment: int, dtype_bytes: int = 4) -> int:
    """Largest aligned square tile whose working set fits half the free memory."""
    budget = free_bytes * 0.5
    per_pixel = max(1, bytes_per_pixel * frames * dtype_bytes // 4)
    max_pixels = budget / per_pixel
    if height * width <= max_pixels:
        return max(height, width)
    side = int(math.sqrt(max_pixels)) // alignment * alignment
    return max(side, align_up(MIN_TILE, alignment))


def align_up(n: int, a: int) -> int:
    return -(-n // a) * a


def retry_on_oom(
    attempt: Callable[[int], T],
    tile: int,
    *,
    floor: int,
    alignment: int = 1,
    what: str = "tiles",
    on_shrink: Callable[[int], None] | None = None,
) -> T:
    """Call ``attempt(tile)``; on out-of-memory halve the tile (aligned, not below ``floor``) and retry.

    Raises a :class:`SuperResError` naming the last tile size when even ``floor`` fails.
    Errors other than out-of-memory propagate unchanged.
    """
    floor = align_up(max(floor, alignment), alignment)
    while True:
        try:
            return attempt(tile)
        except Cancelled:
            raise
        except Exception as err:  # noqa: BLE001 - only out-of-memory is handled here
            if not is_out_of_memory(err):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if tile <= floor:
                raise SuperResError(
                    f"out of memory even with {tile}x{tile} {what} ({err.__class__.__name__}); "
                    "use a smaller window, fp16/bf16, free GPU memory, or device='cpu'"
                ) from None
            tile = max(floor, tile // 2 // alignment * alignment)
            if on_shrink:
                on_shrink(tile)


def run_with_oom_fallback(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    scale: int,
    tile: int,
    overlap: int,
    alignment: int,
    min_tile: int = MIN_TILE,
    on_tile: Callable[[int, int], None] | None = None,
    on_shrink: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """:func:`apply_tiled`, halving the tile on out-of-memory down to ``min_tile``."""
    H, W = x.shape[-2:]
    tile = min(tile, max(H, W))
    if overlap > tile // 2 and tile < max(H, W):
        log.warning(
            "tile %d is small for an overlap of %d: using %d; tiles of at least %d keep the "
            "model's full overlap", tile, overlap, tile // 2, 2 * overlap)

    def attempt(t: int) -> torch.Tensor:
        ov = min(overlap, t // 2)
        return apply_tiled(fn, x, scale=scale, tile=t, overlap=ov, alignment=alignment, on_tile=on_tile)

    return retry_on_oom(attempt, tile, floor=min_tile, alignment=alignment, on_shrink=on_shrink)
