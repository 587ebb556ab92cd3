"""DITN's inference path: the same network as :mod:`.arch`, arranged for speed.

:class:`DITNInference` *is* a :class:`~.arch.DITN` (same parameters, same state-dict keys, so
the released checkpoints load unchanged with ``strict=True``); training or any call with
gradients enabled runs the checkpoint-true :meth:`DITN.forward`. Under ``torch.no_grad()`` in
eval mode it runs :func:`fast_forward` on weights prepared once per (device, dtype, parameter
versions):

- features stay channels-last (``[N, H, W, C]``), so every 1x1 convolution is one GEMM on
  ``[pixels, C]`` and the depthwise convolutions run on oneDNN's channels-last kernels
  (in NCHW oneDNN reorders every 1x1 convolution's input and output);
- a linear map that directly follows another is merged into it: the Tanh -> 1x1 "norm" convs
  ``conv1``/``conv2`` into ``qkv``, ``proj_first`` and ``project_in``; the SDA's ``scale``
  into ``proj_last``. Merging changes float rounding only (about 1e-6 on [0, 1] outputs);
- the residual additions accumulate in place inside the GEMM (``addmm_``);
- q and k are not normalised element by element: the C x C attention logits are divided by
  the outer product of their norms, which is the same quantity;
- the patches are unfolded once and folded once per UFONE block (one copy each way), as
  the release does.

Every input size works (the reflect padding and the crop are :mod:`.arch`'s). The output
is within 1e-4 of :meth:`DITN.forward` in fp32 (``tests/test_ditn_speed.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .arch import DITN, reflect_pad_to_multiple

_EPS = 1e-12  # F.normalize's default, which the release uses
#: Patches per ITL chunk: 64 patches of 8x8 at C=60 keep a chunk's widest activation at 2 MB.
_PATCHES_PER_CHUNK = 64


@dataclasses.dataclass
class _GatedFFN:
    gate_in: torch.Tensor  # [C, h]  (already transposed for x @ w)
    gate_bias: torch.Tensor | None
    value_in: torch.Tensor
    value_bias: torch.Tensor | None
    gate_dw: torch.Tensor  # [h, 1, 3, 3]
    gate_dw_bias: torch.Tensor | None
    value_dw: torch.Tensor
    value_dw_bias: torch.Tensor | None
    out: torch.Tensor  # [h, C]
    out_bias: torch.Tensor | None


@dataclasses.dataclass
class _ITLWeights:
    qkv: torch.Tensor  # [C, 3C], conv1 merged in
    qkv_bias: torch.Tensor
    temperature: float
    proj: torch.Tensor  # [C, C]
    proj_bias: torch.Tensor | None
    ffn: _GatedFFN


@dataclasses.dataclass
class _SALWeights:
    attn_in: torch.Tensor  # [C, C]: conv1 merged into proj_first's "a" half
    attn_in_bias: torch.Tensor
    value_in: torch.Tensor  # proj_first's "v" half, conv1 merged in
    value_in_bias: torch.Tensor
    dw5: torch.Tensor
    dw5_bias: torch.Tensor
    dw7: torch.Tensor
    dw7_bias: torch.Tensor
    mix: torch.Tensor  # DConvs[2], [C, C]
    mix_bias: torch.Tensor
    proj: torch.Tensor  # proj_last with SDA.scale merged in
    proj_bias: torch.Tensor
    ffn: _GatedFFN


@dataclasses.dataclass
class PreparedDITN:
    """The fused weights of one network on one device and dtype (see the module docstring)."""

    patch_size: int
    scale: int
    sft: tuple[torch.Tensor, torch.Tensor]
    blocks: list[tuple[list[_ITLWeights], list[_SALWeights]]]
    body: tuple[torch.Tensor, torch.Tensor]
    upsample: tuple[torch.Tensor, torch.Tensor]


def _matrix(conv_or_linear: Any) -> torch.Tensor:
    """A 1x1 conv's or a Linear's weight as ``[out, in]`` in float64 (merges are done exactly)."""
    w = conv_or_linear.weight.detach().double()
    return w.reshape(w.shape[0], w.shape[1])


def _bias(module: Any, rows: int, device) -> torch.Tensor:
    b = getattr(module, "bias", None)
    return torch.zeros(rows, dtype=torch.float64, device=device) if b is None else b.detach().double()


def _merge(first: Any, second: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``second(first(t))`` for two per-pixel linear maps -> ``(W, b)`` with ``t @ W + b``."""
    w1, w2 = _matrix(first), _matrix(second)
    b1 = _bias(first, w1.shape[0], w1.device)
    b2 = _bias(second, w2.shape[0], w2.device)
    return (w2 @ w1).t(), w2 @ b1 + b2


def _prepare_ffn(norm_conv: Any, ffn: Any, cast: Callable) -> _GatedFFN:
    w, b = _merge(norm_conv, ffn.project_in)
    hidden = w.shape[1] // 2
    dw = ffn.dwconv.weight.detach()
    dwb = ffn.dwconv.bias.detach() if ffn.dwconv.bias is not None else None
    out_b = ffn.project_out.bias
    return _GatedFFN(
        gate_in=cast(w[:, :hidden]), gate_bias=cast(b[:hidden]),
        value_in=cast(w[:, hidden:]), value_bias=cast(b[hidden:]),
        gate_dw=cast(dw[:hidden]), gate_dw_bias=None if dwb is None else cast(dwb[:hidden]),
        value_dw=cast(dw[hidden:]), value_dw_bias=None if dwb is None else cast(dwb[hidden:]),
        out=cast(_matrix(ffn.project_out).t()), out_bias=None if out_b is None else cast(out_b.detach()),
    )


def prepare(net: Any) -> PreparedDITN:
    """Fuse ``net``'s (a :class:`~.arch.DITN`) weights for :func:`fast_forward` (on its device, in its dtype)."""
    ref = next(net.parameters())

    def cast(t: Any) -> torch.Tensor:
        return t.detach().to(ref.dtype).contiguous()

    def conv(m: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return cast(m.weight).contiguous(memory_format=torch.channels_last), cast(m.bias)

    blocks = []
    for ufone in net.UFONE:
        itls = []
        for itl in ufone.ITLs:
            w, b = _merge(itl.conv1, itl.attn.qkv)
            pb = itl.attn.project_out.bias
            itls.append(_ITLWeights(
                qkv=cast(w), qkv_bias=cast(b), temperature=float(itl.attn.temperature.detach()),
                proj=cast(_matrix(itl.attn.project_out).t()),
                proj_bias=None if pb is None else cast(pb),
                ffn=_prepare_ffn(itl.conv2, itl.ffn, cast),
            ))
        sals = []
        for sal in ufone.SALs:
            sda = sal.SDA
            w, b = _merge(sal.conv1, sda.proj_first[0])
            c = w.shape[1] // 2
            scale = sda.scale.detach().double().reshape(-1)
            last = sda.proj_last[0]
            d5, d7, mix = sda.DConvs
            sals.append(_SALWeights(
                attn_in=cast(w[:, :c]), attn_in_bias=cast(b[:c]),
                value_in=cast(w[:, c:]), value_in_bias=cast(b[c:]),
                dw5=cast(d5.weight), dw5_bias=cast(d5.bias), dw7=cast(d7.weight), dw7_bias=cast(d7.bias),
                mix=cast(_matrix(mix).t()), mix_bias=cast(_bias(mix, c, w.device)),
                proj=cast((_matrix(last) * scale[:, None]).t()),
                proj_bias=cast(_bias(last, c, w.device) * scale),
                ffn=_prepare_ffn(sal.conv2, sal.ffn, cast),
            ))
        blocks.append((itls, sals))
    return PreparedDITN(
        patch_size=net.patch_size, scale=net.scale, sft=conv(net.sft), blocks=blocks,
        body=conv(net.conv_after_body), upsample=conv(net.upsample[0]),
    )


# --- the forward pass, on channels-last features --------------------------------------------
def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``[M, K] @ [K, N] (+ b)``."""
    return x @ w if b is None else torch.addmm(b, x, w)


def _accumulate(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> None:
    """``x += y @ w (+ b)`` in place (x is a residual stream ``[M, C]``)."""
    x.addmm_(y, w)
    if b is not None:
        x.add_(b)


def _depthwise(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, padding: int, dilation: int = 1) -> torch.Tensor:
    """Depthwise conv of channels-last ``[N, H, W, C]`` -> ``[N, H, W, C]`` (zero padding)."""
    y = F.conv2d(x.permute(0, 3, 1, 2), w, b, padding=padding, dilation=dilation, groups=w.shape[0])
    return y.permute(0, 2, 3, 1)


def _ffn(x: torch.Tensor, f: _GatedFFN, grid: tuple[int, int, int]) -> None:
    """``x += ffn(conv2(tanh(x)))`` for ``x`` ``[M, C]`` holding ``grid`` = (N, H, W) pixels."""
    t = torch.tanh(x)
    shape = (*grid, -1)
    gate = _depthwise(_linear(t, f.gate_in, f.gate_bias).view(shape), f.gate_dw, f.gate_dw_bias, 1)
    value = _depthwise(_linear(t, f.value_in, f.value_bias).view(shape), f.value_dw, f.value_dw_bias, 1)
    hidden = F.gelu(gate).mul_(value).reshape(x.shape[0], -1)
    _accumulate(x, hidden, f.out, f.out_bias)


def _itl(x: torch.Tensor, w: _ITLWeights, patches: int, p: int) -> None:
    """One ITL in place on the patch tokens ``x`` ``[patches * p * p, C]``."""
    c = x.shape[1]
    qkv = _linear(torch.tanh(x), w.qkv, w.qkv_bias).view(patches, p * p, 3 * c)
    q, k, v = qkv.split(c, dim=2)  # each [B, L, C]
    logits = q.transpose(1, 2) @ k  # [B, C, C]: query channel x key channel
    qn = torch.linalg.vector_norm(q, dim=1).clamp_min_(_EPS)  # [B, C]
    kn = torch.linalg.vector_norm(k, dim=1).clamp_min_(_EPS)
    attention = logits.div_(qn.unsqueeze(2) * kn.unsqueeze(1)).mul_(w.temperature).softmax(dim=-1)
    out = (v @ attention.transpose(1, 2)).view(-1, c)  # [B*L, C]
    _accumulate(x, out, w.proj, w.proj_bias)
    _ffn(x, w.ffn, (patches, p, p))


def _sal(x: torch.Tensor, w: _SALWeights, grid: tuple[int, int, int]) -> None:
    """One SAL in place on the map ``x`` ``[N*H*W, C]``."""
    t = torch.tanh(x)
    shape = (*grid, -1)
    a = _depthwise(_linear(t, w.attn_in, w.attn_in_bias).view(shape), w.dw5, w.dw5_bias, 2)
    a = _depthwise(a, w.dw7, w.dw7_bias, 9, dilation=3).reshape(x.shape[0], -1)
    gated = _linear(a, w.mix, w.mix_bias).mul_(_linear(t, w.value_in, w.value_in_bias))
    _accumulate(x, gated, w.proj, w.proj_bias)
    _ffn(x, w.ffn, grid)


def _conv3x3(x: torch.Tensor, wb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """3x3 conv (padding 1) of channels-last ``[N, H, W, C]`` -> channels-last ``[N, H, W, C']``."""
    return F.conv2d(x.permute(0, 3, 1, 2), wb[0], wb[1], padding=1).permute(0, 2, 3, 1)


def fast_forward(w: PreparedDITN, x: torch.Tensor) -> torch.Tensor:
    """:meth:`DITN.forward` with prepared weights: ``[N, 3, H, W]`` -> ``[N, 3, s*H, s*W]``."""
    h, wd = x.shape[-2:]
    p = w.patch_size
    x = reflect_pad_to_multiple(x, p).contiguous(memory_format=torch.channels_last)
    n, _, hp, wp = x.shape
    shallow = _conv3x3(x.permute(0, 2, 3, 1), w.sft).contiguous()  # [N, Hp, Wp, C]
    c = shallow.shape[-1]
    feat = shallow
    for itls, sals in w.blocks:
        # A fresh copy even where reshape could return a view (one patch column): the ITLs
        # work in place and ``shallow`` is still needed for the skip connection.
        patches = torch.empty_like(feat).view(n, hp // p, wp // p, p, p, c)
        patches.copy_(feat.view(n, hp // p, p, wp // p, p, c).permute(0, 1, 3, 2, 4, 5))
        patches = patches.view(-1, c)  # [N*(Hp/p)*(Wp/p)*p*p, C], one patch after another
        # The ITLs never mix patches, so all of them run on a few patches at a time: the
        # chunk's activations stay in cache instead of streaming the whole map per op.
        chunk = _PATCHES_PER_CHUNK * p * p
        for start in range(0, patches.shape[0], chunk):
            part = patches[start:start + chunk]
            for itl in itls:
                _itl(part, itl, part.shape[0] // (p * p), p)
        feat = (
            patches.view(n, hp // p, wp // p, p, p, c).permute(0, 1, 3, 2, 4, 5)
            .reshape(n * hp * wp, c)  # fold back: copy
        )
        for sal in sals:
            _sal(feat, sal, (n, hp, wp))
        feat = feat.view(n, hp, wp, c)
    deep = _conv3x3(feat, w.body)
    deep = deep + shallow
    out = F.pixel_shuffle(_conv3x3(deep, w.upsample).permute(0, 3, 1, 2).contiguous(), w.scale)
    return out[:, :, : h * w.scale, : wd * w.scale]


def _version_of(p: torch.Tensor) -> int:
    """``p``'s in-place version counter; -1 for an inference tensor (made under
    ``torch.inference_mode``, as ComfyUI loads models), which keeps none and can only be
    changed inside inference mode, where weights are not edited."""
    try:
        return p._version
    except RuntimeError:
        return -1


class DITNInference(DITN):
    """A :class:`~.arch.DITN` whose gradient-free eval-mode forward is :func:`fast_forward`.

    Same parameters and state-dict keys as :class:`~.arch.DITN`. The fused weights are made on
    the first call and again whenever a parameter, the device or the dtype changes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepared: tuple[tuple, PreparedDITN] | None = None

    def _prepared_weights(self) -> PreparedDITN:
        """The fused weights, rebuilt when a parameter changed (in place: its version counter;
        replaced: its storage) since they were made."""
        params = list(self.parameters())
        key = (params[0].device, params[0].dtype, tuple(_version_of(p) for p in params), tuple(p.data_ptr() for p in params))
        if self._prepared is None or self._prepared[0] != key:
            with torch.no_grad():
                self._prepared = (key, prepare(self))
        return self._prepared[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return super().forward(x)
        return fast_forward(self._prepared_weights(), x)
