"""Tiling: the one tile blender and its weightings, equality with untiled output, seamless
blending, alignment, OOM fallback."""

import math
from fractions import Fraction

import pytest
import torch
from torch import nn

from vs_superres.contracts.errors import SuperResError
from vs_superres.contracts.progress import Progress
from vs_superres.numerics.tiling import DISCARD, FEATHERED, Feathered, Gaussian, Grid, blend_tiles, tile_starts
from vs_superres.runtime.spatial import run_with_oom_fallback


def apply_tiled(fn, x, *, scale, tile, overlap, alignment=1):
    """The runtime's blend: aligned grid, feathered weights, float32 on the CPU."""
    H, W = x.shape[-2:]
    grid = Grid(tile_starts(H, tile, overlap, alignment), tile_starts(W, tile, overlap, alignment))
    return blend_tiles(fn, x, grid, weights=FEATHERED, scale=scale, out_device="cpu")


class LocalNet(nn.Module):
    """A small conv net with a 7-pixel receptive radius followed by pixel shuffle x2."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 5, padding=2), nn.GELU(), nn.Conv2d(8, 8, 3, padding=1), nn.GELU(),
            nn.Conv2d(8, 12, 5, padding=2), nn.PixelShuffle(2),
        )

    def forward(self, x):
        return torch.sigmoid(self.body(x))


def test_tile_spans_cover_and_align():
    for length in (1, 7, 64, 100, 257):
        spans = tile_starts(length, 48, 16, 8)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(s % 8 == 0 for s, _ in spans)
        assert all(b[0] < a[1] for a, b in zip(spans, spans[1:]))  # consecutive tiles overlap


def test_axis_weights_partition_unity():
    spans = tile_starts(300, 64, 24, 8)
    ws = FEATHERED([(s * 2, e * 2) for s, e in spans], 1)
    total = torch.zeros(600)
    for (s, e), w in zip(spans, ws):
        total[s * 2:e * 2] += w
    torch.testing.assert_close(total, torch.ones(600))


def test_tiled_equals_untiled_where_tiles_see_enough_context():
    net = LocalNet().eval()
    x = torch.rand(2, 3, 70, 90)
    with torch.no_grad():
        full = net(x)
        tiled = apply_tiled(net, x, scale=2, tile=32, overlap=32 // 2, alignment=1)
    # every output pixel comes from a tile where it is >= overlap/4 = 4 px from a cut;
    # the net's receptive radius is 5 px, so allow a loose bound, and an exact one when the
    # overlap covers the radius
    with torch.no_grad():
        tiled_wide = apply_tiled(net, x, scale=2, tile=40, overlap=24, alignment=1)
    torch.testing.assert_close(tiled_wide, full, atol=1e-6, rtol=0)
    assert (tiled - full).abs().max() < 0.05


def test_no_seam_for_a_constant_image():
    net = LocalNet().eval()
    x = torch.full((1, 3, 64, 64), 0.4)
    with torch.no_grad():
        full = net(x)
        tiled = apply_tiled(net, x, scale=2, tile=48, overlap=24, alignment=8)
    # blending discards overlap/4 = 6 px >= the net's receptive radius at every cut, so the
    # tiled result is the untiled one everywhere: no seam line, no brightness step
    torch.testing.assert_close(tiled, full, atol=1e-6, rtol=0)


def test_oom_halves_the_tile_then_fails_clearly():
    calls = []

    def limited(x):
        # stands in for a device with room for 32x32 input tiles
        calls.append(tuple(x.shape[-2:]))
        if max(x.shape[-2:]) > 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return x.repeat_interleave(2, -1).repeat_interleave(2, -2)

    shrunk = []
    x = torch.rand(1, 3, 100, 100)
    y = run_with_oom_fallback(limited, x, scale=2, tile=128, overlap=8, alignment=8, on_shrink=shrunk.append)
    assert shrunk == [48, 32]  # 128 is first capped to the image (100), then halved
    torch.testing.assert_close(y, x.repeat_interleave(2, -1).repeat_interleave(2, -2))

    def always(x):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(SuperResError, match="out of memory even with 32x32 tiles"):
        run_with_oom_fallback(always, x, scale=2, tile=128, overlap=8, alignment=8)


def test_other_errors_are_not_swallowed():
    def broken(x):
        raise RuntimeError("shape mismatch in layer 3")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_with_oom_fallback(broken, torch.rand(1, 3, 40, 40), scale=2, tile=16, overlap=4, alignment=8)


# ------------------------------------------------------------------ the one blender, every weighting
#
# The references below are written from the definitions, per output pixel in float64 with
# Python's math, independently of the blender's tensor code.

WEIGHTINGS = {
    "feathered": FEATHERED,
    "gaussian": Gaussian(var=0.01),
    "released": Gaussian(var=0.01, row_offset=0.5),  # UltraVSR's release: row centre at n/2
}


def reference_weight(name, spans, i, p, axis):
    """Weight of tile ``i`` at output pixel ``p`` (spans in output pixels, ``axis`` 0: rows)."""
    s, e = spans[i]
    if name == "feathered":
        w = 1.0
        if i > 0 and spans[i - 1][1] > s:  # rises across the zone shared with the previous tile
            a, z = s, spans[i - 1][1] - s
            w *= min(max((p + 0.5 - a - DISCARD * z) / ((1 - 2 * DISCARD) * z), 0.0), 1.0)
        if i + 1 < len(spans) and e > spans[i + 1][0]:  # falls across the zone shared with the next
            a, z = spans[i + 1][0], e - spans[i + 1][0]
            w *= 1 - min(max((p + 0.5 - a - DISCARD * z) / ((1 - 2 * DISCARD) * z), 0.0), 1.0)
        return w
    n = e - s
    centre = n / 2 if name == "released" and axis == 0 else (n - 1) / 2
    return math.exp(-(((p - s) - centre) / n) ** 2 / (2 * 0.01))


def reference_blend(name, fn, x, rows, cols, scale):
    """``sum_t w_t(p) fn(tile_t)(p) / sum_t w_t(p)`` pixel by pixel, float64."""
    out_rows = [(int(a * scale), int(b * scale)) for a, b in rows]
    out_cols = [(int(a * scale), int(b * scale)) for a, b in cols]
    H, W = int(x.shape[-2] * scale), int(x.shape[-1] * scale)
    num, den = None, torch.zeros(H, W, dtype=torch.float64)
    for i, ((y0, y1), (oy0, oy1)) in enumerate(zip(rows, out_rows)):
        for j, ((x0, x1), (ox0, ox1)) in enumerate(zip(cols, out_cols)):
            piece = fn(x[:, :, y0:y1, x0:x1]).double()
            if num is None:
                num = torch.zeros(x.shape[0], piece.shape[1], H, W, dtype=torch.float64)
            wy = [reference_weight(name, out_rows, i, p, 0) for p in range(oy0, oy1)]
            wx = [reference_weight(name, out_cols, j, p, 1) for p in range(ox0, ox1)]
            w = torch.tensor(wy, dtype=torch.float64)[:, None] * torch.tensor(wx, dtype=torch.float64)[None, :]
            num[:, :, oy0:oy1, ox0:ox1] += piece * w
            den[oy0:oy1, ox0:ox1] += w
    return num / den


GRIDS = {
    # aligned runtime grid (uneven last tile), x2
    "aligned": (lambda: (tile_starts(40, 16, 8, 4), tile_starts(52, 16, 8, 4)), 2),
    # equal tiles, x1, overlaps of different widths
    "explicit": (lambda: ([(0, 24), (14, 40)], [(0, 20), (12, 32), (30, 52)]), 1),
    # a VAE encoder's 1/8: edges on multiples of 8
    "fraction": (lambda: ([(0, 32), (8, 40)], [(0, 32), (16, 48)]), Fraction(1, 8)),
}


def _fn_for(scale):
    """A network whose tiles disagree everywhere (a per-tile mean, like GroupNorm statistics),
    so that every weight matters."""
    torch.manual_seed(7)
    conv = nn.Conv2d(3, 3, 3, padding=1)

    def body(t):
        return torch.tanh(conv(t)) + t.mean(dim=(1, 2, 3), keepdim=True)

    if scale == Fraction(1, 8):
        return lambda t: body(t)[..., ::8, ::8]
    k = int(scale)
    return lambda t: body(t).repeat_interleave(k, -1).repeat_interleave(k, -2)


@pytest.mark.parametrize("name", list(WEIGHTINGS))
@pytest.mark.parametrize("grid_name", list(GRIDS))
def test_blender_matches_the_reference_for_every_weighting(name, grid_name):
    make, scale = GRIDS[grid_name]
    rows, cols = make()
    width = cols[-1][1]
    x = torch.rand(2, 3, rows[-1][1], width, generator=torch.Generator().manual_seed(3))
    fn = _fn_for(scale)
    with torch.no_grad():
        got = blend_tiles(fn, x, Grid(rows, cols), weights=WEIGHTINGS[name], scale=scale)
        ref = reference_blend(name, fn, x, rows, cols, scale)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=2e-6)


@pytest.mark.parametrize("name", list(WEIGHTINGS))
def test_weights_follow_their_definition(name):
    spans = [(0, 24), (14, 40), (30, 52)]
    for axis in (0, 1):
        got = WEIGHTINGS[name](spans, axis)
        for i, (s, e) in enumerate(spans):
            ref = [reference_weight(name, spans, i, p, axis) for p in range(s, e)]
            torch.testing.assert_close(got[i].double(), torch.tensor(ref, dtype=torch.float64), rtol=0, atol=1e-7)
    if name == "feathered":  # a partition of unity along the axis
        total = torch.zeros(52)
        for (s, e), w in zip(spans, got):
            total[s:e] += w
        torch.testing.assert_close(total, torch.ones(52), rtol=0, atol=1e-6)
        # Tiles 0 and 1 share [14, 24): tile 0 keeps weight 1 before it, tile 1 gives the
        # outer 3/8 of it (pixel centres below 14 + 3.75) no weight.
        assert got[0][:14].eq(1).all() and got[1][:4].eq(0).all() and got[1][4] > 0


@pytest.mark.parametrize("name", list(WEIGHTINGS))
@pytest.mark.parametrize("scale", [1, 4, Fraction(1, 8)])
def test_identity_and_constants_survive_the_blend(name, scale):
    rows, cols = [(0, 32), (16, 56), (40, 64)], [(0, 40), (24, 72)]
    x = torch.rand(2, 3, 64, 72, generator=torch.Generator().manual_seed(1))
    if scale == 1:
        fn = lambda t: t  # noqa: E731
        expected = x
    elif scale == 4:
        fn = lambda t: t.repeat_interleave(4, -1).repeat_interleave(4, -2)  # noqa: E731
        expected = fn(x)
    else:
        fn = lambda t: t[..., ::8, ::8]  # noqa: E731
        expected = x[..., ::8, ::8]
    got = blend_tiles(fn, x, (rows, cols), weights=WEIGHTINGS[name], scale=scale)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)  # the weights renormalise to one
    const = blend_tiles(fn, torch.full_like(x, 0.7), (rows, cols), weights=WEIGHTINGS[name], scale=scale)
    torch.testing.assert_close(const, torch.full_like(const, 0.7), rtol=0, atol=1e-6)
    if name == "feathered" and scale == 1:
        # Where a single tile has all the weight, the input comes back bit for bit.
        assert torch.equal(got[..., :16, :24], x[..., :16, :24])


def test_blender_progress_single_tile_and_bad_grids():
    seen = []
    x = torch.rand(1, 3, 20, 30)
    blend_tiles(lambda t: t, x, ([(0, 12), (8, 20)], [(0, 30)]), weights=FEATHERED, phase="decoder", on_tile=seen.append)
    assert seen == [Progress(d, 2, "decoder", "tiles") for d in (0, 1, 2)]
    seen.clear()
    marker = torch.zeros(1, 3, 40, 60, dtype=torch.float16)
    # One tile: fn(x) itself, unweighted and unconverted, reported before and after.
    assert blend_tiles(lambda t: marker, x, ([(0, 20)], [(0, 30)]), weights=Feathered(), scale=2, on_tile=seen.append) is marker
    assert [(p.done, p.total) for p in seen] == [(0, 1), (1, 1)]
    for rows in ([(0, 12), (14, 20)], [(0, 12), (8, 18)], [(2, 12), (8, 20)], []):
        with pytest.raises(SuperResError, match="do not cover"):
            blend_tiles(lambda t: t, x, (rows, [(0, 16), (10, 30)]), weights=FEATHERED)
