"""What an image file holds, read from its header without decoding a pixel.

:func:`probe_image` sniffs the format from the file's first bytes (not its name), then lets
Pillow parse the header lazily: dimensions, bit depth, alpha, the EXIF orientation and the ICC
profile. Pillow's plugin classes are constructed directly rather than through
``Image.open``, because ``Image.open`` applies Pillow's own process-wide decompression-bomb
limit; vs-superres applies its own (:func:`check_pixel_limit`), which the user can raise.

The pixel limit guards against decompression bombs: a PNG of a single colour compresses
about 1000:1, so a 400 KB file can announce 12000x12000 pixels and take gigabytes once
decoded. It is the one limit of every input, images, videos and pipes
(:mod:`vs_superres.media.budget`: ``$SUPERRES_MAX_PIXELS`` or ``max_pixels=``, ``0`` for no
limit; by default Pillow's own refusal threshold, about 179 megapixels).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vs_superres.contracts.errors import UnsupportedFormat
from vs_superres.media import budget
from vs_superres.media.icc import icc_colour_space

ORIENTATION_TAG = 0x0112
#: formats told apart by their first bytes, so a PNG named .jpg is still read as a PNG
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"), (b"II+\x00", "tiff"), (b"MM\x00+", "tiff"), (b"BM", "bmp"),
)
#: file name extension -> format read
READ_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
                ".bmp": "bmp", ".webp": "webp"}
#: orientations 5..8 swap width and height
_TRANSPOSING = {5, 6, 7, 8}


@dataclass(frozen=True)
class ImageInfo:
    """What the file holds, before conversion to float RGB.

    ``width``/``height``: the picture as displayed, i.e. after the EXIF orientation (the
    array :func:`~.images.read_image` returns has this shape). ``bit_depth``: bits per sample
    in the file (1, 8, 16, or 32 for float TIFF). ``has_alpha``: the file carries
    transparency, which is dropped (hosts should warn). ``is_grey``: single-channel source,
    replicated to RGB. ``pixel_format``: the decoder's layout, e.g. ``rgb48be``, ``pal8``, or
    the Pillow mode. ``orientation``: the EXIF orientation found (1 = none, 2..8 as in the
    EXIF standard); ``orientation_applied``: it was not 1 and the pixels were turned upright.
    ``icc_profile``: the file's ICC profile when it describes RGB (writers embed it again);
    ``icc_note``: why a profile in the file was not kept (a grey or CMYK profile cannot
    describe RGB output), else None.
    """

    width: int
    height: int
    format: str
    bit_depth: int
    has_alpha: bool
    is_grey: bool
    pixel_format: str
    orientation_applied: bool = False
    orientation: int = 1
    icc_profile: bytes | None = field(default=None, repr=False)
    icc_note: str | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sniff_format(head: bytes) -> str | None:
    """The image format the first bytes of a file announce (``png``, ``jpeg``, ...), or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def check_pixel_limit(info: ImageInfo, path: str | os.PathLike, max_pixels: int | None = None) -> None:
    """Refuse an image larger than the pixel limit (:func:`~.budget.max_pixels_limit`), before
    decoding: the one budget every input shares (:mod:`.budget`)."""
    budget.check_pixel_limit(info.width, info.height, path, kind="image", max_pixels=max_pixels)


def probe_image(path: str | os.PathLike) -> ImageInfo:
    """Read an image file's header: size, bit depth, alpha, orientation, ICC profile.

    No pixel is decoded, so this is safe (and takes milliseconds) on any file, whatever size
    it announces. Raises :class:`UnsupportedFormat` for a file that is not a readable
    PNG, JPEG, TIFF, BMP or WebP image.
    """
    path = Path(path)
    with open_image_file(path) as fp:
        return open_header(fp, path)[1]


def open_image_file(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise UnsupportedFormat(f"cannot read '{path}': no such file; check the path") from None
    except IsADirectoryError:
        raise UnsupportedFormat(f"cannot read '{path}': it is a folder, not an image file") from None
    except OSError as exc:
        raise UnsupportedFormat(f"cannot read '{path}': {exc.strerror or exc}; check its permissions") from exc


def open_header(fp: IO[bytes], path: Path) -> tuple[Any, ImageInfo]:
    """A lazily opened Pillow image of ``fp`` (pixels not decoded) and its :class:`ImageInfo`."""
    from PIL import Image

    head = fp.read(32)
    fmt = sniff_format(head)
    if fmt is None:
        expected = READ_FORMATS.get(path.suffix.lower(), "image").upper()
        what = "the file is empty" if not head else f"it starts with {head[:8]!r}"
        raise UnsupportedFormat(
            f"cannot read '{path}': not a readable {expected} image ({what}, which is no PNG, JPEG, "
            "TIFF, BMP or WebP signature); check that the file is complete and really is what its "
            "extension says")
    if fmt == "webp":
        size = _webp_canvas_size(head)
        if size is not None:  # Pillow's WebP reader applies its own limit: name the size first
            _refuse_beyond_pillow(size, path)
    fp.seek(0)
    try:
        image = _plugin_class(fmt)(fp)
    except Image.DecompressionBombError as exc:
        raise UnsupportedFormat(f"cannot read '{path}': {exc}; use a smaller image") from exc
    except (SyntaxError, OSError, ValueError, EOFError, struct.error) as exc:
        raise UnsupportedFormat(
            f"cannot read '{path}': a damaged or unsupported {fmt.upper()} header ({exc}); check that "
            "the file is complete, or re-save it with an image editor") from exc
    if image.width <= 0 or image.height <= 0:
        raise UnsupportedFormat(f"cannot read '{path}': the header announces a {image.width}x{image.height} image")
    if fmt == "png" and "exif" not in image.info:
        exif = _png_exif_after_header(fp)
        if exif is not None:
            image.info["exif"] = exif
    orientation = _orientation(image)
    icc, note = usable_icc(image.info.get("icc_profile"))
    width, height = stored_size(image, fmt)
    if orientation in _TRANSPOSING:
        width, height = height, width
    mode = image.mode
    info = ImageInfo(
        width, height, fmt, _bit_depth(image, fmt, head), _has_alpha(image), mode in _GREY_MODES, mode,
        orientation_applied=orientation != 1, orientation=orientation, icc_profile=icc, icc_note=note)
    return image, info


_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def usable_icc(profile: bytes | None) -> tuple[bytes | None, str | None]:
    """``(profile, None)`` when ``profile`` describes RGB data, else ``(None, why it is dropped)``."""
    if not profile:
        return None, None
    space = icc_colour_space(profile)
    if space == "RGB":
        return bytes(profile), None
    if space is None:
        return None, "its ICC profile is damaged (shorter than an ICC header, or no 'acsp' signature)"
    return None, (f"its ICC profile describes {space} data, which cannot be attached to the RGB "
                  "output (viewers will show the output as sRGB)")


def stored_size(image, fmt: str) -> tuple[int, int]:
    """Width and height as stored, before any orientation (Pillow 13 reports a TIFF's size
    already turned upright, other formats' as stored)."""
    if fmt == "tiff":
        width, height = image.tag_v2.get(256), image.tag_v2.get(257)
        if isinstance(width, int) and isinstance(height, int):
            return width, height
    return image.size


def pending_orientation(image) -> int:
    """The orientation a decoded Pillow image still needs: Pillow 13 turns a TIFF upright
    while loading it (and removes the tag), but leaves JPEG and WebP as stored."""
    return _orientation(image)


def _plugin_class(fmt: str):
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

    return {"png": PngImagePlugin.PngImageFile, "jpeg": JpegImagePlugin.JpegImageFile,
            "tiff": TiffImagePlugin.TiffImageFile, "bmp": BmpImagePlugin.BmpImageFile,
            "webp": WebPImagePlugin.WebPImageFile}[fmt]


def _orientation(image) -> int:
    """The EXIF orientation as Pillow's ``ImageOps.exif_transpose`` reads it (EXIF, then XMP)."""
    from PIL import Image

    # The base class's getexif: PNG's override decodes the whole image to look for a late
    # eXIf chunk, which _png_exif_after_header has already found without decoding.
    try:
        value = Image.Image.getexif(image).get(ORIENTATION_TAG, 1)
    except (SyntaxError, OSError, ValueError, EOFError, struct.error, KeyError):
        return 1  # damaged EXIF: Pillow's viewers show such files as stored, so do we
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _bit_depth(image, fmt: str, head: bytes) -> int:
    mode = image.mode
    if mode == "1":
        return 1
    if mode == "F":
        return 32
    if mode.startswith("I"):
        return 16
    if fmt == "png" and len(head) > 24 and head[24] == 16:
        return 16  # Pillow opens 48/64-bit PNGs in 8-bit modes; IHDR's bit depth byte says 16
    if fmt == "tiff":
        bits = image.tag_v2.get(258)
        if isinstance(bits, tuple):
            bits = max(bits)
        if isinstance(bits, int) and bits > 8:
            return 16
    return 8


def _has_alpha(image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _png_exif_after_header(fp: IO[bytes]) -> bytes | None:
    """The payload of an eXIf chunk placed after the pixel data (allowed since PNG 1.5), by
    seeking from chunk to chunk: Pillow reads only the chunks before the first IDAT when it
    opens a file, and everything after it only once the pixels are decoded."""
    fp.seek(8)
    while True:
        head = fp.read(8)
        if len(head) < 8:
            return None
        length, kind = struct.unpack(">I4s", head)
        if kind == b"eXIf":
            data = fp.read(length)
            return data if len(data) == length else None
        if kind == b"IEND":
            return None
        fp.seek(length + 4, os.SEEK_CUR)


def _webp_canvas_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from the first 30 bytes of a WebP file (VP8, VP8L or VP8X)."""
    kind = head[12:16]
    if kind == b"VP8X" and len(head) >= 30:
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if kind == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 " and len(head) >= 30:
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    return None


def _refuse_beyond_pillow(size: tuple[int, int], path: Path) -> None:
    from PIL import Image

    cap = Image.MAX_IMAGE_PIXELS
    width, height = size
    if cap is not None and width * height > 2 * cap:
        raise UnsupportedFormat(
            f"cannot read '{path}': it is a {width}x{height} WebP image ({width * height / 1e6:.0f} "
            f"megapixels), more than Pillow's WebP reader opens ({2 * cap / 1e6:.0f} megapixels); "
            "use a smaller image, or convert it to PNG")
