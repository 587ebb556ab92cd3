"""The Global Restoration Module (Sec. 3.1) and its confidence-driven loss (Eq. 1).

The paper gives the GRM's job (remove degradations, capture long-range dependencies, output the
coarse latent ``y_HR`` and the confidence map ``C``) but not its architecture. Ours works on the
latent of the bicubic-upscaled input: residual blocks of a depthwise 3x3 convolution (local),
transposed (channel) self-attention (global: every position contributes to the attention map,
as in DITN/Restormer, at a cost linear in the number of pixels) and a gated feed-forward.
``y_HR = y_LR + g(.)`` with ``g``'s last convolution zero-initialised (an untrained GRM passes
the latent through) and ``C = sigmoid(h(.))`` in (0, 1), the domain Eq. 2 thresholds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: C is clamped before the log of Eq. 1 so a saturated sigmoid cannot give -inf.
CONFIDENCE_FLOOR = 1e-4


class ChannelAttention(nn.Module):
    """Transposed multi-head self-attention: a ``[d, d]`` attention map per head over all pixels."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1)
        self.qkv_dw = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.proj((attn @ v).reshape(b, c, h, w))


class GRMBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.local = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.attn = ChannelAttention(dim, heads)
        self.norm2 = nn.GroupNorm(1, dim)
        self.ffn_in = nn.Conv2d(dim, dim * 4, 1)
        self.ffn_out = nn.Conv2d(dim * 2, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h) + self.local(h)
        a, g = self.ffn_in(self.norm2(x)).chunk(2, dim=1)
        return x + self.ffn_out(a * F.gelu(g))


class GlobalRestorationModule(nn.Module):
    """``y_LR [B, c, h, w] -> (y_HR [B, c, h, w], C [B, 1, h, w] in (0, 1))``."""

    def __init__(self, channels: int = 4, dim: int = 96, blocks: int = 8, heads: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(channels, dim, 3, padding=1)
        self.body = nn.Sequential(*[GRMBlock(dim, heads) for _ in range(blocks)])
        self.to_residual = nn.Conv2d(dim, channels, 3, padding=1)
        self.to_confidence = nn.Sequential(nn.Conv2d(dim, dim // 2, 3, padding=1), nn.GELU(), nn.Conv2d(dim // 2, 1, 3, padding=1))
        nn.init.zeros_(self.to_residual.weight)
        if self.to_residual.bias is not None:
            nn.init.zeros_(self.to_residual.bias)

    def forward(self, y_lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.body(self.stem(y_lr))
        return y_lr + self.to_residual(feat), torch.sigmoid(self.to_confidence(feat))


def squared_error_map(y_hr: torch.Tensor, x_hr: torch.Tensor) -> torch.Tensor:
    """``||y_HR - x_HR||_2^2`` per latent pixel: the channel-summed squared error, ``[B, 1, h, w]``."""
    return (y_hr - x_hr).pow(2).sum(dim=1, keepdim=True)


def grm_loss(y_hr: torch.Tensor, confidence: torch.Tensor, x_hr: torch.Tensor, *, lam: float = 1.0,
             eta: float = 0.05) -> torch.Tensor:
    """Eq. 1: ``L = ||y_HR - x_HR||_1 + lambda * mean(C * ||y_HR - x_HR||_2^2 - eta * log C)``.

    The paper writes the first term ``||.||_1^2``; we read the square as a typo and take the mean
    absolute error (squaring an L1 norm of a whole latent would make its scale depend on the
    image size). ``C`` multiplies the per-pixel, channel-summed squared error. Per pixel the
    second term is minimised by ``C* = eta / e`` (clipped to 1 by the sigmoid), so confidence is
    high exactly where the coarse estimate is good. ``C`` is clamped to ``[1e-4, 1]`` before the log.
    """
    l1 = (y_hr - x_hr).abs().mean()
    c = confidence.clamp(CONFIDENCE_FLOOR, 1.0)
    return l1 + lam * (c * squared_error_map(y_hr, x_hr) - eta * torch.log(c)).mean()


def optimal_confidence(error: torch.Tensor, eta: float) -> torch.Tensor:
    """The pointwise minimiser of ``C e - eta log C`` on (0, 1]: ``min(1, eta / e)``."""
    return (eta / error.clamp_min(1e-12)).clamp(max=1.0)
