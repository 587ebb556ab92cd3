"""An output stream's sample aspect ratio, which PyAV (14.2 to 18) offers no setter for.

FFmpeg's Matroska, NUT and y4m muxers read only ``AVStream.sample_aspect_ratio`` (not the
codec parameters that PyAV copies from the encoder), and PyAV exposes that field read-only.
:func:`set_stream_aspect` writes the one field through ``ctypes``, guarded so that it never
writes anywhere else: it touches memory only when PyAV's object layout and the stream it
points to are exactly what it expects (the class of the ``AVStream`` says "AVStream", its
index is the stream's), and otherwise reports failure so the caller can fall back and say so.
For y4m the fallback is :class:`Y4MAspectField`, which rewrites the header's ``A`` field on
its way out.

The ``AVStream`` fields up to ``sample_aspect_ratio`` are libavformat's public ABI (the same in
majors 61 and 62, FFmpeg 7 and 8); the ``AVStream*`` is the first field of PyAV's ``Stream``
object after its vtable.
"""

from __future__ import annotations

import ctypes
from fractions import Fraction
from typing import IO, Any

import av


class _Rational(ctypes.Structure):
    _fields_ = [("num", ctypes.c_int), ("den", ctypes.c_int)]


class _Class(ctypes.Structure):
    _fields_ = [("class_name", ctypes.c_char_p)]


class _Stream(ctypes.Structure):
    _fields_ = [("av_class", ctypes.POINTER(_Class)), ("index", ctypes.c_int), ("id", ctypes.c_int),
                ("codecpar", ctypes.c_void_p), ("priv_data", ctypes.c_void_p),
                ("time_base", _Rational), ("start_time", ctypes.c_int64),
                ("duration", ctypes.c_int64), ("nb_frames", ctypes.c_int64),
                ("disposition", ctypes.c_int), ("discard", ctypes.c_int),
                ("sample_aspect_ratio", _Rational)]


_POINTER = ctypes.sizeof(ctypes.c_void_p)
#: PyObject header (reference count, type) and Cython's vtable pointer come before ``ptr``
_PTR_OFFSET = 3 * _POINTER
#: libavformat majors whose AVStream starts as ``_Stream`` says
_KNOWN_MAJORS = (61, 62)
#: PyAV's Stream object: header, vtable, ptr, container, metadata, codec_context, and since
#: PyAV 15 index_entries; ``ptr`` is at the same place in both
_STREAM_BASICSIZES = (7 * _POINTER, 8 * _POINTER)


def _layout_known() -> bool:
    major = av.library_versions.get("libavformat", (0,))[0]
    return major in _KNOWN_MAJORS and av.stream.Stream.__basicsize__ in _STREAM_BASICSIZES


def set_stream_aspect(stream: Any, aspect: Fraction) -> bool:
    """Write ``aspect`` into the output ``stream``'s ``AVStream.sample_aspect_ratio`` (before
    the container's header is written, i.e. before the first mux). True when it was written;
    False, with nothing touched, when PyAV's or libavformat's layout is not the known one."""
    if not isinstance(stream, av.stream.Stream) or not _layout_known():
        return False
    address = ctypes.c_void_p.from_address(id(stream) + _PTR_OFFSET).value
    if not address:
        return False
    native = _Stream.from_address(address)
    if not native.av_class or native.index != stream.index:
        return False
    if native.av_class.contents.class_name != b"AVStream":
        return False
    aspect = Fraction(aspect)
    native.sample_aspect_ratio.num = aspect.numerator
    native.sample_aspect_ratio.den = aspect.denominator
    return True


class Y4MAspectField:
    """A write-only file object in front of ``raw`` for FFmpeg's y4m muxer: once ``aspect``
    is set, the ``A`` field of the header line (the stream's aspect, which the muxer writes as
    ``A0:0`` when :func:`set_stream_aspect` could not set it) is rewritten to it as the line
    passes; every later byte goes through untouched. With ``aspect`` None nothing changes."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._head = b""  # the header line so far, held back until it is complete
        self._done = False
        self.aspect: Fraction | None = None

    def write(self, data) -> int:
        if self._done:
            self._raw.write(data)
            return len(data)
        self._head += bytes(data)
        end = self._head.find(b"\n")
        if end >= 0:
            self._done = True
            line, rest = self._head[:end], self._head[end:]
            self._head = b""
            if self.aspect is not None:
                field = f"A{self.aspect.numerator}:{self.aspect.denominator}".encode()
                line = b" ".join(field if f.startswith(b"A") else f for f in line.split(b" "))
            self._raw.write(line + rest)
        return len(data)

    def flush(self) -> None:
        if not self._done and self._head:  # a header line that never ended: pass it on as is
            self._done = True
            self._raw.write(self._head)
            self._head = b""
        self._raw.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False
