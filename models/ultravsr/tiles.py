"""Tile grids and Gaussian tile weights for UltraVSR's latent-space tiling.

Every stage of UltraVSR (VAE encoder on pixels, UNet on latents, VAE decoder on latents) can
run on overlapping spatial tiles. Each tile carries *all* frames of the window (the RTS
modules need them); the tiles are blended by the one tile blender,
:func:`vs_superres.numerics.tiling.blend_tiles`, with a Gaussian weight per tile
(:data:`GAUSSIAN_WEIGHTS`, or :data:`RELEASED_WEIGHTS` with the released grids), normalised
by the summed weights.

Two grids:

* :func:`balanced_spans` (ours): an axis is split only when it is longer than the tile; the
  fewest tiles that keep at least the requested overlap, spread evenly, so tiles are
  rectangular where the image is (a 90x160 latent takes two 90x96 tiles).
* :func:`official_unet_grid`, :func:`official_decoder_grid`, :func:`official_encoder_grid`:
  the grids of the released ``inference_arch.py``: square UNet tiles once the latent *area*
  exceeds the tile's, the last tile flush with the far edge, decoder tile sizes from
  ``get_best_tile_size``. Kept for comparisons with the released code and for the FLOPs
  benchmark.

A span is ``(start, stop)`` along one axis; a grid is ``(row spans, column spans)``
(:class:`vs_superres.numerics.tiling.Grid`).
"""

from __future__ import annotations

import math

from vs_superres.contracts.errors import SuperResError
from vs_superres.numerics.tiling import Gaussian, Grid, Span

__all__ = [
    "GAUSSIAN_VAR",
    "GAUSSIAN_WEIGHTS",
    "RELEASED_WEIGHTS",
    "Grid",
    "balanced_spans",
    "best_tile_size",
    "grid_pixels",
    "official_decoder_grid",
    "official_encoder_grid",
    "official_spans",
    "official_unet_grid",
]

GAUSSIAN_VAR = 0.01
"""Variance of the tile weight in units of the tile size (the released value): the weight
falls to ``exp(-12.5)`` at a tile edge, so seams carry almost no weight."""

GAUSSIAN_WEIGHTS = Gaussian(var=GAUSSIAN_VAR)
"""Our tile weight: a Gaussian centred on the tile, ``(n - 1) / 2`` along both axes."""

RELEASED_WEIGHTS = Gaussian(var=GAUSSIAN_VAR, row_offset=0.5)
"""The released ``inference_arch.py`` weight: its row centre is ``n / 2`` (slightly
asymmetric), the column centre ``(n - 1) / 2``."""


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SuperResError(f"{name} must be a positive integer, got {value!r}")
    return value


def balanced_spans(length: int, tile: int, overlap: int, alignment: int = 1) -> list[Span]:
    """Fewest tiles of at most ``tile`` covering ``length`` with overlaps >= ``overlap``, evenly spread.

    Starts are multiples of ``alignment`` (``length`` and ``tile`` must then be multiples too,
    except that a single tile always covers the whole axis).
    """
    _positive("length", length)
    _positive("tile", tile)
    if length <= tile:
        return [(0, length)]
    if not 0 <= overlap < tile:
        raise SuperResError(f"tile overlap must be in [0, {tile - 1}] for tiles of {tile}, got {overlap}")
    if tile % alignment or length % alignment:
        raise SuperResError(f"tile {tile} and length {length} must be multiples of {alignment}")
    # Rounding starts to the alignment can shorten a gap by up to alignment - 1.
    stride = max(alignment, tile - overlap - (alignment - 1))
    count = 1 + math.ceil((length - tile) / stride)
    last = length - tile
    starts = [round(i * last / (count - 1) / alignment) * alignment for i in range(count)]
    return [(s, s + tile) for s in starts]


def official_spans(length: int, tile: int, overlap: int) -> list[Span]:
    """The released grid along one axis: stride ``tile - overlap``, last tile flush with the end."""
    if length <= tile:
        return [(0, length)]
    stride = tile - overlap
    if stride <= 0:
        raise SuperResError(
            f"the released tiling gives tiles of {tile} here, no larger than the overlap {overlap}; "
            "use a smaller overlap or tile_grid='balanced'"
        )
    count = 1
    while max((count - 1) * stride, 0) + tile < length:
        count += 1
    starts = [r * stride for r in range(count - 1)] + [length - tile]
    return [(s, s + tile) for s in starts]


def best_tile_size(n: int, upper: int) -> int:
    """The released ``get_best_tile_size``: ``n`` or ``n`` rounded up to a multiple of 32/16/8/4/2 within ``upper``."""
    for divisor in (32, 16, 8, 4, 2):
        if n % divisor == 0:
            return n
        candidate = -(-n // divisor) * divisor
        if candidate <= upper:
            return candidate
    return n


def official_unet_grid(height: int, width: int, tile: int = 96, overlap: int = 32) -> Grid:
    """Released UNet tiling of a ``height x width`` latent: tiles only when the *area* exceeds ``tile**2``."""
    if height * width <= tile * tile:
        return Grid([(0, height)], [(0, width)])
    side = min(tile, height, width)
    return Grid(official_spans(height, side, overlap), official_spans(width, side, overlap))


def _official_sized_grid(height: int, width: int, tile: int, overlap: int) -> Grid:
    if height * width <= tile * tile:
        return Grid([(0, height)], [(0, width)])
    side = min(tile, height, width)
    sizes = []
    for n in (height, width):
        count = max(math.ceil((n - 2 * overlap) / side), 1)
        sizes.append(best_tile_size(math.ceil((n - 2 * overlap) / count), side))
    return Grid(official_spans(height, sizes[0], overlap), official_spans(width, sizes[1], overlap))


def official_decoder_grid(height: int, width: int, tile: int = 96, overlap: int = 10) -> Grid:
    """Released VAE-decoder tiling of a latent (tile sizes from :func:`best_tile_size`)."""
    return _official_sized_grid(height, width, tile, overlap)


def official_encoder_grid(height: int, width: int, tile: int = 3000, overlap: int = 32) -> Grid:
    """Released VAE-encoder tiling of a frame in pixels (same rule as the decoder, in pixels).

    The released default (3000 px) tiles only frames above 9 megapixels.
    """
    return _official_sized_grid(height, width, tile, overlap)


def grid_pixels(grid: Grid) -> int:
    """Sum of tile areas of a grid (what a stage computes, in input units)."""
    ys, xs = grid
    return sum(b - a for a, b in ys) * sum(b - a for a, b in xs)

