"""The :func:`transcode` convenience: reader -> your frame iterator function -> writer.

The one module that knows both ends: :mod:`.video` and :mod:`.writer` never import each
other, they meet here through a :class:`~.streaminfo.StreamInfo` and the pass-through
packets the reader demuxes in the same single pass as the video (so a pipe works).
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..contracts.errors import SuperResError
from ..contracts.progress import Progress, ProgressFn
from .files import MediaFile
from .video import VideoReader
from .writer import VideoWriter

ProcessFn = Callable[[Iterator[np.ndarray]], Iterable]


def _to_chw(frame, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Accept numpy/torch ``[3, H, W]`` or ``[1, 3, H, W]``; return float32 numpy ``[3,H,W]``."""
    if hasattr(frame, "detach"):
        frame = frame.detach().float().cpu().numpy()
    array = np.asarray(frame)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[0] != 3:
        raise SuperResError(
            f"process yielded a frame shaped {tuple(array.shape)}; expected [3, H, W] float RGB "
            "in [0, 1]; yield one frame per input frame in that layout")
    if width is not None and array.shape[1:] != (height, width):
        raise SuperResError(
            f"process yielded a {array.shape[2]}x{array.shape[1]} frame after "
            f"{width}x{height} ones; every output frame must have the same size")
    return array


class _CountedFrames:
    """An iterator of frames that also says how many the container announces (``total``, or None)."""

    def __init__(self, frames: Iterator[np.ndarray], total: int | None):
        self._frames, self.total = frames, total

    def __iter__(self) -> "_CountedFrames":
        return self

    def __next__(self) -> np.ndarray:
        return next(self._frames)


def transcode(src: MediaFile, dst: MediaFile, process: ProcessFn, *,
              on_progress: ProgressFn | None = None, src_format: str | None = None,
              **writer_options) -> Path | None:
    """Decode ``src``, run the frames through ``process``, encode to ``dst`` atomically.

    ``src``: a path or a readable binary file object (a pipe is read once, in one pass;
    ``src_format`` forces its container format); ``dst``: a path, or a writable binary file
    object (then ``format=`` names the container, see :class:`VideoWriter`). ``process``
    receives an iterator of float32 ``[3, H, W]`` arrays in ``[0, 1]`` (its ``total``
    attribute is the container's frame count, or None when unknown) and must yield exactly
    one frame per input, in order (numpy or torch ``[3, sH, sW]``); it may lag behind its
    input (temporal windows). Timestamps, colour tags, audio and subtitles are carried over
    (see :class:`VideoWriter`; ``writer_options`` go to it). ``on_progress`` is called with
    ``Progress(done, total, "transcode")`` after each encoded frame, ``total`` being the
    source's (possibly estimated) frame count. Returns the output path (None for a file
    object).
    """
    pending_pts: collections.deque = collections.deque()
    copy_streams = writer_options.get("copy_streams", True)

    with VideoReader(src, passthrough=copy_streams, format=src_format) as reader:
        total = reader.frame_count or None

        consumed = {"all": False}

        def decode() -> Iterator[np.ndarray]:
            for decoded in reader:
                pending_pts.append(decoded.pts)
                yield decoded.rgb
            consumed["all"] = True

        inputs = _CountedFrames(decode(), total)

        writer = None
        done = 0
        try:
            for output in process(inputs):
                if not pending_pts:
                    raise SuperResError(
                        f"process yielded more frames than it was given ({done + 1} so far); "
                        "it must yield exactly one output frame per input frame")
                if writer is None:
                    first = _to_chw(output)
                    writer = VideoWriter(dst, reader.info, first.shape[2], first.shape[1],
                                         packets=reader.passthrough_packets, **writer_options)
                writer.write(_to_chw(output, writer.width, writer.height), pending_pts.popleft())
                done += 1
                if on_progress is not None:
                    on_progress(Progress(done, max(total or 0, done), "transcode"))
            if pending_pts or writer is None or not consumed["all"]:
                given = done + len(pending_pts)
                raise SuperResError(
                    f"process yielded {done} frames for {given} inputs"
                    + ("" if consumed["all"] else " and stopped reading before the last frame")
                    + "; it must read every input frame and yield one output frame for each")
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        return writer.close()
