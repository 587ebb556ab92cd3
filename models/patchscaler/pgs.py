"""Patch-adaptive Group Sampling (Sec. 3.2): overlapping V x V latent patches, Eq. 2, stitching.

The paper says the coarse latent is cut into *overlapping* patches "to eliminate potential
boundary effects" but gives neither stride nor blending. Choices (``docs/patchscaler.md``):
stride 12 for V = 16; the last patch of each axis is aligned to the border (every latent pixel
is covered, no partial patches); a latent side shorter than V is padded by edge replication to
V and cropped afterwards; each patch is grouped by the average confidence over its own
footprint (padding excluded); the final ``x_0`` patches are blended once with StableSR's
Gaussian weights (variance 0.01 on the patch's unit square). Fusion at every step, as in
MultiDiffusion, is impossible here: neighbouring patches of different groups are at different
timesteps.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from vs_superres.contracts.errors import InvalidOption

SIMPLE, MEDIUM, HARD = "simple", "medium", "hard"
GROUP_NAMES = (SIMPLE, MEDIUM, HARD)
#: StableSR's Gaussian blending weights: mean 0.5, variance 0.01 on [0, 1).
GAUSSIAN_VARIANCE = 0.01


def axis_starts(length: int, patch: int, stride: int) -> list[int]:
    """Patch origins along one axis: ``0, stride, 2*stride, ...`` and a last one at ``length - patch``.

    ``length < patch`` gives ``[0]`` (the axis is padded to ``patch``).
    """
    if stride < 1 or stride > patch:
        raise InvalidOption(f"patch_stride must be in [1, {patch}] (V = {patch}) so patches overlap or touch, got {stride}",
                            option="patch_stride", model="patchscaler")
    if length <= patch:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


@dataclasses.dataclass(frozen=True)
class PatchGrid:
    """The overlapping patches of an ``h x w`` latent: ``origins[i] = (top, left)`` in the padded latent, row-major.

    ``padded`` is ``(max(h, V), max(w, V))``.
    """

    height: int
    width: int
    patch: int
    stride: int
    origins: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, height: int, width: int, patch: int = 16, stride: int = 12) -> "PatchGrid":
        ys, xs = axis_starts(height, patch, stride), axis_starts(width, patch, stride)
        return cls(height, width, patch, stride, tuple((y, x) for y in ys for x in xs))

    @property
    def padded(self) -> tuple[int, int]:
        return max(self.height, self.patch), max(self.width, self.patch)

    def __len__(self) -> int:
        return len(self.origins)

    def pad(self, latent: torch.Tensor) -> torch.Tensor:
        """``[B, c, h, w] -> [B, c, H', W']`` by edge replication (sides shorter than V only)."""
        ph, pw = self.padded[0] - self.height, self.padded[1] - self.width
        if ph == pw == 0:
            return latent
        return F.pad(latent, (0, pw, 0, ph), mode="replicate")

    def extract(self, latent: torch.Tensor) -> torch.Tensor:
        """``[c, h, w]`` latent (unpadded) -> ``[M, c, V, V]`` patches."""
        x = self.pad(latent.unsqueeze(0))[0]
        v = self.patch
        return torch.stack([x[:, y:y + v, x0:x0 + v] for y, x0 in self.origins])

    def footprint_means(self, confidence: torch.Tensor) -> torch.Tensor:
        """``Avg(C<y_0,i>)`` of Eq. 2 for every patch, over the real (unpadded) latent pixels only: ``[M]`` float64."""
        c = confidence.reshape(self.height, self.width).double()
        v = self.patch
        return torch.stack([c[y:y + v, x:x + v].mean() for y, x in self.origins])

    def stitch(self, patches: torch.Tensor) -> torch.Tensor:
        """``[M, c, V, V]`` -> ``[c, h, w]``: Gaussian-weighted average of overlapping patches, accumulated in float64.

        Untouched patches of a latent reassemble it exactly: every pixel is a weighted mean of
        copies of one float32 value, and the float64 mean rounds back to it.
        """
        c, v = patches.shape[1], self.patch
        hp, wp = self.padded
        acc = torch.zeros(c, hp, wp, dtype=torch.float64, device=patches.device)
        norm = torch.zeros(1, hp, wp, dtype=torch.float64, device=patches.device)
        w = gaussian_weights(v, device=patches.device)
        for p, (y, x) in zip(patches.double(), self.origins):
            acc[:, y:y + v, x:x + v] += p * w
            norm[:, y:y + v, x:x + v] += w
        return (acc / norm)[:, : self.height, : self.width].to(patches.dtype)


def gaussian_weights(size: int, variance: float = GAUSSIAN_VARIANCE, device=None) -> torch.Tensor:
    """StableSR's ``[size, size]`` blending weights (float64): ``exp(-(u - 0.5)^2 / (2 var))`` per axis, u = i / size."""
    u = torch.arange(size, dtype=torch.float64, device=device) / size
    g = torch.exp(-((u - 0.5) ** 2) / (2 * variance)) / math.sqrt(2 * math.pi * variance)
    return torch.outer(g, g)


def qmap(avg_confidence: float, gamma_simple: float = 0.95, gamma_medium: float = 0.75) -> str:
    """Eq. 2: ``(gamma1, 1]`` -> simple, ``(gamma2, gamma1]`` -> medium, ``[0, gamma2]`` -> hard."""
    a = float(avg_confidence)
    if not 0.0 <= a <= 1.0 or math.isnan(a):
        raise ValueError(f"Avg(C) must be in [0, 1] (a confidence map is a sigmoid output), got {a}")
    if a > gamma_simple:
        return SIMPLE
    if a > gamma_medium:
        return MEDIUM
    return HARD


def assign_groups(avg_confidence: torch.Tensor, gamma_simple: float = 0.95, gamma_medium: float = 0.75) -> dict[str, list[int]]:
    """Patch indices of each group (every group present, possibly empty), ascending."""
    groups: dict[str, list[int]] = {g: [] for g in GROUP_NAMES}
    for i, a in enumerate(avg_confidence.tolist()):
        groups[qmap(a, gamma_simple, gamma_medium)].append(i)
    return groups
