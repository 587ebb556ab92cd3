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

A host's encoder choice in ffmpeg's own terms (``-c:v``, ``-crf``, ``-preset``, ``-pix_fmt``,
``-b:v``, ``-x264-params``, ...) is one :class:`EncoderSettings`; :func:`check_settings` refuses
what cannot work (an unknown encoder, one the container cannot hold, a pixel format the encoder
lacks, a quality outside its scale) from the output's name alone, before any input is read.
Without a given encoder a container none of the usual encoders fit (``.mpg``, ``.mxf``,
``.ogv``, ``.dv``, ...) gets its muxer's own default video encoder; with ``keep_lossless`` a
lossless source (FFV1, Ut Video, PNG, ...) gets a lossless output: its own codec where this
build encodes it and the container holds it, else FFV1, else lossless H.264 (``qp 0``).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import os
import re
from typing import Callable

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

#: FFmpeg's ``-q:v 2`` for the MPEG-family encoders: ``qscale`` is a flag of the ffmpeg
#: program, not an encoder option; it sets these two (quality in lambda units, FF_QP2LAMBDA 118)
_QSCALE_2 = {"flags": "+qscale", "global_quality": str(2 * 118)}

# encoder -> (codec family the muxer knows, default options)
ENCODERS = {
    "libx264": ("h264", {"crf": "16", "preset": "medium"}),
    "libx265": ("hevc", {"crf": "18", "preset": "medium", "x265-params": "log-level=error"}),
    "libvpx-vp9": ("vp9", {"crf": "20", "b": "0", "row-mt": "1"}),
    "libsvtav1": ("av1", {"crf": "24", "preset": "8"}),
    "ffv1": ("ffv1", {"level": "3"}),
    "mpeg4": ("mpeg4", dict(_QSCALE_2)),
    "mpeg2video": ("mpeg2video", dict(_QSCALE_2)),
    "mpeg1video": ("mpeg1video", dict(_QSCALE_2)),
}

#: the ``-crf`` scale of each encoder that has one (inclusive)
CRF_RANGES = {"libx264": (0.0, 51.0), "libx265": (0.0, 51.0), "libvpx-vp9": (0.0, 63.0),
              "libsvtav1": (0.0, 63.0)}
_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                 "slower", "veryslow", "placebo")
#: the ``-preset`` values of each encoder that has one
PRESETS = {"libx264": _X26X_PRESETS, "libx265": _X26X_PRESETS,
           "libsvtav1": tuple(str(n) for n in range(-1, 14))}
#: encoder private options passed through as text (``-x264-params k=v:k=v``) -> their encoder
PRIVATE_PARAMS = {"x264-params": "libx264", "x265-params": "libx265", "svtav1-params": "libsvtav1"}
#: parts of encoder names that mark hardware encoders (never a default: they need a device)
_HARDWARE = ("_qsv", "_nvenc", "_amf", "_v4l2m2m", "_vaapi", "_videotoolbox", "_mediacodec",
             "_mf", "_omx", "_rkmpp", "_vulkan", "_d3d12va", "_cuvid")
#: lossless codecs whose own encoder is not a sensible output (uncompressed, palette)
_NOT_KEPT_LOSSLESS = {"rawvideo", "wrapped_avframe", "gif", "v210", "v308", "v408", "v410"}


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


def encoder_name(codec: str) -> str | None:
    """The encoder this build uses for ``codec`` (an encoder name, ``libx265``, or a codec name,
    ``hevc``); None when it has none."""
    try:
        found = av.codec.Codec(codec, "w")
    except (av.FFmpegError, ValueError):
        return None
    return found.name if found.type == "video" else None


def _family(encoder: str) -> str:
    """The codec an encoder writes (``libx264`` -> ``h264``), as muxers list it."""
    return ENCODERS[encoder][0] if encoder in ENCODERS else av.codec.Codec(encoder, "w").canonical_name


def _stores(encoder: str, stored: set[str]) -> bool:
    return encoder in stored or _family(encoder) in stored


def _software(name: str) -> bool:
    return not any(mark in name for mark in _HARDWARE)


def is_lossless(codec_name: str) -> bool:
    """Whether the codec ``codec_name`` (a decoder's name) only codes losslessly."""
    try:
        codec = av.codec.Codec(codec_name, "r")
    except (av.FFmpegError, ValueError):
        return False
    return bool(getattr(codec, "lossless", False)) and not getattr(codec, "lossy", True)


def _lossless_order(source_codec: str) -> list[str]:
    """Encoders that keep a lossless source lossless, best first: its own codec, FFV1, then
    lossless H.264 (``qp 0``, see :func:`encoder_options`)."""
    order = []
    own = encoder_name(source_codec) if source_codec not in _NOT_KEPT_LOSSLESS else None
    if own and _software(own):
        order.append(own)
    return order + [n for n in ("ffv1", "libx264") if n not in order]


def _default_order(suffix: str, source, stored: set[str], default_codec: str | None,
                   keep_lossless: bool) -> tuple[list[str], bool]:
    """The encoders tried without a given one, and whether they are the lossless order."""
    if keep_lossless and is_lossless(source.codec_name):
        order = [n for n in _lossless_order(source.codec_name) if encoder_available(n) and _stores(n, stored)]
        if order:
            return order, True
        log.warning("the source is lossless (%s) but a '%s' file holds no lossless codec this build "
                    "writes; it is written lossy (name the output .mkv to keep it lossless)",
                    source.codec_name, suffix)
    if suffix == ".webm":
        order = ["libvpx-vp9", "libsvtav1"]
        if source.bit_depth > 8:
            order.reverse()  # this build's VP9 is 8-bit only
    elif source.codec_name in ("hevc", "h265"):
        order = ["libx265", "libx264", "ffv1", "mpeg4"]
    else:
        order = ["libx264", "libx265", "ffv1", "mpeg4"]
    # A container none of the usual encoders fit (.mpg, .mxf, .ogv, .dv, ...): its muxer's own
    # default video encoder, then any software encoder of a codec it stores.
    fallback = [encoder_name(default_codec)] if default_codec and default_codec != "none" else []
    fallback += sorted(n for n in (encoder_name(c) for c in stored) if n)
    for name in fallback:
        if name and name not in order and _software(name):
            order.append(name)
    return order, False


def choose_encoder(suffix: str, source: StreamInfo, supported_codecs: set[str],
                   codec: str | None = None, pix_fmt: str | None = None, *,
                   default_codec: str | None = None, keep_lossless: bool = False) -> tuple[str, str]:
    """Pick ``(encoder, pix_fmt)`` for an output named ``*.suffix`` from ``source`` (a
    :class:`StreamInfo`, or anything with its ``codec_name``, ``bit_depth`` and ``layout``).

    ``supported_codecs``: what the container stores (:func:`stored_codecs`); ``default_codec``
    its muxer's default video codec, tried after the usual encoders; ``keep_lossless``: a
    lossless source gets a lossless encoder (module docstring)."""
    lossless = False
    if codec is not None:
        name = encoder_name(codec)
        if name is None:
            raise SuperResError(
                f"the video encoder '{codec}' is not in this FFmpeg build; available here: "
                + ", ".join(n for n in ENCODERS if encoder_available(n)))
        order = [name]
        stored = supported_codecs | {name}
    else:
        order, lossless = _default_order(suffix, source, supported_codecs, default_codec, keep_lossless)
        stored = supported_codecs
    usable = [(name, _writable_formats(name)) for name in order if encoder_available(name)
              and _stores(name, stored)]
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
        if lossless and source.pix_fmt in formats:
            return name, source.pix_fmt  # the very samples of the source's layout
        chosen = best_pix_fmt(source.layout, formats)
        if chosen and pixel_layout(chosen).bits >= source.bit_depth:
            return name, chosen
    name, formats = usable[0]
    chosen = best_pix_fmt(source.layout, formats)
    if chosen is None:
        raise SuperResError(f"no encoder for '{suffix}' files takes a pixel format vs-superres can fill "
                            f"({name} takes only palette or packed formats); name the output .mkv or .mp4")
    log.warning("no encoder for %s keeps %d-bit samples; writing %s with %s",
                suffix, source.bit_depth, chosen, name)
    return name, chosen


#: how a host writes a setting of :class:`EncoderSettings` in a message (the CLI: ``-c:v``)
SettingSpelling = Callable[[str], str]
_BITRATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*$")


@dataclasses.dataclass(frozen=True)
class EncoderSettings:
    """The encoder choice of a host, in FFmpeg's terms; None everywhere: the writer's defaults.

    ``codec``: an encoder (``libx265``) or codec (``hevc``) name; ``crf``: the encoder's quality
    scale; ``preset``; ``pix_fmt``; ``bitrate`` in bit/s (``-b:v``); ``params``: encoder private
    options passed through as text, ``(("x264-params", "keyint=48:bframes=0"),)``."""

    codec: str | None = None
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    bitrate: int | None = None
    params: tuple[tuple[str, str], ...] = ()

    @property
    def given(self) -> bool:
        return self != EncoderSettings()

    @property
    def quality_given(self) -> bool:
        """A quality the user chose (then a lossless source is not kept lossless by default)."""
        return self.crf is not None or self.bitrate is not None

    def writer_options(self) -> dict:
        """Keyword arguments of :class:`~.writer.VideoWriter` (``keep_lossless`` on)."""
        crf = None if self.crf is None else (int(self.crf) if float(self.crf).is_integer() else self.crf)
        return {"codec": self.codec, "pix_fmt": self.pix_fmt, "crf": crf, "preset": self.preset,
                "bitrate": self.bitrate, "options": dict(self.params), "keep_lossless": True}

    def identity(self) -> dict:
        """What changes the output's bytes, as plain values (a resumable job's identity)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, ())}


def parse_bitrate(text: str, spell: SettingSpelling = lambda n: n) -> int:
    """``"4M"``, ``"2500k"``, ``"800000"`` -> bit/s (FFmpeg's SI suffixes)."""
    match = _BITRATE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise SuperResError(f"{spell('bitrate')} takes a bit rate such as 4M, 2500k or 800000 (bit/s), got {text!r}",
                            option="bitrate")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    return int(round(float(match.group(1)) * scale))


class _Named(io.BytesIO):
    """An in-memory output with a file name, from which FFmpeg guesses the muxer as it does for
    the real file."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name


@functools.lru_cache(maxsize=None)
def container_for(suffix: str) -> tuple[str, frozenset[str], str | None]:
    """``(muxer, stored codecs, default video codec)`` of the container FFmpeg picks for an
    output named ``*suffix``; raises :class:`SuperResError` when it has none."""
    try:
        with av.open(_Named("probe" + suffix), "w") as probe:
            return probe.format.name, frozenset(stored_codecs(probe)), probe.default_video_codec
    except (av.FFmpegError, ValueError) as exc:
        raise SuperResError(f"FFmpeg has no container for '{suffix}' files ({exc}); name the output "
                            ".mkv, .mp4, .mov or .webm") from None


def _video_encoders_for(stored: frozenset[str]) -> list[str]:
    names = {encoder_name(c) for c in stored}
    return sorted(n for n in names if n and _software(n))


def check_output_container(suffix: str) -> None:
    """Refuse, from the name alone, an output container that holds no video this build writes
    (``.wav``, ``.srt``, ...), naming ones that do."""
    muxer, stored, default = container_for(suffix)
    if not _video_encoders_for(stored) and (not default or default == "none"):
        raise SuperResError(f"a '{suffix}' file ({muxer}) holds no video; name the output .mkv, .mp4, .mov or .webm")


def check_settings(settings: EncoderSettings, suffix: str, spell: SettingSpelling = lambda n: n) -> None:
    """Refuse, before any input is read, encoder settings that cannot work for an output named
    ``*suffix``: an unknown encoder, one the container cannot hold, a pixel format the encoder
    lacks, a ``crf`` outside its scale, a preset it does not know, private options of another
    encoder. ``spell(name)`` writes a setting as the host's user types it."""
    check_output_container(suffix)
    muxer, stored, _ = container_for(suffix)
    if settings.codec is None:
        encoder = None
    else:
        if settings.codec == "copy":
            raise SuperResError(f"{spell('codec')} copy cannot be used: the upscaled video is new pictures, so it is "
                                f"encoded; name an encoder (libx264, libx265, libsvtav1, ffv1, ...)", option="codec")
        encoder = encoder_name(settings.codec)
        if encoder is None:
            raise SuperResError(
                f"{spell('codec')} {settings.codec}: this FFmpeg build has no video encoder of that name; "
                "available here: " + ", ".join(n for n in ENCODERS if encoder_available(n)), option="codec")
        if not _stores(encoder, set(stored)):
            where = _containers_taking(_family(encoder))
            holds = [n for n in ENCODERS if encoder_available(n) and _stores(n, set(stored))]
            fix = f"write a {' or '.join(where[:3])} file" if where else "choose another encoder"
            if holds:
                fix += f", or choose {spell('codec')} " + "/".join(holds[:3])
            raise SuperResError(f"a '{suffix}' file ({muxer}) cannot hold {_family(encoder)} video from {encoder}; {fix}",
                                option="codec")
    if settings.pix_fmt is not None:
        if fill_format(settings.pix_fmt) is None:
            raise SuperResError(f"{spell('pix_fmt')} {settings.pix_fmt}: not a pixel format vs-superres can write "
                                "(float, palette, Bayer and hardware formats are not); e.g. yuv420p, yuv420p10le, "
                                "yuv444p, gbrp", option="pix_fmt")
        if encoder is not None and not _encoder_takes(encoder, settings.pix_fmt):
            takes = [f for f in _writable_formats(encoder)]
            raise SuperResError(f"{encoder} cannot write {spell('pix_fmt')} {settings.pix_fmt}; it takes "
                                + ", ".join(takes), option="pix_fmt")
    # The quality settings are checked against the encoder that will be used: the given one,
    # else the container's first usual lossy encoder.
    target = encoder or next((n for n in ("libvpx-vp9", "libx264", "libx265", "ffv1", "mpeg4")
                              if encoder_available(n) and _stores(n, set(stored))
                              and (n == "libvpx-vp9") == (suffix == ".webm")), None)
    if settings.crf is not None:
        scale = CRF_RANGES.get(target or "")
        if scale is None:
            raise SuperResError(f"{target or 'the encoder of ' + repr(suffix)} has no {spell('crf')} quality scale; "
                                f"give {spell('bitrate')} instead, or choose {spell('codec')} libx264/libx265/libsvtav1",
                                option="crf")
        if not scale[0] <= settings.crf <= scale[1]:
            raise SuperResError(f"{spell('crf')} {settings.crf:g} is outside {target}'s scale {scale[0]:g}..{scale[1]:g} "
                                "(lower is better quality and a bigger file)", option="crf")
    if settings.preset is not None:
        known = PRESETS.get(target or "")
        if known is None:
            raise SuperResError(f"{target or 'the encoder of ' + repr(suffix)} has no {spell('preset')}; drop it, or "
                                f"choose {spell('codec')} libx264/libx265/libsvtav1", option="preset")
        if str(settings.preset) not in known:
            raise SuperResError(f"{spell('preset')} {settings.preset}: {target} knows " + ", ".join(known),
                                option="preset")
    for key, value in settings.params:
        owner = PRIVATE_PARAMS.get(key)
        if owner is not None and owner != target:
            raise SuperResError(f"{spell(key)} is an option of {owner}, but the video is encoded with "
                                f"{target or 'another encoder'}; add {spell('codec')} {owner}, or drop it",
                                option=key)
        bad = [item for item in str(value).split(":") if item and "=" not in item]
        if bad or not str(value).strip():
            raise SuperResError(f"{spell(key)} takes KEY=VALUE items separated by ':', e.g. keyint=48:bframes=0; "
                                f"got {value!r}", option=key)
