"""Choosing the video encoder and pixel format an output is written with; nothing else.

:func:`choose_encoder` picks ``(encoder, pix_fmt)`` for an output container from the source's
:class:`~.streaminfo.StreamInfo`: among lossy file encoders unless one is given, the pixel
format closest to the source's (same kind, subsampling, and at least its bit depth). Given,
any encoder of the build goes, ``rawvideo`` and ``wrapped_avframe`` (y4m) included, with any
pixel format it takes that has a planar twin :func:`~.convert.rgb_to_frame` fills
(:func:`fill_format`): packed and semi-planar layouts (``rgb24``, ``nv12``, ``p010le``,
``bgr0``) are filled in that twin and repacked by swscale (the same samples, no colour maths).
That is how the FFmpeg bridge writes its pipe carriers: y4m (``wrapped_avframe``; 9-16 bit
with the muxer's ``strict -1``, which :class:`~.files.OutputTarget` sets for y4m), NUT and
Matroska (``rawvideo`` or FFV1) and bare frames (FFmpeg's ``rawvideo`` muxer).

It also says which codecs a container stores (:func:`stored_codecs`) and, for a stream that
cannot be copied into it, what to do instead (:func:`stream_copy_advice`). Muxing is
:mod:`.writer`'s.
"""

from __future__ import annotations

import functools
import io
import logging
import os

import av

from vs_superres.contracts.errors import SuperResError
from vs_superres.media.convert import PixelLayout, is_direct_planar, pixel_layout
from vs_superres.media.streaminfo import StreamInfo

log = logging.getLogger(__name__)

# SVT-AV1 prints a banner and its whole configuration on stderr when an encoder opens, unless
# $SVT_LOG says otherwise. It reads the variable when its logger starts (SVT-AV1 4.x: once, at
# the first encoder of the process), and neither FFmpeg's libsvtav1 nor ``svtav1-params`` has
# a per-encoder setting for it. So it is set here, once, before any encoder can open, and only
# where the user has not set it (1: errors only).
os.environ.setdefault("SVT_LOG", "1")

# encoder -> (codec family the muxer knows, default options)
ENCODERS = {
    "libx264": ("h264", {"crf": "16", "preset": "medium"}),
    "libx265": ("hevc", {"crf": "18", "preset": "medium", "x265-params": "log-level=error"}),
    "libvpx-vp9": ("vp9", {"crf": "20", "b": "0", "row-mt": "1"}),
    "libsvtav1": ("av1", {"crf": "24", "preset": "8"}),
    "ffv1": ("ffv1", {"level": "3"}),
    "mpeg4": ("mpeg4", {"qscale": "2"}),
}


#: codecs a muxer stores although FFmpeg's codec query does not list them (MPEG-TS
#: answers only for its defaults)
_MUXER_EXTRA_CODECS = {"mpegts": {"h264", "hevc", "mpeg2video", "mpeg4", "av1"}}

#: text subtitle codecs and the name ``ffmpeg -c:s`` converts them to for each container
_TEXT_SUBTITLES = {"subrip", "ass", "ssa", "mov_text", "webvtt", "text"}
_SUBTITLE_FOR_SUFFIX = {".mkv": "srt", ".mp4": "mov_text", ".mov": "mov_text",
                        ".m4v": "mov_text", ".webm": "webvtt", ".nut": "ass"}
#: the containers a message may suggest, in order of preference, by their FFmpeg names
_SUGGESTED_CONTAINERS = ((".mkv", "matroska"), (".mp4", "mp4"), (".mov", "mov"),
                         (".webm", "webm"), (".nut", "nut"))


def stored_codecs(container: av.container.OutputContainer) -> set[str]:
    """The video codecs the muxer of ``container`` stores."""
    return (set(container.supported_codecs)
            | _MUXER_EXTRA_CODECS.get(container.format.name, set()))


def encoder_defaults(name: str) -> dict[str, str]:
    """A fresh copy of the options the encoder ``name`` is opened with unless told otherwise."""
    return dict(ENCODERS.get(name, ("", {}))[1])


def _containers_taking(codec_name: str) -> list[str]:
    """Suffixes of the suggested containers whose muxer stores ``codec_name``."""
    found = []
    for suffix, fmt in _SUGGESTED_CONTAINERS:
        try:
            with av.open(io.BytesIO(), "w", format=fmt) as probe:
                if codec_name in probe.supported_codecs:
                    found.append(suffix)
        except (av.FFmpegError, ValueError):
            continue
    return found


def stream_copy_advice(kind: str, codec_name: str, suffix: str) -> str:
    """Why a ``kind`` stream in ``codec_name`` is not copied into a ``suffix`` output, and the
    way out that is right for this codec and this container."""
    elsewhere = [s for s in _containers_taking(codec_name) if s != suffix]
    where = (" or ".join(elsewhere[:3]) if elsewhere else None)
    text = f"a '{suffix}' file cannot store {codec_name} {kind}"
    if kind == "subtitle" and codec_name in _TEXT_SUBTITLES and suffix in _SUBTITLE_FOR_SUFFIX:
        target = _SUBTITLE_FOR_SUFFIX[suffix]
        fix = (f"convert the subtitles first with ffmpeg (`ffmpeg -i IN -map 0 -c copy -c:s "
               f"{target} FIXED{suffix}`)")
        return f"{text}; {fix}" + (f", or write a {where} file" if where else "")
    if where:
        return f"{text}; write a {where} file to keep it"
    if kind == "audio":
        return (f"{text}; re-encode it first, e.g. `ffmpeg -i IN -map 0 -c copy -c:a flac "
                f"FIXED.mkv`, or write a .mkv")
    return f"{text}; no container vs-superres writes keeps it"


def encoder_available(name: str) -> bool:
    """Whether PyAV's FFmpeg build has the encoder ``name``."""
    try:
        av.codec.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


def _writable_formats(encoder: str) -> list[str]:
    """Planar formats of ``encoder`` that :func:`rgb_to_frame` can fill directly."""
    return [fmt.name for fmt in av.codec.Codec(encoder, "w").video_formats or ()
            if is_direct_planar(fmt, writable=True) and "f32" not in fmt.name
            and not fmt.name.startswith("yuvj")]


@functools.lru_cache(maxsize=None)
def fill_format(pix_fmt: str) -> str | None:
    """The format :meth:`VideoWriter.write` fills to make a ``pix_fmt`` frame: ``pix_fmt``
    itself when planar, else its planar twin (same kind, depth and subsampling; swscale
    repacks it); None for formats no R'G'B' frame becomes (float, palette, Bayer, bitstream,
    hardware)."""
    try:
        fmt = av.video.format.VideoFormat(pix_fmt)
        layout = pixel_layout(pix_fmt)
    except (ValueError, av.FFmpegError):
        return None
    if (layout.is_float or fmt.has_palette or fmt.is_bayer or fmt.is_bit_stream
            or not fmt.components or pix_fmt.startswith("xyz")):
        return None
    if is_direct_planar(fmt, writable=True):
        return pix_fmt
    try:  # swscale has no output path for a few packed layouts (uyyvyy411, y210be, ...)
        av.video.frame.VideoFrame(16, 16, layout.planar_name()).reformat(format=pix_fmt)
    except (ValueError, av.FFmpegError):
        return None
    return layout.planar_name()


def _encoder_takes(encoder: str, pix_fmt: str) -> bool:
    """``encoder`` lists ``pix_fmt`` (or lists none: ``rawvideo``, ``wrapped_avframe``) and
    the writer can fill it."""
    listed = av.codec.Codec(encoder, "w").video_formats
    return (not listed or pix_fmt in {f.name for f in listed}) and fill_format(pix_fmt) is not None


def best_pix_fmt(source: PixelLayout, candidates: list[str]) -> str | None:
    """The candidate closest to ``source``: enough bits, same kind, same subsampling."""
    def score(name: str):
        out = pixel_layout(name)
        return (out.bits < source.bits, out.kind != source.kind,
                out.subsampling != source.subsampling, out.has_alpha,
                abs(out.bits - source.bits))
    return min(candidates, key=score) if candidates else None


def choose_encoder(suffix: str, source: StreamInfo, supported_codecs: set[str],
                   codec: str | None = None, pix_fmt: str | None = None) -> tuple[str, str]:
    """Pick ``(encoder, pix_fmt)`` for an output named ``*.suffix`` from ``source`` (a
    :class:`StreamInfo`, or anything with its ``codec_name``, ``bit_depth`` and ``layout``)."""
    if codec is not None:
        if not encoder_available(codec):
            raise SuperResError(
                f"the video encoder '{codec}' is not in this FFmpeg build; available here: "
                + ", ".join(n for n in ENCODERS if encoder_available(n)))
        order = [codec]
    elif suffix == ".webm":
        order = ["libvpx-vp9", "libsvtav1"]
    elif source.codec_name in ("hevc", "h265"):
        order = ["libx265", "libx264", "ffv1", "mpeg4"]
    else:
        order = ["libx264", "libx265", "ffv1", "mpeg4"]
    if source.bit_depth > 8 and codec is None and suffix == ".webm":
        order.reverse()  # this build's VP9 is 8-bit only
    usable = [(name, _writable_formats(name)) for name in order if encoder_available(name)
              and ENCODERS.get(name, (name,))[0] in supported_codecs | {codec}]
    if not usable:
        raise SuperResError(
            f"no available video encoder can write '{suffix}' files; use .mp4 or .mkv")
    if pix_fmt is not None:
        for name, formats in usable:
            if pix_fmt in formats or _encoder_takes(name, pix_fmt):
                return name, pix_fmt
        raise SuperResError(
            f"pixel format '{pix_fmt}' cannot be written by {usable[0][0]}; it takes "
            + ", ".join(usable[0][1]))
    for name, formats in usable:  # first encoder keeping every source bit wins
        if not av.codec.Codec(name, "w").video_formats:  # takes any: the source's own format
            own = getattr(source, "pix_fmt", "")
            formats = [own if own and fill_format(own) else source.layout.planar_name()]
        chosen = best_pix_fmt(source.layout, formats)
        if chosen and pixel_layout(chosen).bits >= source.bit_depth:
            return name, chosen
    name, formats = usable[0]
    chosen = best_pix_fmt(source.layout, formats)
    if chosen is None:
        raise SuperResError(f"the encoder {name} offers no pixel format vs-superres can fill; "
                            "choose another with codec=")
    log.warning("no encoder for %s keeps %d-bit samples; writing %s with %s",
                suffix, source.bit_depth, chosen, name)
    return name, chosen
