"""Pillow-compatible bicubic resizing of float frames.

UltraVSR's released code pre-upscales its input with ``PIL.Image.resize(..., BICUBIC)``; the
weights were trained and evaluated on frames made that way, so we resize with the same
kernel: Keys' cubic with ``a = -0.5``, pixel centres at ``(i + 0.5) * in/out``, the kernel
widened by the scale factor when shrinking (antialiasing), and **clipped at the image border
and renormalised** (no padding of any kind). Pillow works on 8-bit images and rounds after
each pass; here the arithmetic stays in floating point, so results agree with Pillow to within
its rounding: about one 8-bit step inside the image, up to about 5 steps where Pillow's 8-bit
intermediate clips overshoot at strong edges (measured against Pillow's 8-bit path).

Resizing is two matrix products, ``Wy @ x @ Wx.T``, with the weight matrices built once per
size pair; it runs on any device and dtype and is exact for any integer or fractional scale.
"""

from __future__ import annotations

import functools

import torch

from vs_superres.contracts.errors import SuperResError

__all__ = ["bicubic_matrix", "resize_bicubic", "upscale_bicubic"]

_A = -0.5
_SUPPORT = 2.0


def _cubic(x: float) -> float:
    x = abs(x)
    if x < 1.0:
        return ((_A + 2.0) * x - (_A + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * _A
    return 0.0


@functools.lru_cache(maxsize=32)
def _matrix(in_size: int, out_size: int) -> torch.Tensor:
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = _SUPPORT * filter_scale
    rows = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)  # int() truncates toward zero, as C does
        hi = min(int(center + support + 0.5), in_size)
        weights = [_cubic((j - center + 0.5) / filter_scale) for j in range(lo, hi)]
        total = sum(weights)
        if total != 0.0:
            rows[i, lo:hi] = torch.tensor(weights, dtype=torch.float64) / total
    return rows


def bicubic_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """``[out_size, in_size]`` float64 weights of Pillow's bicubic resize along one axis."""
    for name, v in (("in_size", in_size), ("out_size", out_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SuperResError(f"{name} must be a positive integer, got {v!r}")
    return _matrix(in_size, out_size)


def resize_bicubic(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize ``[..., H, W]`` float frames to ``[..., height, width]`` like Pillow's BICUBIC.

    Computed in ``x``'s dtype (float32 at least) on ``x``'s device; values are not clamped
    (the cubic kernel overshoots slightly at edges, as Pillow's does before its 8-bit clip).
    """
    if not x.is_floating_point() or x.dim() < 2:
        raise SuperResError(f"resize_bicubic needs float frames [..., H, W], got {x.dtype} {tuple(x.shape)}")
    compute = torch.promote_types(x.dtype, torch.float32)
    wy = bicubic_matrix(x.shape[-2], height).to(x.device, compute)
    wx = bicubic_matrix(x.shape[-1], width).to(x.device, compute)
    y = x.to(compute)
    y = torch.matmul(wy, y)  # rows: [..., height, W]
    y = torch.matmul(y, wx.transpose(0, 1))  # columns: [..., height, width]
    return y.to(x.dtype)


def upscale_bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """``resize_bicubic`` by an integer factor."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise SuperResError(f"scale must be a positive integer, got {scale!r}")
    return resize_bicubic(x, x.shape[-2] * scale, x.shape[-1] * scale)

