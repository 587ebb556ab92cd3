"""What a video writer needs to know about its source, as one immutable value.

A :class:`StreamInfo` is made by :class:`~vs_superres.media.video.VideoReader` (``reader.info``)
from a file or from a pipe; :class:`~vs_superres.media.writer.VideoWriter` takes it and never
looks at the source itself, so the two modules do not depend on each other. The streams to
pass through (audio, subtitles, attachments) are described by :class:`PassthroughStream`;
their packets travel separately (see ``VideoReader.passthrough_packets``), demuxed in the
same single pass as the video, which is what lets a pipe be read only once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Protocol

import av

from vs_superres.contracts.errors import UnsupportedFormat
from vs_superres.media.colour import (CHROMA_LEFT, MATRIX_UNSPECIFIED, RANGE_FULL, RANGE_UNSPECIFIED,
                     ColourInfo, guess_matrix)
from vs_superres.media.convert import PixelLayout, pixel_layout
from vs_superres.media.pyav_features import disposition_flags, frame_primaries_transfer
from vs_superres.media.metadata import SourceTags

#: stream kinds a writer copies; anything else is listed in ``StreamInfo.dropped``
PASSTHROUGH_KINDS = ("audio", "subtitle", "attachment")


@dataclass(frozen=True)
class PassthroughStream:
    """One source stream to carry into the output unchanged.

    ``index``: absolute index in the source container (packets carry it as ``stream_index``);
    ``kind``: ``"audio"``, ``"subtitle"`` or ``"attachment"``; ``codec_name``: canonical codec
    name (``"aac"``, ``"subrip"``), or the mimetype of an attachment; ``time_base`` of its
    packets; ``language``/``title`` tags; ``disposition`` flags (default, forced, ...).

    Audio and subtitle streams are added to the output from ``template``, the PyAV stream of
    the source container (its codec parameters); it is valid while that container is open,
    i.e. while the reader is. Attachments (fonts of a Matroska file) hold their payload in
    ``filename``/``mimetype``/``data`` and need no template.
    """

    index: int
    kind: str
    codec_name: str
    time_base: Fraction | None = None
    language: str | None = None
    title: str | None = None
    disposition: int = 0
    filename: str | None = None
    mimetype: str | None = None
    data: bytes = dataclasses.field(default=b"", repr=False, compare=False)
    template: Any = dataclasses.field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        """``"stream #1 (audio, aac)"``, the way log messages name it."""
        return f"stream #{self.index} ({self.kind}, {self.codec_name})"

    @classmethod
    def from_stream(cls, stream) -> "PassthroughStream":
        """Describe a PyAV input stream of one of the :data:`PASSTHROUGH_KINDS`."""
        metadata = dict(stream.metadata or {})
        title = metadata.get("title") or None
        if stream.type == "attachment":
            mimetype = getattr(stream, "mimetype", None) or metadata.get("mimetype")
            return cls(index=stream.index, kind="attachment", codec_name=mimetype or "unknown",
                       title=title, filename=getattr(stream, "name", None) or metadata.get("filename"),
                       mimetype=mimetype, data=bytes(getattr(stream, "data", b"") or b""))
        ctx = stream.codec_context
        codec = ctx.codec.canonical_name if ctx is not None else "unknown"
        return cls(index=stream.index, kind=stream.type, codec_name=codec,
                   time_base=Fraction(stream.time_base) if stream.time_base else None,
                   language=stream.language or None, title=title,
                   disposition=disposition_flags(stream), template=stream)


@dataclass(frozen=True)
class StreamInfo:
    """The video stream a writer reproduces, and the streams it carries along.

    ``width``/``height`` of the decoded pictures; ``fps`` (Fraction) and ``time_base``
    (Fraction) of the timestamps; ``pix_fmt`` and its ``layout`` (:class:`PixelLayout`: kind,
    bit depth, subsampling); ``colour`` (:class:`ColourInfo`: matrix, range, primaries,
    transfer, chroma siting); ``sample_aspect_ratio`` (1 when untagged); ``rotation``
    (degrees counter-clockwise); ``codec_name`` of the source video; ``stream_index`` of the
    video in its container; ``frame_count`` (exact when ``frame_count_exact``, else estimated
    from the duration, 0 when unknown); ``duration`` in seconds or None; ``passthrough``:
    the streams to copy; ``dropped``: descriptions of the streams that cannot be copied
    (data streams, further video streams, cover art), for the writer to warn about; ``tags``:
    the container's and streams' metadata and the chapters (:class:`~.metadata.SourceTags`).
    """

    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    pix_fmt: str
    layout: PixelLayout
    colour: ColourInfo
    sample_aspect_ratio: Fraction = Fraction(1)
    rotation: int = 0
    codec_name: str = ""
    stream_index: int = 0
    frame_count: int = 0
    frame_count_exact: bool = False
    duration: float | None = None
    passthrough: tuple[PassthroughStream, ...] = ()
    dropped: tuple[str, ...] = ()
    tags: SourceTags = SourceTags()

    @property
    def bit_depth(self) -> int:
        return self.layout.bits

    @property
    def frame_step(self) -> int:
        """One frame at the nominal rate, in ``time_base`` units (at least 1)."""
        return max(1, round(1 / (self.fps * self.time_base)))

    @classmethod
    def from_stream(cls, container, stream, first: av.VideoFrame, *, name: str = "the input",
                    probe_chroma: Callable[[], int | None] | None = None,
                    passthrough: bool = False) -> "StreamInfo":
        """Describe ``stream`` of the open input ``container`` from its tags and ``first``
        decoded frame.

        ``probe_chroma`` is called for subsampled Y'CbCr only and returns the chroma siting
        (an ``AVChromaLocation``) or None when unknown. With ``passthrough`` the container's
        other streams are described for copying (see :func:`passthrough_streams`).
        """
        ctx = stream.codec_context
        pix_fmt = first.format.name
        layout = pixel_layout(pix_fmt)
        time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or ctx.framerate
        if not rate:
            raise UnsupportedFormat(
                f"cannot read {name}: the video has no frame rate; remux it with one, "
                "e.g. `ffmpeg -r 24 -i IN -c copy OUT.mkv`")
        fps = Fraction(rate)
        sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
        duration = None
        if stream.duration:
            duration = float(stream.duration * time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        count = stream.frames or int(stream.metadata.get("NUMBER_OF_FRAMES", 0) or 0)
        exact = count > 0
        if not count:
            count = max(1, round(duration * fps)) if duration else 0
        copies, dropped = passthrough_streams(container, stream.index) if passthrough else ((), ())
        return cls(
            width=first.width, height=first.height, fps=fps, time_base=time_base,
            pix_fmt=pix_fmt, layout=layout,
            colour=_colour(first, ctx, layout, pix_fmt, probe_chroma),
            sample_aspect_ratio=Fraction(sar) if sar else Fraction(1),
            rotation=int(round(first.rotation or 0)), codec_name=ctx.name,
            stream_index=stream.index, frame_count=count, frame_count_exact=exact,
            duration=duration, passthrough=copies, dropped=dropped, tags=SourceTags.read(container))


def passthrough_streams(container, video_index: int
                        ) -> tuple[tuple[PassthroughStream, ...], tuple[str, ...]]:
    """``(copyable, dropped)``: the streams of ``container`` other than ``video_index``
    that a writer can carry along, and descriptions of those it cannot."""
    copies, dropped = [], []
    for stream in container.streams:
        if stream.index == video_index:
            continue
        if stream.type in PASSTHROUGH_KINDS:
            copies.append(PassthroughStream.from_stream(stream))
        else:
            ctx = stream.codec_context
            codec = ctx.codec.canonical_name if ctx is not None and ctx.codec else "unknown"
            dropped.append(f"stream #{stream.index} ({stream.type}, {codec})")
    return tuple(copies), tuple(dropped)


def _colour(frame: av.VideoFrame, ctx, layout: PixelLayout, pix_fmt: str,
            probe_chroma: Callable[[], int | None] | None) -> ColourInfo:
    def tag(frame_value, ctx_value, unspecified):
        value = int(frame_value or 0)
        return value if value not in (0, unspecified) else int(ctx_value or unspecified)

    matrix = tag(frame.colorspace, ctx.colorspace, MATRIX_UNSPECIFIED)
    colour_range = int(frame.color_range or ctx.color_range or RANGE_UNSPECIFIED)
    if colour_range == RANGE_UNSPECIFIED and pix_fmt.startswith("yuvj"):
        colour_range = RANGE_FULL
    matrix_guessed = False
    if layout.kind == "rgb":
        matrix = 0
    elif matrix in (0, MATRIX_UNSPECIFIED):
        matrix, matrix_guessed = guess_matrix(frame.width, frame.height), True
    chroma, chroma_guessed = CHROMA_LEFT, True
    if layout.kind == "yuv" and (layout.log2_w or layout.log2_h) and probe_chroma is not None:
        probed = probe_chroma()
        if probed:
            chroma, chroma_guessed = probed, False
    frame_primaries, frame_transfer = frame_primaries_transfer(frame)
    return ColourInfo(
        matrix=matrix, range=colour_range,
        primaries=tag(frame_primaries, ctx.color_primaries, 2),
        transfer=tag(frame_transfer, ctx.color_trc, 2),
        chroma_location=chroma, matrix_guessed=matrix_guessed,
        chroma_location_guessed=chroma_guessed)


class HasStreamInfo(Protocol):
    """Anything carrying a :class:`StreamInfo` as ``info`` (a :class:`VideoReader`)."""

    @property
    def info(self) -> StreamInfo: ...


def require_info(source: StreamInfo | HasStreamInfo) -> StreamInfo:
    """``source`` itself when it is a :class:`StreamInfo`, else its ``info`` attribute (a
    reader); anything else is a programming error."""
    if isinstance(source, StreamInfo):
        return source
    info = getattr(source, "info", None)
    if isinstance(info, StreamInfo):
        return info
    raise TypeError(f"expected a StreamInfo (e.g. VideoReader(...).info), got {type(source).__name__}")


__all__ = ["PASSTHROUGH_KINDS", "HasStreamInfo", "PassthroughStream", "StreamInfo",
           "passthrough_streams", "require_info"]
