"""The texture prompt's networks (Sec. 3.3): the texture classifier T and the similarity-aware
texture encoder.

T is "pre-trained" in the paper (on DTD, we infer: the only reference the main text never
cites) and acts on latent patches; its feature (before the class head) gives RTM keys and
queries. Ours is a small latent CNN whose 256-d pooled feature is the key. The encoder turns the
top-K priors ``tp^k`` and their similarities ``s^k`` into prompt tokens: each prior is
patch-embedded, gets a position, a rank embedding (k) and ``MLP(s^k)`` added (this is what makes
it similarity-aware), and one self-attention layer mixes all K priors. It has no timestep input,
so it runs once per patch whatever the number of sampling steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vs_superres.models.patchscaler.patch_dit import patchify, sincos_2d


class TextureClassifier(nn.Module):
    """T: latent patch ``[B, c, V, V]`` -> feature ``[B, texture_dim]`` (:meth:`features`) -> class logits."""

    def __init__(self, channels: int = 4, width: int = 64, dim: int = 256, classes: int = 47):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.GELU(),
        )
        self.feature = nn.Linear(8 * width, dim)
        self.head = nn.Linear(dim, classes)

    def features(self, y: torch.Tensor) -> torch.Tensor:
        h = self.trunk(y)
        # mean and standard deviation over space: texture statistics rather than layout
        pooled = torch.cat([h.mean(dim=(2, 3)), h.flatten(2).std(dim=2, unbiased=False)], dim=1)
        return self.feature(pooled)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.head(F.gelu(self.features(y)))


class _EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SimilarityAwareTextureEncoder(nn.Module):
    """``(tp [B, K, c, V, V], s [B, K]) -> prompt [B, K * (V/p)^2, D]``, time-independent."""

    def __init__(self, channels: int = 4, patch_size: int = 16, dim: int = 768, heads: int = 12, top_k: int = 4,
                 patchify: int = 2, layers: int = 1):
        super().__init__()
        self.patchify = patchify
        self.embed = nn.Linear(channels * patchify * patchify, dim)
        grid = patch_size // patchify
        self.register_buffer("pos_embed", sincos_2d(dim, grid).unsqueeze(0).unsqueeze(0), persistent=False)
        self.rank_embed = nn.Parameter(torch.zeros(1, top_k, 1, dim))
        self.similarity_mlp = nn.Sequential(nn.Linear(1, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.layers = nn.ModuleList([_EncoderLayer(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.rank_embed, std=0.02)

    def forward(self, priors: torch.Tensor, similarities: torch.Tensor) -> torch.Tensor:
        b, k, c, v, _ = priors.shape
        tokens = self.embed(patchify(priors.reshape(b * k, c, v, v), self.patchify))
        tokens = tokens.reshape(b, k, -1, tokens.shape[-1]) + self.pos_embed + self.rank_embed[:, :k]
        tokens = tokens + self.similarity_mlp(similarities.to(tokens.dtype).unsqueeze(-1)).unsqueeze(2)
        x = tokens.reshape(b, -1, tokens.shape[-1])
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)
