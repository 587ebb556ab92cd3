"""The :func:`transcode` convenience: reader -> your frame iterator function -> writer.

The one module that knows both ends: :mod:`.video` and :mod:`.writer` never import each
other, they meet here through a :class:`~.streaminfo.StreamInfo` and the pass-through
packets the reader demuxes in the same single pass as the video (so a pipe works).

Order of work, so that nothing is computed for an output that cannot be made: the input is
opened and probed; with ``output_size`` the output is opened and its header written (the
encoder and the container accept this size, pixel format and these streams) before
``process`` is first asked for a frame; only then does ``process`` run (a caller that loads a
model inside ``process`` loads it only for an input that can be read and an output that can
be written).

A cut or damaged input (see :mod:`.video`): every complete frame is processed, written and the
output committed, then :class:`~vs_superres.contracts.errors.IncompleteInput` is raised with
the frames read and expected and the output's path.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Callable, Iterable, Iterator, Union

import numpy as np

from ..contracts.errors import IncompleteInput, SuperResError
from ..contracts.progress import Progress, ProgressFn
from .files import MediaFile
from .streaminfo import StreamInfo
from .video import Truncation, VideoReader
from .writer import VideoWriter

ProcessFn = Callable[[Iterator[np.ndarray]], Iterable]
#: the output's ``(width, height)``, or a function of the source's :class:`StreamInfo` giving it
OutputSize = Union[tuple[int, int], Callable[[StreamInfo], tuple[int, int]]]


def incomplete_input_error(source: str, cut: Truncation, output: Path | None) -> IncompleteInput:
    """The error for an input that ended early, after ``output`` was written from its
    ``cut.frames_read`` complete frames."""
    expected = (f"{cut.frames_expected} expected" if cut.frames_expected
                else "the container announced no frame count")
    held = (f"'{output}' was written and holds the {cut.frames_read} complete frames"
            if output is not None else f"the output holds the {cut.frames_read} complete frames")
    return IncompleteInput(
        f"{source} ends early: {cut.frames_read} frames read, {expected} ({cut.reason}); "
        f"the file is cut short or damaged; {held}; to get the rest, get a complete copy of "
        "the input", frames_read=cut.frames_read, frames_expected=cut.frames_expected,
        output=output)


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
              output_size: OutputSize | None = None, **writer_options) -> Path | None:
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
    source's (possibly estimated) frame count. ``output_size`` (``(width, height)``, or a
    function of the source's :class:`StreamInfo` returning it, e.g. the input size times the
    model scale) opens the output before ``process`` starts, so anything the output refuses
    fails before any compute; without it the output opens at the first yielded frame.
    Returns the output path (None for a file object).

    Raises :class:`~vs_superres.contracts.errors.IncompleteInput` after committing the output
    when the input ended early (see the module docstring).
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
            if output_size is not None:
                width, height = output_size(reader.info) if callable(output_size) else output_size
                writer = VideoWriter(dst, reader.info, width, height,
                                     packets=reader.passthrough_packets, **writer_options)
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
        path = writer.close()
        if reader.truncation is not None:
            raise incomplete_input_error(reader.name, reader.truncation, path)
        return path
