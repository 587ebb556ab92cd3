"""Where a picture has the most detail: the squares a report shows at full resolution.

Detail is the local gradient energy of the luma (the sum of squared horizontal and vertical
differences inside a square); the chosen squares are the highest-scoring ones on a grid of
half-square steps that do not overlap each other. Flat sky and blurred background score low,
edges and texture high, which is where upscalers differ.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Region:
    """A square of the displayed picture: ``x``, ``y`` (top-left), ``size`` in pixels, and its
    ``energy`` (mean squared luma gradient inside, luma in [0, 1])."""

    x: int
    y: int
    size: int
    energy: float


def gradient_energy(rgb: np.ndarray) -> np.ndarray:
    """``[H, W]`` float64: squared luma differences to the right and below (0 at the edges)."""
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    energy = np.zeros(y.shape, dtype=np.float64)
    energy[:, :-1] += np.diff(y, axis=1) ** 2
    energy[:-1, :] += np.diff(y, axis=0) ** 2
    return energy


def crop_size(width: int, height: int, wanted: int = 256) -> int:
    """The square's side: ``wanted``, or less so that two fit across the shorter side."""
    return max(8, min(wanted, width // 2, height // 2)) if min(width, height) >= 16 else min(width, height)


def most_detailed(energy: np.ndarray, count: int, size: int) -> list[Region]:
    """The ``count`` non-overlapping ``size`` squares with the most gradient energy."""
    h, w = energy.shape
    size = min(size, h, w)
    step = max(1, size // 2)
    integral = np.zeros((h + 1, w + 1), dtype=np.float64)
    integral[1:, 1:] = energy.cumsum(0).cumsum(1)
    ys = sorted(set(list(range(0, h - size + 1, step)) + [h - size]))
    xs = sorted(set(list(range(0, w - size + 1, step)) + [w - size]))
    scored = []
    for y in ys:
        for x in xs:
            total = integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x] + integral[y, x]
            scored.append((total / (size * size), y, x))
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    chosen: list[Region] = []
    for score, y, x in scored:
        if len(chosen) == count:
            break
        if all(abs(x - r.x) >= size or abs(y - r.y) >= size for r in chosen):
            chosen.append(Region(x, y, size, float(score)))
    return chosen
