"""The one run path of every sequential video host: source -> process -> sink, three threads.

    result = pump(source, process, open_sink, output_size=(w, h), on_progress=bar)

A decoding thread reads :meth:`FrameSource.frames` (demuxing, colour conversion to RGB), the
calling thread runs ``process`` on them (the engine: ``Upscaler.stream``, or the Ray driver
handing segments to workers), an encoding thread writes the results to the
:class:`FrameSink`. Each is a bounded queue of :data:`QUEUE_FRAMES` frames away from
``process``, so inference never waits for either and memory is flat in the clip's length.
``superres upscale`` (a file), ``superres-filter`` and ``superres-ffmpeg`` (pipes) and the Ray
driver's writing side all run through here: one loop, one cancellation, one progress, one
"input was cut".

Order of work, so that nothing is computed for an output that cannot be made: the source is
open (probed) before the pump starts; before a frame is decoded here, the run is held to the
one pixel and memory budget (:func:`check_budget`, :mod:`.budget`: the frames in flight and
the model's share, ``model=``, against the memory available); with ``output_size`` the sink
is opened (the encoder and container accept this size, format and these streams) before
``process`` is first asked for a frame (a ``process`` that loads a model inside itself loads
it only for an output that can be written); without it the sink opens at the first output
frame, when its size and time stamp are known (a pipe whose output size the model decides).

Failures: the first one anywhere wins. An error in the decoding thread is raised in the calling
thread where the frame it was decoding would have been read, unchanged; an error in the
encoding thread sets :meth:`Pump.cancelled` (wire it to the engine's ``cancel``, so a long model
call stops early) and is raised instead of the ``Cancelled`` it causes. Either way the sink is
aborted (no half-written output) and ``process``' generator is closed (its ``with`` blocks run:
a Ray run's workers are stopped).

A cut input is not an error of the frames before it: every complete frame is processed and
written, the sink closed and committed, and only then is the source's
:class:`~vs_superres.contracts.errors.IncompleteInput` raised (:meth:`FrameSource.cut`, or one
the source raised while reading after at least one complete frame).
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import queue
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Union

from vs_superres.contracts.descriptor import ModelDescriptor
from vs_superres.contracts.errors import IncompleteInput, SuperResError
from vs_superres.contracts.progress import Progress, ProgressFn
from vs_superres.media.budget import check_pixel_limit, check_video_memory, model_share_bytes
from vs_superres.media.streaminfo import StreamInfo
from vs_superres.media.video import VideoReader, incomplete_input_error

#: Frames the decoder may run ahead of ``process``, and the encoder behind it: the one queue
#: depth of every host (the CLI's video path had 2, the bridge 4). Measured side by side
#: (``benchmarks/bench_video.py --queue-compare``, docs/benchmarks.md): 4 is 1.08x faster than
#: 2 on this 2-core CPU (the encoder's bursts no longer stall inference), and memory stays
#: bounded whatever the clip's length (the budget counts them: a 4x 1080p output frame is
#: 100 MB as float32).
QUEUE_FRAMES = 4
_POLL_S = 0.1  # how often a blocked thread looks whether it should stop
#: how long a stopped decoding thread blocked on a pipe read is waited for (nobody may ever
#: write to that pipe again; a file's decoder finishes its frame well within this)
_PIPE_JOIN_S = 1.0

#: the output's ``(width, height)``, or a function of the source's :class:`StreamInfo` giving it
OutputSize = Union[tuple[int, int], Callable[[StreamInfo], tuple[int, int]]]
#: the model ``process`` runs, or a function returning it (asked once the output size is known)
ModelOf = Union[ModelDescriptor, Callable[[], ModelDescriptor]]


class FrameSource(abc.ABC):
    """What the pump reads: ``info`` (:class:`StreamInfo`), ``name`` (for messages),
    :meth:`frames`, :meth:`passthrough_packets`, :meth:`cut`; ``reads_pipe`` is True when a read
    may block forever (a pipe whose writer stalls)."""

    info: StreamInfo
    name: str = "the input"
    reads_pipe: bool = True

    @abc.abstractmethod
    def frames(self) -> Iterator[Any]:
        """The decoded frames in order: objects with ``rgb`` (float32 ``[3, H, W]`` in
        ``[0, 1]``) and ``pts`` (in ``info.time_base``). Raising
        :class:`~vs_superres.contracts.errors.IncompleteInput` after a complete frame ends the
        input early (the frames before it are written first)."""

    def passthrough_packets(self) -> list:
        """Audio/subtitle packets demuxed since the last call (called in the decoding thread)."""
        return []

    def cut(self, frames_read: int, output: Path | None) -> IncompleteInput | None:
        """After the last frame: the error for an input that ended early (``output`` holds the
        ``frames_read`` complete frames), or None when it ended where it should."""
        return None

    def close(self) -> None:
        pass


class ReaderSource(FrameSource):
    """A :class:`VideoReader` (a file, or a container on a pipe) as a source."""

    def __init__(self, reader: VideoReader):
        self.reader, self.info, self.name = reader, reader.info, reader.name
        self.reads_pipe = reader.path is None

    def frames(self) -> Iterator[Any]:
        return iter(self.reader)

    def passthrough_packets(self) -> list:
        return self.reader.passthrough_packets()

    def cut(self, frames_read: int, output: Path | None) -> IncompleteInput | None:
        if self.reader.truncation is None:
            return None
        return incomplete_input_error(self.reader.name, self.reader.truncation, output)

    def close(self) -> None:
        self.reader.close()


class FrameSink(Protocol):
    """What the pump writes to (a :class:`~.writer.VideoWriter` is one): ``write(item, pts)``
    for each output in order, then ``close()`` (returns the committed path, or None for a
    pipe), or ``abort()`` (leaves nothing)."""

    def write(self, item: Any, pts: int | None) -> None: ...

    def close(self) -> Path | None: ...

    def abort(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class SinkRequest:
    """What ``open_sink`` is told: the output ``width``/``height``, the first output frame's
    ``first_pts`` (None when opened before any output), the source's ``info``, and ``packets``,
    a callable returning the pass-through packets ready so far (give it to the writer:
    ``VideoWriter(..., packets=request.packets)``; it polls it from the encoding thread)."""

    width: int
    height: int
    first_pts: int | None
    info: StreamInfo
    packets: Callable[[], list]


OpenSink = Callable[[SinkRequest], FrameSink]


class Inputs:
    """The frames ``process`` reads (source frame objects, ``.rgb``/``.pts``), with ``total``,
    the container's frame count (None when unknown)."""

    def __init__(self, frames: Iterator[Any], total: int | None):
        self._frames, self.total = frames, total

    def __iter__(self) -> "Inputs":
        return self

    def __next__(self) -> Any:
        return next(self._frames)


ProcessFn = Callable[[Inputs], Iterable[Any]]


@dataclasses.dataclass
class PumpResult:
    path: Path | None
    frames: int


class Pump:
    """One run; see :func:`pump`. :meth:`cancelled` is what the engine's ``cancel`` watches."""

    def __init__(self, source: FrameSource, process: ProcessFn, open_sink: OpenSink, *,
                 output_size: OutputSize | None = None, on_progress: ProgressFn | None = None,
                 phase: str = "frames", model: ModelOf | None = None):
        self.source, self.process, self.open_sink = source, process, open_sink
        self.model = model
        self.output_size, self.on_progress, self.phase = output_size, on_progress, phase
        self._stop = threading.Event()
        self.sink: FrameSink | None = None
        self.frames_read = self.frames_written = 0

    def cancelled(self) -> bool:
        return self._stop.is_set()

    def run(self) -> PumpResult:
        source = self.source
        total = source.info.frame_count or None
        pending_pts: collections.deque = collections.deque()
        # Pass-through packets travel with the frames: the decoding thread takes them from the
        # source (its queue is not shared across threads) and they become visible to the sink
        # when ``process`` pulls the frame they were demuxed before.
        ready_packets: collections.deque = collections.deque()
        deferred: list[IncompleteInput] = []
        consumed = {"all": False}
        decoding = _Ahead(_decoded(source, deferred), QUEUE_FRAMES, "decoding")

        def packets_so_far() -> list:
            return [ready_packets.popleft() for _ in range(len(ready_packets))]

        def inputs() -> Iterator[Any]:
            for frame, packets in decoding:
                ready_packets.extend(packets)
                if frame is None:  # the end: the last packets, demuxed after the last frame
                    break
                pending_pts.append(frame.pts)
                self.frames_read += 1
                yield frame
            consumed["all"] = True

        encoding: _Behind | None = None
        outputs: Any = None
        done = 0
        try:
            out_size = None
            if self.output_size is not None:
                size = self.output_size
                out_size = size(source.info) if callable(size) else size
            check_budget(source, out_size, self.model)  # before any frame is decoded here
            decoding.start()
            if out_size is not None:
                self.sink = self.open_sink(SinkRequest(*out_size, None, source.info, packets_so_far))
            outputs = self.process(Inputs(inputs(), total))
            for output in outputs:
                if not pending_pts:
                    raise SuperResError(
                        f"process yielded more frames than it was given ({done + 1} so far); "
                        "it must yield exactly one output frame per input frame")
                pts = pending_pts.popleft()
                if self.sink is None:
                    width, height = _size_of(output)
                    self.sink = self.open_sink(SinkRequest(width, height, pts, source.info, packets_so_far))
                if encoding is None:
                    encoding = _Behind(self._writer(self.sink, total), QUEUE_FRAMES, "encoding",
                                       on_error=self._stop.set)
                encoding.put((output, pts))
                done += 1
            if encoding is not None:
                encoding.finish()
            if pending_pts or self.sink is None or not consumed["all"]:
                given = done + len(pending_pts)
                raise SuperResError(
                    f"process yielded {done} frames for {given} inputs"
                    + ("" if consumed["all"] else " and stopped reading before the last frame")
                    + "; it must read every input frame and yield one output frame for each")
        except BaseException as exc:
            self._stop.set()
            failure: BaseException = exc
            if encoding is not None:
                encoding.stop()
                # The encoder's error is the cause; the engine's Cancelled is its consequence.
                failure = encoding.error or exc
            _close(outputs)
            decoding.stop(_PIPE_JOIN_S if source.reads_pipe else None)
            if self.sink is not None:
                self.sink.abort()
            if failure is exc:
                raise
            raise failure from None
        decoding.stop(_PIPE_JOIN_S if source.reads_pipe else None)
        path = self.sink.close()
        cut = deferred[0] if deferred else source.cut(self.frames_read, path)
        if cut is not None:
            raise cut
        return PumpResult(path, done)

    def _writer(self, sink: FrameSink, total: int | None) -> Callable[[tuple], None]:
        def write(item: tuple) -> None:
            sink.write(*item)
            self.frames_written += 1
            if self.on_progress is not None:
                done = self.frames_written
                self.on_progress(Progress(done, max(total or 0, done), self.phase))

        return write


def pump(source: FrameSource, process: ProcessFn, open_sink: OpenSink, *,
         output_size: OutputSize | None = None, on_progress: ProgressFn | None = None,
         phase: str = "frames", model: ModelOf | None = None) -> PumpResult:
    """Run ``source`` through ``process`` into the sink ``open_sink`` makes (module docstring).

    ``process`` receives :class:`Inputs` (source frames, ``.rgb``/``.pts``; ``.total``) and
    must yield exactly one output per input, in order; it may lag behind its input (temporal
    windows). ``on_progress`` gets ``Progress(written, total, phase)`` after each written frame.
    ``model`` (the :class:`ModelDescriptor` ``process`` runs, or a function returning it, asked
    after ``output_size``) gives the memory budget the model's share, and the output size when
    ``output_size`` is not given (:func:`check_budget`).
    Returns the sink's path and the number of frames written; raises the cut input's
    :class:`IncompleteInput` after committing the output.
    """
    return Pump(source, process, open_sink, output_size=output_size, on_progress=on_progress,
                phase=phase, model=model).run()


def check_budget(source: FrameSource, out_size: tuple[int, int] | None, model: ModelOf | None = None) -> None:
    """The one pixel and memory budget (:mod:`.budget`) for a run, before any frame is decoded
    by the pump: the source's frame size against ``$SUPERRES_MAX_PIXELS``, and the frames in
    flight (:data:`QUEUE_FRAMES` each way, the engine's copies, the window, the encoder's
    picture) plus the model's share at a small tile against the memory available. The output
    size is ``out_size``, else the input's times the model's scale, else unknown (then only
    the input frames are counted)."""
    info = source.info
    size = (int(info.width), int(info.height))
    check_pixel_limit(*size, source.name, kind="video")
    descriptor = model() if callable(model) else model
    if out_size is None and descriptor is not None:
        out_size = (size[0] * descriptor.scale, size[1] * descriptor.scale)
    window = descriptor.window if descriptor is not None and descriptor.kind == "video" else 1
    check_video_memory(size, out_size, frames_in_flight=QUEUE_FRAMES, source=source.name,
                       model=descriptor.name if descriptor is not None else None,
                       model_bytes=model_share_bytes(descriptor.bytes_per_pixel, window) if descriptor else 0,
                       window=window)


def _size_of(output: Any) -> tuple[int, int]:
    shape = getattr(output, "shape", None)
    if shape is None or len(shape) < 2:
        raise SuperResError(f"process yielded {type(output).__name__}; expected a [3, H, W] frame")
    return int(shape[-1]), int(shape[-2])


def _close(outputs: Any) -> None:
    close = getattr(outputs, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - the first failure is the one reported
            pass


def _decoded(source: FrameSource, deferred: list) -> Iterator[tuple]:
    """``(frame, packets)`` per frame, then ``(None, last packets)``. A cut the source raises
    after a complete frame is kept for the end (the frames before it are written first)."""
    read = 0
    try:
        for frame in source.frames():
            yield frame, source.passthrough_packets()
            read += 1
    except IncompleteInput as exc:
        if read == 0:
            raise
        deferred.append(exc)
    yield None, source.passthrough_packets()


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

    def stop(self, timeout: float | None = None) -> None:
        self._halt.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)


class _Behind:
    """Calls ``consume(item)`` in a thread for every :meth:`put` item, at most ``depth`` behind.

    The first exception ``consume`` raises is kept in :attr:`error`, ``on_error`` is called
    (the pump cancels the engine), and the error is re-raised, unchanged, by the next
    :meth:`put` or by :meth:`finish` (which waits for every item to be consumed); later items
    are dropped.
    """

    _END = object()

    def __init__(self, consume: Callable, depth: int, name: str, on_error: Callable[[], None] | None = None):
        self._consume, self._on_error = consume, on_error
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._halt = threading.Event()
        self.error: BaseException | None = None
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
            if self.error is None:
                try:
                    self._consume(item)
                except BaseException as exc:  # handed to the producer, never printed here
                    self.error = exc
                    if self._on_error is not None:
                        self._on_error()

    def _raise_error(self) -> None:
        if self.error is not None:
            self.stop()
            raise self.error

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
        while True:
            try:
                self._queue.put(self._END, timeout=_POLL_S)
                break
            except queue.Full:
                self._raise_error()
        self._thread.join()
        self._raise_error()

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()
