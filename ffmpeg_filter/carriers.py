"""The four pipe carriers, told apart by a stream's first bytes.

Each carrier is a PyAV (FFmpeg) format plus the video codec its frames are written in; the
media layer's :class:`~vs_superres.media.writer.VideoWriter` writes them all (see ``sink.py``):

- ``y4m`` (``yuv4mpegpipe``): planar Y'CbCr/grey, 8 to 16 bits; written as ``wrapped_avframe``
  (uncompressed: what FFmpeg's muxer takes);
- ``nut``: any pixel format, written as ``rawvideo``;
- ``matroska``: ``rawvideo`` for the pixel formats its muxer stores natively
  (:data:`MATROSKA_RAW_PIX_FMTS`: their fourcc is written and read back), FFV1 (lossless,
  every bit depth) for the others, which it refuses as ``rawvideo``; every colour tag;
- ``rawvideo``: bare frames; geometry, pixel format and rate come from ``-s``/``-pix_fmt``/``-r``.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import IO

from vs_superres.contracts.errors import UnsupportedFormat

#: pixel formats FFmpeg's Matroska muxer stores as ``rawvideo`` (``V_UNCOMPRESSED`` with a
#: fourcc its demuxer maps back to the same format) in both PyAV's FFmpeg, which writes, and
#: FFmpeg 5.1, which may read (PyAV's also keeps ``y210le``, which 5.1 cannot read; it refuses
#: ``rawvideo`` in every other format); a test checks the list against both
MATROSKA_RAW_PIX_FMTS = frozenset({"yuv420p", "yuyv422", "yuv422p", "yuv410p", "yuv411p", "gray",
                                   "uyvy422", "nv12", "nv21", "rgba", "yvyu422"})


@dataclasses.dataclass(frozen=True)
class Carrier:
    """``uncompressed`` is the codec of frames stored as they are; ``uncompressed_pix_fmts``
    the pixel formats stored so (None: every one), the others are written as FFV1."""

    name: str
    av_format: str
    uncompressed: str
    description: str
    uncompressed_pix_fmts: frozenset[str] | None = None

    def video_codec(self, pix_fmt: str) -> str:
        """The codec the bridge writes ``pix_fmt`` frames in (lossless either way)."""
        if self.uncompressed_pix_fmts is None or pix_fmt in self.uncompressed_pix_fmts:
            return self.uncompressed
        return "ffv1"


CARRIERS = {
    "y4m": Carrier("y4m", "yuv4mpegpipe", "wrapped_avframe", "YUV4MPEG2 (ffmpeg -f yuv4mpegpipe)"),
    "nut": Carrier("nut", "nut", "rawvideo", "NUT (ffmpeg -f nut)"),
    "matroska": Carrier("matroska", "matroska", "rawvideo", "Matroska (ffmpeg -f matroska)",
                        MATROSKA_RAW_PIX_FMTS),
    "rawvideo": Carrier("rawvideo", "rawvideo", "rawvideo", "raw frames (ffmpeg -f rawvideo)"),
}
#: ffmpeg's ``-f`` names and common spellings
ALIASES = {"yuv4mpegpipe": "y4m", "yuv4mpeg": "y4m", "mkv": "matroska", "webm": "matroska",
           "raw": "rawvideo"}

_SIGNATURES = ((b"YUV4MPEG2", "y4m"), (b"nut/multimedia container", "nut"),
               (b"\x1a\x45\xdf\xa3", "matroska"))
#: bytes enough to recognise every signature above
HEAD_BYTES = 64


def carrier(name: str) -> Carrier:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in CARRIERS:
        raise UnsupportedFormat(
            f"unknown carrier format {name!r}; supported: " + ", ".join(
                f"{c.name} ({c.description})" for c in CARRIERS.values()), option="-f")
    return CARRIERS[key]


def detect(head: bytes) -> Carrier | None:
    """The carrier whose signature starts ``head``; None when none does (raw frames, or
    garbage: only ``-f rawvideo`` with a geometry can tell)."""
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return CARRIERS[name]
    return None


class PeekedInput:
    """A read-only, non-seekable view of ``raw`` whose first bytes were already read for
    detection; it replays them, then reads on, and counts every byte handed out (the y4m and
    raw frame arithmetic that tells a cut last frame from a complete one needs it)."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._head = b""
        self.consumed = 0
        self.eof = False

    def peek(self, size: int) -> bytes:
        while len(self._head) < size:
            chunk = self._raw.read(size - len(self._head))
            if not chunk:
                break
            self._head += chunk
        return self._head[:size]

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data, self._head = self._head + (self._raw.read() or b""), b""
        elif self._head:  # a short read is allowed; the callers loop
            data, self._head = self._head[:size], self._head[size:]
        else:
            data = self._raw.read(size) or b""
        if not data and size != 0:
            self.eof = True
        self.consumed += len(data)
        return data

    def read_exactly(self, size: int) -> bytes:
        """Up to ``size`` bytes, fewer only at the end of the stream."""
        parts, left = [], size
        while left > 0:
            chunk = self.read(left)
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


@dataclasses.dataclass(frozen=True)
class Y4MHeader:
    """The fields of a YUV4MPEG2 header line that PyAV does not expose: the chroma siting of
    the ``C`` tag and the ``I`` interlacing; everything else (size, rate, aspect, range, bit
    depth) comes from FFmpeg's demuxer. ``length`` is the header line's size in bytes."""

    length: int
    colorspace: str
    interlace: str
    aspect: Fraction | None


#: y4m ``C`` tag -> AVChromaLocation (left 1, center 2, topleft 3)
Y4M_CHROMA_SITING = {"420jpeg": 2, "420mpeg2": 1, "420paldv": 3, "420": 2}
#: y4m ``I`` -> ffmpeg's field_order option
Y4M_FIELD_ORDER = {"p": "progressive", "t": "tt", "b": "bb", "m": None}


def read_y4m_header(stream: PeekedInput) -> Y4MHeader:
    """The header line of a y4m stream, without consuming it."""
    head = stream.peek(4096)
    end = head.find(b"\n")
    if end < 0:
        raise UnsupportedFormat("the y4m stream has no complete header line (it was cut, or is "
                                "not y4m); send `ffmpeg ... -f yuv4mpegpipe -`")
    fields = head[:end].decode("ascii", errors="replace").split()[1:]
    tags = {f[0]: f[1:] for f in fields if f}
    aspect = None
    if ":" in tags.get("A", ""):
        n, d = tags["A"].split(":", 1)
        if n.isdigit() and d.isdigit() and int(n) and int(d):
            aspect = Fraction(int(n), int(d))
    return Y4MHeader(length=end + 1, colorspace=tags.get("C", "420jpeg"),
                     interlace=tags.get("I", "p"), aspect=aspect)
