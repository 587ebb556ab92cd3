"""The :func:`transcode` convenience: a video file or pipe -> your frame function -> a video file.

The one module that knows both ends: :mod:`.video` and :mod:`.writer` never import each
other, they meet here through a :class:`~.streaminfo.StreamInfo` and the pass-through packets
the reader demuxes in the same single pass as the video (so a pipe works). The threads, queues,
order of work and the cut-input rule are the pump's (:mod:`.pump`); this adds only the
reader, the writer and the frame layout ``process`` speaks (float32 ``[3, H, W]`` arrays).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from vs_superres.contracts.errors import SuperResError
from vs_superres.contracts.progress import ProgressFn
from vs_superres.media.files import MediaFile
from vs_superres.media.pump import Inputs, OutputSize, ReaderSource, SinkRequest, pump
from vs_superres.media.video import VideoReader
from vs_superres.media.writer import VideoWriter

ProcessFn = Callable[[Iterator[np.ndarray]], Iterable]


def to_chw(frame: Any, width: int | None = None, height: int | None = None) -> np.ndarray:
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


class _RGBFrames:
    """The pump's inputs as the arrays ``process`` reads (``total`` kept)."""

    def __init__(self, inputs: Inputs):
        self._inputs, self.total = inputs, inputs.total

    def __iter__(self) -> "_RGBFrames":
        return self

    def __next__(self) -> np.ndarray:
        return next(self._inputs).rgb


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
    ``Progress(done, total, "transcode")`` after each encoded frame. ``output_size``
    (``(width, height)``, or a function of the source's :class:`StreamInfo` returning it)
    opens the output before ``process`` starts, so anything the output refuses fails before
    any compute; without it the output opens at the first yielded frame. Returns the output
    path (None for a file object).

    Raises :class:`~vs_superres.contracts.errors.IncompleteInput` after committing the output
    when the input ended early.
    """
    copy_streams = writer_options.get("copy_streams", True)

    def open_sink(request: SinkRequest) -> VideoWriter:
        return VideoWriter(dst, request.info, request.width, request.height,
                           packets=request.packets, **writer_options)

    def frames(inputs: Inputs) -> Iterator[np.ndarray]:
        size: tuple[int, int] | None = None
        for output in process(_RGBFrames(inputs)):
            array = to_chw(output, *(size or (None, None)))
            size = size or (array.shape[2], array.shape[1])
            yield array

    with VideoReader(src, passthrough=copy_streams, format=src_format) as reader:
        return pump(ReaderSource(reader), frames, open_sink, output_size=output_size,
                    on_progress=on_progress, phase="transcode").path
