"""The engine over a journaled job's segments, on this machine: the run path's ``process``.

The clip is cut at window boundaries by the one scheduler (``TemporalWindowPlan.split``, through
:class:`~vs_superres.distributed.plan.SegmentPlan`, as the Ray driver cuts it), segments are
released as soon as they are settled, and each segment not already in the journal is computed
with :meth:`Upscaler.render_segment` from its input frames and the clip state (computed once,
from the frames and the frame count ``Upscaler.stream`` would use). A segment's frames are the
same whichever segments were computed before it, which is what makes resuming exact.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator

from vs_superres.distributed.plan import SEGMENT_OUTPUT_BUDGET, SegmentFeed, SegmentPlan

#: the length of a segment, in seconds of video: the work a kill can cost at most, and few
#: enough files for a film (a 2-hour film is 240); capped by memory (see :func:`segment_plan`)
SEGMENT_SECONDS = 30.0


def segment_plan(length: int, overlap: int, fps: float, output_frame_bytes: int,
                 segment_frames: int | None = None) -> SegmentPlan:
    """Whole windows of about :data:`SEGMENT_SECONDS` (or ``segment_frames`` frames), capped so
    that a segment's outputs, which ``render_segment`` holds at once, stay within
    :data:`~vs_superres.distributed.plan.SEGMENT_OUTPUT_BUDGET`."""
    stride = length - overlap
    frames = segment_frames or max(1, math.ceil(SEGMENT_SECONDS * (fps or 25.0)))
    windows = max(1, round(frames / stride))
    if output_frame_bytes and segment_frames is None:
        windows = min(windows, max(1, SEGMENT_OUTPUT_BUDGET // (output_frame_bytes * stride)))
    return SegmentPlan(length, overlap, windows)


def segment_outputs(engine: Any, inputs: Any, plan: SegmentPlan, kept: Callable[[range], bool],
                    scene_starts: Any = None) -> Iterator[Any]:
    """One output frame per input frame, in order (float32 ``[3, H, W]``); a computing segment
    whose outputs the journal already holds (``kept(outputs)``) is read but not computed, and
    its frames are ``None``. ``scene_starts``: as ``Upscaler.render_segment`` takes them."""
    import torch

    feed = SegmentFeed(inputs, plan, keep=lambda frame: frame.rgb)

    def tensors(indices) -> dict[int, Any]:
        return {i: torch.from_numpy(feed.buffer[i]) for i in indices}

    # The clip state from the frames and the count Upscaler.stream uses (as the Ray driver).
    state = None
    if engine.descriptor.kind == "video":
        needed, num_frames = feed.clip_frames(engine.clip_frames)
        state = engine.clip_state(num_frames, tensors(needed))
    index = 0
    while (found := feed.segment(index)) is not None:
        segment, num_frames = found
        if kept(segment.outputs):
            for _ in segment.outputs:
                yield None
        else:
            for out in engine.render_segment(segment, num_frames, tensors(segment.inputs), scene_starts, state):
                yield out.numpy()
        feed.release(segment)
        index += 1
