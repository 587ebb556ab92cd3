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
from vs_superres.media.colour import (MATRIX_NAMES, PRIMARIES_NAMES, TRANSFER_NAMES, ColourInfo,
                                      inferred_primaries_transfer)

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
    """The fields of a YUV4MPEG2 header line, parsed and checked before FFmpeg's demuxer sees
    them (it turns a bad header into "Device or resource busy" or silently reads ``F0:0`` as
    25 fps): ``width``/``height``, ``rate`` (None: no ``F`` tag, FFmpeg's 25 fps), the chroma
    siting of the ``C`` tag and the ``I`` interlacing, which PyAV does not expose. ``length``
    is the header line's size in bytes; ``ignored`` the tags FFmpeg ignores."""

    length: int
    colorspace: str
    interlace: str
    aspect: Fraction | None
    width: int = 0
    height: int = 0
    rate: Fraction | None = None
    ignored: tuple[str, ...] = ()


#: y4m ``C`` tag -> AVChromaLocation (left 1, center 2, topleft 3)
Y4M_CHROMA_SITING = {"420jpeg": 2, "420mpeg2": 1, "420paldv": 3, "420": 2}
#: y4m ``I`` -> ffmpeg's field_order option
Y4M_FIELD_ORDER = {"p": "progressive", "t": "tt", "b": "bb", "m": None}
#: the ``C`` values FFmpeg's demuxer reads
Y4M_COLORSPACES = ("420jpeg", "420mpeg2", "420paldv", "420", "411", "422", "444", "444alpha",
                   "420p9", "422p9", "444p9", "420p10", "422p10", "444p10", "420p12", "422p12",
                   "444p12", "420p14", "422p14", "444p14", "420p16", "422p16", "444p16",
                   "mono", "mono9", "mono10", "mono12", "mono16")
#: the longest header line read (real ones are under 100 bytes)
Y4M_HEADER_MAX = 4096
_Y4M_FIX = "; send `ffmpeg ... -f yuv4mpegpipe -` (add -strict -1 above 8 bits)"


def _y4m_ratio(tag: str, value: str, *, zero_ok: bool) -> Fraction | None:
    num, sep, den = value.partition(":")
    if not (sep and num.isdigit() and den.isdigit() and len(num) <= 10 and len(den) <= 10):
        raise UnsupportedFormat(f"the y4m header's {tag}{value} is not N:D with whole numbers "
                                f"(e.g. {tag}{'24:1' if tag == 'F' else '1:1'})" + _Y4M_FIX)
    if int(num) == 0 or int(den) == 0:
        if zero_ok and int(num) == 0 and int(den) == 0:
            return None  # "unknown", as the format defines it
        raise UnsupportedFormat(f"the y4m header's {tag}{value} has a zero term; "
                                + ("a frame rate must be positive, e.g. F24:1 or F30000:1001"
                                   if tag == "F" else "use A1:1, or A0:0 for unknown") + _Y4M_FIX)
    return Fraction(int(num), int(den))


def read_y4m_header(stream: PeekedInput) -> Y4MHeader:
    """The header line of a y4m stream, parsed and checked without consuming it (bounded: at
    most :data:`Y4M_HEADER_MAX` bytes are looked at)."""
    head = stream.peek(Y4M_HEADER_MAX)
    end = head.find(b"\n")
    if end < 0:
        if len(head) >= Y4M_HEADER_MAX:
            raise UnsupportedFormat(f"the y4m header line is longer than {Y4M_HEADER_MAX} bytes; it "
                                    "is not a YUV4MPEG2 stream as ffmpeg writes it" + _Y4M_FIX)
        raise UnsupportedFormat("the y4m stream has no complete header line (it was cut, or is "
                                "not y4m); send `ffmpeg ... -f yuv4mpegpipe -`")
    line = head[:end].decode("ascii", errors="replace")
    fields = line.split(" ")[1:]
    tags: dict[str, str] = {}
    ignored = []
    for field in fields:
        if not field:
            continue
        if field[0] in "WHFIAC" and field[0] in tags:
            raise UnsupportedFormat(f"the y4m header names {field[0]} twice ({line!r})" + _Y4M_FIX)
        if field[0] in "WHFIAC":
            tags[field[0]] = field[1:]
        elif field[0] != "X":  # X: extensions, which the format says to skip
            ignored.append(field)
    size = []
    for tag, word in (("W", "width"), ("H", "height")):
        value = tags.get(tag)
        if value is None:
            raise UnsupportedFormat(f"the y4m header has no {tag} ({word}) tag ({line!r})" + _Y4M_FIX)
        if not value.isdigit() or len(value) > 9 or int(value) <= 0:
            raise UnsupportedFormat(f"the y4m header's {word} {tag}{value} is not a positive whole "
                                    "number" + _Y4M_FIX)
        size.append(int(value))
    rate = _y4m_ratio("F", tags["F"], zero_ok=False) if "F" in tags else None
    aspect = _y4m_ratio("A", tags["A"], zero_ok=True) if "A" in tags else None
    colorspace = tags.get("C", "420jpeg")
    if colorspace not in Y4M_COLORSPACES:
        raise UnsupportedFormat(f"the y4m header's colour space C{colorspace} is not one ffmpeg "
                                "reads; known: " + ", ".join(Y4M_COLORSPACES) + _Y4M_FIX)
    interlace = tags.get("I", "p")
    if interlace not in Y4M_FIELD_ORDER:
        raise UnsupportedFormat(f"the y4m header's interlacing I{interlace} is not one of Ip "
                                "(progressive), It (top field first), Ib (bottom first), Im (mixed)"
                                + _Y4M_FIX)
    return Y4MHeader(length=end + 1, colorspace=colorspace, interlace=interlace, aspect=aspect,
                     width=size[0], height=size[1], rate=rate, ignored=tuple(ignored))


def y4m_colour_note(colour: ColourInfo) -> str:
    """What a y4m output loses and how the encoding ffmpeg puts it back: y4m has fields for
    the range (``XCOLORRANGE``) and chroma siting only, so the next ffmpeg reads the matrix,
    primaries and transfer as unknown. ``colour`` is what the bridge converted with; primaries
    and transfer the input did not state are inferred from its matrix (and said to be). The
    fix is ``setparams``, which every FFmpeg applies (FFmpeg 7 ignores ``-color_primaries``
    and ``-color_trc`` output options for frames that arrive untagged)."""
    primaries, transfer = colour.primaries, colour.transfer
    inferred = []
    guess_p, guess_t = inferred_primaries_transfer(colour.matrix)
    if primaries == 2 and guess_p != 2:
        primaries = guess_p
        inferred.append("primaries")
    if transfer == 2 and guess_t != 2:
        transfer = guess_t
        inferred.append("transfer")
    params = [f"colorspace={MATRIX_NAMES[colour.matrix]}"]
    if primaries != 2:
        params.append(f"color_primaries={PRIMARIES_NAMES.get(primaries, primaries)}")
    if transfer != 2:
        params.append(f"color_trc={TRANSFER_NAMES.get(transfer, transfer)}")
    said = []
    if colour.matrix_guessed:
        said.append("the matrix is the default for the size, --matrix sets it")
    if inferred:
        said.append(f"{' and '.join(inferred)} inferred from the matrix, --primaries/--transfer set them")
    if primaries == 2 or transfer == 2:
        unknown = " and ".join(w for w, v in (("primaries", primaries), ("transfer", transfer)) if v == 2)
        said.append(f"the {unknown} cannot be inferred: add it, e.g. color_trc=smpte2084 for PQ, "
                    "arib-std-b67 for HLG")
    return ("y4m carries no colour matrix, primaries or transfer (only the range): tag the encoding "
            f"ffmpeg's output with -vf setparams={':'.join(params)}"
            + (f" ({'; '.join(said)})" if said else "")
            + ", or use the Matroska carrier (-f matroska), which keeps every tag")
