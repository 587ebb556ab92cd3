"""The video coming in: a carrier on a pipe, read by the media layer, as float R'G'B' frames.

y4m, NUT and Matroska are read by :class:`vs_superres.media.VideoReader` (FFmpeg's demuxers,
the project's colour-exact conversion, pass-through packets of the other streams). Raw frames
have no container: they are cut at the frame size FFmpeg's ``rawvideo`` encoder gives for the
geometry and decoded by FFmpeg's ``rawvideo`` decoder; the :class:`StreamInfo` is built from
the command line. Either way the source knows when the input ended inside a frame and
says which frames were complete (:meth:`FrameSource.cut`); the run itself is the media layer's
one run path (:mod:`vs_superres.media.pump`), whose :class:`FrameSource` these are.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path
from typing import Iterator, NamedTuple

import av
import numpy as np

from vs_superres.contracts.errors import IncompleteInput, SuperResError, UnsupportedFormat
from vs_superres.ffmpeg_filter.carriers import (Y4M_CHROMA_SITING, Y4M_FIELD_ORDER, Carrier, PeekedInput,
                                                read_y4m_header)
from vs_superres.media import VideoReader
from vs_superres.media.colour import (CHROMA_LOCATION_NAMES, MATRIX_NAMES, PRIMARIES_NAMES, RANGE_FULL,
                                      RANGE_LIMITED, RANGE_NAMES, TRANSFER_NAMES, ColourInfo, guess_matrix)
from vs_superres.media.convert import frame_to_rgb, pixel_layout
from vs_superres.media.budget import OverBudget, check_pixel_limit
from vs_superres.media.pump import FrameSource
from vs_superres.media.streaminfo import StreamInfo

#: what y4m can carry (ffmpeg writes 9-16 bit with ``-strict -1``)
Y4M_PIX_FMTS = ("gray", "gray9le", "gray10le", "gray12le", "gray16le", "yuv420p", "yuv422p",
                "yuv444p", "yuv411p", "yuv420p9le", "yuv422p9le", "yuv444p9le", "yuv420p10le",
                "yuv422p10le", "yuv444p10le", "yuv420p12le", "yuv422p12le", "yuv444p12le",
                "yuv420p14le", "yuv422p14le", "yuv444p14le", "yuv420p16le", "yuv422p16le",
                "yuv444p16le")


SUPPORTED_TEXT = (
    "Y'CbCr 4:2:0, 4:2:2, 4:4:4, 4:1:1, 4:4:0 at 8 to 16 bits, planar, semi-planar or packed "
    "(yuv420p, yuv420p10le, yuv422p, yuv444p16le, nv12, p010le, yuyv422, ...), grey (gray, "
    "gray10le, gray16le, ...) and RGB (gbrp, gbrp10le, gbrp16le, rgb24, bgr0, rgb48le, ...), "
    "alpha dropped")
_UNSUPPORTED_PARTS = ("xyz", "bayer", "pal8", "monow", "monob", "vaapi", "cuda", "qsv", "vdpau",
                      "videotoolbox", "d3d11", "dxva", "drm_prime", "opencl", "vulkan",
                      "mediacodec", "mmal")


def check_pix_fmt(pix_fmt: str) -> None:
    """Refuse formats the colour-exact conversion cannot take, naming the ones it can."""
    bad = any(part in pix_fmt for part in _UNSUPPORTED_PARTS)
    if not bad:
        try:
            layout = pixel_layout(pix_fmt)
        except (ValueError, av.FFmpegError):
            bad = True
        else:
            bad = layout.is_float or layout.bits > 16
    if bad:
        raise UnsupportedFormat(
            f"pixel format {pix_fmt} is not supported; supported: {SUPPORTED_TEXT}; convert "
            "on ffmpeg's side, e.g. -pix_fmt yuv420p10le or -pix_fmt gbrp16le")


class Frame(NamedTuple):
    rgb: np.ndarray
    pts: int


@dataclasses.dataclass(frozen=True)
class ColourOverrides:
    """Colour tags given on the command line (names as ffprobe prints them); None: the
    stream's own, or the default for its size."""

    matrix: str | None = None
    range: str | None = None
    primaries: str | None = None
    transfer: str | None = None
    chroma_location: str | None = None

    def apply(self, colour: ColourInfo) -> ColourInfo:
        changes: dict = {}
        for field, table in (("matrix", MATRIX_NAMES), ("range", RANGE_NAMES),
                             ("primaries", PRIMARIES_NAMES), ("transfer", TRANSFER_NAMES),
                             ("chroma_location", CHROMA_LOCATION_NAMES)):
            name = getattr(self, field)
            if name is not None:
                changes[field] = _enum(field, name, table)
        if "matrix" in changes:
            changes["matrix_guessed"] = False
        if "chroma_location" in changes:
            changes["chroma_location_guessed"] = False
        return dataclasses.replace(colour, **changes) if changes else colour


def _enum(field: str, name: str, table: dict) -> int:
    by_name = {v: k for k, v in table.items()}
    by_name.update({"limited": 1, "full": 2, "mpeg": 1, "jpeg": 2, "bt601": 6})
    if name in by_name:
        return by_name[name]
    raise UnsupportedFormat(f"unknown {field.replace('_', ' ')} {name!r}; use one of "
                            + ", ".join(table.values()), option="--" + field.replace("_", "-"))


@dataclasses.dataclass(frozen=True)
class RawGeometry:
    """``-s WxH -pix_fmt F -r R`` of a raw stream."""

    width: int
    height: int
    pix_fmt: str
    rate: Fraction

    @classmethod
    def parse(cls, size: str | None, pix_fmt: str | None, rate: str | None) -> "RawGeometry":
        missing = [flag for flag, value in (("-s WxH", size), ("-pix_fmt F", pix_fmt), ("-r RATE", rate))
                   if not value]
        if missing:
            raise UnsupportedFormat(
                "raw video has no header: give " + ", ".join(missing)
                + " (as on ffmpeg's side, e.g. -f rawvideo -s 1280x720 -pix_fmt yuv420p -r 24)")
        assert size and pix_fmt and rate
        w, sep, h = size.lower().partition("x")
        if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            raise UnsupportedFormat(f"-s takes WIDTHxHEIGHT, e.g. 1280x720; got {size!r}", option="-s")
        try:
            av.video.format.VideoFormat(pix_fmt)
        except (ValueError, av.FFmpegError):
            raise UnsupportedFormat(f"unknown pixel format {pix_fmt!r}; supported: {SUPPORTED_TEXT}",
                                    option="-pix_fmt") from None
        check_pix_fmt(pix_fmt)
        try:
            fps = Fraction(rate.replace(":", "/"))
        except (ValueError, ZeroDivisionError):
            fps = Fraction(0)
        if fps <= 0:
            raise UnsupportedFormat(f"-r takes a frame rate such as 24, 30000/1001; got {rate!r}", option="-r")
        # the one pixel limit, before a byte is read (a raw stream announces nothing else)
        check_pixel_limit(int(w), int(h), f"the raw input stream (-s {size})", kind="video")
        return cls(int(w), int(h), pix_fmt, fps)


def _cut(frames_read: int, why: str) -> IncompleteInput:
    last = f"frame {frames_read - 1} (counting from 0)" if frames_read else "none"
    return IncompleteInput(
        f"the input stream was cut ({why}): {frames_read} complete frames were processed and "
        f"written, the last complete one is {last}; the output is shorter than the source; "
        "check what feeds this pipe (did the decoding ffmpeg fail or get killed?)",
        frames_read=frames_read)


class ContainerSource(FrameSource):
    """y4m, NUT or Matroska through :class:`VideoReader`; ``field_order`` (ffmpeg's name, or
    None) and ``notes`` (things to say once on stderr) for the filter's command."""

    field_order: str | None = None
    notes: tuple[str, ...] = ()
    name = "the input stream"

    def __init__(self, stream: PeekedInput, carrier: Carrier, overrides: ColourOverrides):
        self._stream, self.carrier = stream, carrier
        self._y4m = read_y4m_header(stream) if carrier.name == "y4m" else None
        if self._y4m is not None:
            check_pixel_limit(self._y4m.width, self._y4m.height, "the y4m input stream", kind="video")
        try:
            self._reader = VideoReader(stream, passthrough=carrier.name != "y4m", format=carrier.av_format)
        except OverBudget:
            raise  # readable, but over the pixel limit: the budget's own message says so
        except UnsupportedFormat as exc:
            raise UnsupportedFormat(
                f"the input is not a readable {carrier.description} stream ({exc}); supported "
                "carriers: y4m, nut, matroska, and rawvideo with -s/-pix_fmt/-r") from exc
        info = self._reader.info
        check_pix_fmt(info.pix_fmt)
        colour = info.colour
        notes = []
        if self._y4m is not None:
            if info.pix_fmt not in Y4M_PIX_FMTS:
                raise UnsupportedFormat(f"y4m pixel format {info.pix_fmt} is not supported; "
                                        "supported: " + ", ".join(Y4M_PIX_FMTS))
            siting = Y4M_CHROMA_SITING.get(self._y4m.colorspace)
            if siting is not None and info.layout.log2_w:
                colour = dataclasses.replace(colour, chroma_location=siting, chroma_location_guessed=False)
            self.field_order = Y4M_FIELD_ORDER.get(self._y4m.interlace)
            if self._y4m.interlace != "p":
                notes.append(
                    "the y4m header says the video is interlaced (I" + self._y4m.interlace + "): "
                    "each frame is upscaled as one picture, so the two fields are scaled "
                    "together and combing is enlarged; for a clean result deinterlace on ffmpeg's "
                    "side first, e.g. ffmpeg -i IN -vf bwdif -f yuv4mpegpipe - | superres-filter")
            if self._y4m.rate is None:
                notes.append("the y4m header has no frame rate (F tag); reading it as 25 fps, as "
                             "ffmpeg does")
            if self._y4m.ignored:
                notes.append("the y4m header's tags " + " ".join(self._y4m.ignored)
                             + " are unknown and ignored")
            if colour.matrix_guessed and overrides.matrix is None and info.layout.kind == "yuv":
                notes.append(
                    f"y4m carries no colour matrix; converting with {MATRIX_NAMES[colour.matrix]}, "
                    f"the default for {info.width}x{info.height}; pass --matrix to choose "
                    "(e.g. --matrix bt709)")
        colour = overrides.apply(colour)
        self.info = dataclasses.replace(info, colour=colour)
        # VideoReader converts with reader.info.colour: the stream's tags plus what the command
        # line and the y4m header said (PyAV exposes no siting of y4m's C tag).
        self._reader.info = self.info
        self.notes = tuple(notes)

    def frames(self) -> Iterator[Frame]:
        read = 0
        try:
            for decoded in self._reader:
                yield Frame(decoded.rgb, decoded.pts)
                read += 1
        except (IncompleteInput, UnsupportedFormat):
            raise
        except SuperResError as exc:
            if "after frame" in str(exc):  # the decoder met a damaged tail
                raise _cut(read, str(exc).split(";")[0]) from exc
            raise

    def passthrough_packets(self) -> list:
        return self._reader.passthrough_packets()

    def cut(self, frames_read: int, output: Path | None) -> IncompleteInput | None:
        # The media layer judges how a pass ended (``reader.truncation``, from each
        # container's evidence: for y4m, bytes after the last whole picture, whatever the
        # FRAME headers hold; for Matroska, the element sizes), for a file or a pipe alike.
        truncation = getattr(self._reader, "truncation", None)
        if truncation is not None:
            return _cut(frames_read, truncation.reason)
        return None

    def close(self) -> None:
        self._reader.close()


def frame_bytes(pix_fmt: str, width: int, height: int) -> int:
    """Bytes of one packed frame of ``pix_fmt``, as FFmpeg's rawvideo encoder writes it."""
    ctx = av.CodecContext.create("rawvideo", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, 25)
    frame = av.VideoFrame(width, height, pix_fmt)
    frame.pts = 0
    return sum(p.size for p in ctx.encode(frame))


class RawSource(FrameSource):
    """Headerless frames of a known geometry, decoded by FFmpeg's rawvideo decoder."""

    field_order: str | None = None
    notes: tuple[str, ...] = ()
    name = "the input stream"

    def __init__(self, stream: PeekedInput, geometry: RawGeometry, overrides: ColourOverrides):
        self._stream, self.geometry = stream, geometry
        layout = pixel_layout(geometry.pix_fmt)
        self._size = frame_bytes(geometry.pix_fmt, geometry.width, geometry.height)
        self._decoder = av.CodecContext.create("rawvideo", "r")
        self._decoder.width, self._decoder.height = geometry.width, geometry.height
        self._decoder.pix_fmt = geometry.pix_fmt
        self._partial = 0
        full = layout.kind == "rgb" or geometry.pix_fmt.startswith("yuvj")
        colour = ColourInfo(
            matrix=0 if layout.kind == "rgb" else guess_matrix(geometry.width, geometry.height),
            range=RANGE_FULL if full else RANGE_LIMITED,
            matrix_guessed=layout.kind != "rgb", chroma_location_guessed=True)
        notes = []
        if layout.kind == "yuv" and overrides.matrix is None:
            notes.append(f"raw video carries no colour matrix; converting with "
                         f"{MATRIX_NAMES[colour.matrix]}, the default for "
                         f"{geometry.width}x{geometry.height}; pass --matrix to choose")
        colour = overrides.apply(colour)
        self.notes = tuple(notes)
        self.info = StreamInfo(
            width=geometry.width, height=geometry.height, fps=geometry.rate,
            time_base=1 / geometry.rate, pix_fmt=geometry.pix_fmt, layout=layout, colour=colour,
            codec_name="rawvideo")
        first = self._stream.peek(1)
        if not first:
            raise UnsupportedFormat("the input stream is empty: no raw frame arrived")

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            data = self._stream.read_exactly(self._size)
            if len(data) < self._size:
                self._partial = len(data)
                return
            frames = self._decoder.decode(av.Packet(data))
            for frame in frames:
                yield Frame(frame_to_rgb(frame, self.info.colour), index)
                index += 1

    def cut(self, frames_read: int, output: Path | None) -> IncompleteInput | None:
        if self._partial:
            return _cut(frames_read, f"{self._partial} bytes of a last frame of {self._size} were received")
        return None
