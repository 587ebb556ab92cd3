"""DITN: "Unfolding Once is Enough: A Deployment-Friendly Transformer Unit for Super-Resolution".

Liu et al., ACM MM 2023; authors' release ``yongliuy/DITN`` (Apache-2.0). This is an
independent implementation of the released "DITN_Real" variant, written from the paper and
the published facts of the release. Attribute names follow the paper and the released
checkpoints, so the official state dicts load with ``strict=True`` and no key renaming.

Network (all convolutions keep the spatial size)::

    x [N, 3, H, W] in [0, 1]
      -> reflect-pad H, W up to a multiple of ``patch_size``       [N, 3, Hp, Wp]
      -> sft: 3x3 conv                                              [N, dim, Hp, Wp]
      -> UFONE blocks (unfold once into patches, ITLs, fold, SALs)  [N, dim, Hp, Wp]
      -> conv_after_body: 3x3 conv, plus the sft output (skip)      [N, dim, Hp, Wp]
      -> upsample: 3x3 conv to 3*s*s channels, PixelShuffle(s)      [N, 3, s*Hp, s*Wp]
      -> crop                                                       [N, 3, s*H, s*W]

There is no mean shift, no global image skip and no output clamp (the engine clamps).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from vs_superres.contracts.errors import SuperResError

from vs_superres.models.ditn.family import DITNConfig

#: The released networks always predict RGB, whatever ``in_channels`` is.
OUT_CHANNELS = 3


class GatedFeedForward(nn.Module):
    """Gated depthwise feed-forward network (Restormer's GDFN).

    ``[B, C, h, w] -> [B, C, h, w]``: 1x1 conv to ``2 * hidden`` channels, depthwise 3x3 conv,
    split into (gate, value), ``GELU(gate) * value``, 1x1 conv back to C.
    """

    def __init__(self, dim: int, expansion: float, bias: bool) -> None:
        super().__init__()
        # int() like the release; the epsilon keeps a read-back ratio (hidden / dim, which
        # may be a rounded float) from landing one channel short.
        hidden = int(dim * expansion + 1e-6)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(
            hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias
        )
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class InnerPatchSelfAttention(nn.Module):
    """Single-head channel ("transposed") self-attention inside one patch.

    ``[B, C, p, p] -> [B, C, p, p]`` where B counts patches. The p*p pixels are the tokens;
    attention is a C x C matrix between L2-normalised query and key channels (normalised
    over the pixels), scaled by the learned scalar ``temperature``.
    """

    def __init__(self, dim: int, bias: bool) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(1, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3)  # always with bias in the release
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.reshape(b, c, h * w).transpose(1, 2)  # [B, L, C]
        q, k, v = self.qkv(tokens).transpose(1, 2).chunk(3, dim=1)  # each [B, C, L]
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attention = (q @ k.transpose(1, 2) * self.temperature).softmax(dim=-1)  # [B, C, C]
        return self.project_out((attention @ v).reshape(b, c, h, w))


class SpatialDilatedAttention(nn.Module):
    """The SAL's large-kernel spatial attention ("SDA").

    ``[B, C, H, W] -> [B, C, H, W]``: ``proj_first`` (1x1, C -> 2C) splits into an attention
    branch ``a`` and a value branch ``v``; ``a`` passes ``DConvs`` (depthwise 5x5, depthwise
    7x7 dilated by 3, 1x1); the output is ``proj_last(v * a) * scale``. ``scale`` starts at
    zero, so an untrained SDA is the identity inside the residual. Receptive radius: 2 + 9.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.DConvs = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=5, padding=2, groups=dim),
            nn.Conv2d(dim, dim, kernel_size=7, padding=9, dilation=3, groups=dim),
            nn.Conv2d(dim, dim, kernel_size=1),
        )
        self.proj_first = nn.Sequential(nn.Conv2d(dim, dim * 2, kernel_size=1))
        self.proj_last = nn.Sequential(nn.Conv2d(dim, dim, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, v = self.proj_first(x).chunk(2, dim=1)
        return self.proj_last(v * self.DConvs(a)) * self.scale


class ITL(nn.Module):
    """Inner-patch Transformer Layer: ``[B, C, p, p] -> [B, C, p, p]`` (B counts patches).

    The deployment-friendly normalisation is Tanh followed by a 1x1 conv (``conv1`` before
    the attention, ``conv2`` before the feed-forward), in place of LayerNorm.
    """

    def __init__(self, dim: int, expansion: float, bias: bool) -> None:
        super().__init__()
        self.attn = InnerPatchSelfAttention(dim, bias)
        self.act = nn.Tanh()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=1)
        self.ffn = GatedFeedForward(dim, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.conv1(self.act(x)))
        return x + self.ffn(self.conv2(self.act(x)))


class SAL(nn.Module):
    """Spatial-Aware Layer on the full feature map: ``[B, C, H, W] -> [B, C, H, W]``.

    Receptive radius 12 pixels (SDA 11, feed-forward depthwise 3x3 1).
    """

    def __init__(self, dim: int, expansion: float, bias: bool) -> None:
        super().__init__()
        self.SDA = SpatialDilatedAttention(dim)
        self.ffn = GatedFeedForward(dim, expansion, bias)
        self.act = nn.Tanh()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.SDA(self.conv1(self.act(x)))
        return x + self.ffn(self.conv2(self.act(x)))


class UFONE(nn.Module):
    """UnFolding ONce is Enough block: ``[N, C, H, W] -> [N, C, H, W]``, H and W multiples of p.

    The map is unfolded once into non-overlapping p x p patches ``[N*(H/p)*(W/p), C, p, p]``,
    all ITLs run on the patches, the patches are folded back, then all SALs run on the map.
    """

    def __init__(self, dim: int, expansion: float, bias: bool, num_itl: int, num_sal: int,
                 patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.ITLs = nn.Sequential(*[ITL(dim, expansion, bias) for _ in range(num_itl)])
        self.SALs = nn.Sequential(*[SAL(dim, expansion, bias) for _ in range(num_sal)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.patch_size
        patches = (
            x.reshape(n, c, h // p, p, w // p, p)
            .permute(0, 2, 4, 1, 3, 5)
            .reshape(-1, c, p, p)
        )
        patches = self.ITLs(patches)
        x = (
            patches.reshape(n, h // p, w // p, c, p, p)
            .permute(0, 3, 1, 4, 2, 5)
            .reshape(n, c, h, w)
        )
        return self.SALs(x)


def reflect_pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``[N, C, H, W]`` so H and W become multiples of ``multiple``.

    Uses reflection (mirror without repeating the edge pixel), exactly like the release, which
    calls ``F.pad(..., "reflect")`` once. That call needs ``pad < size``; for smaller inputs
    (e.g. 3x3 with patch 8) the reflection is applied repeatedly, which extends the same
    mirror pattern periodically, and a side of one pixel is replicated. For every size the
    release can run, the result is identical to it.
    """
    for dim in (-2, -1):
        pad = -x.shape[dim] % multiple
        while pad > 0:
            size = x.shape[dim]
            step = pad if size == 1 else min(pad, size - 1)
            widths = (0, 0, 0, step) if dim == -2 else (0, step, 0, 0)
            x = F.pad(x, widths, mode="replicate" if size == 1 else "reflect")
            pad -= step
    return x


class DITN(nn.Module):
    """DITN super-resolution network (the released "DITN_Real" layout).

    Args:
        in_channels: input channels (3, RGB).
        dim: feature channels.
        num_itl: ITL blocks per UFONE block.
        num_sal: SAL blocks per UFONE block.
        num_ufone: UFONE blocks.
        ffn_expansion: hidden width of the feed-forward networks, as a multiple of ``dim``.
        bias: bias in the attention output projection and the feed-forward convolutions.
        patch_size: side of the ITL patches; inputs are padded to a multiple of it.
        upscale: scale factor s (2, 3, 4, ...).
    """

    def __init__(self, in_channels: int = 3, dim: int = 60, num_itl: int = 4, num_sal: int = 4,
                 num_ufone: int = 1, ffn_expansion: float = 2, bias: bool = False,
                 patch_size: int = 8, upscale: int = 4) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.scale = upscale
        self.sft = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1)
        self.UFONE = nn.Sequential(*[
            UFONE(dim, ffn_expansion, bias, num_itl, num_sal, patch_size)
            for _ in range(num_ufone)
        ])
        self.conv_after_body = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.upsample = nn.Sequential(
            nn.Conv2d(dim, OUT_CHANNELS * upscale * upscale, kernel_size=3, padding=1),
            nn.PixelShuffle(upscale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` ``[N, in_channels, H, W]`` (RGB in [0, 1]) to ``[N, 3, s*H, s*W]``.

        Any H, W >= 1 is accepted. The output is not clamped.
        """
        h, w = x.shape[-2:]
        x = reflect_pad_to_multiple(x, self.patch_size)
        shallow = self.sft(x)
        deep = self.conv_after_body(self.UFONE(shallow))
        out = self.upsample(deep + shallow)
        return out[:, :, : h * self.scale, : w * self.scale]


def build(config: DITNConfig | Mapping[str, Any] = DITNConfig()) -> DITN:
    """Build a :class:`DITN` from a :class:`~.family.DITNConfig`, or a mapping of some of its
    fields (the others take the release's values, the config's defaults)."""
    if not isinstance(config, DITNConfig):
        known = [f.name for f in dataclasses.fields(DITNConfig)]
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise SuperResError(
                f"DITN config has unknown keys {unknown}; expected a subset of "
                f"{sorted(known)}; remove or rename them."
            )
        config = DITNConfig(**config)
    return DITN(**config.to_dict())


def _count_indices(state_dict: Mapping[str, Any], prefix: str) -> int:
    indices = {
        int(key[len(prefix):].split(".", 1)[0])
        for key in state_dict
        if key.startswith(prefix) and key[len(prefix):].split(".", 1)[0].isdigit()
    }
    return max(indices) + 1 if indices else 0


def config_from_state_dict(state_dict: Mapping[str, Any]) -> DITNConfig:
    """Read the DITN hyperparameters back from a checkpoint's tensor shapes and key counts.

    Accepts the plain state dict (keys as in the release). ``patch_size`` is not stored in
    the weights, so the release's value (the config's default, 8) is kept.
    """
    required = ("sft.weight", "upsample.0.weight")
    missing = [k for k in required if k not in state_dict]
    if missing:
        raise SuperResError(
            f"not a DITN state dict: missing {missing}; expected the keys of the official "
            "DITN release (sft.*, UFONE.*, conv_after_body.*, upsample.0.*); unwrap "
            "'params'/'state_dict' and strip 'module.' prefixes first, or pick the right "
            "architecture."
        )
    dim, in_channels = state_dict["sft.weight"].shape[:2]
    rows = state_dict["upsample.0.weight"].shape[0]
    upscale = math.isqrt(rows // OUT_CHANNELS)
    if OUT_CHANNELS * upscale * upscale != rows:
        raise SuperResError(
            f"DITN upsample.0.weight has {rows} output channels; expected 3 * s * s for an "
            "integer scale s; the checkpoint is not a DITN_Real-style model."
        )
    project_in = next(
        (v for k, v in state_dict.items() if k.endswith("ffn.project_in.weight")), None
    )
    release = DITNConfig()
    expansion: float = release.ffn_expansion
    if project_in is not None:
        expansion = project_in.shape[0] / 2 / dim
        if expansion.is_integer():
            expansion = int(expansion)
    bias = any(
        k.endswith(("attn.project_out.bias", "ffn.project_in.bias")) for k in state_dict
    )
    return dataclasses.replace(
        release,
        in_channels=int(in_channels),
        dim=int(dim),
        num_itl=_count_indices(state_dict, "UFONE.0.ITLs."),
        num_sal=_count_indices(state_dict, "UFONE.0.SALs."),
        num_ufone=_count_indices(state_dict, "UFONE."),
        ffn_expansion=expansion,
        bias=bias,
        upscale=int(upscale),
    )
