"""Spatial tiles with overlap, blended with pluggable weights: the one tile blender.

:func:`blend_tiles` runs a network on every tile of a :class:`Grid` (explicit ``(start, stop)``
spans per axis) and blends the tiles' outputs with a weighting strategy, normalised by the
summed weights. Who chooses the grid and the weights is policy: the runtime
(``vs_superres.runtime.spatial``) uses the aligned grid of :func:`tile_starts` with
:data:`FEATHERED` weights; UltraVSR uses its own grids (``models/ultravsr/tiles.py``) with
:class:`Gaussian` weights.

Weightings (a :class:`Weighting` maps the spans of one axis, in output pixels, to one 1-D
weight per tile; a tile's 2-D weight is the outer product of its row and column weights):

* :class:`Feathered`: along each interior tile edge the outer 3/8 of the overlap zone is
  discarded (weight 0) and the middle quarter is a linear crossfade with the neighbour, so
  every output pixel is taken from tiles in which it lies at least ``3*overlap/8`` input
  pixels from a cut edge, and the weights of neighbouring tiles sum to one (no seam, no
  brightness change). Models declare the overlap they need in their descriptor (DITN's
  receptive field is 57 input pixels).
* :class:`Gaussian`: ``exp(-((x - c) / n)^2 / (2 var))`` per axis over each whole tile of
  ``n`` output pixels, centred on the tile (``row_offset`` moves the row centre, as the
  released UltraVSR code does by half a pixel).

The aligned grid: tile origins are multiples of the model's ``alignment`` so that patch-based
networks (DITN works on 8x8 patches) see the same patch grid as on the whole image.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Callable, NamedTuple, Protocol, Sequence

import torch

from vs_superres.contracts.errors import SuperResError
from vs_superres.contracts.progress import Progress, ProgressFn

__all__ = [
    "DISCARD", "FEATHERED", "Feathered", "Gaussian", "Grid", "Span", "Weighting", "blend_tiles", "tile_starts",
]

Span = tuple[int, int]
"""``(start, stop)`` of one tile along one axis."""


class Grid(NamedTuple):
    """The tiles of an image: spans along the height (``rows``) and the width (``cols``).

    Every pair of a row span and a column span is a tile. A plain ``(rows, cols)`` tuple works
    wherever a grid is expected.
    """

    rows: Sequence[Span]
    cols: Sequence[Span]


class Weighting(Protocol):
    """A blend-weight strategy: ``weighting(spans, axis)`` -> one 1-D weight per tile.

    ``spans`` are the tiles along one axis in *output* pixels (``axis`` 0: rows, 1: columns).
    The blender multiplies a tile's row and column weights (in their dtype) and converts the
    product to float32; it normalises by the summed weights, so weights need not sum to one.
    """

    def __call__(self, spans: Sequence[Span], axis: int) -> list[torch.Tensor]: ...


#: Fraction of each overlap zone, at either end, that a tile gives no weight to: the pixels
#: nearest a cut see the least context. The middle quarter is a linear crossfade.
DISCARD = 3 / 8


@dataclasses.dataclass(frozen=True)
class Feathered:
    """Weight 0 on the outer ``discard`` of each overlap zone, a linear crossfade between.

    Neighbouring tiles' weights sum to one along the axis (float32).
    """

    discard: float = DISCARD

    def __call__(self, spans: Sequence[Span], axis: int) -> list[torch.Tensor]:
        d = self.discard
        out = []
        for i, (s, e) in enumerate(spans):
            w = torch.ones(e - s, dtype=torch.float32)
            x = torch.arange(e - s, dtype=torch.float32) + 0.5
            if i > 0:  # zone shared with the previous tile: [s, prev_stop)
                zone = spans[i - 1][1] - s
                if zone > 0:
                    w = w * ((x - zone * d) / (zone * (1 - 2 * d))).clamp(0, 1)
            if i + 1 < len(spans):  # zone shared with the next tile: [next_start, e)
                nxt = spans[i + 1][0]
                zone = e - nxt
                if zone > 0:
                    xz = x - (nxt - s)
                    w = w * (1 - ((xz - zone * d) / (zone * (1 - 2 * d))).clamp(0, 1))
            out.append(w)
        return out


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """``exp(-((x - c) / n)^2 / (2 * var))`` over each tile of ``n`` output pixels (float64).

    ``var`` is in units of the tile size (0.01: the weight falls to ``exp(-12.5)`` at a tile
    edge). The centre is ``(n - 1) / 2``, plus ``row_offset`` along the rows.
    """

    var: float = 0.01
    row_offset: float = 0.0

    def __call__(self, spans: Sequence[Span], axis: int) -> list[torch.Tensor]:
        out = []
        for s, e in spans:
            n = e - s
            centre = (n - 1) / 2 + (self.row_offset if axis == 0 else 0.0)
            x = torch.arange(n, dtype=torch.float64)
            out.append(torch.exp(-((x - centre) / n) ** 2 / (2 * self.var)))
        return out


FEATHERED = Feathered()


def tile_starts(length: int, tile: int, overlap: int, alignment: int) -> list[Span]:
    """``(start, stop)`` of the aligned tiles along one axis of ``length`` input pixels.

    Starts are multiples of ``alignment``; no tile exceeds ``tile`` pixels; neighbours overlap
    by at least ``overlap`` (rounded to the alignment).
    """
    if tile >= length:
        return [(0, length)]
    step = max(alignment, (tile - overlap) // alignment * alignment)
    last = -(-(length - tile) // alignment) * alignment  # no tile exceeds `tile` pixels
    starts = list(range(0, last, step)) + [last]
    spans = [(s, min(s + tile, length)) for s in starts]
    spans[-1] = (last, length)
    return spans


def _scaled_spans(spans: Sequence[Span], length: int, scale: Fraction, axis: str) -> tuple[list[Span], int]:
    """The spans and the axis length in output pixels; refuses edges between output pixels."""
    if not spans or spans[0][0] != 0 or spans[-1][1] != length or any(
        not 0 <= a < b <= length for a, b in spans
    ) or any(b0 < a1 for (_, b0), (a1, _) in zip(spans, spans[1:])):
        raise SuperResError(f"the {axis} tiles {list(spans)} do not cover 0..{length} in order without gaps")

    def scaled(v: int) -> int:
        s = v * scale
        if s.denominator != 1:
            raise SuperResError(f"tile edge {v} does not map to a whole output pixel at scale {scale}")
        return int(s)

    return [(scaled(a), scaled(b)) for a, b in spans], scaled(length)


def blend_tiles(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    grid: Grid | tuple[Sequence[Span], Sequence[Span]],
    *,
    weights: Weighting,
    scale: int | Fraction = 1,
    out_device: torch.device | str | None = None,
    phase: str = "",
    on_tile: ProgressFn | None = None,
) -> torch.Tensor:
    """Run ``fn`` on every tile of ``x`` (``[T, C, H, W]``, all frames per tile) and blend.

    ``fn`` maps ``[T, C, h, w]`` to ``[T, C', h*scale, w*scale]``; ``scale`` may be a fraction
    (a VAE encoder maps pixels to latents at 1/8; every tile edge must then map to a whole
    output pixel). Tiles are blended with ``weights`` (see :class:`Weighting`) and normalised
    by the summed weights; the result is float32 on ``out_device`` (default: where ``fn``'s
    output is). A single tile is returned as ``fn(x)``, unweighted and unconverted.

    ``on_tile`` gets ``Progress(done, total, phase, "tiles")`` before every tile and once
    after the last.
    """
    rows, cols = grid
    total = len(rows) * len(cols)

    def report(done: int) -> None:
        if on_tile:
            on_tile(Progress(done, total, phase, "tiles"))

    if total == 1:
        report(0)
        single = fn(x)
        report(1)
        return single
    scale = Fraction(scale)
    out_rows, out_h = _scaled_spans(rows, x.shape[-2], scale, "row")
    out_cols, out_w = _scaled_spans(cols, x.shape[-1], scale, "column")
    wy, wx = weights(out_rows, 0), weights(out_cols, 1)
    out: torch.Tensor | None = None
    norm: torch.Tensor | None = None
    done = 0
    for (y0, y1), (oy0, oy1), wyi in zip(rows, out_rows, wy):
        for (x0, x1), (ox0, ox1), wxi in zip(cols, out_cols, wx):
            report(done)
            piece = fn(x[:, :, y0:y1, x0:x1])
            if out is None or norm is None:
                device = torch.device(out_device) if out_device is not None else piece.device
                out = torch.zeros((x.shape[0], piece.shape[1], out_h, out_w), dtype=torch.float32, device=device)
                norm = torch.zeros((out_h, out_w), dtype=torch.float32, device=device)
            w = (wyi[:, None] * wxi[None, :]).to(torch.float32).to(out.device)
            out[:, :, oy0:oy1, ox0:ox1] += piece.to(out.device, torch.float32) * w
            norm[oy0:oy1, ox0:ox1] += w
            done += 1
    report(done)
    assert out is not None and norm is not None  # the grid has at least two tiles
    return out.div_(norm.clamp_min_(1e-12))  # in place: a second output-sized buffer is what big images run out of
