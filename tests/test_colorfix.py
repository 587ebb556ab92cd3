"""Colour correction (wavelet / AdaIN / none) on real photos."""

from __future__ import annotations

import pytest
import torch
from skimage import data

from vs_superres.numerics.colorfix import (
    COLOR_FIX_MODES,
    adain_color_fix,
    color_fix,
    wavelet_color_fix,
    wavelet_decompose,
)
from vs_superres.contracts.errors import SuperResError


def _photo(name: str, size=(100, 150)) -> torch.Tensor:
    """A real photo from scikit-image as [1, 3, h, w] float in [0, 1] (every 2nd pixel)."""
    img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float().div(255)
    h, w = size
    return img[:, : 2 * h : 2, : 2 * w : 2].unsqueeze(0).contiguous()


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """(target, source): two frames each, different photos of the same size."""
    target = torch.cat([_photo("coffee"), _photo("astronaut")])
    source = torch.cat([_photo("chelsea"), _photo("rocket")])
    return target, source


def _mean_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


def test_wavelet_decomposition_is_exact():
    x = _photo("astronaut")
    high, low = wavelet_decompose(x)
    torch.testing.assert_close(high + low, x, atol=1e-6, rtol=0)
    # The low part is smooth: far less local variation than the photo.
    assert low.diff(dim=-1).abs().mean() < 0.2 * x.diff(dim=-1).abs().mean()
    const = torch.full((1, 3, 40, 50), 0.3)
    high_c, low_c = wavelet_decompose(const)  # replicate padding keeps constants constant
    torch.testing.assert_close(low_c, const)
    assert high_c.abs().max() < 1e-6


def test_wavelet_takes_high_from_target_and_low_from_source(pair):
    target, source = pair
    out = wavelet_color_fix(target, source)
    assert out.shape == target.shape and out.dtype == target.dtype
    high_t, _ = wavelet_decompose(target)
    _, low_s = wavelet_decompose(source)
    torch.testing.assert_close(out, (high_t + low_s).clamp(0, 1), atol=1e-6, rtol=0)
    # Decomposing the result again: its low part follows the source, its high part the target.
    high_o, low_o = wavelet_decompose(out)
    high_s, _ = wavelet_decompose(source)
    _, low_t = wavelet_decompose(target)
    assert _mean_abs(low_o, low_s) < 0.35 * _mean_abs(low_t, low_s)
    assert _mean_abs(high_o, high_t) < 0.35 * _mean_abs(high_s, high_t)


def test_wavelet_removes_a_colour_cast():
    source = _photo("astronaut") * 0.8 + 0.1
    cast = torch.tensor([0.08, -0.05, 0.04]).view(1, 3, 1, 1)
    target = source + cast  # stays inside [0, 1]
    assert target.min() >= 0 and target.max() <= 1
    torch.testing.assert_close(wavelet_color_fix(target, source), source, atol=1e-5, rtol=0)


def test_adain_matches_mean_and_std(pair):
    target, source = pair
    out = adain_color_fix(target, source)
    assert out.shape == target.shape
    for i in range(target.shape[0]):  # every frame against its own source frame
        o, s = out[i].flatten(1), source[i].flatten(1)
        torch.testing.assert_close(o.mean(1), s.mean(1), atol=2e-3, rtol=0)
        torch.testing.assert_close(o.std(1), s.std(1), atol=2e-3, rtol=0)
    # A per-channel affine change of the source is undone exactly (no clamping involved).
    source1 = _photo("coffee")
    gain = torch.tensor([0.5, 0.7, 0.6]).view(1, 3, 1, 1)
    offset = torch.tensor([0.2, 0.1, 0.25]).view(1, 3, 1, 1)
    fixed = adain_color_fix(source1 * gain + offset, source1)
    torch.testing.assert_close(fixed, source1, atol=2e-4, rtol=0)


@pytest.mark.parametrize("mode", ["wavelet", "adain"])
def test_identity_when_target_equals_source(mode):
    x = torch.cat([_photo("chelsea"), _photo("coffee")])
    torch.testing.assert_close(color_fix(x, x.clone(), mode), x, atol=1e-5, rtol=0)


def test_none_returns_target_unchanged(pair):
    target, source = pair
    assert color_fix(target, source, "none") is target


def test_frames_are_independent_and_dtype_kept(pair):
    target, source = pair
    both = wavelet_color_fix(target, source)
    torch.testing.assert_close(both[1:], wavelet_color_fix(target[1:], source[1:]))
    half = color_fix(target.half(), source.half(), "wavelet")
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), both, atol=2e-3, rtol=0)
    assert color_fix(target.half(), source.half(), "adain").dtype == torch.float16


def test_errors(pair):
    target, source = pair
    with pytest.raises(SuperResError, match="wavelet, adain, none"):
        color_fix(target, source, "nofix")
    assert COLOR_FIX_MODES == ("wavelet", "adain", "none")
    with pytest.raises(SuperResError, match="differ in shape"):
        color_fix(target, source[:, :, :-2], "wavelet")
    with pytest.raises(SuperResError, match="differ in shape"):
        color_fix(target, source[:1], "none")
    with pytest.raises(SuperResError, match=r"\[T, 3, H, W\]"):
        adain_color_fix(target[0], source[0])
    with pytest.raises(SuperResError, match="float tensor"):
        wavelet_color_fix((target * 255).to(torch.uint8), source)
