"""Patch-DiT (Sec. 3.3): a DiT over one V x V latent patch, conditioned on the timestep, the
coarse patch and the texture prompt.

The paper fixes: DiT blocks [34]; the texture prompt enters every block by cross-attention;
each cross-attention has "dimension-wise scaling parameters based on the time embedding". The
rest is ours (``docs/patchscaler.md``):

* input ``[y_t, y_0]`` concatenated on channels (the LDM-SR / ResShift convention): with
  ``sqrt(abar_1000) = 0.0064`` a hard patch starts from almost pure noise and would otherwise
  lose the image content;
* patchify ``p`` (2: 64 tokens for V = 16), fixed 2-D sin-cos positions, adaLN-Zero blocks;
* ``x += gamma(t) * CrossAttn(LN(x), prompt)`` with ``gamma(t) = Linear(SiLU(t_emb))`` in R^D,
  zero-initialised;
* ``x_0``-prediction as a residual, ``x0_hat = y_0 + r_theta``, with ``r_theta``'s projection
  zero-initialised: the untrained model returns ``y_0``, so untrained PatchScaler returns the
  GRM's coarse latent.

The prompt's per-block keys and values do not depend on ``t``: :meth:`PatchDiT.prompt_cache`
computes them once per patch and every sampling step reuses them.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """DiT's fixed 2-D sin-cos position table, ``[grid*grid, dim]`` (row-major tokens)."""
    def one_axis(d: int, pos: torch.Tensor) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        out = pos.double()[:, None] * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([one_axis(dim // 2, ys.flatten()), one_axis(dim // 2, xs.flatten())], dim=1).float()


def timestep_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps ``[B] -> [B, dim]`` (DiT's ``TimestepEmbedder``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _zero_linear(in_features: int, out_features: int) -> nn.Linear:
    lin = nn.Linear(in_features, out_features)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """``[B, C, H, W] -> [B, (H/p)(W/p), C p p]`` tokens, row-major (DiT's order)."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Attention(nn.Module):
    """Multi-head attention; ``kv`` given: cross-attention on precomputed ``(k, v)``."""

    def __init__(self, dim: int, heads: int, cross: bool = False):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.cross = cross

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.to_kv(context).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        q = self._split(self.to_q(x))
        k, v = kv if kv is not None else self.keys_values(x)
        out = F.scaled_dot_product_attention(q, k, v)
        b, h, n, d = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, h * d))


class PatchDiTBlock(nn.Module):
    """adaLN-Zero self-attention and MLP, plus the time-scaled texture cross-attention."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = Attention(dim, heads, cross=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), _zero_linear(dim, 6 * dim))
        #: gamma(t): the paper's "dimension-wise scaling parameters based on the time embedding"
        self.cross_scale = nn.Sequential(nn.SiLU(), _zero_linear(dim, dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor, prompt_kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate1.unsqueeze(1) * self.attn(_modulate(self.norm1(x), shift1, scale1))
        x = x + self.cross_scale(c).unsqueeze(1) * self.cross_attn(self.norm_cross(x), prompt_kv)
        return x + gate2.unsqueeze(1) * self.mlp(_modulate(self.norm2(x), shift2, scale2))


class PatchDiT(nn.Module):
    """``f_theta(y_t, t, y_0, prompt) -> x0_hat``, all patches ``[B, c, V, V]``.

    Shapes: ``y_t, y_0: [B, c, V, V]``; ``t: [B]`` integer steps in 1..T; ``prompt_kv``: from
    :meth:`prompt_cache` of a ``[B, L_p, D]`` texture prompt.
    """

    def __init__(self, channels: int = 4, patch_size: int = 16, dim: int = 768, depth: int = 12, heads: int = 12,
                 patchify: int = 2, mlp_ratio: float = 4.0, freq_dim: int = 256):
        super().__init__()
        self.channels, self.patchify, self.freq_dim = channels, patchify, freq_dim
        self.grid = patch_size // patchify
        # patchify as unfold + Linear, not a strided Conv2d: CPU convolution kernels change their
        # summation order with the batch size, token-level GEMMs do not (batch-size-invariant output)
        self.x_embed = nn.Linear(2 * channels * patchify * patchify, dim)
        self.register_buffer("pos_embed", sincos_2d(dim, self.grid).unsqueeze(0), persistent=False)
        self.t_embed = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList([PatchDiTBlock(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.adaLN_final = nn.Sequential(nn.SiLU(), _zero_linear(dim, 2 * dim))
        self.out = _zero_linear(dim, patchify * patchify * channels)

    def prompt_cache(self, prompt: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-block cross-attention ``(k, v)`` of a prompt: time-independent, computed once per patch."""
        return [cast(PatchDiTBlock, blk).cross_attn.keys_values(prompt) for blk in self.blocks]

    def forward(self, y_t: torch.Tensor, t: int | torch.Tensor, y0: torch.Tensor,
                prompt_kv: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``t``: an int shared by the batch (sampling: the time path runs once, on one row, and is
        broadcast, so no per-sample ``[B, D]`` GEMM whose rounding depends on B) or ``[B]`` steps (training)."""
        b = y_t.shape[0]
        x = self.x_embed(patchify(torch.cat([y_t, y0], dim=1), self.patchify)) + self.pos_embed
        steps = torch.tensor([t], device=x.device) if isinstance(t, int) else t
        c = self.t_embed(timestep_embedding(steps, self.freq_dim).to(x.dtype))
        for blk, kv in zip(self.blocks, prompt_kv):
            x = blk(x, c, kv)
        shift, scale = self.adaLN_final(c).chunk(2, dim=1)
        r = self.out(_modulate(self.norm_final(x), shift, scale))
        p, g = self.patchify, self.grid
        r = r.reshape(b, g, g, p, p, self.channels).permute(0, 5, 1, 3, 2, 4).reshape(b, self.channels, g * p, g * p)
        return y0 + r
