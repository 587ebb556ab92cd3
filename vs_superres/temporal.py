"""Temporal windows for video models.

A video model sees a window of ``length`` consecutive frames. Windows are laid on a fixed
grid: window ``k`` covers source frames ``[k*stride, k*stride + length)`` with
``stride = length - overlap``. Which windows a frame belongs to is a pure function of its
index, so the output of frame ``n`` never depends on which frame was asked for first (seeking,
``vspipe --start``, random-order requests all give the same frames).

Frames past the clip end are the last frame repeated. A scene cut inside a window splits it
into segments; each segment is run as a full-length window in which the positions belonging to
other scenes hold the segment's own edge frame, so no frame ever mixes with another scene and
every frame keeps its position in the window.

Frames covered by two windows are crossfaded: the weight of window ``k`` at position ``p`` is
``min(p + 1, length - p)`` (a triangle), normalised over the covering windows, which is a
linear ramp across each overlap.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from .errors import SuperResError


@dataclasses.dataclass(frozen=True)
class WindowSegment:
    """Part of a window that lies inside one scene.

    ``inputs`` are the source frame indices to feed the model (always ``length`` of them);
    positions ``start <= p < stop`` of the model's output are the segment's real frames.
    """

    inputs: tuple[int, ...]
    start: int
    stop: int


@dataclasses.dataclass(frozen=True)
class TemporalWindowPlan:
    """Fixed-grid temporal windows over a clip of ``num_frames`` frames."""

    num_frames: int
    length: int
    overlap: int = 0

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise SuperResError(f"the clip has {self.num_frames} frames; at least 1 is needed")
        if self.length < 1:
            raise SuperResError(f"window length must be >= 1, got {self.length}")
        if not 0 <= self.overlap < self.length:
            raise SuperResError(
                f"window overlap must be in [0, {self.length - 1}] for a window of "
                f"{self.length} frames, got {self.overlap}"
            )

    @property
    def stride(self) -> int:
        return self.length - self.overlap

    @property
    def num_windows(self) -> int:
        # The smallest K whose last window reaches the final frame.
        return max(1, -(-(self.num_frames - self.overlap) // self.stride))

    def _check_frame(self, n: int) -> None:
        if not 0 <= n < self.num_frames:
            raise SuperResError(f"frame {n} is outside the clip (0..{self.num_frames - 1})")

    def windows_of(self, n: int) -> list[int]:
        """Indices of the windows that cover frame ``n``, in increasing order."""
        self._check_frame(n)
        last = min(n // self.stride, self.num_windows - 1)
        first = max(0, -(-(n - self.length + 1) // self.stride))
        return list(range(first, last + 1))

    def frames_of(self, k: int) -> list[int]:
        """Source frame index for each position of window ``k`` (the clip end repeated)."""
        if not 0 <= k < self.num_windows:
            raise SuperResError(f"window {k} is outside the plan (0..{self.num_windows - 1})")
        start = k * self.stride
        return [min(i, self.num_frames - 1) for i in range(start, start + self.length)]

    def position(self, k: int, n: int) -> int:
        return n - k * self.stride

    def weights_of(self, n: int) -> list[tuple[int, float]]:
        """``(window, weight)`` pairs for frame ``n``; weights sum to one."""
        raw = []
        for k in self.windows_of(n):
            p = self.position(k, n)
            raw.append((k, float(min(p + 1, self.length - p))))
        total = sum(w for _, w in raw)
        return [(k, w / total) for k, w in raw]

    def frames_needed(self, n: int) -> list[int]:
        """All source frames that the windows of frame ``n`` read, sorted, unique."""
        needed: set[int] = set()
        for k in self.windows_of(n):
            needed.update(self.frames_of(k))
        return sorted(needed)

    def segments(self, k: int, scene_start: Callable[[int], bool] | Sequence[bool] | None) -> list[WindowSegment]:
        """Split window ``k`` at scene cuts.

        ``scene_start(i)`` (or ``scene_start[i]``) is True when source frame ``i`` begins a new
        scene. Only frames inside the window are consulted; a cut at the window's first
        position changes nothing.
        """
        frames = self.frames_of(k)
        if scene_start is None:
            return [WindowSegment(tuple(frames), 0, self.length)]
        is_start = scene_start if callable(scene_start) else scene_start.__getitem__
        bounds = [0]
        for p in range(1, self.length):
            if frames[p] != frames[p - 1] and bool(is_start(frames[p])):
                bounds.append(p)
        bounds.append(self.length)
        segs = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            inputs = [frames[a]] * a + frames[a:b] + [frames[b - 1]] * (self.length - b)
            segs.append(WindowSegment(tuple(inputs), a, b))
        return segs
