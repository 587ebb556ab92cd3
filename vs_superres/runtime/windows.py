"""Temporal windows for video models: the one window scheduler.

Streaming (:class:`WindowStream`), random access (``Upscaler.render_frame``) and segmented runs
(:meth:`TemporalWindowPlan.split`, what a distributed runner hands to each worker) all take
their windows, their crossfade weights and the order of the crossfade sum from
:class:`TemporalWindowPlan`, so the three give bit-identical frames.

A video model sees a window of ``length`` consecutive frames. Windows are laid on a fixed
grid: window ``k`` covers source frames ``[k*stride, k*stride + length)`` with
``stride = length - overlap``. Which windows a frame belongs to is a pure function of its
index, so the output of frame ``n`` never depends on which frame was asked for first (seeking,
``vspipe --start``, random-order requests all give the same frames).

Frames past the clip end are the last frame repeated. Scene cuts are one type,
:class:`SceneStarts` (the frames that begin a scene), converted once where a caller hands them
in. A scene cut inside a window splits it into segments; each segment is run as a full-length
window in which the positions belonging to other scenes hold the segment's own edge frame, so
no frame ever mixes with another scene and every frame keeps its position in the window.

Frames covered by two windows are crossfaded: the weight of window ``k`` at position ``p`` is
``min(p + 1, length - p)`` (a triangle), normalised over the covering windows, which is a
linear ramp across each overlap. :meth:`TemporalWindowPlan.crossfade` is the one place that
sum is computed.

A clip shorter than a window is one window of its own length (:meth:`TemporalWindowPlan.for_clip`):
no frames are computed only to be thrown away.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import AbstractSet, Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

from vs_superres.contracts.errors import SuperResError


@dataclasses.dataclass(frozen=True)
class SceneStarts:
    """The source frames that begin a new scene (a cut just before each of them).

    ``SceneStarts({7, 30})`` names the frames. :meth:`of` builds one from what a caller holds
    (per-frame flags, a set of frame indices, a ``{frame: flag}`` mapping); the public entry
    points convert theirs with it once, and everything inside asks :meth:`starts`. A frame
    not named (one past the end of a shorter list of flags too) does not start a scene.
    """

    frames: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if any(isinstance(i, bool) for i in self.frames):
            raise SuperResError("SceneStarts takes frame indices; build one from per-frame flags with SceneStarts.of(flags)")
        try:
            frames = frozenset(operator.index(i) for i in self.frames)
        except TypeError:
            raise SuperResError(f"scene starts must be frame indices (integers), got {sorted(map(repr, self.frames))}") from None
        object.__setattr__(self, "frames", frames)

    @classmethod
    def of(cls, value: "SceneStartsLike | None") -> "SceneStarts":
        """Scene starts from per-frame flags (``[False, True, ...]``, True where a scene
        starts), a set of frame indices, a ``{frame: flag}`` mapping, or None (no cuts)."""
        if value is None:
            return cls()
        if isinstance(value, SceneStarts):
            return value
        if isinstance(value, Mapping):
            return cls(frozenset(i for i, flag in value.items() if flag))
        if isinstance(value, AbstractSet):
            return cls(frozenset(value))
        if callable(value) or isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise SuperResError(
                "scene starts must be per-frame flags (True where a scene starts), a set of frame "
                f"indices or a {{frame: flag}} mapping, got {type(value).__name__}")
        return cls(frozenset(i for i, flag in enumerate(value) if flag))

    def starts(self, i: int) -> bool:
        """Whether source frame ``i`` begins a new scene."""
        return i in self.frames


#: What public entry points take as scene starts (converted once with :meth:`SceneStarts.of`).
SceneStartsLike = Union[SceneStarts, Sequence[bool], AbstractSet[int], Mapping[int, bool]]


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
class ClipSegment:
    """A run of windows that can be computed apart from the rest of the clip.

    ``windows`` to compute, ``inputs`` the source frames they read, ``outputs`` the frames they
    finalise (each output frame belongs to exactly one segment).
    """

    windows: range
    outputs: range
    inputs: range


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

    @classmethod
    def for_clip(cls, num_frames: int, length: int, overlap: int) -> "TemporalWindowPlan":
        """The plan of a clip: a clip shorter than a window is one window of its own length."""
        if num_frames >= 1 and num_frames < length:
            length, overlap = num_frames, min(overlap, num_frames - 1)
        return cls(num_frames, length, overlap)

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

    def position_weight(self, p: int) -> float:
        """Unnormalised crossfade weight of position ``p`` of a window (a triangle)."""
        return float(min(p + 1, self.length - p))

    def weights_of(self, n: int) -> list[tuple[int, float]]:
        """``(window, weight)`` pairs for frame ``n``; weights sum to one."""
        raw = [(k, self.position_weight(self.position(k, n))) for k in self.windows_of(n)]
        total = sum(w for _, w in raw)
        return [(k, w / total) for k, w in raw]

    def crossfade(self, n: int, window_frames: Mapping[int, Any]) -> Any:
        """Output frame ``n`` from ``{k: frame n as window k computed it}`` for every window
        of ``n``: the one weighted sum (same order, same operations) every path uses."""
        ks = self.windows_of(n)
        if len(ks) == 1:  # its weight normalises to exactly one
            return window_frames[ks[0]]
        out: Any = None
        total = 0.0
        for k in ks:
            w = self.position_weight(self.position(k, n))
            y = window_frames[k] * w
            out = y if out is None else out + y
            total += w
        return out / total

    def last_final_frame(self, k: int) -> int:
        """Frames ``[0, x)`` are final once windows ``0..k`` are computed; returns ``x``."""
        return self.num_frames if k >= self.num_windows - 1 else (k + 1) * self.stride

    def split(self, windows_per_segment: int) -> list["ClipSegment"]:
        """Cut the clip at window boundaries into segments that can be computed apart.

        Segment ``i`` owns windows ``[a, b]`` and finalises frames ``[a*stride, (b+1)*stride)``
        (the last one, to the clip end); it also computes window ``a - 1``, whose overlap
        with window ``a`` those frames are crossfaded with. Each segment's frames equal the
        same frames of one process computing everything.
        """
        if windows_per_segment < 1:
            raise SuperResError(f"windows_per_segment must be >= 1, got {windows_per_segment}")
        out = []
        for a in range(0, self.num_windows, windows_per_segment):
            b = min(a + windows_per_segment, self.num_windows) - 1
            first = a - 1 if a > 0 and self.overlap > 0 else a
            out.append(ClipSegment(
                windows=range(first, b + 1),
                outputs=range(a * self.stride if a else 0, self.last_final_frame(b)),
                inputs=range(first * self.stride, min(b * self.stride + self.length, self.num_frames)),
            ))
        return out

    def frames_needed(self, n: int) -> list[int]:
        """All source frames that the windows of frame ``n`` read, sorted, unique."""
        needed: set[int] = set()
        for k in self.windows_of(n):
            needed.update(self.frames_of(k))
        return sorted(needed)

    def segments(self, k: int, scene_starts: SceneStarts | None = None) -> list[WindowSegment]:
        """Split window ``k`` at scene cuts.

        Only frames inside the window are consulted; a cut at the window's first position
        changes nothing.
        """
        frames = self.frames_of(k)
        if scene_starts is None or not scene_starts.frames:
            return [WindowSegment(tuple(frames), 0, self.length)]
        bounds = [0]
        for p in range(1, self.length):
            if frames[p] != frames[p - 1] and scene_starts.starts(frames[p]):
                bounds.append(p)
        bounds.append(self.length)
        segs = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            inputs = [frames[a]] * a + frames[a:b] + [frames[b - 1]] * (self.length - b)
            segs.append(WindowSegment(tuple(inputs), a, b))
        return segs


class WindowStream:
    """Open-ended iteration over a clip of unknown length, window by window, in bounded memory.

    Frames are read from ``frames`` only as far as the next window needs; the plan is
    :meth:`TemporalWindowPlan.for_clip` of the length once it is known, and before that the
    grid of the declared ``length``/``overlap`` (the same grid, since a clip of at least one
    window keeps them). Input frames are dropped once no window needs them, outputs once
    emitted: memory is one window of input plus the window outputs still to be crossfaded.
    """

    def __init__(self, frames: Iterable, length: int, overlap: int):
        TemporalWindowPlan(max(length, 1), length, overlap)  # argument checks, with their messages
        self.length, self.overlap = length, overlap
        self._it = iter(frames)
        self._buf: dict[int, Any] = {}
        self._read = 0
        self.num_frames: int | None = None

    def fill(self, upto: int) -> None:
        """Read frames until frame ``upto`` is buffered or the clip has ended."""
        while self.num_frames is None and self._read <= upto:
            try:
                f = next(self._it)
            except StopIteration:
                self.num_frames = self._read
                if self._read == 0:
                    raise SuperResError("the clip has no frames") from None
                return
            self._buf[self._read] = f
            self._read += 1

    def get(self, i: int) -> Any:
        return self._buf[i]

    def plan(self, upto_window: int) -> TemporalWindowPlan:
        """A plan valid for windows ``0..upto_window`` (exact once the length is known)."""
        if self.num_frames is not None:
            return TemporalWindowPlan.for_clip(self.num_frames, self.length, self.overlap)
        # Every frame of these windows is buffered and at least one more exists (fill read
        # past them), so a plan one frame longer gives the same windows and weights.
        stride = self.length - self.overlap
        return TemporalWindowPlan(upto_window * stride + self.length + 1, self.length, self.overlap)

    def run(self, compute_window: Callable[[TemporalWindowPlan, int, Callable[[int], Any]], Any],
            on_emitted: Callable[[int], None] | None = None) -> Iterator[Any]:
        """Yield output frames in order; ``compute_window(plan, k, get)`` returns window ``k``'s
        output frames (indexable by position)."""
        pending: dict[int, dict[int, Any]] = {}  # frame -> {window: that window's output of it}
        emitted, k = 0, 0
        while True:
            stride = self.length - self.overlap
            self.fill(k * stride + self.length)
            plan = self.plan(k)
            if k >= plan.num_windows:
                break
            window_out = compute_window(plan, k, self.get)
            for p, n in enumerate(range(k * plan.stride, min(k * plan.stride + plan.length, plan.num_frames))):
                pending.setdefault(n, {})[k] = window_out[p]
            final = plan.last_final_frame(k)
            while emitted < final:
                yield plan.crossfade(emitted, pending.pop(emitted))
                self._buf.pop(emitted, None)
                emitted += 1
            if on_emitted:
                on_emitted(emitted)
            if k >= plan.num_windows - 1 and self.num_frames is not None:
                break
            k += 1
