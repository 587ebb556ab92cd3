"""Streaming video decoding to float R'G'B', and the :func:`transcode` convenience.

Memory stays bounded: frames are decoded one at a time, converted with the source's own
matrix/range/chroma siting (see :mod:`.colour`), and handed on; nothing holds the whole clip.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import av
import numpy as np

from ..contracts.errors import SuperResError
from ..contracts.progress import Progress, ProgressFn
from .colour import (CHROMA_LEFT, CHROMA_LOCATION_NAMES, MATRIX_UNSPECIFIED, RANGE_FULL,
                     RANGE_UNSPECIFIED, ColourInfo, guess_matrix)
from .convert import PixelLayout, frame_to_rgb, pixel_layout

log = logging.getLogger(__name__)

ProcessFn = Callable[[Iterator[np.ndarray]], Iterable]


class DecodedFrame(NamedTuple):
    """One decoded frame: ``rgb`` float32 ``[3, H, W]`` in ``[0, 1]``; ``pts`` in the
    stream's ``time_base`` (synthesised from the frame rate when the container has none);
    ``time`` in seconds."""

    rgb: np.ndarray
    pts: int
    time: float


def _open_input(path: Path):
    if not path.exists():
        raise SuperResError(f"cannot read '{path}': no such file; check the path")
    if not path.is_file():
        raise SuperResError(f"cannot read '{path}': it is not a file; give a video file path")
    try:
        return av.open(str(path), "r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise SuperResError(
            f"cannot read '{path}': FFmpeg does not recognise it as a video ({exc}); check "
            "that the file is complete and is a video (mp4, mkv, mov, webm, ...)") from exc


def _probe_chroma_location(path: Path, index: int) -> int | None:
    """Chroma siting via ffprobe when it is installed (PyAV does not expose it)."""
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    try:
        result = subprocess.run(
            [exe, "-v", "error", "-select_streams", str(index), "-show_entries",
             "stream=chroma_location", "-of", "default=nw=1:nk=1", str(path)],
            capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    by_name = {name: value for value, name in CHROMA_LOCATION_NAMES.items()}
    return by_name.get(result.stdout.strip().splitlines()[0] if result.stdout.strip() else "")


class VideoReader:
    """Decode a video file into float R'G'B' frames, one at a time.

    Attributes (read at open, from the stream and its first frame): ``width``, ``height``,
    ``fps`` (Fraction), ``time_base`` (Fraction), ``frame_count`` (exact when
    ``frame_count_exact``, else an estimate from the duration), ``duration`` (seconds or
    None), ``pix_fmt``, ``bit_depth``, ``layout`` (:class:`PixelLayout`), ``colour``
    (:class:`ColourInfo`), ``sample_aspect_ratio`` (Fraction, 1 when untagged),
    ``rotation`` (degrees counter-clockwise from the display matrix), ``codec_name``,
    ``stream_index`` (absolute index of the video stream in the container), ``frame_step``
    (one frame at the nominal rate, in ``time_base`` units).

    Iterating yields :class:`DecodedFrame` (``rgb`` ``[3, H, W]`` float32 in ``[0, 1]``,
    ``pts``, ``time``); iterating again starts over from the first frame.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._container = _open_input(self.path)
        try:
            self._stream = self._pick_stream()
            self._stream.thread_type = "AUTO"
            self._frames = self._decode(self._container, self._stream)
            self._first = next(self._frames, None)
            if self._first is None:
                raise SuperResError(
                    f"cannot read '{self.path}': the video stream holds no decodable frames; "
                    "check that the file is complete")
            self._describe(self._stream, self._first)
        except BaseException:
            self._container.close()
            raise

    def _pick_stream(self):
        videos = [s for s in self._container.streams.video
                  if not s.disposition & av.stream.Disposition.attached_pic]
        if not videos:
            raise SuperResError(
                f"cannot read '{self.path}': it has no video stream (audio-only or not a "
                "video); give a video file, or use read_image for pictures")
        return videos[0]

    def _describe(self, stream, frame: av.VideoFrame) -> None:
        ctx = stream.codec_context
        self.codec_name = ctx.name
        self.stream_index = stream.index
        self.width, self.height = frame.width, frame.height
        self.pix_fmt = frame.format.name
        self.layout: PixelLayout = pixel_layout(self.pix_fmt)
        self.bit_depth = self.layout.bits
        self.time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or ctx.framerate
        if not rate:
            raise SuperResError(
                f"cannot read '{self.path}': the video has no frame rate; remux it with one, "
                "e.g. `ffmpeg -r 24 -i IN -c copy OUT.mkv`")
        self.fps = Fraction(rate)
        sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
        self.sample_aspect_ratio = Fraction(sar) if sar else Fraction(1)
        self.rotation = int(round(frame.rotation or 0))
        self.duration = None
        if stream.duration:
            self.duration = float(stream.duration * self.time_base)
        elif self._container.duration:
            self.duration = self._container.duration / 1_000_000
        count = stream.frames or int(stream.metadata.get("NUMBER_OF_FRAMES", 0) or 0)
        self.frame_count_exact = count > 0
        if not count:
            count = max(1, round(self.duration * self.fps)) if self.duration else 0
        self.frame_count = count
        self.colour = self._colour(frame, ctx)
        self.frame_step = max(1, round(1 / (self.fps * self.time_base)))

    def _colour(self, frame: av.VideoFrame, ctx) -> ColourInfo:
        def tag(frame_value, ctx_value, unspecified):
            value = int(frame_value or 0)
            return value if value not in (0, unspecified) else int(ctx_value or unspecified)

        matrix = tag(frame.colorspace, ctx.colorspace, MATRIX_UNSPECIFIED)
        colour_range = int(frame.color_range or ctx.color_range or RANGE_UNSPECIFIED)
        if colour_range == RANGE_UNSPECIFIED and self.pix_fmt.startswith("yuvj"):
            colour_range = RANGE_FULL
        matrix_guessed = False
        if self.layout.kind == "rgb":
            matrix = 0
        elif matrix in (0, MATRIX_UNSPECIFIED):
            matrix, matrix_guessed = guess_matrix(self.width, self.height), True
        chroma, chroma_guessed = CHROMA_LEFT, True
        if self.layout.kind == "yuv" and (self.layout.log2_w or self.layout.log2_h):
            probed = _probe_chroma_location(self.path, self.stream_index)
            if probed:
                chroma, chroma_guessed = probed, False
        return ColourInfo(
            matrix=matrix, range=colour_range,
            primaries=tag(frame.color_primaries, ctx.color_primaries, 2),
            transfer=tag(frame.color_trc, ctx.color_trc, 2),
            chroma_location=chroma, matrix_guessed=matrix_guessed,
            chroma_location_guessed=chroma_guessed)

    def _decode(self, container, stream) -> Iterator[av.VideoFrame]:
        index = 0
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    index += 1
                    yield frame
        except av.FFmpegError as exc:
            raise SuperResError(
                f"cannot decode '{self.path}' after frame {index}: {exc}; the file may be "
                "truncated or damaged; try remuxing it with `ffmpeg -i IN -c copy OUT`") from exc

    def __iter__(self) -> Iterator[DecodedFrame]:
        if self._first is not None:
            first, frames, self._first = self._first, self._frames, None
            container = None
        else:  # a second pass opens the file again
            container = _open_input(self.path)
            stream = container.streams[self.stream_index]
            stream.thread_type = "AUTO"
            frames = self._decode(container, stream)
            first = next(frames, None)
        try:
            next_pts = 0
            frame = first
            while frame is not None:
                pts = frame.pts if frame.pts is not None else next_pts
                next_pts = pts + self.frame_step
                yield DecodedFrame(frame_to_rgb(frame, self.colour), pts,
                                   float(pts * self.time_base))
                frame = next(frames, None)
        finally:
            if container is not None:
                container.close()

    def frames(self) -> Iterator[np.ndarray]:
        """Only the pictures: float32 ``[3, H, W]`` arrays in ``[0, 1]``."""
        return (decoded.rgb for decoded in self)

    def __len__(self) -> int:
        return self.frame_count

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"VideoReader('{self.path}', {self.width}x{self.height}, {self.pix_fmt}, "
                f"{float(self.fps):.3f} fps, {self.frame_count} frames, {self.colour.names()})")


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


def transcode(src: str | os.PathLike, dst: str | os.PathLike, process: ProcessFn, *,
              on_progress: ProgressFn | None = None, **writer_options) -> Path:
    """Decode ``src``, run the frames through ``process``, encode to ``dst`` atomically.

    ``process`` receives an iterator of float32 ``[3, H, W]`` arrays in ``[0, 1]`` (its ``total``
    attribute is the container's frame count, or None when unknown) and must
    yield exactly one frame per input, in order (numpy or torch ``[3, sH, sW]``); it may lag
    behind its input (temporal windows). Timestamps, colour tags, audio and subtitles are
    carried over (see :class:`VideoWriter`; ``writer_options`` go to it). ``on_progress`` is
    called with ``Progress(done, total, "transcode")`` after each encoded frame, ``total``
    being the source's (possibly estimated) frame count. Returns the output path.
    """
    from .writer import VideoWriter

    pending_pts: collections.deque = collections.deque()

    with VideoReader(src) as reader:
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
                    writer = VideoWriter(dst, reader, first.shape[2], first.shape[1],
                                         **writer_options)
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
