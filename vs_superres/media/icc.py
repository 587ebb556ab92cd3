"""ICC profiles carried from the input image into the output, byte for byte.

The policy (see :mod:`.images`): an RGB profile is embedded unchanged in every output format
(PNG ``iCCP``, JPEG ``APP2``, TIFF tag 34675), at 8 and 16 bits, so a wide-gamut or
calibrated picture keeps its colours; the pixel values are not converted. A profile of
another colour space (grey, CMYK) cannot describe RGB output and is dropped with a warning.

FFmpeg's PNG and TIFF encoders, which write the 16-bit files, take no profile, so the profile
is added to their output here: a PNG chunk inserted after ``IHDR``, or a TIFF directory
rewritten with one more entry.
"""

from __future__ import annotations

import struct
import zlib

ICC_TIFF_TAG = 34675
_UNDEFINED = 7  # TIFF field type: bytes


def icc_colour_space(profile: bytes) -> str | None:
    """The data colour space an ICC profile describes (``RGB``, ``GRAY``, ``CMYK``...), or
    None when ``profile`` is not an ICC profile (too short, no ``acsp`` signature)."""
    if len(profile) < 128 or profile[36:40] != b"acsp":
        return None
    return profile[16:20].decode("latin-1").strip() or None


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_with_icc(data: bytes, profile: bytes, name: bytes = b"ICC profile") -> bytes:
    """``data`` (a PNG file) with an ``iCCP`` chunk holding ``profile``, right after ``IHDR``
    (the PNG standard wants it before ``PLTE`` and ``IDAT``). Any ``sRGB`` chunk is dropped:
    the two must not appear together."""
    ihdr_end = 8 + 8 + 13 + 4
    if data[12:16] != b"IHDR":
        raise ValueError("not a PNG stream starting with IHDR")
    chunks = [data[:ihdr_end], _png_chunk(b"iCCP", name + b"\0\0" + zlib.compress(profile, 9))]
    pos = ihdr_end
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if kind not in (b"sRGB", b"iCCP"):
            chunks.append(data[pos:end])
        pos = end
    return b"".join(chunks)


def tiff_with_icc(data: bytes, profile: bytes) -> bytes:
    """``data`` (a single-image TIFF) with ``profile`` in tag 34675 of its first directory.

    The profile and a copy of the directory with the extra entry are appended; the header
    then points at the copy. Every other offset stays valid because nothing moves.
    """
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or struct.unpack(order + "H", data[2:4])[0] != 42:
        raise ValueError("not a classic TIFF stream")
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    entries = [data[ifd + 2 + 12 * k: ifd + 14 + 12 * k] for k in range(count)]
    (next_ifd,) = struct.unpack(order + "I", data[ifd + 2 + 12 * count: ifd + 6 + 12 * count])
    entries = [e for e in entries if struct.unpack(order + "H", e[:2])[0] != ICC_TIFF_TAG]
    out = bytearray(data)
    if len(out) % 2:
        out += b"\0"  # TIFF wants values on word boundaries
    profile_at = len(out)
    out += profile
    if len(out) % 2:
        out += b"\0"
    entries.append(struct.pack(order + "HHII", ICC_TIFF_TAG, _UNDEFINED, len(profile), profile_at))
    entries.sort(key=lambda e: struct.unpack(order + "H", e[:2])[0])
    new_ifd = len(out)
    out += struct.pack(order + "H", len(entries)) + b"".join(entries) + struct.pack(order + "I", next_ifd)
    out[4:8] = struct.pack(order + "I", new_ifd)
    return bytes(out)
