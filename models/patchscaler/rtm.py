"""The Reference Texture Memory (Sec. 3.3): built offline by farthest-point sampling, queried by
Algorithm 1.

RTM-value: latent texture patches ``[R, c, V, V]``; RTM-key: ``Normalize(T(RTM-value))``
``[R, D]``. The paper samples "on both RTM-value and RTM-key"; we run farthest-point sampling on
the concatenation ``[key, Normalize(flatten(value))]`` (both parts unit-norm, so neither
dominates), starting from candidate 0, ties to the lowest index.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F


@dataclasses.dataclass(frozen=True)
class ReferenceTextureMemory:
    """``keys [R, D]`` (unit rows) and ``values [R, c, V, V]``."""

    keys: torch.Tensor
    values: torch.Tensor

    def __len__(self) -> int:
        return self.keys.shape[0]

    def to(self, device, dtype=None) -> "ReferenceTextureMemory":
        return ReferenceTextureMemory(self.keys.to(device, dtype), self.values.to(device, dtype))


def farthest_point_sampling(points: torch.Tensor, count: int, start: int = 0) -> torch.Tensor:
    """Greedy max-min selection of ``count`` rows of ``points [N, D]``; returns their indices ``[count]``.

    Each step takes the point whose distance to the nearest already chosen point is largest
    (the first such index on ties). Distances in float64.
    """
    n = points.shape[0]
    if not 1 <= count <= n:
        raise ValueError(f"farthest-point sampling needs 1 <= count <= {n}, got {count}")
    pts = points.double()
    chosen = torch.empty(count, dtype=torch.long)
    chosen[0] = start
    nearest = (pts - pts[start]).pow(2).sum(1)
    for i in range(1, count):
        j = int(torch.argmax(nearest))
        chosen[i] = j
        nearest = torch.minimum(nearest, (pts - pts[j]).pow(2).sum(1))
    return chosen


def fps_features(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """What FPS runs on: ``[Normalize(key), Normalize(flatten(value))]``."""
    return torch.cat([F.normalize(keys.double(), dim=1), F.normalize(values.flatten(1).double(), dim=1)], dim=1)


@torch.no_grad()
def build_rtm(values: torch.Tensor, classifier, count: int, batch: int = 512) -> ReferenceTextureMemory:
    """The offline build: keys ``Normalize(T(values))`` of every candidate, then FPS down to ``count``."""
    keys = torch.cat([classifier.features(values[i:i + batch]) for i in range(0, values.shape[0], batch)])
    keys = F.normalize(keys.float(), dim=1)
    chosen = farthest_point_sampling(fps_features(keys, values), count)
    return ReferenceTextureMemory(keys[chosen].contiguous(), values[chosen].float().contiguous())


def retrieve(query_features: torch.Tensor, rtm: ReferenceTextureMemory, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1 on a batch of queries ``y_0-query = T(y_0)``, ``[B, D]``.

    ``s_i = <RTM-key_i, Normalize(y_0-query)>``, ranked; returns the top-K texture priors
    ``tp^k = RTM-value[d^k]`` ``[B, K, c, V, V]`` and similarities ``s^k`` ``[B, K]`` (descending).
    """
    s = F.normalize(query_features.to(rtm.keys.dtype), dim=1) @ rtm.keys.T
    k = min(top_k, len(rtm))
    sims, idx = torch.topk(s, k, dim=1, largest=True, sorted=True)
    return rtm.values[idx], sims
