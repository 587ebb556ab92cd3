"""Still images: PNG/TIFF through FFmpeg's codecs (PyAV); JPEG, BMP and WebP through Pillow.

Why not Pillow everywhere: Pillow has no 16-bit RGB mode, so it reads 48-bit PNGs as 8-bit
and cannot write them. FFmpeg's ``png``/``tiff`` codecs handle ``rgb48``, grey, palette and
alpha layouts, and decoding a file as a single packet avoids the image2 demuxer, which would
treat ``%`` in a file name as a sequence pattern.

What is checked and carried, for every format:

- **Size before decoding.** :func:`read_image` reads the header first (:func:`probe_image`,
  no pixel decoded) and refuses an image over the pixel limit (about 179 megapixels by
  default, ``$SUPERRES_MAX_PIXELS`` or ``max_pixels=``; see :mod:`.image_probe`), so a
  decompression bomb fails in milliseconds instead of exhausting memory.
- **Orientation.** The EXIF orientation, wherever the format keeps it (JPEG APP1, PNG
  ``eXIf``, TIFF tag 274, WebP ``EXIF``, or XMP ``tiff:Orientation``), is read as Pillow reads
  it and applied, so the array is the picture as a viewer shows it; outputs carry no
  orientation tag, so they display the same way.
- **ICC profiles** are kept, not converted: an RGB profile is returned in
  ``ImageInfo.icc_profile`` and :func:`write_image` (``icc_profile=``) embeds it byte for byte
  in PNG (``iCCP``), JPEG (``APP2``) and TIFF (tag 34675), at 8 and 16 bits, since every
  output format can carry one. A grey or CMYK profile cannot describe the RGB output: it is
  dropped and ``ImageInfo.icc_note`` says so (the CLI prints it as a warning).
- **Bit depth.** PNG and TIFF are written at 8 or 16 bits; JPEG holds 8 bits only, and asking
  :func:`write_image` for 16 is an error, never a silent 8.

Memory: decoding makes the integer samples and one float32 copy; writing converts the float
image to integer codes a few rows at a time, so no full-size float temporary is made.
"""

from __future__ import annotations

import dataclasses
import io
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from vs_superres.contracts.errors import SuperResError, UnsupportedFormat
from vs_superres.media.atomic import write_bytes_atomic
from vs_superres.media.convert import pixel_layout
from vs_superres.media.icc import icc_colour_space, png_with_icc, tiff_with_icc
from vs_superres.media.image_probe import (READ_FORMATS, ImageInfo, check_pixel_limit, open_header, open_image_file,
                          pending_orientation, probe_image)
from vs_superres.media.orientation import upright

__all__ = ["IMAGE_READ_EXTENSIONS", "IMAGE_WRITE_EXTENSIONS", "ImageInfo", "probe_image", "read_image",
           "write_image"]

_READ_FORMATS = READ_FORMATS
_WRITE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff",
                  ".tiff": "tiff"}
JPEG_QUALITY = 95
#: file name extensions read (resp. written) as still images; hosts tell images from videos by these
IMAGE_READ_EXTENSIONS = frozenset(_READ_FORMATS)
IMAGE_WRITE_EXTENSIONS = frozenset(_WRITE_FORMATS)


def _format_for(path: Path, table: dict, verb: str) -> str:
    fmt = table.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(table))
        raise SuperResError(
            f"cannot {verb} '{path}': unknown image extension '{path.suffix or '(none)'}'; "
            f"expected one of {known}; rename the file or pick a supported format")
    return fmt


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> tuple[np.ndarray, ImageInfo]:
    """Read an image file as R'G'B' float32 ``[H, W, 3]`` in ``[0, 1]`` plus its :class:`ImageInfo`.

    The header is checked before any pixel is decoded: an image over ``max_pixels`` (default:
    ``$SUPERRES_MAX_PIXELS``, else :data:`~.image_probe.DEFAULT_MAX_PIXELS`; 0 for no limit)
    raises :class:`UnsupportedFormat` naming its size. The EXIF orientation is applied (the
    array is the picture as displayed). Grey images are replicated to three channels; alpha is
    dropped (``info.has_alpha``). 8-bit samples are divided by 255, 16-bit by 65535 (full
    precision is kept). The format is told by the file's content; the extension only has to
    be one of :data:`IMAGE_READ_EXTENSIONS`.
    """
    path = Path(path)
    _format_for(path, _READ_FORMATS, "read")
    with open_image_file(path) as fp:
        image, probe = open_header(fp, path)
        check_pixel_limit(probe, path, max_pixels)
        decoded = None
        if probe.format in ("png", "tiff"):
            fp.seek(0)
            try:
                decoded = _decode_with_ffmpeg(fp.read(), probe.format, probe.orientation)
            except SuperResError:
                pass  # fall back to Pillow, which knows a few TIFF variants FFmpeg does not
        if decoded is None:
            decoded = _decode_with_pillow(image, probe.format, path)
        del image
    codes, peak, info, orientation = decoded
    rgb = np.empty((probe.height, probe.width, 3), dtype=np.float32)
    oriented = upright(codes, orientation)
    if oriented.shape[:2] != rgb.shape[:2]:
        raise UnsupportedFormat(
            f"cannot read '{path}': the header announces {probe.width}x{probe.height} pixels but "
            f"the decoder produced {oriented.shape[1]}x{oriented.shape[0]}; the file is damaged")
    np.divide(oriented if oriented.ndim == 3 else oriented[..., None], peak, out=rgb)
    if info.bit_depth == 32:
        np.clip(rgb, 0.0, 1.0, out=rgb)
    info = dataclasses.replace(
        info, width=probe.width, height=probe.height, orientation=probe.orientation,
        orientation_applied=probe.orientation_applied, icc_profile=probe.icc_profile,
        icc_note=probe.icc_note)
    return rgb, info


#: integer samples ([H, W, 3], or [H, W] for grey), their peak value, what the decoder saw,
#: and the EXIF orientation still to apply to the samples
_Decoded = tuple[np.ndarray, np.float32, ImageInfo, int]


def _decode_with_ffmpeg(data: bytes, fmt: str, orientation: int) -> _Decoded:
    """FFmpeg decodes the samples as stored: all of ``orientation`` remains to be applied."""
    try:
        ctx: Any = av.CodecContext.create(fmt, "r")  # a VideoCodecContext (PyAV's stubs say the base class)
        frames = ctx.decode(av.Packet(data)) + ctx.decode(None)
    except (av.FFmpegError, ValueError, MemoryError) as exc:
        raise SuperResError(f"FFmpeg could not decode the {fmt} data: {exc}") from exc
    if not frames:
        raise SuperResError(f"FFmpeg found no picture in the {fmt} data")
    frame = frames[0]
    name = frame.format.name
    layout = pixel_layout(name)
    wide = layout.bits > 8
    peak = np.float32(65535.0 if wide else 255.0)
    has_alpha = layout.has_alpha
    if layout.kind == "gray":
        codes = frame.to_ndarray(format="gray16le" if wide else "gray")
    else:
        target = ("rgba64le" if wide else "rgba") if layout.has_alpha else ("rgb48le" if wide else "rgb24")
        pixels = frame.to_ndarray(format=target)
        if layout.has_alpha:
            has_alpha = name != "pal8" or bool((pixels[..., 3] < 255).any())
        codes = pixels[..., :3]
    info = ImageInfo(frame.width, frame.height, fmt, 16 if wide else layout.bits,
                     has_alpha, layout.kind == "gray", name)
    return codes, peak, info, orientation


def _decode_with_pillow(image, fmt: str, path: Path) -> _Decoded:
    from PIL import UnidentifiedImageError

    try:
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise UnsupportedFormat(
            f"cannot read '{path}': not a readable {fmt.upper()} image ({exc}); check that the "
            "file is complete and really is what its extension says") from exc
    mode = image.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    is_grey = mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
    if mode.startswith("I"):
        codes = np.asarray(image)
        if mode == "I":  # 32-bit integers: 16-bit samples widened by Pillow
            codes = np.clip(codes, 0, 65535)
        peak, bit_depth = np.float32(65535.0), 16
    elif mode == "F":
        codes, peak, bit_depth = np.asarray(image), np.float32(1.0), 32
    else:
        codes = np.asarray(image if mode == "RGB" else image.convert("RGB"))
        peak, bit_depth = np.float32(255.0), 1 if mode == "1" else 8
    info = ImageInfo(image.width, image.height, fmt, bit_depth, has_alpha, is_grey, mode)
    return codes, peak, info, pending_orientation(image)


def _as_hwc(rgb, path: Path) -> np.ndarray:
    """``rgb`` as a float ``[H, W, 3]`` numpy array, a view whenever possible (no copy)."""
    if hasattr(rgb, "detach"):  # a torch tensor
        rgb = rgb.detach()
        if not rgb.is_floating_point():
            raise SuperResError(
                f"cannot write '{path}': expected float values in [0, 1], got dtype {rgb.dtype}; "
                "divide integer images by their peak value (255 or 65535) first")
        import torch

        rgb = rgb.cpu()  # no copy for a CPU tensor
        rgb = (rgb if rgb.dtype in (torch.float32, torch.float64, torch.float16) else rgb.float()).numpy()
    array = np.asarray(rgb)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    if array.ndim != 3 or array.shape[-1] != 3 or 0 in array.shape:
        raise SuperResError(
            f"cannot write '{path}': expected an RGB array shaped [H, W, 3] (or [3, H, W]), "
            f"got shape {tuple(array.shape)}; convert grey/alpha images to RGB first")
    if not np.issubdtype(array.dtype, np.floating):
        raise SuperResError(
            f"cannot write '{path}': expected float values in [0, 1], got dtype {array.dtype}; "
            "divide integer images by their peak value (255 or 65535) first")
    return array


#: float samples converted to integer codes at a time when writing (1 MB of float32)
_CHUNK_VALUES = 1 << 18


def _to_codes(pixels: np.ndarray, codes: np.ndarray, peak: float, path: Path) -> None:
    """Float ``[H, W, 3]`` -> integer ``codes`` (same shape, written in place): clipped to
    [0, 1], scaled, rounded to nearest.

    Done a band of rows at a time in one small float32 buffer, so no full-size float
    temporary is made; ``codes`` may be an encoder's own frame buffer.
    """
    height, width, _ = pixels.shape
    rows = max(1, _CHUNK_VALUES // (width * 3))
    buffer = np.empty((min(rows, height), width, 3), dtype=np.float32)
    scale = np.float32(peak)
    for y0 in range(0, height, rows):
        band = buffer[: min(rows, height - y0)]
        band[...] = pixels[y0:y0 + band.shape[0]]
        if not np.isfinite(band).all():
            raise SuperResError(
                f"cannot write '{path}': the image contains NaN or infinite values; check the "
                "model output (fp16 overflow is a common cause; try fp32)")
        np.clip(band, 0.0, 1.0, out=band)
        band *= scale
        np.rint(band, out=band)
        codes[y0:y0 + band.shape[0]] = band


def write_image(path: str | os.PathLike, rgb, bit_depth: int = 8, *, icc_profile: bytes | None = None) -> Path:
    """Write R'G'B' float ``[H, W, 3]`` (or ``[3, H, W]``) in ``[0, 1]`` to ``path``, atomically.

    Format from the extension: PNG and TIFF at ``bit_depth`` 8 or 16 (real 48-bit RGB), JPEG
    at 8 bits, quality 95, no chroma subsampling (16 for JPEG is refused). Values are clipped
    to ``[0, 1]`` and rounded to the nearest code. ``icc_profile`` (e.g. ``info.icc_profile``
    from :func:`read_image`) is embedded unchanged; it must describe RGB data. No orientation
    tag is written: the pixels are stored as they are displayed. Returns the path written.
    """
    path = Path(path)
    fmt = _format_for(path, _WRITE_FORMATS, "write")
    if bit_depth not in (8, 16):
        raise SuperResError(
            f"cannot write '{path}': bit depth {bit_depth} is not supported; use 8 or 16")
    if fmt == "jpeg" and bit_depth != 8:
        raise SuperResError(
            f"cannot write '{path}': JPEG stores 8 bits only, {bit_depth} were asked for; "
            "use a .png or .tif name for 16-bit output, or bit depth 8")
    if icc_profile is not None and icc_colour_space(bytes(icc_profile)) != "RGB":
        raise SuperResError(
            f"cannot write '{path}': icc_profile is not an RGB ICC profile "
            f"(colour space {icc_colour_space(bytes(icc_profile)) or 'unreadable'}); pass the "
            "profile of an RGB image, or none")
    pixels = _as_hwc(rgb, path)
    if fmt == "jpeg":
        data = _encode_jpeg(pixels, icc_profile, path)
    else:
        data = _encode_with_ffmpeg(pixels, fmt, bit_depth, path)
        if icc_profile is not None:
            data = (png_with_icc if fmt == "png" else tiff_with_icc)(data, bytes(icc_profile))
    return write_bytes_atomic(path, data)


def _encode_jpeg(pixels: np.ndarray, icc_profile: bytes | None, path: Path) -> bytes:
    from PIL import Image

    codes = np.empty(pixels.shape, dtype=np.uint8)
    _to_codes(pixels, codes, 255.0, path)
    image = Image.fromarray(codes)
    del codes
    buffer = io.BytesIO()
    extra = {"icc_profile": bytes(icc_profile)} if icc_profile is not None else {}
    image.save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling=0, **extra)
    return buffer.getvalue()


def _encode_with_ffmpeg(pixels: np.ndarray, fmt: str, bit_depth: int, path: Path) -> bytes:
    height, width, _ = pixels.shape
    dtype: np.dtype
    if bit_depth == 8:
        pix_fmt, dtype, peak = "rgb24", np.dtype(np.uint8), 255.0
    else:
        # PNG stores big-endian samples, FFmpeg's TIFF encoder takes little-endian ones.
        pix_fmt, dtype, peak = ("rgb48be", np.dtype(">u2"), 65535.0) if fmt == "png" else (
            "rgb48le", np.dtype("<u2"), 65535.0)
    frame = av.VideoFrame(width, height, pix_fmt)
    plane = frame.planes[0]
    raw = np.frombuffer(memoryview(plane), dtype=np.uint8)
    rows = raw[: height * plane.line_size].reshape(height, plane.line_size)
    # The codes go straight into the encoder's frame: no separate integer copy of the image.
    _to_codes(pixels, rows[:, : width * 3 * dtype.itemsize].view(dtype).reshape(height, width, 3), peak, path)
    frame.pts = 0
    ctx: Any = av.CodecContext.create(fmt, "w")  # a VideoCodecContext
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, 1)
    if fmt == "tiff":
        ctx.options = {"compression_algo": "deflate"}
    packets = ctx.encode(frame) + ctx.encode(None)
    del frame
    if len(packets) == 1:  # an image codec's one packet: one copy out of FFmpeg, no join
        return bytes(packets[0])
    return b"".join(bytes(packet) for packet in packets)
