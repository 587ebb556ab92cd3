"""Still images: PNG/TIFF through FFmpeg's codecs (PyAV), JPEG through Pillow.

Why not Pillow everywhere: Pillow has no 16-bit RGB mode, so it reads 48-bit PNGs as 8-bit
and cannot write them. FFmpeg's ``png``/``tiff`` codecs handle ``rgb48``, grey, palette and
alpha layouts, and decoding a file as a single packet avoids the image2 demuxer, which would
treat ``%`` in a file name as a sequence pattern.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..contracts.errors import SuperResError
from .atomic import write_bytes_atomic
from .convert import pixel_layout

_READ_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff",
                 ".tiff": "tiff", ".bmp": "bmp", ".webp": "webp"}
_WRITE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff",
                  ".tiff": "tiff"}
JPEG_QUALITY = 95
#: file name extensions read (resp. written) as still images; hosts tell images from videos by these
IMAGE_READ_EXTENSIONS = frozenset(_READ_FORMATS)
IMAGE_WRITE_EXTENSIONS = frozenset(_WRITE_FORMATS)


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`read_image` found in the file, before conversion to float RGB.

    ``bit_depth``: bits per sample in the file (1, 8 or 16). ``has_alpha``: the file carries
    transparency, which was dropped (hosts should warn). ``is_grey``: single-channel source,
    replicated to RGB. ``pixel_format``: the decoder's layout, e.g. ``rgb48be``, ``pal8``, or
    the Pillow mode for JPEG. ``orientation_applied``: an EXIF rotation/flip was applied.
    """

    width: int
    height: int
    format: str
    bit_depth: int
    has_alpha: bool
    is_grey: bool
    pixel_format: str
    orientation_applied: bool = False


def _format_for(path: Path, table: dict, verb: str) -> str:
    fmt = table.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(table))
        raise SuperResError(
            f"cannot {verb} '{path}': unknown image extension '{path.suffix or '(none)'}'; "
            f"expected one of {known}; rename the file or pick a supported format")
    return fmt


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, ImageInfo]:
    """Read an image file as R'G'B' float32 ``[H, W, 3]`` in ``[0, 1]`` plus its :class:`ImageInfo`.

    Grey images are replicated to three channels; alpha is dropped (``info.has_alpha``).
    8-bit samples are divided by 255, 16-bit by 65535 (full precision is kept).
    """
    path = Path(path)
    fmt = _format_for(path, _READ_FORMATS, "read")
    if not path.is_file():
        raise SuperResError(f"cannot read '{path}': no such file; check the path")
    data = path.read_bytes()
    if fmt in ("png", "tiff"):
        try:
            return _decode_with_ffmpeg(data, fmt)
        except SuperResError:
            pass  # fall back to Pillow, which knows a few TIFF variants FFmpeg does not
    return _decode_with_pillow(data, fmt, path)


def _decode_with_ffmpeg(data: bytes, fmt: str) -> tuple[np.ndarray, ImageInfo]:
    try:
        ctx: Any = av.CodecContext.create(fmt, "r")  # a VideoCodecContext (PyAV's stubs say the base class)
        frames = ctx.decode(av.Packet(data)) + ctx.decode(None)
    except (av.FFmpegError, ValueError) as exc:
        raise SuperResError(f"FFmpeg could not decode the {fmt} data: {exc}") from exc
    if not frames:
        raise SuperResError(f"FFmpeg found no picture in the {fmt} data")
    frame = frames[0]
    name = frame.format.name
    layout = pixel_layout(name)
    if layout.kind == "gray":
        wide = layout.bits > 8
        grey = frame.to_ndarray(format="gray16le" if wide else "gray")
        peak = np.float32(65535.0 if wide else 255.0)
        rgb = np.repeat((grey.astype(np.float32) / peak)[..., None], 3, axis=-1)
        has_alpha = layout.has_alpha
    else:
        wide = layout.bits > 8
        target = ("rgba64le" if wide else "rgba") if layout.has_alpha else (
            "rgb48le" if wide else "rgb24")
        pixels = frame.to_ndarray(format=target)
        peak = np.float32(65535.0 if wide else 255.0)
        has_alpha = layout.has_alpha
        if layout.has_alpha:
            has_alpha = name != "pal8" or bool((pixels[..., 3] < 255).any())
        rgb = pixels[..., :3].astype(np.float32) / peak
    info = ImageInfo(frame.width, frame.height, fmt, 16 if layout.bits > 8 else layout.bits,
                     has_alpha, layout.kind == "gray", name)
    return np.ascontiguousarray(rgb, dtype=np.float32), info


def _decode_with_pillow(data: bytes, fmt: str, path: Path) -> tuple[np.ndarray, ImageInfo]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        image: Image.Image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SuperResError(
            f"cannot read '{path}': not a readable {fmt.upper()} image ({exc}); check that the "
            "file is complete and really is what its extension says") from exc
    orientation_applied = image.getexif().get(0x0112, 1) not in (1, None)
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    has_alpha = mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    is_grey = mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(image).astype(np.float32) / np.float32(65535.0)
        rgb, bit_depth = np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=-1), 16
    elif mode == "F":
        rgb, bit_depth = np.repeat(np.clip(np.asarray(image), 0, 1)[..., None], 3, axis=-1), 32
    else:
        rgb = np.asarray(image.convert("RGB")).astype(np.float32) / np.float32(255.0)
        bit_depth = 1 if mode == "1" else 8
    info = ImageInfo(image.width, image.height, fmt, bit_depth, has_alpha, is_grey, mode,
                     orientation_applied)
    return np.ascontiguousarray(rgb, dtype=np.float32), info


def _as_hwc(rgb, path: Path) -> np.ndarray:
    if hasattr(rgb, "detach"):  # a torch tensor
        rgb = rgb.detach().float().cpu().numpy()
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
    if not np.isfinite(array).all():
        raise SuperResError(
            f"cannot write '{path}': the image contains NaN or infinite values; check the "
            "model output (fp16 overflow is a common cause; try fp32)")
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def write_image(path: str | os.PathLike, rgb, bit_depth: int = 8) -> Path:
    """Write R'G'B' float ``[H, W, 3]`` (or ``[3, H, W]``) in ``[0, 1]`` to ``path``, atomically.

    Format from the extension: PNG and TIFF at ``bit_depth`` 8 or 16 (real 48-bit RGB), JPEG
    at 8 bits, quality 95, no chroma subsampling. Values are clipped to ``[0, 1]`` and
    rounded to the nearest code. Returns the path written.
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
    pixels = _as_hwc(rgb, path)
    if fmt == "jpeg":
        data = _encode_jpeg(pixels)
    else:
        data = _encode_with_ffmpeg(pixels, fmt, bit_depth)
    return write_bytes_atomic(path, data)


def _encode_jpeg(pixels: np.ndarray) -> bytes:
    from PIL import Image

    codes = np.rint(pixels * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(codes, "RGB").save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


def _encode_with_ffmpeg(pixels: np.ndarray, fmt: str, bit_depth: int) -> bytes:
    height, width, _ = pixels.shape
    if bit_depth == 8:
        pix_fmt, codes = "rgb24", np.rint(pixels * 255.0).astype(np.uint8)
    else:
        # PNG stores big-endian samples, FFmpeg's TIFF encoder takes little-endian ones.
        pix_fmt = "rgb48be" if fmt == "png" else "rgb48le"
        codes = np.rint(pixels * 65535.0).astype(">u2" if fmt == "png" else "<u2")
    frame = av.VideoFrame(width, height, pix_fmt)
    plane = frame.planes[0]
    raw = np.frombuffer(memoryview(plane), dtype=np.uint8)
    row_bytes = codes.reshape(height, -1).view(np.uint8)
    raw[: height * plane.line_size].reshape(height, plane.line_size)[:, : row_bytes.shape[1]] = (
        row_bytes)
    frame.pts = 0
    ctx: Any = av.CodecContext.create(fmt, "w")  # a VideoCodecContext
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, 1)
    if fmt == "tiff":
        ctx.options = {"compression_algo": "deflate"}
    packets = ctx.encode(frame) + ctx.encode(None)
    return b"".join(bytes(packet) for packet in packets)
