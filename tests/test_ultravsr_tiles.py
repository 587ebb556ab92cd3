"""UltraVSR's tile grids and Gaussian tile weights (blended by the one tile blender), and the
Pillow-compatible pre-upscale."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vs_superres.contracts.errors import SuperResError
from vs_superres.models.ultravsr.tiles import (
    GAUSSIAN_WEIGHTS,
    RELEASED_WEIGHTS,
    balanced_spans,
    best_tile_size,
    grid_pixels,
    official_decoder_grid,
    official_encoder_grid,
    official_unet_grid,
)
from vs_superres.numerics.resample import bicubic_matrix, resize_bicubic, upscale_bicubic
from vs_superres.numerics.tiling import Grid, blend_tiles


def gaussian_weights(height, width, *, official=False):
    """One tile's 2-D weight, as the blender forms it: float64 outer product, then float32."""
    weights = RELEASED_WEIGHTS if official else GAUSSIAN_WEIGHTS
    (wy,), (wx,) = weights([(0, height)], 0), weights([(0, width)], 1)
    return (wy[:, None] * wx[None, :]).to(torch.float32)


def starts(spans):
    return [a for a, _ in spans]


# ------------------------------------------------------------------ the released grids


@pytest.mark.parametrize(
    "grid, size, ys, xs, tile",
    [
        # Worked examples of the released inference_arch.py (latent offsets).
        (official_unet_grid, (135, 240), [0, 39], [0, 64, 128, 144], (96, 96)),
        (official_unet_grid, (90, 160), [0], [0, 58, 70], (90, 90)),
        (official_decoder_grid, (135, 240), [0, 54, 71], [0, 86, 144], (64, 96)),
        (official_decoder_grid, (90, 160), [0, 10], [0, 70, 80], (80, 80)),
    ],
)
def test_official_grids_match_the_released_examples(grid, size, ys, xs, tile):
    gy, gx = grid(*size)
    assert starts(gy) == ys and starts(gx) == xs
    assert {b - a for a, b in gy} == {tile[0]} and {b - a for a, b in gx} == {tile[1]}
    assert gy[-1][1] == size[0] and gx[-1][1] == size[1]  # last tile flush with the far edge


def test_official_grids_tile_by_area():
    # 60x150 = 9000 < 96^2: the released UNet does not tile it although 150 > 96.
    assert official_unet_grid(60, 150) == ([(0, 60)], [(0, 150)])
    assert official_decoder_grid(60, 150) == ([(0, 60)], [(0, 150)])
    assert official_encoder_grid(1080 * 4, 1920 * 4)[1][0] == (0, 2560)  # above 9 MP it tiles
    assert official_encoder_grid(2160, 3840) == ([(0, 2160)], [(0, 3840)])


@pytest.mark.parametrize("n, upper, expected", [(64, 96, 64), (58, 96, 64), (74, 96, 96), (70, 90, 80), (97, 97, 97), (33, 33, 33)])
def test_best_tile_size(n, upper, expected):
    assert best_tile_size(n, upper) == expected


# ------------------------------------------------------------------ our grid


@pytest.mark.parametrize("length", [1, 7, 96, 97, 160, 241, 1000])
@pytest.mark.parametrize("tile, overlap", [(96, 32), (96, 16), (24, 8), (64, 0)])
def test_balanced_spans_cover_with_the_overlap_and_fewest_tiles(length, tile, overlap):
    spans = balanced_spans(length, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(b - a == min(tile, length) for a, b in spans)
    for (a0, b0), (a1, b1) in zip(spans, spans[1:]):
        assert a0 < a1 and b0 - a1 >= overlap  # no gap, at least the overlap
    # Minimal: one tile fewer could not cover with that overlap.
    k = len(spans)
    assert k == 1 or (k - 1) * (tile - overlap) + overlap < length


def test_balanced_spans_alignment_and_errors():
    spans = balanced_spans(1280, 512, 64, alignment=8)
    assert all(a % 8 == 0 and b % 8 == 0 for a, b in spans)
    assert all(b0 - a1 >= 64 for (_, b0), (a1, _) in zip(spans, spans[1:]))
    with pytest.raises(SuperResError, match="overlap"):
        balanced_spans(200, 96, 96)
    with pytest.raises(SuperResError, match="multiples of 8"):
        balanced_spans(1284, 512, 64, alignment=8)


def test_ours_computes_less_than_the_release_at_720p():
    # 720p output = 90x160 latent: released 3 UNet tiles of 90x90 and 6 decoder tiles of 80x80.
    released_unet, released_dec = grid_pixels(official_unet_grid(90, 160)), grid_pixels(official_decoder_grid(90, 160))
    ours = grid_pixels((balanced_spans(90, 96, 32), balanced_spans(160, 96, 32)))
    ours_dec = grid_pixels((balanced_spans(90, 96, 10), balanced_spans(160, 96, 10)))
    assert (released_unet, released_dec) == (3 * 90 * 90, 6 * 80 * 80)
    assert (ours, ours_dec) == (2 * 90 * 96, 2 * 90 * 96)


# ------------------------------------------------------------------ weights and blending


def test_gaussian_weights():
    w = gaussian_weights(9, 12)
    assert w.shape == (9, 12) and w.dtype == torch.float32
    torch.testing.assert_close(w, w.flip(0))
    torch.testing.assert_close(w, w.flip(1))
    centre = math.exp(-((0.5 / 12) ** 2) / 0.02)  # x centre falls between pixels 5 and 6
    assert w[4, 5].item() == pytest.approx(centre, rel=1e-5)
    assert w[4, 0].item() == pytest.approx(math.exp(-((5.5 / 12) ** 2) / 0.02), rel=1e-5)
    official = gaussian_weights(8, 8, official=True)
    assert official[4, 3] == official.max()  # y centre at h/2 = 4, not 3.5
    assert not torch.allclose(official, official.flip(0))


class LocalNet(nn.Module):
    """Two 3x3 convs with a nonlinearity: receptive radius 2, no global statistics."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def test_blend_equals_untiled_for_a_local_network():
    """With enough overlap the Gaussian blend reproduces the untiled result away from the border.

    (UltraVSR's own networks are not local: GroupNorm statistics and self-attention are global
    within a tile, so their tiled output can only approximate the untiled one.)
    """
    net = LocalNet()
    x = torch.randn(3, 4, 70, 90)
    with torch.no_grad():
        ref = net(x)
        grid = (balanced_spans(70, 32, 16), balanced_spans(90, 32, 16))
        assert len(grid[0]) * len(grid[1]) == 20
        got = blend_tiles(net, x, grid, weights=GAUSSIAN_WEIGHTS)
    inner = (..., slice(2, -2), slice(2, -2))
    assert (got - ref)[inner].abs().max() < 1e-4


def test_blend_has_no_seam_and_scales():
    x = torch.full((2, 4, 40, 56), 0.3)
    spans = (balanced_spans(40, 16, 8), balanced_spans(56, 16, 8))
    up8 = blend_tiles(lambda t: t[:, :3].repeat_interleave(8, -1).repeat_interleave(8, -2), x, spans, weights=GAUSSIAN_WEIGHTS, scale=8)
    assert up8.shape == (2, 3, 320, 448)
    torch.testing.assert_close(up8, torch.full_like(up8, 0.3), rtol=0, atol=1e-6)
    down = blend_tiles(lambda t: t[..., ::8, ::8], torch.full((1, 4, 64, 96), 2.0), (balanced_spans(64, 32, 16, 8), balanced_spans(96, 32, 16, 8)),
                       weights=RELEASED_WEIGHTS, scale=0.125)
    assert down.shape == (1, 4, 8, 12)
    torch.testing.assert_close(down, torch.full_like(down, 2.0))
    seen = []
    blend_tiles(lambda t: t, x, spans, weights=GAUSSIAN_WEIGHTS, phase="unet", on_tile=lambda p: seen.append((p.done, p.total, p.phase, p.unit)))
    assert seen[0] == (0, len(spans[0]) * len(spans[1]), "unet", "tiles") and seen[-1][0] == seen[-1][1]
    with pytest.raises(SuperResError, match="whole output pixel"):
        blend_tiles(lambda t: t[..., ::8, ::8], torch.zeros(1, 4, 60, 60), ([(0, 36), (20, 60)], [(0, 60)]), weights=GAUSSIAN_WEIGHTS, scale=0.125)


def test_grids_are_grids():
    """The grid constructors return :class:`Grid` (rows, cols), still equal to plain tuples."""
    for grid in (official_unet_grid(135, 240), official_decoder_grid(90, 160), official_encoder_grid(64, 64)):
        assert isinstance(grid, Grid) and grid == (list(grid.rows), list(grid.cols))


# ------------------------------------------------------------------ Pillow-compatible bicubic


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return data.astronaut()[100:160, 200:270]


@pytest.mark.parametrize("size", [(240, 280), (37, 51), (7, 9), (200, 90), (30, 35)])
def test_bicubic_kernel_is_pillows(photo, size):
    """Pillow resizes in two 8-bit passes; with its rounding between them we agree to 1 step."""
    h, w = size
    ref = np.asarray(Image.fromarray(photo).resize((w, h), Image.BICUBIC)).astype(np.int64)
    x = torch.from_numpy(photo).permute(2, 0, 1).double()
    rows = (x @ bicubic_matrix(photo.shape[1], w).T).round().clamp(0, 255)
    ours = (bicubic_matrix(photo.shape[0], h) @ rows).round().clamp(0, 255).permute(1, 2, 0).numpy()
    diff = np.abs(ours - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    # In float throughout (what the pipeline does) the difference stays within 2 steps.
    flt = resize_bicubic(x / 255, h, w).clamp(0, 1).permute(1, 2, 0).numpy() * 255
    assert np.abs(np.round(flt) - ref).max() <= 2


def test_bicubic_properties_and_errors():
    m = bicubic_matrix(10, 40)
    torch.testing.assert_close(m.sum(1), torch.ones(40, dtype=torch.float64))
    const = upscale_bicubic(torch.full((2, 3, 5, 6), 0.25), 4)
    assert const.shape == (2, 3, 20, 24)
    torch.testing.assert_close(const, torch.full_like(const, 0.25))
    half = resize_bicubic(torch.rand(1, 3, 8, 8, dtype=torch.float16), 16, 16)
    assert half.dtype == torch.float16
    with pytest.raises(SuperResError, match="positive integer"):
        upscale_bicubic(torch.rand(1, 3, 4, 4), 0)
    with pytest.raises(SuperResError, match="float frames"):
        resize_bicubic(torch.zeros(3, 4, 4, dtype=torch.uint8), 8, 8)
