"""DITN's inference path: the same network as :mod:`.arch`, arranged for speed.

:class:`DITNInference` *is* a :class:`~.arch.DITN` (same parameters, same state-dict keys, so
the released checkpoints load unchanged with ``strict=True``); training or any call with
gradients enabled runs the checkpoint-true :meth:`DITN.forward`. Under ``torch.no_grad()`` in
eval mode it runs :func:`fast_forward` on weights prepared once per (device, dtype, parameter
versions). What makes it fast, each measured (``docs/benchmarks.md``):

- features stay channels-last (``[N, H, W, C]``), so every 1x1 convolution is one GEMM on
  ``[pixels, C]``, and every op runs through :mod:`.kernels`: on the CPU oneDNN's primitives
  with the bias, residual addition, gating product or GELU fused in;
- a linear map that directly follows another is merged into it: the Tanh -> 1x1 "norm" convs
  ``conv1``/``conv2`` into ``qkv``, ``proj_first`` and ``project_in``; the SDA's ``scale``
  into ``proj_last``; the Tanh itself becomes ``sigmoid(2x)`` with its affine part folded into
  the next map (:func:`_after_tanh`). Merging changes float rounding only;
- q and k are not normalised element by element: the C x C attention logits are divided by
  the outer product of their norms, which is the same quantity;
- nothing runs on a whole frame at once: the ITLs on a few rows of 8x8 patches at a time
  (unfolded from and folded into the map per chunk), each half of a SAL on strips of rows
  with the halo its depthwise convolutions need (:func:`_in_row_strips`). Each chunk's
  activations stay in cache and its buffers are reused instead of faulting in fresh pages;
- the dilated 7x7 depthwise conv runs as an undilated one on the map's phases
  (:func:`~.kernels.dilated_depthwise`).

Every input size works (the reflect padding and the crop are :mod:`.arch`'s). The output
is within 1e-4 of :meth:`DITN.forward` in fp32 (``tests/test_ditn_speed.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
import torch.nn.functional as F

from vs_superres.models.ditn.arch import DITN, reflect_pad_to_multiple
from vs_superres.models.ditn.kernels import Kernels, dilated_depthwise, kernels_for

_EPS = 1e-12  # F.normalize's default, which the release uses


@dataclasses.dataclass(frozen=True)
class Blocking:
    """How much of the map each step works on at once (see :func:`_itls`, :func:`_in_row_strips`)."""

    patches_per_chunk: int  # ITL chunk: whole rows of patches, at least this many patches
    sda_strip_pixels: int  # SAL strips, each plus its halo rows
    ffn_strip_pixels: int


#: On a CPU: chunks whose activations fit the caches (64 patches of 8x8 at C=60: 1 MB a tensor;
#: the strip sizes measured best of 2k-64k pixels on a 320x184 map, ``docs/benchmarks.md``).
CPU_BLOCKING = Blocking(patches_per_chunk=64, sda_strip_pixels=16384, ffn_strip_pixels=4096)
#: On a GPU: the whole map in each op, where small pieces would only multiply kernel launches.
WHOLE_MAP = Blocking(patches_per_chunk=2**62, sda_strip_pixels=2**62, ffn_strip_pixels=2**62)


@dataclasses.dataclass
class _GatedFFN:
    gate_in: torch.Tensor  # [h, C], conv2 merged in
    gate_bias: torch.Tensor | None
    value_in: torch.Tensor
    value_bias: torch.Tensor | None
    gate_dw: torch.Tensor  # [h, 1, 3, 3]
    gate_dw_bias: torch.Tensor | None
    value_dw: torch.Tensor
    value_dw_bias: torch.Tensor | None
    out: torch.Tensor  # [C, h]
    out_bias: torch.Tensor | None


@dataclasses.dataclass
class _ITLWeights:
    qkv: torch.Tensor  # [3C, C], conv1 merged in
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
    dw7_dilation: int
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
    """``second(first(t))`` for two per-pixel linear maps -> ``(W, b)`` with ``t @ W.T + b``."""
    w1, w2 = _matrix(first), _matrix(second)
    b1 = _bias(first, w1.shape[0], w1.device)
    b2 = _bias(second, w2.shape[0], w2.device)
    return w2 @ w1, w2 @ b1 + b2


def _after_tanh(wb: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, b)`` of a linear map applied to ``tanh(x)``, rewritten for ``sigmoid(2x)``.

    ``tanh(x) = 2 sigmoid(2x) - 1``, so ``W tanh(x) + b = (2W) sigmoid(2x) + (b - W 1)``. On the
    CPU ATen's sigmoid is several times faster than its tanh (measured 8x on 4096 x 60 floats),
    and the affine part costs nothing once folded into the weights.
    """
    w, b = wb
    return 2 * w, b - w.sum(dim=1)


def _prepare_ffn(norm_conv: Any, ffn: Any, cast: Callable) -> _GatedFFN:
    w, b = _after_tanh(_merge(norm_conv, ffn.project_in))
    hidden = w.shape[0] // 2
    dw = ffn.dwconv.weight.detach()
    dwb = ffn.dwconv.bias.detach() if ffn.dwconv.bias is not None else None
    out_b = ffn.project_out.bias
    return _GatedFFN(
        gate_in=cast(w[:hidden]), gate_bias=cast(b[:hidden]),
        value_in=cast(w[hidden:]), value_bias=cast(b[hidden:]),
        gate_dw=cast(dw[:hidden]), gate_dw_bias=None if dwb is None else cast(dwb[:hidden]),
        value_dw=cast(dw[hidden:]), value_dw_bias=None if dwb is None else cast(dwb[hidden:]),
        out=cast(_matrix(ffn.project_out)), out_bias=None if out_b is None else cast(out_b.detach()),
    )


def prepare(net: Any) -> PreparedDITN:
    """Fuse ``net``'s (a :class:`~.arch.DITN`) weights for :func:`fast_forward` (on its device, in its dtype)."""
    ref = next(net.parameters())

    def cast(t: Any) -> torch.Tensor:
        t = t.detach().to(ref.dtype)
        # Conv weights channels-last, as the channels-last features they meet.
        return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t.contiguous()

    def conv(m: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return cast(m.weight), cast(m.bias)

    blocks = []
    for ufone in net.UFONE:
        itls = []
        for itl in ufone.ITLs:
            w, b = _after_tanh(_merge(itl.conv1, itl.attn.qkv))
            pb = itl.attn.project_out.bias
            itls.append(_ITLWeights(
                qkv=cast(w), qkv_bias=cast(b), temperature=float(itl.attn.temperature.detach()),
                proj=cast(_matrix(itl.attn.project_out)),
                proj_bias=None if pb is None else cast(pb),
                ffn=_prepare_ffn(itl.conv2, itl.ffn, cast),
            ))
        sals = []
        for sal in ufone.SALs:
            sda = sal.SDA
            w, b = _after_tanh(_merge(sal.conv1, sda.proj_first[0]))
            c = w.shape[0] // 2
            scale = sda.scale.detach().double().reshape(-1)
            last = sda.proj_last[0]
            d5, d7, mix = sda.DConvs
            sals.append(_SALWeights(
                attn_in=cast(w[:c]), attn_in_bias=cast(b[:c]),
                value_in=cast(w[c:]), value_in_bias=cast(b[c:]),
                dw5=cast(d5.weight), dw5_bias=cast(d5.bias), dw7=cast(d7.weight), dw7_bias=cast(d7.bias),
                dw7_dilation=int(d7.dilation[0]),
                mix=cast(_matrix(mix)), mix_bias=cast(_bias(mix, c, w.device)),
                proj=cast(_matrix(last) * scale[:, None]),
                proj_bias=cast(_bias(last, c, w.device) * scale),
                ffn=_prepare_ffn(sal.conv2, sal.ffn, cast),
            ))
        blocks.append((itls, sals))
    return PreparedDITN(
        patch_size=net.patch_size, scale=net.scale, sft=conv(net.sft), blocks=blocks,
        body=conv(net.conv_after_body), upsample=conv(net.upsample[0]),
    )


# --- the forward pass, on channels-last features --------------------------------------------
def _norm_input(x: torch.Tensor) -> torch.Tensor:
    """The release's Tanh "norm" as its linear maps see it here: ``sigmoid(2x)`` (see :func:`_after_tanh`)."""
    return torch.sigmoid(x * 2)


def _ffn(k: Kernels, x: torch.Tensor, f: _GatedFFN, grid: tuple[int, int, int], core: slice | None = None) -> torch.Tensor:
    """``x + ffn(conv2(tanh(x)))`` for ``x`` ``[M, C]`` holding ``grid`` = (N, H, W) pixels;
    with ``core``, only for those rows (the others are the 3x3 conv's halo)."""
    t = _norm_input(x)
    shape = (*grid, -1)
    gate = k.conv(k.linear(t, f.gate_in, f.gate_bias).view(shape), f.gate_dw, f.gate_dw_bias, 1,
                  groups=f.gate_dw.shape[0], gelu=True)
    hidden = k.conv(k.linear(t, f.value_in, f.value_bias).view(shape), f.value_dw, f.value_dw_bias, 1,
                    groups=f.value_dw.shape[0], mul=gate)
    residual = x.view(shape)
    if core is not None:
        hidden, residual = hidden[:, core], residual[:, core]
    return k.linear_add(_pixels(hidden), f.out, f.out_bias, _pixels(residual))


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """``[N, H, W, C]`` -> ``[N*H*W, C]`` (a view for one image's row range)."""
    return x.reshape(-1, x.shape[-1])


def _itl(k: Kernels, x: torch.Tensor, w: _ITLWeights, patches: int, p: int) -> torch.Tensor:
    """One ITL on the patch tokens ``x`` ``[patches * p * p, C]``."""
    c = x.shape[1]
    qkv = k.linear(_norm_input(x), w.qkv, w.qkv_bias).view(patches, p * p, 3 * c)
    q, k_, v = qkv.split(c, dim=2)  # each [B, L, C]
    logits = q.transpose(1, 2) @ k_  # [B, C, C]: query channel x key channel
    # Square-sum-sqrt, not linalg.vector_norm: the same value, 15x faster on this strided view.
    norms = qkv[..., : 2 * c].square().sum(dim=1).sqrt_().clamp_min_(_EPS)  # [B, 2C]
    qn, kn = norms[:, :c], norms[:, c:]
    attention = logits.div_(qn.unsqueeze(2) * kn.unsqueeze(1)).mul_(w.temperature).softmax(dim=-1)
    out = (v @ attention.transpose(1, 2)).view(-1, c)  # [B*L, C]
    x = k.linear_add(out, w.proj, w.proj_bias, x)
    return _ffn(k, x, w.ffn, (patches, p, p))


def _sda(k: Kernels, x: torch.Tensor, w: _SALWeights, grid: tuple[int, int, int], core: slice | None = None) -> torch.Tensor:
    """``x + sda(conv1(tanh(x)))`` for ``x`` ``[M, C]`` holding ``grid`` pixels; with ``core``,
    only for those rows (the others are the depthwise convs' halo, :func:`_sda_halo`)."""
    t = _norm_input(x)
    shape = (*grid, -1)
    a = k.conv(k.linear(t, w.attn_in, w.attn_in_bias).view(shape), w.dw5, w.dw5_bias,
               w.dw5.shape[-1] // 2, groups=w.dw5.shape[0])
    a = dilated_depthwise(k, a, w.dw7, w.dw7_bias, w.dw7_dilation)
    t, residual = t.view(shape), x.view(shape)
    if core is not None:
        a, t, residual = a[:, core], t[:, core], residual[:, core]
    gated = k.linear_mul(_pixels(a), w.mix, w.mix_bias, k.linear(_pixels(t), w.value_in, w.value_in_bias))
    return k.linear_add(gated, w.proj, w.proj_bias, _pixels(residual))


def _sda_halo(w: _SALWeights) -> int:
    return w.dw5.shape[-1] // 2 + (w.dw7.shape[-1] // 2) * w.dw7_dilation


def _in_row_strips(layer: Callable, x: torch.Tensor, halo: int, pixels: int, out: torch.Tensor) -> None:
    """``layer`` (one of :func:`_sda`, :func:`_ffn`) over the map ``x`` ``[N, H, W, C]`` into
    ``out`` (same shape, not ``x``), a strip of about ``pixels`` pixels at a time.

    Each strip is computed from its rows plus ``halo`` rows on each side (zero padding only at
    the map's own edges), so every output row is exactly what the whole map would give. A strip's
    activations stay in cache and its buffers are reused, where a whole 1280x720 frame's would be
    freshly mapped pages on every op (measured: a third of the SALs' time went to page faults).
    """
    n, h, wd, c = x.shape
    rows = max(-(-pixels // (n * wd)), 2 * halo, 1)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        lo, hi = max(0, r0 - halo), min(h, r1 + halo)
        core = None if (lo, hi) == (r0, r1) else slice(r0 - lo, r1 - lo)
        part = layer(_pixels(x[:, lo:hi]), (n, hi - lo, wd), core)
        out[:, r0:r1] = part.view(n, r1 - r0, wd, c)


def _sal(k: Kernels, x: torch.Tensor, w: _SALWeights, spare: torch.Tensor, blocking: Blocking) -> None:
    """One SAL on the map ``x`` ``[N, H, W, C]``, in place (``spare``, the same shape, holds the
    half-way map)."""
    _in_row_strips(lambda t, grid, core: _sda(k, t, w, grid, core), x, _sda_halo(w),
                   blocking.sda_strip_pixels, spare)
    ffn_halo = w.ffn.gate_dw.shape[-1] // 2
    _in_row_strips(lambda t, grid, core: _ffn(k, t, w.ffn, grid, core), spare, ffn_halo,
                   blocking.ffn_strip_pixels, x)


def _itls(k: Kernels, x: torch.Tensor, itls: list[_ITLWeights], p: int, blocking: Blocking) -> torch.Tensor:
    """All ITLs of a UFONE block on the map ``x`` ``[N, H, W, C]`` -> a new map.

    The ITLs never mix patches, so they run on a few rows of patches at a time: each chunk
    is unfolded from the map, goes through every ITL while its activations stay in cache, and
    is folded straight into the output map (one copy each way, no whole-map patch buffer).
    """
    n, h, wd, c = x.shape
    out = torch.empty_like(x)
    as_patches = (n, h // p, p, wd // p, p, c)
    src = x.view(as_patches).permute(0, 1, 3, 2, 4, 5)  # [N, rows, cols, p, p, C], a view
    dst = out.view(as_patches).permute(0, 1, 3, 2, 4, 5)
    cols = wd // p
    rows = max(1, min(h // p, blocking.patches_per_chunk // cols))
    for b in range(n):
        for r0 in range(0, h // p, rows):
            r1 = min(h // p, r0 + rows)
            part = src[b, r0:r1].reshape(-1, c)  # unfold: one patch after another
            for itl in itls:
                part = _itl(k, part, itl, (r1 - r0) * cols, p)
            dst[b, r0:r1] = part.view(r1 - r0, cols, p, p, c)  # fold
    return out


def fast_forward(w: PreparedDITN, x: torch.Tensor, kernels: Kernels | None = None,
                 blocking: Blocking | None = None) -> torch.Tensor:
    """:meth:`DITN.forward` with prepared weights: ``[N, 3, H, W]`` -> ``[N, 3, s*H, s*W]``.

    ``kernels`` defaults to :func:`~.kernels.kernels_for` ``x``, ``blocking`` to
    :data:`CPU_BLOCKING` on a CPU and :data:`WHOLE_MAP` elsewhere.
    """
    k = kernels or kernels_for(x)
    blocking = blocking or (CPU_BLOCKING if x.device.type == "cpu" else WHOLE_MAP)
    h, wd = x.shape[-2:]
    p = w.patch_size
    x = reflect_pad_to_multiple(x, p).contiguous(memory_format=torch.channels_last)
    n, _, hp, wp = x.shape
    shallow = k.conv(x.permute(0, 2, 3, 1), *w.sft, 1).contiguous()  # [N, Hp, Wp, C]
    feat = shallow
    for itls, sals in w.blocks:
        feat = _itls(k, feat, itls, p, blocking)
        spare = torch.empty_like(feat)
        for sal in sals:
            _sal(k, feat, sal, spare, blocking)
    deep = k.conv(feat, *w.body, 1, add=shallow)
    out = F.pixel_shuffle(k.conv(deep, *w.upsample, 1).permute(0, 3, 1, 2).contiguous(), w.scale)
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

    # Outside any torch.compile graph: preparing reads version counters and data pointers and
    # computes in float64; the compiled forward starts from the prepared tensors.
    @torch.compiler.disable
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
