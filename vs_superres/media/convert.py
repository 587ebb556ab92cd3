"""PyAV video frames <-> float R'G'B' arrays, with the colour maths of :mod:`.colour`.

Planar Y'CbCr frames are read straight from their planes; semi-planar or packed layouts
(nv12, p010, yuyv422, ...) are first repacked losslessly by swscale into the planar layout of
the same bit depth and subsampling, which involves no colour maths.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from vs_superres.contracts.errors import SuperResError
from vs_superres.media.colour import (ColourInfo, chroma_offsets, downsample_chroma, rgb_to_yuv,
                     upsample_chroma, yuv_to_rgb)
from vs_superres.media.pyav_features import tag_frame

_SUBSAMPLING_NAMES = {(1, 1): "420", (1, 0): "422", (0, 0): "444", (0, 1): "440",
                      (2, 0): "411", (2, 2): "410"}


@dataclass(frozen=True)
class PixelLayout:
    """What a pixel format holds: ``kind`` is ``"yuv"``, ``"gray"`` or ``"rgb"``."""

    kind: str
    bits: int
    log2_w: int
    log2_h: int
    has_alpha: bool
    is_float: bool = False

    @property
    def subsampling(self) -> str:
        return _SUBSAMPLING_NAMES.get((self.log2_w, self.log2_h), "444")

    def planar_name(self) -> str:
        """The planar FFmpeg format holding the same samples, e.g. ``yuv420p10le``."""
        depth = "" if self.bits <= 8 else f"{self.bits}le"
        if self.kind == "gray":
            return f"gray{depth}"
        if self.kind == "rgb":
            return f"gbrp{depth}"
        return f"yuv{self.subsampling}p{depth}"


def pixel_layout(pix_fmt: str) -> PixelLayout:
    """Describe ``pix_fmt`` (an FFmpeg pixel format name)."""
    fmt = av.video.format.VideoFormat(pix_fmt)
    colour = [c for c in fmt.components if not c.is_alpha]
    has_alpha = any(c.is_alpha for c in fmt.components)
    bits = max((c.bits for c in colour), default=8)
    is_float = "f32" in pix_fmt or "f16" in pix_fmt
    if fmt.is_rgb or fmt.has_palette or pix_fmt.startswith(("gbr", "bgr", "rgb", "0rgb")):
        return PixelLayout("rgb", 8 if fmt.has_palette else bits, 0, 0,
                           has_alpha or fmt.has_palette, is_float)
    if len(colour) == 1:
        return PixelLayout("gray", bits, 0, 0, has_alpha, is_float)
    w, h = 64, 64
    log2_w = (w // fmt.chroma_width(w)).bit_length() - 1
    log2_h = (h // fmt.chroma_height(h)).bit_length() - 1
    return PixelLayout("yuv", bits, log2_w, log2_h, has_alpha, is_float)


def _plane_array(plane, bits: int, big_endian: bool) -> np.ndarray:
    """View of one plane's visible samples, [plane.height, plane.width]."""
    dtype = np.dtype(np.uint8) if bits <= 8 else np.dtype(">u2" if big_endian else "<u2")
    raw = np.frombuffer(plane, dtype=dtype)
    rows = raw[: plane.height * (plane.line_size // dtype.itemsize)]
    return rows.reshape(plane.height, -1)[:, : plane.width]


def is_direct_planar(fmt: av.VideoFormat | str, *, writable: bool = False) -> bool:
    """Whether the pixel format ``fmt`` (a name or a format) is planar with one plane per
    component and no palette: :func:`frame_to_rgb` reads such planes as they are, other
    layouts are repacked by swscale first. ``writable``: also little-endian (or 8-bit), as
    :func:`rgb_to_frame` fills it."""
    if isinstance(fmt, str):
        fmt = av.video.format.VideoFormat(fmt)
    planes = [c.plane for c in fmt.components]
    return (fmt.is_planar and len(set(planes)) == len(planes) and not fmt.has_palette
            and not (writable and fmt.is_big_endian))


def frame_to_rgb(frame: av.VideoFrame, colour: ColourInfo) -> np.ndarray:
    """Decode ``frame`` into R'G'B' float32 ``[3,H,W]`` in ``[0,1]``, using ``colour``.

    Alpha, where present, is dropped. Y'CbCr uses ``colour.matrix``/``range``/
    ``chroma_location``; RGB and palette formats are only rescaled.
    """
    layout = pixel_layout(frame.format.name)
    if layout.kind == "rgb":
        return _rgb_frame_to_array(frame, layout)
    fmt = frame.format
    if not is_direct_planar(fmt) or layout.is_float:
        target = layout.planar_name()
        try:
            frame = frame.reformat(format=target)
        except (ValueError, av.FFmpegError) as exc:
            raise SuperResError(
                f"cannot unpack pixel format '{fmt.name}' into '{target}' ({exc}); convert the "
                "source to yuv420p/yuv420p10le first, e.g. `ffmpeg -i IN -pix_fmt yuv420p OUT`"
            ) from exc
        fmt = frame.format
    big = fmt.name.endswith("be")
    y = _plane_array(frame.planes[0], layout.bits, big)
    if layout.kind == "gray":
        mid = float(1 << (layout.bits - 1))
        chroma = np.full(y.shape, mid, dtype=np.float32)
        return yuv_to_rgb(y, chroma, chroma, layout.bits, colour)
    offsets = chroma_offsets(colour.chroma_location, layout.log2_w, layout.log2_h)
    h, w = frame.height, frame.width
    cb, cr = (upsample_chroma(_plane_array(frame.planes[i], layout.bits, big), w, h,
                              layout.log2_w, layout.log2_h, offsets) for i in (1, 2))
    return yuv_to_rgb(y, cb, cr, layout.bits, colour)


def _rgb_frame_to_array(frame: av.VideoFrame, layout: PixelLayout) -> np.ndarray:
    name = frame.format.name
    if layout.is_float:
        rgb = frame.to_ndarray(format="gbrpf32le").astype(np.float32)
    elif name.startswith("gbr") and is_direct_planar(frame.format):
        big = name.endswith("be")
        g, b, r = (_plane_array(frame.planes[i], layout.bits, big) for i in range(3))
        rgb = np.stack([r, g, b], axis=-1).astype(np.float32) / np.float32((1 << layout.bits) - 1)
    elif layout.bits <= 8:
        rgb = frame.to_ndarray(format="rgb24").astype(np.float32) / np.float32(255)
    else:
        rgb = frame.to_ndarray(format="rgb48le").astype(np.float32) / np.float32(65535)
    return np.ascontiguousarray(np.clip(rgb, 0.0, 1.0).transpose(2, 0, 1))


def _quantise(values: np.ndarray, bits: int) -> np.ndarray:
    dtype = np.uint8 if bits <= 8 else np.uint16
    return np.clip(np.rint(values), 0, (1 << bits) - 1).astype(dtype)


def _fill_plane(plane, samples: np.ndarray) -> None:
    dtype = np.dtype(np.uint8) if samples.dtype == np.uint8 else np.dtype("<u2")
    raw = np.frombuffer(plane, dtype=dtype)
    stride = plane.line_size // dtype.itemsize
    view = raw[: plane.height * stride].reshape(plane.height, stride)
    view[:, : plane.width] = samples


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, colour: ColourInfo) -> av.VideoFrame:
    """Encode R'G'B' float ``[3,H,W]`` (clipped to ``[0,1]``) into a new ``pix_fmt`` frame.

    ``pix_fmt`` must be a planar little-endian (or 8-bit) ``yuv*``, ``gray*`` or ``gbrp*``
    format; values are rounded to the nearest code and the frame is tagged with ``colour``.
    """
    rgb = np.clip(np.asarray(rgb, dtype=np.float32), 0.0, 1.0)
    _, height, width = rgb.shape
    layout = pixel_layout(pix_fmt)
    frame = av.VideoFrame(width, height, pix_fmt)
    if layout.kind == "rgb":
        peak = np.float32((1 << layout.bits) - 1)
        for plane_index, channel in ((0, 1), (1, 2), (2, 0)):  # gbrp planes: G, B, R
            _fill_plane(frame.planes[plane_index], _quantise(rgb[channel] * peak, layout.bits))
    else:
        y, cb, cr = rgb_to_yuv(rgb, layout.bits, colour)
        _fill_plane(frame.planes[0], _quantise(y, layout.bits))
        if layout.kind == "yuv":
            offsets = chroma_offsets(colour.chroma_location, layout.log2_w, layout.log2_h)
            for index, chroma in ((1, cb), (2, cr)):
                small = downsample_chroma(chroma, layout.log2_w, layout.log2_h, offsets)
                _fill_plane(frame.planes[index], _quantise(small, layout.bits))
        if layout.has_alpha:
            _fill_plane(frame.planes[3], np.full((height, width), (1 << layout.bits) - 1,
                                                 dtype=np.uint8 if layout.bits <= 8 else np.uint16))
    tag_frame(frame, colour.matrix if layout.kind != "rgb" else 0, colour.range,
              colour.primaries, colour.transfer)
    return frame
