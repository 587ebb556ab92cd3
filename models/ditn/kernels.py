"""The per-pixel primitives of DITN's inference path, on channels-last features.

Two interchangeable sets, picked per tensor by :func:`kernels_for`:

- :data:`ONEDNN` (CPU, fp32/bf16, where PyTorch ships oneDNN's fused operators): every linear map
  and convolution is one oneDNN primitive with its bias, the residual addition, the gating
  product or the GELU fused into the same pass ("post-ops"). On the development
  machine (AMD Zen 5, ``docs/benchmarks.md``) oneDNN's GEMM also runs at twice the speed of
  ``torch.mm``'s MKL kernels (a 2048^3 GEMM: 388-416 vs 167 GFLOP/s), and each fusion saves a
  full read and write of a feature map;
- :data:`ATEN` (everything else: CUDA, fp16, a PyTorch without those operators): the same
  arithmetic in public ATen calls.

Both compute the same functions (``tests/test_ditn_speed.py`` runs the network through each);
they differ in float rounding only. Feature maps are ``[..., C]`` (pixels or ``[N, H, W, C]``)
and linear weights are ``[out, in]``, as in :class:`torch.nn.Linear`.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

# The phase split is measured at dilation 3 (DITN's; docs/benchmarks.md); beyond 4 the d*d phase
# maps get small and the copies are not known to pay off, so the dilated kernel is kept.
_DILATION_PHASES_MAX = 4


class Kernels(Protocol):
    name: str

    def linear(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        """``x @ w.T + b`` for ``x`` ``[M, K]``."""

    def linear_add(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, residual: torch.Tensor) -> torch.Tensor:
        """``residual + x @ w.T + b`` (a new tensor)."""

    def linear_mul(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, other: torch.Tensor) -> torch.Tensor:
        """``(x @ w.T + b) * other``."""

    def conv(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, padding: int, dilation: int = 1,
             groups: int = 1, gelu: bool = False, mul: torch.Tensor | None = None,
             add: torch.Tensor | None = None) -> torch.Tensor:
        """Zero-padded stride-1 conv of ``[N, H, W, C]`` -> ``[N, H, W, C']``, then GELU, or
        times ``mul``, or plus ``add`` (both ``[N, H, W, C']``)."""


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


class _ATen:
    name = "aten"

    def linear(self, x, w, b):
        return F.linear(x, w, b)

    def linear_add(self, x, w, b, residual):
        return F.linear(x, w, b).add_(residual)

    def linear_mul(self, x, w, b, other):
        return F.linear(x, w, b).mul_(other)

    def conv(self, x, w, b, padding, dilation=1, groups=1, gelu=False, mul=None, add=None):
        y = _nhwc(F.conv2d(_nchw(x), w, b, padding=padding, dilation=dilation, groups=groups))
        if gelu:
            y = F.gelu(y)
        if mul is not None:
            y = y.mul_(mul)
        if add is not None:
            y = y.add_(add)
        return y


class _OneDNN:
    name = "onednn"

    def __init__(self) -> None:
        self._ops = torch.ops.mkldnn

    def linear(self, x, w, b):
        return self._ops._linear_pointwise(x, w, b, "none", [], "")

    def linear_add(self, x, w, b, residual):
        return self._ops._linear_pointwise.binary(x, residual, w, b, "add")

    def linear_mul(self, x, w, b, other):
        return self._ops._linear_pointwise.binary(x, other, w, b, "mul")

    def conv(self, x, w, b, padding, dilation=1, groups=1, gelu=False, mul=None, add=None):
        pad, one, dil = [padding, padding], [1, 1], [dilation, dilation]
        if mul is not None or add is not None:
            other, op = (mul, "mul") if mul is not None else (add, "add")
            y = self._ops._convolution_pointwise.binary(
                _nchw(x), _nchw(other), w, b, pad, one, dil, groups, op, None, None, [], None)
        else:
            y = self._ops._convolution_pointwise(
                _nchw(x), w, b, pad, one, dil, groups, "gelu" if gelu else "none", [], "none" if gelu else "")
        return _nhwc(y)


ATEN: Kernels = _ATen()
ONEDNN: Kernels | None = _OneDNN() if (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
) else None


def _compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return bool(is_compiling and is_compiling())


def kernels_for(x: torch.Tensor) -> Kernels:
    """oneDNN's fused primitives for CPU fp32/bf16 where this PyTorch has them, else ATen.

    Under ``torch.compile`` always ATen: inductor fuses those itself (choosing oneDNN where it
    likes) and cannot lower the fused primitives on weights that are graph inputs.
    """
    if (ONEDNN is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16)
            and not _compiling()):
        return ONEDNN
    return ATEN


def dilated_depthwise(k: Kernels, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, dilation: int) -> torch.Tensor:
    """Depthwise ``k x k`` conv with ``dilation`` and "same" zero padding of ``[N, H, W, C]``.

    oneDNN has no fast kernel for dilated depthwise convolutions (measured: 2x slower than the
    same conv undilated on a ``dilation``-fold smaller map). A dilation-``d`` conv touches only
    pixels in the same phase ``(y mod d, x mod d)``, so the map is split into its ``d * d``
    phase maps, stacked on the batch axis, convolved undilated and put back. The map is
    zero-padded to a multiple of ``d`` first: those zeros are exactly the conv's own padding.
    """
    d = dilation
    pad = (w.shape[-1] // 2)
    if d == 1 or d > _DILATION_PHASES_MAX or x.device.type != "cpu":  # cuDNN has dilated kernels
        return k.conv(x, w, b, pad * d, d, groups=w.shape[0])
    n, h, wd, c = x.shape
    hp, wp = -(-h // d) * d, -(-wd // d) * d
    if (hp, wp) != (h, wd):
        x = F.pad(x, (0, 0, 0, wp - wd, 0, hp - h))
    phases = (
        x.reshape(n, hp // d, d, wp // d, d, c).permute(0, 2, 4, 1, 3, 5)
        .reshape(n * d * d, hp // d, wp // d, c)
    )
    y = k.conv(phases, w, b, pad, 1, groups=w.shape[0])
    y = y.reshape(n, d, d, hp // d, wp // d, c).permute(0, 3, 1, 4, 2, 5).reshape(n, hp, wp, c)
    return y[:, :h, :wd]
