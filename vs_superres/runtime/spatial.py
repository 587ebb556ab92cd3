"""Spatial tiling policy: which tile fits the memory, and halving it when memory runs out."""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch

from vs_superres.contracts.progress import ProgressFn
from vs_superres.numerics.oom import align_up, retry_on_oom
from vs_superres.numerics.tiling import FEATHERED, Grid, blend_tiles, tile_starts

log = logging.getLogger("vs_superres")

MIN_TILE = 32


def auto_tile(height: int, width: int, frames: int, bytes_per_pixel: int, free_bytes: int, alignment: int, dtype_bytes: int = 4) -> int:
    """Largest aligned square tile whose working set fits half the free memory."""
    budget = free_bytes * 0.5
    per_pixel = max(1, bytes_per_pixel * frames * dtype_bytes // 4)
    max_pixels = budget / per_pixel
    if height * width <= max_pixels:
        return max(height, width)
    side = int(math.sqrt(max_pixels)) // alignment * alignment
    return max(side, align_up(MIN_TILE, alignment))


def run_with_oom_fallback(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    scale: int,
    tile: int,
    overlap: int,
    alignment: int,
    min_tile: int = MIN_TILE,
    on_tile: ProgressFn | None = None,
    on_shrink: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Run ``fn`` (``[T,C,h,w] -> [T,C,s*h,s*w]``) over aligned square tiles of ``x`` and blend them.

    The grid is :func:`~vs_superres.numerics.tiling.tile_starts`' along each axis, the weights
    :data:`~vs_superres.numerics.tiling.FEATHERED`, the blend float32 on the CPU. Every tile
    carries all T frames, so video models keep their temporal context. On out-of-memory the
    tile is halved, down to ``min_tile``. ``on_tile`` gets a :class:`Progress` before every tile and
    after the last.
    """
    H, W = x.shape[-2:]
    tile = min(tile, max(H, W))
    if overlap > tile // 2 and tile < max(H, W):
        log.warning(
            "tile %d is small for an overlap of %d: using %d; tiles of at least %d keep the "
            "model's full overlap", tile, overlap, tile // 2, 2 * overlap)

    def attempt(t: int) -> torch.Tensor:
        ov = min(overlap, t // 2)
        grid = Grid(tile_starts(H, t, ov, alignment), tile_starts(W, t, ov, alignment))
        return blend_tiles(fn, x, grid, weights=FEATHERED, scale=scale, out_device="cpu", on_tile=on_tile)

    return retry_on_oom(attempt, tile, floor=min_tile, alignment=alignment, on_shrink=on_shrink)
