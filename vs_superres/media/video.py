"""Streaming video decoding to float R'G'B', from a file or a pipe.

Memory stays bounded: frames are decoded one at a time, converted with the source's own
matrix/range/chroma siting (see :mod:`.colour`), and handed on; nothing holds the whole clip.
The reader describes its video as a :class:`~.streaminfo.StreamInfo` (``reader.info``), which
is all a :class:`~.writer.VideoWriter` needs; with ``passthrough=True`` it also demuxes the
audio and subtitle packets in the same pass and keeps them for the writer
(:meth:`VideoReader.passthrough_packets`), so a pipe, readable once, loses nothing.

A cut or damaged input is not passed off as a complete one. Decoding goes on past a damaged
packet and stops at the end of what the demuxer can read, yielding every complete frame; when
iteration ends, ``reader.truncation`` says whether (and why) the input ended early
(:class:`Truncation`), from the evidence each container offers:

- a frame count in the header (MP4, MOV, AVI) and fewer frames decoded;
- a duration in the header (Matroska, WebM) that the packets read fall short of by more than
  two frames;
- the EBML element sizes (Matroska, WebM; :mod:`.matroska_tail`): a stream that ends inside a
  Cluster or block that announced more bytes, or before the end its Segment announces; this is
  what a pipe, where ffmpeg writes no duration, shows;
- packets the demuxer marks corrupt, decoder errors, or a demuxer read error (every container;
  this is all a pipe without an announced count can show);
- a size that is not a whole number of transport packets (MPEG-TS, 188/192/204 bytes), or bytes
  after the last whole picture (Y4M, which has no trailer);

an MP4/MOV cut before its index has no streams at all and is refused at open. A cut that lands
exactly on a packet boundary of a container announcing neither count nor duration (NUT, TS
or Y4M cut between frames) leaves no trace and cannot be told from a shorter file.
:func:`~.transcoding.transcode` turns a truncation into
:class:`~vs_superres.contracts.errors.IncompleteInput` after committing the output.

A video whose pictures change size mid-stream is refused at the first frame of the new size
(:class:`~vs_superres.contracts.errors.UnsupportedFormat` naming the frame, both sizes and the
``ffmpeg -vf scale=W:H`` that fixes it).
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

from vs_superres.contracts.errors import IncompleteInput, UnsupportedFormat
from vs_superres.media.budget import check_pixel_limit
from vs_superres.media.colour import CHROMA_LOCATION_NAMES
from vs_superres.media.convert import frame_to_rgb
from vs_superres.media.files import InputSource, MediaFile, is_path
from vs_superres.media.matroska_tail import WatchedPipe, file_verdict
from vs_superres.media.streaminfo import StreamInfo

log = logging.getLogger(__name__)


#: MPEG-TS packet sizes: plain, M2TS (with a timecode prefix), with Reed-Solomon parity
_TS_PACKET_SIZES = (188, 192, 204)


@dataclasses.dataclass(frozen=True)
class Truncation:
    """How an input ended early: ``frames_read`` frames were decoded, ``frames_expected`` is
    what the container announced (None when it announced nothing), ``reason`` says what
    showed it (in words, for messages)."""

    frames_read: int
    frames_expected: int | None
    reason: str


class _TailEvidence:
    """What demuxing one pass has shown about how the input ends."""

    def __init__(self) -> None:
        self.frames = 0
        self.damage: str | None = None  # the first corrupt packet, decoder or demuxer error
        self.end_time: float | None = None  # latest packet end (seconds), every demuxed stream
        self.video_end_time: float | None = None
        self.video_end_pos: int | None = None  # the byte after the last video packet
        self.finished = False

    def packet(self, packet, is_video: bool) -> None:
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is not None and packet.time_base:
            end = float((stamp + (packet.duration or 0)) * packet.time_base)
            self.end_time = end if self.end_time is None else max(self.end_time, end)
            if is_video:
                self.video_end_time = (end if self.video_end_time is None
                                       else max(self.video_end_time, end))
        if is_video and packet.size:
            if packet.pos is not None and packet.pos >= 0:
                self.video_end_pos = packet.pos + packet.size
            if packet.is_corrupt and self.damage is None:
                self.damage = f"the demuxer marks the packet after frame {self.frames} as damaged"


class DecodedFrame(NamedTuple):
    """One decoded frame: ``rgb`` float32 ``[3, H, W]`` in ``[0, 1]``; ``pts`` in the
    stream's ``time_base`` (synthesised from the frame rate when the container has none);
    ``time`` in seconds; ``frame`` the decoded ``av.VideoFrame`` ``rgb`` was converted from
    (its integer planes, for callers that ship or keep the exact samples)."""

    rgb: np.ndarray
    pts: int
    time: float
    frame: av.VideoFrame | None = None


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
            # The template drops rawvideo's fourcc, without which Matroska refuses the packets.
            if stream.codec_context.name == "rawvideo" and stream.codec_context.codec_tag:
                out.codec_context.codec_tag = stream.codec_context.codec_tag
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


def _seekable_object(source: object) -> bool:
    probe = getattr(source, "seekable", None)
    if not callable(probe):
        return callable(getattr(source, "seek", None)) and callable(getattr(source, "tell", None))
    try:
        return bool(probe())
    except (OSError, ValueError):
        return False


def _tag_seconds(value: str | None) -> float | None:
    """Seconds in a Matroska ``DURATION`` tag (``HH:MM:SS.nnnnnnnnn``), or None."""
    if not value:
        return None
    try:
        hours, minutes, seconds = value.strip().split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


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
        # a pipe is watched as it is read: how a Matroska stream ends shows in its element sizes
        self._watch: WatchedPipe | None = None
        if not is_path(source) and not _seekable_object(source):
            source = self._watch = WatchedPipe(source)  # type: ignore[arg-type]
        self._source = InputSource(source, format)
        self.path: Path | None = self._source.path
        self.name = self._source.name
        self._container = self._source.open()
        self._queue: collections.deque | None = collections.deque() if passthrough else None
        self._head: list | None = []
        self._tail = _TailEvidence()
        #: set when a pass has read the input to its end: None, or how it ended early
        self.truncation: Truncation | None = None
        try:
            self._stream = self._pick_stream()
            check_pixel_limit(self._stream.codec_context.width, self._stream.codec_context.height,
                              self.name, kind="video")  # before the first frame is decoded
            self._stream.thread_type = "AUTO"
            extra = [s for s in self._container.streams
                     if passthrough and s.index != self._stream.index and s.type in ("audio", "subtitle")]
            self._frames = self._decode(self._container, self._stream, extra)
            self._first: av.VideoFrame | None = next(self._frames, None)
            if self._first is None:
                why = f" ({self._tail.damage})" if self._tail.damage else ""
                raise UnsupportedFormat(
                    f"cannot read {self.name}: the video stream holds no decodable frames{why}; "
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
        fmt = self._container.format.name
        if not videos and not any(s.type in ("audio", "subtitle") for s in self._container.streams) \
                and ("mp4" in fmt or "mov" in fmt):
            raise UnsupportedFormat(
                f"cannot read {self.name}: it holds no audio or video stream, which is what an "
                "MP4 or MOV cut short before its index (moov) looks like; get a complete copy, or try "
                "a recovery tool such as untrunc with an intact file from the same camera")
        if not videos:
            raise UnsupportedFormat(
                f"cannot read {self.name}: it has no video stream (audio-only or not a "
                "video); give a video file, or use read_image for pictures")
        return videos[0]

    def _decode(self, container, stream, extra=()) -> Iterator[av.VideoFrame]:
        """Decoded frames of ``stream``; packets of the ``extra`` streams go to the queue.

        A packet that fails to decode is skipped (a damaged tail must not cost the complete
        frames before it) and a demuxer error ends the stream; both are recorded in
        ``self._tail`` for :attr:`truncation`.
        """
        tail = self._tail = _TailEvidence()
        packets = container.demux(stream, *extra)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                if tail.frames == 0 and self._source.is_pipe:
                    raise UnsupportedFormat(
                        f"cannot read {self.name}: {exc}; " + self._source.unreadable_hint()) from exc
                tail.damage = tail.damage or f"reading stopped with an error after frame {tail.frames} ({exc})"
                break
            is_video = packet.stream_index == stream.index
            tail.packet(packet, is_video)
            if not is_video:
                if (self._queue is not None and packet.size
                        and (packet.dts is not None or packet.pts is not None)):
                    self._queue.append(packet)
                continue
            if self._head is not None:
                self._head.append(packet)
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                if tail.frames == 0 and self._source.is_pipe:
                    raise UnsupportedFormat(
                        f"cannot read {self.name}: {exc}; " + self._source.unreadable_hint()) from exc
                tail.damage = tail.damage or f"the decoder failed after frame {tail.frames} ({exc})"
                continue
            for frame in frames:
                tail.frames += 1
                yield frame
        tail.finished = True

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
            info = self.info
            step, time_base, colour = info.frame_step, info.time_base, info.colour
            index = 0
            while frame is not None:
                if (frame.width, frame.height) != (info.width, info.height):
                    raise UnsupportedFormat(
                        f"frame {index} of {self.name} is {frame.width}x{frame.height}, but the "
                        f"video started at {info.width}x{info.height}: its picture size changes "
                        "mid-stream, and a video is upscaled at one size; scale every frame to "
                        f"one size first, e.g. `ffmpeg -i IN -vf scale={info.width}:{info.height} "
                        "-c:a copy OUT`, or cut the video where the size changes")
                pts = frame.pts if frame.pts is not None else next_pts
                next_pts = pts + step
                yield DecodedFrame(frame_to_rgb(frame, colour), pts, float(pts * time_base), frame)
                index += 1
                frame = next(frames, None)
            if self._tail.finished:
                self._source.check_unchanged()  # a file rewritten while read: mixed frames
                self.truncation = self._judge(container or self._container, index)
        finally:
            if container is not None:
                container.close()

    def _judge(self, container, frames_read: int) -> Truncation | None:
        """How the pass that just ended shows the input ended early, or None."""
        tail, info = self._tail, self.info
        stream = container.streams[info.stream_index]
        expected = info.frame_count if info.frame_count_exact else None
        reasons = [tail.damage] if tail.damage else []
        if expected and frames_read < expected:
            reasons.append(f"the container announces {expected} frames")
        fmt = container.format.name
        announced, ends = None, None
        # how far short of the announced end the packets may stop: the video's own end is
        # computed by the muxer as the packets' (pts + duration), so only millisecond rounding
        # separates a whole stream from its tag, and a missing last frame stands out; the end
        # of all streams (when the video has no end of its own) is looser, audio and subtitles
        # end where they like
        slack = 2 / float(info.fps) + 0.01
        what = "the container announces"
        if "matroska" in fmt or "webm" in fmt:
            own = _tag_seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
            start = float((stream.start_time or 0) * stream.time_base) if stream.time_base else 0.0
            if stream.duration and stream.time_base:
                announced, ends = float(stream.duration * stream.time_base), tail.video_end_time
            elif own:
                # ffmpeg tags each track with its end: the last packet's pts + duration (from 0,
                # not from the track's start); the video's, not the container's, which audio
                # or subtitles may set
                start, announced, ends = 0.0, own, tail.video_end_time
                slack = 0.5 / float(info.fps) + 0.002
                what = "its video track announces"
            elif container.duration:
                start = (container.start_time or 0) / 1_000_000
                announced, ends = container.duration / 1_000_000, tail.end_time
        if announced and ends is not None:
            if announced - (ends - start) > slack:
                reasons.append(f"{what} {announced:.3f} s but its packets end "
                               f"at {ends - start:.3f} s")
                expected = expected or max(frames_read, round(announced * info.fps))
        if "matroska" in fmt or "webm" in fmt:
            # the element sizes: a Cluster or block cut short, a Segment shorter than announced
            inside = (self._watch.verdict() if self._watch is not None
                      else file_verdict(self._source.path) if self._source.path is not None else None)
            if inside:
                reasons.append(inside)
        if fmt == "nut" and self._source.path is not None and not container.duration:
            # ffmpeg ends every NUT file with an index (which gives the duration); a pipe
            # cannot seek to it, a file that lacks it was cut
            reasons.append("it lacks the index a finished NUT file ends with")
        size = self._source.size()
        if size and "mpegts" in fmt and all(size % n for n in _TS_PACKET_SIZES):
            reasons.append(f"its {size} bytes are not a whole number of transport packets")
        if (size and fmt == "yuv4mpegpipe" and tail.video_end_pos is not None
                and size > tail.video_end_pos):
            reasons.append(f"{size - tail.video_end_pos} bytes after the last whole picture")
        if not reasons:
            return None
        if expected is None and info.duration and not info.frame_count_exact:
            expected = max(frames_read, info.frame_count) if info.frame_count > frames_read else None
        return Truncation(frames_read, expected, "; ".join(reasons))

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

    def check_unchanged(self) -> None:
        """Raise when the file was rewritten in place since it was opened (see
        :meth:`~.files.InputSource.check_unchanged`): for a caller that reads the file again
        after the frames (a journaled job's join demuxes its other streams once more)."""
        self._source.check_unchanged()

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
