"""Streaming video decoding to float R'G'B', from a file or a pipe.

Memory stays bounded: frames are decoded one at a time, converted with the source's own
matrix/range/chroma siting (see :mod:`.colour`), and handed on; nothing holds the whole clip.
The reader describes its video as a :class:`~.streaminfo.StreamInfo` (``reader.info``), which
is all a :class:`~.writer.VideoWriter` needs; with ``passthrough=True`` it also demuxes the
audio and subtitle packets in the same pass and keeps them for the writer
(:meth:`VideoReader.passthrough_packets`), so a pipe, readable once, loses nothing.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import av
import numpy as np

from ..contracts.errors import SuperResError, UnsupportedFormat
from .colour import CHROMA_LOCATION_NAMES
from .convert import frame_to_rgb
from .files import InputSource, MediaFile
from .streaminfo import StreamInfo

log = logging.getLogger(__name__)


class DecodedFrame(NamedTuple):
    """One decoded frame: ``rgb`` float32 ``[3, H, W]`` in ``[0, 1]``; ``pts`` in the
    stream's ``time_base`` (synthesised from the frame rate when the container has none);
    ``time`` in seconds."""

    rgb: np.ndarray
    pts: int
    time: float


def probe_chroma_location(stream, packets: list) -> int | None:
    """Chroma siting of ``stream`` (an open input video stream) from its first ``packets``.

    PyAV does not expose the siting, so the packets are remuxed into a small in-memory
    Matroska file that ffprobe reads from its standard input (when ffprobe is installed).
    The source itself is never reopened, which is what makes this work for pipes.
    """
    exe = shutil.which("ffprobe")
    if exe is None or not packets:
        return None
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format="matroska") as head:
            out = head.add_stream_from_template(stream, opaque=True)
            for packet in packets:
                if packet.size:
                    packet.stream = out
                    head.mux(packet)
    except (av.FFmpegError, ValueError, OSError) as exc:
        log.debug("chroma siting not probed: %s", exc)
        return None
    try:
        result = subprocess.run(
            [exe, "-v", "error", "-select_streams", "v:0", "-show_entries",
             "stream=chroma_location", "-of", "default=nw=1:nk=1", "pipe:0"],
            input=buffer.getvalue(), capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = result.stdout.decode(errors="replace").split()
    by_name = {name: value for value, name in CHROMA_LOCATION_NAMES.items()}
    return by_name.get(lines[0]) if lines else None


class VideoReader:
    """Decode a video into float R'G'B' frames, one at a time.

    ``source``: a path, or a readable binary file object (``sys.stdin.buffer``, an
    ``io.BytesIO``); a path is always opened as that local file, never as an FFmpeg URL.
    ``format`` forces the container format (e.g. ``"nut"`` for a pipe). With
    ``passthrough=True`` the audio, subtitle and attachment streams are described in
    ``info.passthrough`` and their packets are kept, as the video is demuxed, for
    :meth:`passthrough_packets`; without it only the video is read.

    ``info`` (:class:`StreamInfo`) describes the video, read at open from the stream and its
    first frame; its fields are also attributes of the reader: ``width``, ``height``, ``fps``,
    ``time_base``, ``frame_count``, ``frame_count_exact``, ``duration``, ``pix_fmt``,
    ``bit_depth``, ``layout``, ``colour``, ``sample_aspect_ratio``, ``rotation``,
    ``codec_name``, ``stream_index``, ``frame_step``.

    Iterating yields :class:`DecodedFrame` (``rgb`` ``[3, H, W]`` float32 in ``[0, 1]``,
    ``pts``, ``time``); iterating again starts over from the first frame (a file or a
    seekable object; a pipe can be read once). Pass-through packets come from the first pass
    only.
    """

    def __init__(self, source: MediaFile, *, passthrough: bool = False, format: str | None = None):
        self._source = InputSource(source, format)
        self.path: Path | None = self._source.path
        self.name = self._source.name
        self._container = self._source.open()
        self._queue: collections.deque | None = collections.deque() if passthrough else None
        self._head: list | None = []
        try:
            self._stream = self._pick_stream()
            self._stream.thread_type = "AUTO"
            extra = [s for s in self._container.streams
                     if passthrough and s.index != self._stream.index and s.type in ("audio", "subtitle")]
            self._frames = self._decode(self._container, self._stream, extra)
            self._first: av.VideoFrame | None = next(self._frames, None)
            if self._first is None:
                raise UnsupportedFormat(
                    f"cannot read {self.name}: the video stream holds no decodable frames; "
                    + self._source.unreadable_hint())
            head, self._head = self._head, None
            self.info = StreamInfo.from_stream(
                self._container, self._stream, self._first, name=self.name,
                probe_chroma=lambda: probe_chroma_location(self._stream, head),
                passthrough=passthrough)
        except BaseException:
            self._container.close()
            raise

    def _pick_stream(self):
        videos = [s for s in self._container.streams.video
                  if not s.disposition & av.stream.Disposition.attached_pic]
        if not videos:
            raise UnsupportedFormat(
                f"cannot read {self.name}: it has no video stream (audio-only or not a "
                "video); give a video file, or use read_image for pictures")
        return videos[0]

    def _decode(self, container, stream, extra=()) -> Iterator[av.VideoFrame]:
        """Decoded frames of ``stream``; packets of the ``extra`` streams go to the queue."""
        index = 0
        try:
            for packet in container.demux(stream, *extra):
                if packet.stream_index != stream.index:
                    if (self._queue is not None and packet.size
                            and (packet.dts is not None or packet.pts is not None)):
                        self._queue.append(packet)
                    continue
                if self._head is not None:
                    self._head.append(packet)
                for frame in packet.decode():
                    index += 1
                    yield frame
        except av.FFmpegError as exc:
            if index == 0 and self._source.is_pipe:
                raise UnsupportedFormat(
                    f"cannot read {self.name}: {exc}; " + self._source.unreadable_hint()) from exc
            raise SuperResError(
                f"cannot decode {self.name} after frame {index}: {exc}; the file may be "
                "truncated or damaged; try remuxing it with `ffmpeg -i IN -c copy OUT`") from exc

    def passthrough_packets(self) -> list:
        """The audio/subtitle packets demuxed so far and not yet taken, in demux order (their
        ``stream_index`` is the source's; see ``info.passthrough``). Empty without
        ``passthrough=True``. Once iteration has ended, every packet has been demuxed."""
        if not self._queue:
            return []
        taken = list(self._queue)
        self._queue.clear()
        return taken

    def __iter__(self) -> Iterator[DecodedFrame]:
        first: av.VideoFrame | None
        if self._first is not None:
            first, frames, self._first = self._first, self._frames, None
            container = None
        else:  # a second pass opens the source again
            container = self._source.open()
            stream = container.streams[self.stream_index]
            stream.thread_type = "AUTO"
            frames = self._decode(container, stream)
            first = next(frames, None)
        try:
            next_pts = 0
            frame = first
            step, time_base, colour = self.info.frame_step, self.info.time_base, self.info.colour
            while frame is not None:
                pts = frame.pts if frame.pts is not None else next_pts
                next_pts = pts + step
                yield DecodedFrame(frame_to_rgb(frame, colour), pts, float(pts * time_base))
                frame = next(frames, None)
        finally:
            if container is not None:
                container.close()

    def frames(self) -> Iterator[np.ndarray]:
        """Only the pictures: float32 ``[3, H, W]`` arrays in ``[0, 1]``."""
        return (decoded.rgb for decoded in self)

    #: StreamInfo's fields and properties, readable as attributes of the reader (``reader.fps``).
    _INFO_NAMES = frozenset(f.name for f in dataclasses.fields(StreamInfo)) | {"bit_depth", "frame_step"}

    def __getattr__(self, name: str) -> Any:
        if name in VideoReader._INFO_NAMES and "info" in self.__dict__:
            return getattr(self.info, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __len__(self) -> int:
        return self.info.frame_count

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        info = self.info
        return (f"VideoReader({self.name}, {info.width}x{info.height}, {info.pix_fmt}, "
                f"{float(info.fps):.3f} fps, {info.frame_count} frames, {info.colour.names()})")
