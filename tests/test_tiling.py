"""Tiling: equality with untiled output, seamless blending, alignment, OOM fallback."""

import pytest
import torch
from torch import nn

from vs_superres.contracts.errors import SuperResError
from vs_superres.numerics.tiling import _axis_weights, apply_tiled, tile_starts
from vs_superres.runtime.spatial import run_with_oom_fallback


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
    ws = _axis_weights(spans, 2)
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
