"""The video going out: upscaled R'G'B' frames, encoded losslessly into a carrier on a pipe.

The pixel format is the source's (bit depth in = out); frames are made by the media layer's
colour-exact :func:`~vs_superres.media.convert.rgb_to_frame` with the source's own matrix,
range and chroma siting, then repacked without colour maths (swscale) when the source's
format is packed or semi-planar (``rgb24``, ``nv12``, ``p010le``). Timestamps are the
source's; audio, subtitle and attachment streams of a Matroska/NUT source are copied
with their timing (libavformat interleaves them).

Why not :class:`vs_superres.media.VideoWriter`: it picks among lossy encoders for files and
cannot write ``rawvideo``/``wrapped_avframe``, which is what a pipe carrier needs (see the
report on issue 11; once it can, this module shrinks to a VideoWriter call).
"""

from __future__ import annotations

import dataclasses
import logging
from fractions import Fraction
from typing import IO, Any, Iterable

import av
import numpy as np

from ..contracts.errors import UnsupportedFormat
from ..media.colour import CHROMA_LOCATION_NAMES, guess_matrix
from ..media.convert import pixel_layout, rgb_to_frame
from ..media.streaminfo import StreamInfo
from .carriers import Carrier
from .stream_aspect import set_stream_aspect

log = logging.getLogger("vs_superres.ffmpeg_filter")


def _direct_planar(pix_fmt: str) -> bool:
    fmt = av.video.format.VideoFormat(pix_fmt)
    planes = [c.plane for c in fmt.components]
    return fmt.is_planar and len(set(planes)) == len(planes) and not pix_fmt.endswith("be")


def output_pix_fmt(carrier: Carrier, source_pix_fmt: str) -> str:
    """The source's pixel format when the carrier's codec takes it, else the closest one with
    the same kind, subsampling and bit depth (FFV1 stores 8-bit RGB as ``bgr0``)."""
    if carrier.video_codec in ("rawvideo", "wrapped_avframe"):
        return source_pix_fmt
    names = [f.name for f in av.Codec(carrier.video_codec, "w").video_formats or ()]
    if source_pix_fmt in names:
        return source_pix_fmt
    want = pixel_layout(source_pix_fmt)
    for name in names:
        got = pixel_layout(name)
        if (got.kind, got.bits, got.subsampling, got.is_float) == (want.kind, want.bits, want.subsampling, False) \
                and not got.has_alpha:
            return name
    raise UnsupportedFormat(f"{carrier.description} output cannot hold pixel format "
                            f"{source_pix_fmt}; use -f nut (any pixel format) or convert first")


class _AspectPatch:
    """FFmpeg's y4m muxer writes the ``A`` field from the stream's aspect; where that cannot be
    set (:func:`~.stream_aspect.set_stream_aspect` refused), this file object rewrites that one
    field of the header line as it passes. With ``aspect`` None it passes bytes unchanged."""

    def __init__(self, raw: IO[bytes]):
        self._raw, self._done = raw, False
        self.aspect: Fraction | None = None

    def write(self, data) -> int:
        data = bytes(data)
        if not self._done and self.aspect is not None:
            self._done = True
            end = data.find(b"\n")
            head = data[:end].split(b" ")
            head = [f"A{self.aspect.numerator}:{self.aspect.denominator}".encode()
                    if f.startswith(b"A") else f for f in head]
            patched = b" ".join(head) + data[end:]
            self._raw.write(patched)
            return len(data)
        self._done = True
        self._raw.write(data)
        return len(data)

    def flush(self) -> None:
        self._raw.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def output_aspect(source_aspect: Fraction, source_size: tuple[int, int], size: tuple[int, int]) -> Fraction:
    """The sample aspect that keeps the source's display aspect at the output's size (the
    same as the source's when both axes scale alike)."""
    (sw, sh), (w, h) = source_size, size
    return Fraction(source_aspect) * Fraction(sw * h, sh * w)


class PipeSink:
    """Write ``[3, height, width]`` float R'G'B' frames to ``out`` in ``carrier``.

    ``info`` is the source's :class:`StreamInfo` (rate, time base, colour, aspect, the streams
    to copy); ``field_order`` is ffmpeg's name of the source's interlacing, or None.
    """

    def __init__(self, out: IO[bytes], carrier: Carrier, info: StreamInfo, width: int, height: int,
                 *, field_order: str | None = None, copy_streams: bool = True):
        self.carrier, self.info = carrier, info
        self.width, self.height = width, height
        self.pix_fmt = output_pix_fmt(carrier, info.pix_fmt)
        if carrier.name == "y4m" and pixel_layout(self.pix_fmt).kind == "rgb":
            raise UnsupportedFormat(f"y4m cannot carry RGB ({info.pix_fmt}); use -f nut or -f matroska")
        layout = pixel_layout(self.pix_fmt)
        self._planar = self.pix_fmt if _direct_planar(self.pix_fmt) else layout.planar_name()
        colour = info.colour
        if layout.kind != "rgb" and colour.matrix == 0:
            colour = dataclasses.replace(colour, matrix=guess_matrix(width, height))
        self.colour = colour
        self.frames_written = 0
        self._raw_out = out if carrier.name == "rawvideo" else None
        self._copy_map: dict[int, av.stream.Stream] = {}
        time_base = 1 / info.fps if carrier.name == "y4m" else info.time_base
        self._time_base = time_base
        if carrier.name == "rawvideo":
            self._encoder = av.CodecContext.create("rawvideo", "w")
            self._encoder.width, self._encoder.height, self._encoder.pix_fmt = width, height, self.pix_fmt
            self._encoder.time_base = time_base
            self._container = None
            return
        self.aspect = output_aspect(info.sample_aspect_ratio, (info.width, info.height), (width, height))
        target = out
        patch = None
        if carrier.name == "y4m":
            target = patch = _AspectPatch(out)  # type: ignore[assignment]
        options = {"strict": "-1"} if carrier.name == "y4m" else {}
        self._container = av.open(target, "w", format=carrier.av_format, options=options)
        stream: Any = self._container.add_stream(carrier.video_codec, rate=info.fps)
        stream.time_base = time_base
        ctx: Any = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = width, height, self.pix_fmt
        ctx.time_base = time_base
        ctx.framerate = info.fps
        ctx.sample_aspect_ratio = self.aspect
        if not set_stream_aspect(stream, self.aspect):
            if patch is not None:
                patch.aspect = self.aspect
            elif self.aspect != 1:
                log.warning("the sample aspect ratio %s:%s is not written: this PyAV/FFmpeg build's "
                            "stream layout is unknown; give the receiving ffmpeg -vf setsar=%s/%s",
                            self.aspect.numerator, self.aspect.denominator,
                            self.aspect.numerator, self.aspect.denominator)
        ctx.colorspace = colour.matrix if layout.kind != "rgb" else 0
        ctx.color_range = colour.range
        ctx.color_primaries = colour.primaries
        ctx.color_trc = colour.transfer
        codec_options = {}
        if layout.kind == "yuv" and (layout.log2_w or layout.log2_h) and not colour.chroma_location_guessed:
            codec_options["chroma_sample_location"] = CHROMA_LOCATION_NAMES[colour.chroma_location]
        if field_order:
            codec_options["field_order"] = field_order
        if carrier.video_codec == "ffv1":
            codec_options.update({"level": "3", "slicecrc": "0"})
            stream.thread_type = "AUTO"
        ctx.options = codec_options
        self._video: Any = stream
        if copy_streams:
            self._open_copies()

    def _open_copies(self) -> None:
        assert self._container is not None
        for where in self.info.dropped:
            log.warning("%s is not copied: only audio, subtitle and attachment streams are", where)
        for copy in self.info.passthrough:
            try:
                if copy.kind == "attachment":
                    if self.carrier.name == "matroska":
                        self._container.add_attachment(
                            copy.filename or f"attachment-{copy.index}",
                            copy.mimetype or "application/octet-stream", copy.data)
                    else:
                        log.warning("%s is not copied: only Matroska carries attachments", copy.describe())
                    continue
                if copy.template is None:
                    continue
                out = self._container.add_stream_from_template(copy.template)
            except (ValueError, av.FFmpegError) as exc:
                log.warning("%s is not copied: %s", copy.describe(), exc)
                continue
            if copy.language:
                out.metadata["language"] = copy.language
            if copy.title:
                out.metadata["title"] = copy.title
            if copy.disposition:
                out.disposition = copy.disposition
            self._copy_map[copy.index] = out

    def remux(self, packets: Iterable[av.Packet]) -> None:
        """Copy source packets of the pass-through streams (others are dropped)."""
        if self._container is None:
            return
        for packet in packets:
            out = self._copy_map.get(packet.stream_index)
            if out is None or not packet.size or (packet.dts is None and packet.pts is None):
                continue
            packet.stream = out
            self._container.mux(packet)

    def write(self, rgb: np.ndarray, pts: int) -> None:
        frame = rgb_to_frame(np.asarray(rgb, dtype=np.float32), self._planar, self.colour)
        if self._planar != self.pix_fmt:
            frame = frame.reformat(format=self.pix_fmt)  # a repack: same samples, new layout
        if self.carrier.name == "y4m":
            pts = self.frames_written  # y4m has no timestamps: one tick of 1/fps per frame
        frame.pts = int(pts)
        frame.time_base = self._time_base
        if self._container is None:
            assert self._raw_out is not None
            for packet in self._encoder.encode(frame):
                self._raw_out.write(bytes(packet))
        else:
            for packet in self._video.encode(frame):
                self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and end the carrier (Matroska/NUT trailers)."""
        if self._container is None:
            assert self._raw_out is not None
            self._raw_out.flush()
            return
        for packet in self._video.encode(None):
            self._container.mux(packet)
        self._container.close()

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # the pipe may already be closed; nothing more can be written
                pass
