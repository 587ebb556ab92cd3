"""The :func:`transcode` convenience: reader -> your frame iterator function -> writer.

The one module that knows both ends: :mod:`.video` and :mod:`.writer` never import each
other, they meet here through a :class:`~.streaminfo.StreamInfo` and the pass-through
packets the reader demuxes in the same single pass as the video (so a pipe works).

Decoding (with colour conversion to RGB) runs in a reader thread and encoding in a writer
thread, each a bounded queue of a few frames away from ``process`` (:data:`_QUEUE_FRAMES`), so
inference never waits for either and memory stays flat in the clip's length. An error in
either thread is raised in the caller, unchanged, where it would have been raised without
threads; Ctrl-C stops both threads before the partial output is removed.

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
import queue
import threading
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
    # Pass-through packets travel with the frames: the reader thread takes them from the
    # reader (its queue is not safe to share across threads) and they become visible to the
    # writer when ``process`` pulls the frame they were demuxed before.
    ready_packets: collections.deque = collections.deque()

    def packets_so_far() -> list:
        return [ready_packets.popleft() for _ in range(len(ready_packets))]

    with VideoReader(src, passthrough=copy_streams, format=src_format) as reader:
        total = reader.frame_count or None
        consumed = {"all": False}
        decoding = _Ahead(_decoded(reader), _QUEUE_FRAMES, "decoding")

        def decode() -> Iterator[np.ndarray]:
            for pts, rgb, packets in decoding:
                ready_packets.extend(packets)
                if rgb is None:  # the end: the last packets, demuxed after the last frame
                    break
                pending_pts.append(pts)
                yield rgb
            consumed["all"] = True

        inputs = _CountedFrames(decode(), total)

        writer = None
        encoding: _Behind | None = None
        done = 0
        try:
            decoding.start()
            if output_size is not None:
                width, height = output_size(reader.info) if callable(output_size) else output_size
                writer = VideoWriter(dst, reader.info, width, height, packets=packets_so_far, **writer_options)
            for output in process(inputs):
                if not pending_pts:
                    raise SuperResError(
                        f"process yielded more frames than it was given ({done + 1} so far); "
                        "it must yield exactly one output frame per input frame")
                if writer is None:
                    first = _to_chw(output)
                    writer = VideoWriter(dst, reader.info, first.shape[2], first.shape[1],
                                         packets=packets_so_far, **writer_options)
                if encoding is None:
                    encoding = _Behind(_encoder(writer, total, on_progress), _QUEUE_FRAMES, "encoding")
                encoding.put((_to_chw(output, writer.width, writer.height), pending_pts.popleft()))
                done += 1
            if encoding is not None:
                encoding.finish()
            if pending_pts or writer is None or not consumed["all"]:
                given = done + len(pending_pts)
                raise SuperResError(
                    f"process yielded {done} frames for {given} inputs"
                    + ("" if consumed["all"] else " and stopped reading before the last frame")
                    + "; it must read every input frame and yield one output frame for each")
        except BaseException:
            decoding.stop()
            if encoding is not None:
                encoding.stop()
            if writer is not None:
                writer.abort()
            raise
        decoding.stop()
        path = writer.close()
        if reader.truncation is not None:
            raise incomplete_input_error(reader.name, reader.truncation, path)
        return path


#: Frames the decoder may run ahead of ``process``, and the encoder behind it. Two each keep
#: both threads busy while inference runs (a frame takes far longer to infer than to decode or
#: encode) and bound memory to a few frames whatever the clip's length.
_QUEUE_FRAMES = 2
_POLL_S = 0.1  # how often a blocked thread looks whether it should stop


def _decoded(reader: VideoReader) -> Iterator[tuple]:
    """``(pts, rgb, packets)`` per frame, then ``(None, None, last packets)``."""
    for decoded in reader:
        yield decoded.pts, decoded.rgb, reader.passthrough_packets()
    yield None, None, reader.passthrough_packets()


def _encoder(writer: VideoWriter, total: int | None, on_progress: ProgressFn | None) -> Callable:
    done = 0

    def encode(item: tuple) -> None:
        nonlocal done
        writer.write(*item)
        done += 1
        if on_progress is not None:
            on_progress(Progress(done, max(total or 0, done), "transcode"))

    return encode


class _Ahead:
    """Runs an iterator in a thread, at most ``depth`` items ahead of the consumer.

    An exception in the thread is re-raised, unchanged, to the consumer at the item where it
    happened (so it surfaces as if the iteration ran in the caller; nothing is printed by the
    thread). :meth:`stop` ends the thread early and waits for it.
    """

    def __init__(self, items: Iterator, depth: int, name: str):
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"superres-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _offer(self, item) -> bool:
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._offer((True, item)):
                    return
            self._offer((False, None))
        except BaseException as exc:  # handed to the consumer, never printed here
            self._offer((False, exc))

    def __iter__(self) -> Iterator:
        while True:
            ok, item = self._queue.get()
            if ok:
                yield item
                continue
            if item is not None:
                raise item
            return

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()


class _Behind:
    """Calls ``consume(item)`` in a thread for every :meth:`put` item, at most ``depth`` behind.

    The first exception ``consume`` raises is re-raised, unchanged, by the next :meth:`put` or
    by :meth:`finish` (which waits for every item to be consumed); later items are dropped.
    """

    _END = object()

    def __init__(self, consume: Callable, depth: int, name: str):
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._halt = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"superres-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is self._END:
                return
            if self._error is None:
                try:
                    self._consume(item)
                except BaseException as exc:  # handed to the producer, never printed here
                    self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self.stop()
            raise error

    def put(self, item) -> None:
        self._raise_error()
        while True:
            try:
                self._queue.put(item, timeout=_POLL_S)
                break
            except queue.Full:
                self._raise_error()
                if not self._thread.is_alive():
                    raise SuperResError("the encoding thread ended unexpectedly; run again") from None

    def finish(self) -> None:
        self._queue.put(self._END)
        self._thread.join()
        self._raise_error()

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()
