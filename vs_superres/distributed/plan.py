"""The segment plan of a distributed run, taken from the one window scheduler.

A clip is cut with :meth:`~vs_superres.runtime.windows.TemporalWindowPlan.split` into
:class:`~vs_superres.runtime.windows.ClipSegment` s of ``windows_per_segment`` windows; each
segment computes one window of overlap before its first, so its crossfaded frames equal those
of one process computing the whole clip. Nothing here imports Ray or torch.

The driver reads its input as a stream and the exact frame count is known only at the end, so
segments are released as soon as they are *settled*: a segment whose inputs end before the last
frame read is not the clip's last one, and then it is the same segment in the plan of any clip
at least that long (its windows, weights and inputs do not depend on where the clip ends).
:meth:`SegmentPlan.settled` gives those; once the clip has ended it gives the rest.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from vs_superres.contracts.errors import InvalidOption, SuperResError, option_ref
from vs_superres.runtime.windows import ClipSegment, TemporalWindowPlan

#: segments per worker when the size is chosen from the clip length: enough that a slow
#: worker or a retried segment does not leave the others idle at the end, few enough that
#: the one window each segment recomputes stays a small share
SEGMENTS_PER_WORKER = 4
#: float32 output bytes a worker may hold for one segment (its window outputs; their codes
#: and input frames come on top): this caps the segment length, so a worker's memory does not
#: grow with the video. 2 GiB let two workers on a long 32x24 clip reach 6.4 GB; 256 MiB is
#: still thousands of small frames per segment (the one window of recompute stays under 1%),
#: and a segment never has less than one window, whatever its size
SEGMENT_OUTPUT_BUDGET = 256 << 20


def choose_windows_per_segment(total_frames: int | None, workers: int, length: int, overlap: int,
                               output_frame_bytes: int = 0, segment_frames: int | None = None) -> int:
    """Windows per segment, from the clip length and the number of workers.

    ``segment_frames`` (the user's override) is rounded to whole windows; otherwise each
    worker gets about :data:`SEGMENTS_PER_WORKER` segments, capped by
    :data:`SEGMENT_OUTPUT_BUDGET` of output per segment (``output_frame_bytes`` per frame).
    """
    stride = length - overlap
    if segment_frames is not None:
        if isinstance(segment_frames, bool) or not isinstance(segment_frames, int) or segment_frames < 1:
            raise InvalidOption(f"{option_ref('segment_frames')} must be an integer >= 1, got {segment_frames!r}",
                                option="segment_frames")
        return max(1, round(segment_frames / stride))
    total = total_frames or 0
    wanted = -(-total // max(1, workers * SEGMENTS_PER_WORKER)) if total else 256
    if output_frame_bytes:
        wanted = min(wanted, max(1, SEGMENT_OUTPUT_BUDGET // output_frame_bytes))
    return max(1, -(-wanted // stride))


@dataclasses.dataclass(frozen=True)
class SegmentPlan:
    """Segments of ``windows_per_segment`` windows on the grid of ``length``/``overlap``."""

    length: int
    overlap: int
    windows_per_segment: int

    @property
    def stride(self) -> int:
        return self.length - self.overlap

    def input_end(self, index: int) -> int:
        """One past the last input frame segment ``index`` reads, were the clip long enough."""
        last_window = (index + 1) * self.windows_per_segment - 1
        return last_window * self.stride + self.length

    def of_clip(self, num_frames: int) -> list[ClipSegment]:
        """Every segment of a clip of ``num_frames`` frames."""
        return TemporalWindowPlan.for_clip(num_frames, self.length, self.overlap).split(self.windows_per_segment)

    def settled(self, frames_read: int, ended: bool, start: int = 0) -> list[ClipSegment]:
        """Segments from index ``start`` that are final with ``frames_read`` frames read
        (all remaining ones when the clip has ``ended`` at ``frames_read`` frames)."""
        if ended:
            return self.of_clip(frames_read)[start:]
        out = []
        index = start
        while self.input_end(index) < frames_read:
            index += 1
        if index > start:
            out = self.of_clip(frames_read)[start:index]
        return out


def frames_text(segment: ClipSegment) -> str:
    """``frames 40-59`` for messages (inclusive, as a user counts)."""
    return f"frames {segment.outputs.start}-{segment.outputs.stop - 1}"


class SegmentFeed:
    """A clip read as a stream and handed out as settled segments: the one reading loop of a
    journaled job on this machine (:mod:`vs_superres.jobs.local`) and of the Ray driver.

    ``inputs`` yields decoded frames (``.rgb``, ``.frame``) and knows its ``total`` (or None);
    ``keep(frame)`` is what is buffered for each frame (the driver packs integer planes;
    ``None`` buffers nothing: workers read their own frames). Frames are kept until no later
    segment reads them.
    """

    def __init__(self, inputs: Any, plan: SegmentPlan, keep: Callable[[Any], Any] | None):
        self.plan, self.keep = plan, keep
        self.total: int | None = inputs.total
        self._frames = iter(inputs)
        self.buffer: dict[int, Any] = {}
        self.read, self.ended = 0, False

    def fill(self, upto: int) -> None:
        """Read until frame ``upto`` is buffered or the clip has ended."""
        while not self.ended and self.read <= upto:
            decoded = next(self._frames, None)
            if decoded is None:
                self.ended = True
                if self.read == 0:
                    raise SuperResError("the clip has no frames")
                return
            if self.keep is not None:
                self.buffer[self.read] = self.keep(decoded)
            self.read += 1

    def segment(self, index: int) -> tuple[ClipSegment, int] | None:
        """Segment ``index`` once it is settled and the frame count its plan was made with, or
        None past the clip's last segment."""
        while True:
            settled = self.plan.settled(self.read, self.ended, start=index)
            if settled:
                return settled[0], self.read
            if self.ended:
                return None
            self.fill(self.plan.input_end(index))

    def release(self, segment: ClipSegment) -> None:
        """Drop the frames no segment after ``segment`` reads."""
        for i in [i for i in self.buffer if i < segment.outputs.stop - self.plan.length]:
            del self.buffer[i]

    def clip_frames(self, needed_for: Callable[[int | None], list[int]]) -> tuple[list[int], int | None]:
        """The frames the per-clip state is computed from and the frame count it is given, as
        ``Upscaler.stream`` chooses them: ``needed_for(total)`` names the frames, which are read
        (a clip shorter than announced is asked again with its true length)."""
        needed = list(needed_for(self.total))
        if needed:
            self.fill(max(needed))
            if self.ended and max(needed) >= self.read:
                needed = list(needed_for(self.read))
        return needed, (self.read if self.ended else self.total)
