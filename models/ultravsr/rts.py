"""Recurrent Temporal Shift (RTS), the temporal module of UltraVSR (paper section 3.3).

An :class:`RTSModule` runs an RTS-convolution unit (:class:`RTSConvBlock`) and then an
RTS-attention unit (:class:`RTSAttenBlock`) on the frames of one clip. Both units are
residual, and both end in a zero-initialised projection, so a freshly built module is the
identity except for the constant that RTSConv adds when its inputs are all zero.

The behaviour follows the released UltraVSR weights, not the paper's equations:

* RTSConv shifts the first third of the reduced channels forward in time (frame ``t`` sees
  frame ``t-1``) and the last third backward (frame ``t`` sees ``t+1``). **The middle third is
  left at zero** instead of carrying the current frame, and a missing neighbour (first/last
  frame) is zero. The activation is SiLU.
* RTSAttn sums channel ("transposed") attention of the current frame's queries against the
  previous and the next frame's keys/values. The current-frame term of the paper is exactly
  zero in the released code and is therefore left out; a missing neighbour adds zero. With one
  frame the attention unit is the identity.

Tensor layout: ``[T, C, H, W]`` (the frames of one clip; batch 1). Each unit also accepts a
list of frame chunks ``[[t_i, C, H, W], ...]`` -- the Temporally Asynchronous Inference (TAI)
path: the convolutions run chunk by chunk, while the shift and the neighbour attention see the
chunks concatenated over time, so temporal mixing crosses chunk boundaries. The output is then
a new list with the same chunk sizes; the caller's list is never modified.

Channel widths (``C = nhidden``): the convolution unit works at ``h1 = floor(C/30)*3`` channels
and the attention unit at ``a = floor(C/96)*24`` (q, k and v take ``a/3`` each, over 8 heads),
so ``C`` must be at least 96.
"""

from __future__ import annotations

import numbers
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from vs_superres.contracts.errors import InternalError, SuperResError

__all__ = [
    "RTSAttenBlock",
    "RTSConvBlock",
    "RTSModule",
    "attention_width",
    "conv_width",
    "MIN_RTS_CHANNELS",
]

Frames = Union[torch.Tensor, Sequence[torch.Tensor]]

CONV_LORA_RATIO = 10
ATTEN_LORA_RATIO = 4
ATTEN_HEADS = 8
MIN_RTS_CHANNELS = ATTEN_LORA_RATIO * 3 * ATTEN_HEADS  # 96: smallest C with a > 0


def conv_width(nhidden: int) -> int:
    """Hidden width ``h1`` of the RTS-convolution unit: ``floor(C/10)`` rounded down to a multiple of 3."""
    return (nhidden // (CONV_LORA_RATIO * 3)) * 3


def attention_width(nhidden: int) -> int:
    """Width ``a`` of the RTS-attention q/k/v projection: ``floor(C/4)`` rounded down to a multiple of 24."""
    group = 3 * ATTEN_HEADS
    return (nhidden // (ATTEN_LORA_RATIO * group)) * group


def _check_channels(nhidden: int) -> None:
    if not isinstance(nhidden, numbers.Integral) or nhidden < MIN_RTS_CHANNELS:
        raise SuperResError(
            f"an RTS module needs at least {MIN_RTS_CHANNELS} channels, got {nhidden!r}; its attention "
            f"width floor(C/96)*24 would be 0. Use block_out_channels of {MIN_RTS_CHANNELS} or more "
            "for every block that carries an RTS module."
        )


def _as_chunks(x: Frames) -> tuple[list[torch.Tensor], bool]:
    """Return ``(chunks, given_as_list)``; a tensor is one chunk. The input list is not modified."""
    if isinstance(x, torch.Tensor):
        chunks = [x]
        given_as_list = False
    else:
        chunks = list(x)
        given_as_list = True
        if not chunks:
            raise InternalError("RTS got an empty list of frame chunks; pass at least one [t, C, H, W] tensor.")
    for c in chunks:
        if not isinstance(c, torch.Tensor) or c.dim() != 4:
            raise InternalError(
                "RTS expects frames shaped [T, C, H, W] (or a list of such chunks); "
                f"got {type(c).__name__} with shape {tuple(getattr(c, 'shape', ()))}."
            )
    first = chunks[0].shape[1:]
    if any(c.shape[1:] != first for c in chunks[1:]):
        raise InternalError(
            "RTS frame chunks must share channels and size; got shapes "
            f"{[tuple(c.shape) for c in chunks]}."
        )
    return chunks, given_as_list


def _residual(x: torch.Tensor, delta: torch.Tensor, inplace: bool) -> torch.Tensor:
    return x.add_(delta) if inplace else x + delta


def _return_like(outs: list[torch.Tensor], given_as_list: bool) -> Frames:
    return outs if given_as_list else outs[0]


class RTSConvBlock(nn.Module):
    """RTS-convolution unit: reduce channels, shift thirds in time, 3x3 conv + SiLU, expand, add.

    Parameters: ``conv1`` (C->h1, 1x1, no bias), ``conv_blocks`` (``0``: h1->h1 3x3 with bias,
    ``1``: SiLU), ``conv3`` (h1->C, 1x1, no bias, zero-initialised).
    """

    def __init__(self, nhidden: int) -> None:
        super().__init__()
        _check_channels(nhidden)
        hidden = conv_width(nhidden)
        self.nhidden = int(nhidden)
        self.hidden = hidden
        self.conv1 = nn.Conv2d(nhidden, hidden, kernel_size=1, bias=False)
        self.conv_blocks = nn.Sequential(nn.Conv2d(hidden, hidden, kernel_size=3, padding=1), nn.SiLU())
        self.conv3 = nn.Conv2d(hidden, nhidden, kernel_size=1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default conv initialisation, then the zero output projection."""
        self.conv1.reset_parameters()
        self.conv_blocks[0].reset_parameters()  # type: ignore[operator]  # an nn.Conv2d in a ModuleList
        nn.init.zeros_(self.conv3.weight)

    @staticmethod
    def temporal_shift(y: torch.Tensor) -> torch.Tensor:
        """Shift ``y`` ``[T, h1, H, W]`` as the released code does.

        Output frame ``t``: first third from frame ``t-1``, last third from frame ``t+1``,
        middle third zero; neighbours past either end are zero.
        """
        third = y.shape[1] // 3
        shifted = torch.zeros_like(y)
        if y.shape[0] > 1:
            shifted[1:, :third] = y[:-1, :third]
            shifted[:-1, y.shape[1] - third :] = y[1:, y.shape[1] - third :]
        return shifted

    def forward(self, x: Frames, inplace: bool = False) -> Frames:
        """``x``: ``[T, C, H, W]`` or a list of chunks; returns the same form (a new list).

        ``inplace=True`` adds the residual into the input tensors (inference only, and only
        where nothing else holds them: the UNet's down path shares them with skip connections).
        """
        chunks, given_as_list = _as_chunks(x)
        sizes = [c.shape[0] for c in chunks]
        reduced = torch.cat([self.conv1(c) for c in chunks], dim=0)
        shifted = self.temporal_shift(reduced).split(sizes, dim=0)
        del reduced
        outs = [_residual(c, self.conv3(self.conv_blocks(s)), inplace) for c, s in zip(chunks, shifted)]
        return _return_like(outs, given_as_list)


class RTSAttenBlock(nn.Module):
    """RTS-attention unit: channel attention of each frame against its two neighbours.

    Parameters: ``temperature`` (8, 1, 1), ones; ``qkv`` (C->a, 1x1, no bias); ``qkv_dwconv``
    (depthwise 3x3 on a channels, with bias); ``project_out`` (a/3->C, 1x1, no bias,
    zero-initialised).
    """

    def __init__(self, nhidden: int, num_heads: int = ATTEN_HEADS) -> None:
        super().__init__()
        _check_channels(nhidden)
        width = attention_width(nhidden)
        self.nhidden = int(nhidden)
        self.width = width
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(nhidden, width, kernel_size=1, bias=False)
        self.qkv_dwconv = nn.Conv2d(width, width, kernel_size=3, padding=1, groups=width)
        self.project_out = nn.Conv2d(width // 3, nhidden, kernel_size=1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Temperature ones, default conv initialisation, zero output projection."""
        with torch.no_grad():
            self.temperature.fill_(1.0)
        self.qkv.reset_parameters()
        self.qkv_dwconv.reset_parameters()
        nn.init.zeros_(self.project_out.weight)

    def _neighbour_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Sum over the previous and next frame of softmax(q k^T * temperature) v; q, k, v: [T, heads, c, HW]."""
        out = torch.zeros_like(q)
        if q.shape[0] < 2:
            return out  # no neighbours: every term is exactly zero in the released code
        temperature = self.temperature.to(q.dtype)
        prev = torch.softmax(q[1:] @ k[:-1].transpose(-2, -1) * temperature, dim=-1) @ v[:-1]
        nxt = torch.softmax(q[:-1] @ k[1:].transpose(-2, -1) * temperature, dim=-1) @ v[1:]
        out[1:] += prev
        out[:-1] += nxt
        return out

    def forward(self, x: Frames, inplace: bool = False) -> Frames:
        """``x``: ``[T, C, H, W]`` or a list of chunks; returns the same form (a new list).

        ``inplace``: as for :class:`RTSConvBlock`.
        """
        chunks, given_as_list = _as_chunks(x)
        sizes = [c.shape[0] for c in chunks]
        qkv = torch.cat([self.qkv_dwconv(self.qkv(c)) for c in chunks], dim=0)
        frames, _, height, width = qkv.shape
        q, k, v = (
            t.reshape(frames, self.num_heads, -1, height * width) for t in qkv.chunk(3, dim=1)
        )
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        del qkv
        mixed = self._neighbour_attention(q, k, v).reshape(frames, -1, height, width)
        del q, k, v
        outs = [_residual(c, self.project_out(m), inplace) for c, m in zip(chunks, mixed.split(sizes, dim=0))]
        return _return_like(outs, given_as_list)


class RTSModule(nn.Module):
    """One RTS insertion point: ``RTSAtten(RTSConv(x))`` on ``[T, C, H, W]`` or a list of chunks."""

    def __init__(self, nhidden: int) -> None:
        super().__init__()
        _check_channels(nhidden)
        self.nhidden = int(nhidden)
        self.RTSConv = RTSConvBlock(nhidden)
        self.RTSAtten = RTSAttenBlock(nhidden)

    def reset_parameters(self) -> None:
        self.RTSConv.reset_parameters()
        self.RTSAtten.reset_parameters()

    def forward(self, x: Frames, inplace: bool = False) -> Frames:
        """``inplace=True`` reuses the input tensors for the output (see :class:`RTSConvBlock`)."""
        return self.RTSAtten(self.RTSConv(x, inplace=inplace), inplace=inplace)

    def extra_repr(self) -> str:
        c = self.nhidden
        return f"nhidden={c}, conv_width={conv_width(c)}, attention_width={attention_width(c)}"
