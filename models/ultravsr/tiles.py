"""Tile grids and Gaussian blending for UltraVSR's latent-space tiling.

Every stage of UltraVSR (VAE encoder on pixels, UNet on latents, VAE decoder on latents) can
run on overlapping spatial tiles. Each tile carries *all* frames of the window (the RTS
modules need them), and the tiles are blended with a Gaussian weight per tile, normalised by
the summed weights.

Two grids:

* :func:`balanced_spans` (ours): an axis is split only when it is longer than the tile; the
  fewest tiles that keep at least the requested overlap, spread evenly, so tiles are
  rectangular where the image is (a 90x160 latent takes two 90x96 tiles).
* :func:`official_unet_grid`, :func:`official_decoder_grid`, :func:`official_encoder_grid`:
  the grids of the released ``inference_arch.py``: square UNet tiles once the latent *area*
  exceeds the tile's, the last tile flush with the far edge, decoder tile sizes from
  ``get_best_tile_size``. Kept for comparisons with the released code and for the FLOPs
  benchmark.

A span is ``(start, stop)`` along one axis.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

import torch

from vs_superres.contracts.errors import SuperResError

__all__ = [
    "GAUSSIAN_VAR",
    "balanced_spans",
    "best_tile_size",
    "blend_tiles",
    "gaussian_weights",
    "grid_pixels",
    "official_decoder_grid",
    "official_encoder_grid",
    "official_spans",
    "official_unet_grid",
]

Span = tuple[int, int]
Grid = tuple[list[Span], list[Span]]

GAUSSIAN_VAR = 0.01
"""Variance of the tile weight in units of the tile size (the released value): the weight
falls to ``exp(-12.5)`` at a tile edge, so seams carry almost no weight."""


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
        return [(0, height)], [(0, width)]
    side = min(tile, height, width)
    return official_spans(height, side, overlap), official_spans(width, side, overlap)


def _official_sized_grid(height: int, width: int, tile: int, overlap: int) -> Grid:
    if height * width <= tile * tile:
        return [(0, height)], [(0, width)]
    side = min(tile, height, width)
    sizes = []
    for n in (height, width):
        count = max(math.ceil((n - 2 * overlap) / side), 1)
        sizes.append(best_tile_size(math.ceil((n - 2 * overlap) / count), side))
    return official_spans(height, sizes[0], overlap), official_spans(width, sizes[1], overlap)


def official_decoder_grid(height: int, width: int, tile: int = 96, overlap: int = 10) -> Grid:
    """Released VAE-decoder tiling of a latent (tile sizes from :func:`best_tile_size`)."""
    return _official_sized_grid(height, width, tile, overlap)


def official_encoder_grid(height: int, width: int, tile: int = 3000, overlap: int = 32) -> Grid:
    """Released VAE-encoder tiling of a frame in pixels (same rule as the decoder, in pixels).

    The released default (3000 px) tiles only frames above 9 megapixels.
    """
    return _official_sized_grid(height, width, tile, overlap)


def gaussian_weights(height: int, width: int, *, official: bool = False) -> torch.Tensor:
    """``[height, width]`` float32 tile weight ``exp(-((x - c) / size)^2 / (2 * var))`` per axis.

    Centres are ``(size - 1) / 2``; ``official=True`` puts the y centre at ``height / 2`` as the
    released code does (slightly asymmetric).
    """

    def axis(n: int, centre: float) -> torch.Tensor:
        x = torch.arange(n, dtype=torch.float64)
        return torch.exp(-((x - centre) / n) ** 2 / (2 * GAUSSIAN_VAR))

    wy = axis(height, height / 2 if official else (height - 1) / 2)
    wx = axis(width, (width - 1) / 2)
    return (wy[:, None] * wx[None, :]).to(torch.float32)


def blend_tiles(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    grid: Grid,
    *,
    scale: int | Fraction = 1,
    official_weights: bool = False,
    out_device: torch.device | str | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run ``fn`` on every tile of ``x`` (``[T, C, H, W]``, all frames per tile) and blend.

    ``fn`` maps ``[T, C, h, w]`` to ``[T, C', h*scale, w*scale]``; ``scale`` may be a fraction
    (the VAE encoder maps pixels to latents at 1/8; spans must then scale to integers).
    The result is accumulated in float32 on ``out_device`` (default: where ``fn``'s output is).
    A single tile is returned as ``fn(x)`` without weighting.
    """
    ys, xs = grid
    if len(ys) == 1 and len(xs) == 1:
        if on_tile:
            on_tile(0, 1)
        return fn(x)
    scale = Fraction(scale)

    def scaled(v: int) -> int:
        s = v * scale
        if s.denominator != 1:
            raise SuperResError(f"tile edge {v} does not map to a whole output pixel at scale {scale}")
        return int(s)

    out = norm = None
    total, done = len(ys) * len(xs), 0
    for y0, y1 in ys:
        for x0, x1 in xs:
            if on_tile:
                on_tile(done, total)
            piece = fn(x[:, :, y0:y1, x0:x1])
            if out is None:
                device = torch.device(out_device) if out_device is not None else piece.device
                shape = (x.shape[0], piece.shape[1], scaled(x.shape[2]), scaled(x.shape[3]))
                out = torch.zeros(shape, dtype=torch.float32, device=device)
                norm = torch.zeros(shape[2:], dtype=torch.float32, device=device)
            oy, ox = slice(scaled(y0), scaled(y1)), slice(scaled(x0), scaled(x1))
            w = gaussian_weights(oy.stop - oy.start, ox.stop - ox.start, official=official_weights).to(out.device)
            out[:, :, oy, ox] += piece.to(out.device, torch.float32) * w
            norm[oy, ox] += w
            done += 1
    if on_tile:
        on_tile(done, total)
    return out / norm


def grid_pixels(grid: Grid) -> int:
    """Sum of tile areas of a grid (what a stage computes, in input units)."""
    ys, xs = grid
    return sum(b - a for a, b in ys) * sum(b - a for a, b in xs)

