"""The video going out: upscaled R'G'B' frames, written losslessly into a carrier on a pipe.

:class:`PipeSink` is the media layer's :class:`~vs_superres.media.writer.VideoWriter` with the
bridge's choices made: the carrier's format and codec (:meth:`Carrier.video_codec`:
uncompressed wherever the carrier stores the pixel format as it is, FFV1 in Matroska for the
others), the source's pixel format (bit depth in = out; the closest FFV1 format with the
same kind, depth and subsampling where FFV1 lacks it, e.g. ``bgr0`` for ``rgb24``), a sample
aspect scaled to keep the source's display aspect, the y4m header's interlacing. Everything
else is the writer's: colour-exact frames with the source's matrix, range and chroma siting
(repacked by swscale for packed and semi-planar formats), the tags, the source's timestamps
fitted to the carrier, audio/subtitle/attachment streams copied and interleaved by time.
"""

from __future__ import annotations

from fractions import Fraction
from typing import IO, Callable

import av

from vs_superres.contracts.errors import UnsupportedFormat
from vs_superres.ffmpeg_filter.carriers import Carrier
from vs_superres.media.convert import pixel_layout
from vs_superres.media.streaminfo import StreamInfo
from vs_superres.media.writer import VideoWriter

#: FFV1 as the bridge writes it: version 3 (multithreaded slices), no per-slice CRCs (the
#: pipe is not storage; they cost encode time)
FFV1_OPTIONS = {"level": "3", "slicecrc": "0"}


def output_pix_fmt(carrier: Carrier, source_pix_fmt: str) -> str:
    """The source's pixel format when the carrier's codec for it takes it, else the closest
    one with the same kind, subsampling and bit depth (FFV1 stores 8-bit RGB as ``bgr0``)."""
    codec = carrier.video_codec(source_pix_fmt)
    names = [f.name for f in av.Codec(codec, "w").video_formats or ()]
    if not names or source_pix_fmt in names:
        return source_pix_fmt
    want = pixel_layout(source_pix_fmt)
    for name in names:
        got = pixel_layout(name)
        if (got.kind, got.bits, got.subsampling, got.is_float) == (want.kind, want.bits, want.subsampling, False) \
                and not got.has_alpha:
            return name
    raise UnsupportedFormat(f"{carrier.description} output cannot hold pixel format "
                            f"{source_pix_fmt}; use -f nut (any pixel format) or convert first")


def output_aspect(source_aspect: Fraction, source_size: tuple[int, int], size: tuple[int, int]) -> Fraction:
    """The sample aspect that keeps the source's display aspect at the output's size (the
    same as the source's when both axes scale alike)."""
    (sw, sh), (w, h) = source_size, size
    return Fraction(source_aspect) * Fraction(sw * h, sh * w)


class PipeSink(VideoWriter):
    """Write ``[3, height, width]`` float R'G'B' frames to ``out`` in ``carrier``.

    ``info`` is the source's :class:`StreamInfo` (rate, time base, colour, aspect, the streams
    to copy); ``field_order`` is ffmpeg's name of the source's interlacing, or None;
    ``packets`` polls the pass-through packets ready so far (the pump's
    :attr:`~vs_superres.media.pump.SinkRequest.packets`). The pump uses :meth:`write`,
    :meth:`close` and :meth:`abort`.
    """

    def __init__(self, out: IO[bytes], carrier: Carrier, info: StreamInfo, width: int, height: int,
                 *, field_order: str | None = None, copy_streams: bool = True,
                 packets: Callable[[], list] | None = None):
        pix_fmt = output_pix_fmt(carrier, info.pix_fmt)
        if carrier.name == "y4m" and pixel_layout(pix_fmt).kind == "rgb":
            raise UnsupportedFormat(f"y4m cannot carry RGB ({info.pix_fmt}); use -f nut or -f matroska")
        codec = carrier.video_codec(pix_fmt)
        self.carrier = carrier
        super().__init__(
            out, info, width, height, format=carrier.av_format, codec=codec, pix_fmt=pix_fmt,
            options=FFV1_OPTIONS if codec == "ffv1" else None, copy_streams=copy_streams, packets=packets,
            sample_aspect_ratio=output_aspect(info.sample_aspect_ratio, (info.width, info.height),
                                              (width, height)),
            field_order=field_order)
