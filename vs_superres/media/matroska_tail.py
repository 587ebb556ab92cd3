"""How a Matroska (or WebM) stream ends, told by its EBML element sizes.

ffmpeg writing to a pipe cannot seek back, so it writes no ``DURATION`` tag, no Segment size
and no index: the demuxer reads a stream cut inside a Cluster as a complete, shorter one. But
every Cluster (and every block of a Cluster of unknown size) announces its size in bytes
before its payload, so a stream that ends inside one was cut, and a file whose Segment
announces more bytes than it holds was cut anywhere after its header. :class:`MatroskaTail`
follows the element headers as the bytes go by (a pipe: fed what the demuxer reads; a file:
walked with seeks over the payloads, reading only the headers) and says, at the end, whether
and where the stream was cut. Bounded: it keeps at most 12 bytes and one stack entry per open
element of known size, whatever the input; anything that is not EBML, or is damaged, switches
it off (no judgement, never a false cut).

A cut exactly between two Clusters of a Segment of unknown size leaves no trace: it is, byte
for byte, a shorter stream.
"""

from __future__ import annotations

import os
from typing import IO


_SEGMENT = 0x18538067
#: names of the elements a cut can land in, for messages
_NAMES = {0x1A45DFA3: "EBML header", _SEGMENT: "Segment", 0x1F43B675: "Cluster",
          0xA3: "SimpleBlock", 0xA0: "BlockGroup", 0xA1: "Block", 0x1C53BB6B: "Cues",
          0x1254C367: "Tags", 0x1549A966: "Info", 0x1654AE6B: "Tracks", 0x114D9B74: "SeekHead",
          0x1043A770: "Chapters", 0x1941A469: "Attachments", 0xEC: "Void", 0xE7: "Timestamp"}
_HEADER_MAX = 12  # an ID of up to 4 bytes and a size of up to 8


def _vint_length(first: int, longest: int) -> int:
    """Bytes of an EBML variable-length integer from its first byte (0: invalid)."""
    for length in range(1, longest + 1):
        if first & (0x80 >> (length - 1)):
            return length
    return 0


def _element_header(data: bytes) -> tuple[int, int | None, int] | None:
    """``(id, size or None when unknown, header length)`` at the start of ``data``; None when
    more bytes are needed; ValueError when it is not an element header."""
    if not data:
        return None
    id_length = _vint_length(data[0], 4)
    if not id_length:
        raise ValueError("bad element ID")
    if len(data) < id_length + 1:
        return None
    size_length = _vint_length(data[id_length], 8)
    if not size_length:
        raise ValueError("bad element size")
    end = id_length + size_length
    if len(data) < end:
        return None
    element = int.from_bytes(data[:id_length], "big")
    size = data[id_length] & (0xFF >> size_length)
    for byte in data[id_length + 1:end]:
        size = (size << 8) | byte
    unknown = size == (1 << (7 * size_length)) - 1
    return element, None if unknown else size, end


class MatroskaTail:
    """The element headers of one EBML stream, followed as its bytes go by (:meth:`feed`),
    or over payloads skipped unread (:attr:`skipping` and :meth:`advance`, for a file)."""

    def __init__(self) -> None:
        self.pos = 0  # bytes accounted for (element headers parsed, payload skipped)
        self.active = True  # False: not EBML, or damaged: no judgement
        self._started = False
        self._header = bytearray()
        self._skip = 0
        self._current: tuple[str, int, int] | None = None  # name, start, announced bytes
        self._ends: list[tuple[int, str]] = []  # known ends of the masters walked into

    @property
    def skipping(self) -> int:
        """Payload bytes of the current element not yet seen."""
        return self._skip if self.active else 0

    def advance(self, count: int) -> None:
        """``count`` payload bytes went by unread (a file walk seeks over them)."""
        count = min(count, self._skip)
        self._skip -= count
        self.pos += count

    def feed(self, data: bytes) -> None:
        """The next bytes of the stream."""
        at = 0
        while at < len(data) and self.active:
            if self._skip:
                count = min(self._skip, len(data) - at)
                self.advance(count)
                at += count
                continue
            take = min(_HEADER_MAX - len(self._header), len(data) - at)
            self._header += data[at:at + take]
            try:
                parsed = _element_header(bytes(self._header))
            except ValueError:
                self.active = False
                return
            if parsed is None:
                if len(self._header) >= _HEADER_MAX:
                    self.active = False
                    return
                at += take
                continue
            element, size, length = parsed
            at += take - (len(self._header) - length)  # the rest belongs to the payload
            self._header = bytearray()
            self._open(element, size, length)

    def _open(self, element: int, size: int | None, length: int) -> None:
        start = self.pos
        if not self._started:
            if element != 0x1A45DFA3:
                self.active = False
                return
            self._started = True
        while self._ends and self._ends[-1][0] <= start:
            self._ends.pop()
        self.pos += length
        if size is None:  # unknown size (a live Segment or Cluster): its children follow
            return
        if self._ends and self.pos + size > self._ends[-1][0]:
            self.active = False  # a child larger than its parent: damage, not a cut
            return
        if element == _SEGMENT:
            self._ends.append((self.pos + size, "Segment"))
            return
        self._skip = size
        self._current = (_NAMES.get(element, f"element 0x{element:X}"), start, length + size)

    def verdict(self) -> str | None:
        """Where the stream, now ended, was cut; None when it ended whole (or no judgement)."""
        if not self.active or not self._started:
            return None
        if self._skip and self._current is not None:
            name, start, total = self._current
            return (f"the stream ends {self.pos - start} bytes into a {name} that announces "
                    f"{total} bytes")
        if self._header:
            return "the stream ends inside an element header"
        for end, name in self._ends:
            if end > self.pos:
                return f"the stream ends {end - self.pos} bytes before the end its {name} announces"
        return None


def file_verdict(path: str | os.PathLike) -> str | None:
    """:meth:`MatroskaTail.verdict` of a whole file, reading only its element headers."""
    tail = MatroskaTail()
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            while tail.active:
                if tail.skipping:
                    count = min(tail.skipping, size - tail.pos)
                    if count <= 0:
                        break
                    handle.seek(count, os.SEEK_CUR)
                    tail.advance(count)
                    continue
                chunk = handle.read(64)
                if not chunk:
                    break
                tail.feed(chunk)
    except OSError:
        return None
    return tail.verdict()


class WatchedPipe:
    """A non-seekable binary stream that shows every byte read from it to a
    :class:`MatroskaTail` (what the demuxer reads is exactly the stream), and notes the end."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self.tail = MatroskaTail()
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            if self.tail.active:
                self.tail.feed(data)
        elif size != 0:
            self.ended = True
        return data or b""

    def verdict(self) -> str | None:
        """The tail's verdict once the stream was read to its end, else None."""
        return self.tail.verdict() if self.ended else None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def __getattr__(self, name: str):
        return getattr(self._raw, name)
