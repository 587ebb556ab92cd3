"""``superres upscale``'s video encoder flags, spelled as ffmpeg spells them.

    superres upscale in.mkv out.mkv -c:v libx265 -crf 20 -preset fast -pix_fmt yuv420p10le
    superres upscale in.mp4 out.mp4 -b:v 8M -x264-params keyint=48:bframes=0

Each flag also has a ``--long`` spelling (``--codec``, ``--crf``, ``--preset``, ``--pix-fmt``,
``--bitrate``, ``--x264-params``, ...). :func:`add_arguments` adds them to the parser;
:func:`encoder_settings` turns the parsed flags into one
:class:`~vs_superres.media.encoders.EncoderSettings`, which
:func:`~vs_superres.media.encoders.check_settings` checks against the output's name before any
input is read, naming the flags as typed here.
"""

from __future__ import annotations

import argparse

from vs_superres.contracts.errors import InvalidOption

#: the settings' names -> the flag a message names
FLAGS = {"codec": "-c:v", "crf": "-crf", "preset": "-preset", "pix_fmt": "-pix_fmt", "bitrate": "-b:v",
         "x264-params": "-x264-params", "x265-params": "-x265-params", "svtav1-params": "-svtav1-params"}


def spell(name: str) -> str:
    return FLAGS.get(name, name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "video encoding (ffmpeg's own flags)",
        "default: the container's usual encoder at high quality (libx264 -crf 16; libx265 for HEVC sources;\n"
        "libvpx-vp9 for .webm; the muxer's own for .mpg, .mxf, ...); a lossless source (FFV1, Ut Video, PNG\n"
        "images, ...) stays lossless unless -c:v, -crf or -b:v is given. Container and stream tags (title,\n"
        "language, handler names) and chapters are kept, as by ffmpeg's -map_metadata 0 -map_chapters 0")
    group.add_argument("-c:v", "--codec", dest="codec", default=None, metavar="ENCODER",
                       help="video encoder, e.g. libx264, libx265, libsvtav1, libvpx-vp9, ffv1, mpeg2video")
    group.add_argument("-crf", "--crf", dest="crf", default=None, metavar="Q",
                       help="constant quality of libx264/libx265 (0-51) or libsvtav1/libvpx-vp9 (0-63); lower is better")
    group.add_argument("-preset", "--preset", dest="preset", default=None, metavar="P",
                       help="speed/size preset: ultrafast ... veryslow (libx264, libx265), -1 ... 13 (libsvtav1)")
    group.add_argument("-pix_fmt", "--pix-fmt", dest="pix_fmt", default=None, metavar="FMT",
                       help="pixel format of the output, e.g. yuv420p, yuv420p10le, yuv444p (default: the "
                            "encoder's closest to the source's)")
    group.add_argument("-b:v", "--bitrate", dest="bitrate", default=None, metavar="RATE",
                       help="target bit rate, e.g. 8M or 2500k (replaces the constant quality)")
    for key, owner in (("x264-params", "libx264"), ("x265-params", "libx265"), ("svtav1-params", "libsvtav1")):
        group.add_argument("-" + key, "--" + key, dest=key.replace("-", "_"), default=None, metavar="K=V:K=V",
                           help=f"{owner}'s own options, passed through")


def encoder_settings(args: argparse.Namespace):
    """The :class:`EncoderSettings` the flags in ``args`` ask for (all None when none was given)."""
    from vs_superres.media.encoders import EncoderSettings, parse_bitrate

    crf = getattr(args, "crf", None)
    if crf is not None:
        try:
            crf = float(crf)
        except ValueError:
            raise InvalidOption(f"-crf takes a number (e.g. -crf 18), got {crf!r}", option="crf") from None
    bitrate = getattr(args, "bitrate", None)
    params = tuple((key, getattr(args, key.replace("-", "_"))) for key in ("x264-params", "x265-params", "svtav1-params")
                   if getattr(args, key.replace("-", "_"), None) is not None)
    return EncoderSettings(codec=getattr(args, "codec", None), crf=crf, preset=getattr(args, "preset", None),
                           pix_fmt=getattr(args, "pix_fmt", None),
                           bitrate=None if bitrate is None else parse_bitrate(bitrate, spell), params=params)


def check(settings, suffix: str) -> None:
    """Refuse settings that cannot work for an output named ``*suffix``, naming the flags."""
    from vs_superres.media.encoders import check_settings

    check_settings(settings, suffix, spell)
