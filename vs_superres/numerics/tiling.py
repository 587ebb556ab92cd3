"""Spatial tiles with overlap and feathered blending (the numerics; the policy of choosing a
tile lives in ``vs_superres.runtime.spatial``).

Tile origins are multiples of the model's ``alignment`` so that patch-based networks (DITN
works on 8x8 patches) see the same patch grid as on the whole image. Along each interior
tile edge the outer 3/8 of the overlap zone is discarded (weight 0) and the middle quarter is
a linear crossfade with the neighbour, so every output pixel is taken from tiles in which it
lies at least ``3*overlap/8`` input pixels from a cut edge, and the weights of neighbouring
tiles sum to one (no seam, no brightness change). Models declare the overlap they need in
their descriptor (DITN's receptive field is 57 input pixels).
"""

from __future__ import annotations

from typing import Callable

import torch

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
