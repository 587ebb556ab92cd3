"""Decode, upscale and encode at once: three threads joined by small bounded queues.

The decoding thread demuxes and converts frames (and collects the pass-through packets
demuxed with them), the calling thread runs :meth:`Upscaler.stream` on them, the encoding
thread converts and muxes the results. Each queue holds a few frames, so memory is bounded
in the video's length (a temporal model keeps its window, nothing more), and while the model
works on frame n, frame n+1 is decoded and frame n-1 encoded: the bridge runs at the
engine's speed. The first failure anywhere stops the other two.

An input that ends inside a frame is not an error of the frames before it: they are upscaled
and written, the carrier is closed properly, and only then is the
:class:`~vs_superres.contracts.errors.IncompleteInput` raised.
"""

from __future__ import annotations

import collections
import queue
import threading
from typing import Any, Callable, Iterator

import numpy as np

from ..contracts.errors import Cancelled, IncompleteInput, SuperResError
from .source import FrameSource

#: frames waiting between two stages; small: each is a full picture
QUEUE_FRAMES = 4
_END = object()


class _Stopped(Exception):
    """Another stage failed; this one gives up quietly."""


class Bridge:
    """One run of ``source -> engine -> sink``.

    ``open_sink(width, height, first_pts)`` makes the sink once the first output frame's size
    and time stamp are known;
    it needs ``write(rgb, pts)``, ``remux(packets)``, ``close()`` and ``abort()`` (a
    :class:`~.sink.PipeSink`, i.e. the media layer's ``VideoWriter``, has them).
    ``on_frame(done)`` is called after each written frame (progress). ``stop`` is the event the
    engine's ``cancel`` should watch (:meth:`cancelled`).
    """

    def __init__(self, source: FrameSource, engine, open_sink: Callable[[int, int, int], Any],
                 on_frame: Callable[[int], None] | None = None):
        self.source, self.engine, self.open_sink = source, engine, open_sink
        self.on_frame = on_frame
        self.stop = threading.Event()
        self._inputs: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self._outputs: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self._errors: list[BaseException] = []
        self._deferred: BaseException | None = None  # the input's end, raised after writing
        self.frames_read = 0
        self.frames_written = 0
        self.sink: Any = None

    def cancelled(self) -> bool:
        return self.stop.is_set()

    # ------------------------------------------------------------------ stages
    def _put(self, q: queue.Queue, item) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _get(self, q: queue.Queue):
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    raise _Stopped from None

    def _decode(self) -> None:
        try:
            read = 0
            try:
                for frame in self.source.frames():
                    self._put(self._inputs, (frame, self.source.passthrough_packets()))
                    read += 1
                self.source.check_complete(read)
            except _Stopped:
                raise
            except (IncompleteInput, SuperResError) as exc:
                if read == 0:
                    raise
                self._deferred = exc  # the frames before it are complete: write them first
            self._put(self._inputs, (_END, self.source.passthrough_packets()))
        except _Stopped:
            pass
        except BaseException as exc:
            self._fail(exc)

    def _encode(self) -> None:
        try:
            while True:
                item = self._get(self._outputs)
                if item is _END:
                    break
                rgb, pts, packets = item
                if self.sink is None:
                    self.sink = self.open_sink(rgb.shape[2], rgb.shape[1], pts)
                self.sink.remux(packets)
                self.sink.write(rgb, pts)
                self.frames_written += 1
                if self.on_frame is not None:
                    self.on_frame(self.frames_written)
            if self.sink is not None:
                self.sink.remux(self._tail_packets)
                self.sink.close()
        except _Stopped:
            pass
        except BaseException as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self.stop.set()

    def _frames(self, pending: collections.deque) -> Iterator[np.ndarray]:
        """What the engine reads: frames from the decoding thread, their pts and packets kept
        in order for the outputs (a temporal model yields later than it reads)."""
        while True:
            frame, packets = self._get(self._inputs)
            if frame is _END:
                self._tail_packets = packets
                return
            self.frames_read += 1
            pending.append((frame.pts, packets))
            yield frame.rgb

    _tail_packets: list = []

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        """Process the whole stream; returns the number of frames written. Raises the first
        failure of any stage (then the sink is aborted), or the deferred end-of-input error
        after every complete frame was written."""
        import torch

        decoder = threading.Thread(target=self._decode, name="superres-decode", daemon=True)
        encoder = threading.Thread(target=self._encode, name="superres-encode", daemon=True)
        decoder.start()
        encoder.start()
        pending: collections.deque = collections.deque()
        try:
            total = self.source.info.frame_count or None
            inputs = (torch.from_numpy(rgb) for rgb in self._frames(pending))
            for out in self.engine.stream(inputs, total=total):
                pts, packets = pending.popleft()
                self._put(self._outputs, (out.numpy(), pts, packets))
            self._put(self._outputs, _END)
        except (_Stopped, Cancelled):
            if not self._errors:
                raise
        except BaseException as exc:
            self._fail(exc)
        encoder.join()
        self.stop.set()
        decoder.join(timeout=1.0)  # it may be blocked reading a pipe nobody writes to any more
        if self._errors:
            if self.sink is not None:
                self.sink.abort()
            raise self._errors[0]
        if self._deferred is not None:
            raise self._deferred
        return self.frames_written
