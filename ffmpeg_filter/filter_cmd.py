"""``superres-filter``: video on stdin, upscaled video on stdout, between two ffmpeg processes.

    ffmpeg -i in.mkv -f yuv4mpegpipe -strict -1 - | superres-filter -m ditn-real-x4 | ffmpeg -i - ...
    ffmpeg -i in.mkv -map 0 -c:v ffv1 -c:a copy -f matroska - | \\
        superres-filter "superres=model=ditn-real-x4:tile=256" | ffmpeg -i - -map 0 ...
    ... -f rawvideo -pix_fmt rgb24 - | superres-filter -f rawvideo -s 320x180 -pix_fmt rgb24 -r 24 -i - -f nut -

The input carrier is recognised from its first bytes (y4m, NUT, Matroska) or forced with ``-f``;
raw frames need ``-f rawvideo -s WxH -pix_fmt F -r R``. As in ffmpeg, ``-f`` and the raw
geometry before ``-i -`` describe the input and a ``-f`` after it the output; without ``-i`` a
``-f`` applies to both. The output carrier is the input's unless chosen.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import IO

from ..contracts.errors import Cancelled, IncompleteInput, SuperResError, UnsupportedFormat
from . import status
from .carriers import CARRIERS, HEAD_BYTES, PeekedInput, carrier, detect
from .options import add_option_flags, engine_arguments, filter_syntax_help, given_flags, parse_filter
from .pipeline import Bridge
from .sink import PipeSink
from .source import ColourOverrides, ContainerSource, FrameSource, RawGeometry, RawSource

PROG = "superres-filter"
log = logging.getLogger("vs_superres.ffmpeg_filter")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Upscale the video on stdin to stdout (y4m, NUT, Matroska or raw frames).",
        epilog=filter_syntax_help())
    p.add_argument("filter", nargs="?", default=None,
                   help="options in ffmpeg's filter syntax, e.g. superres=model=ditn-real-x4:tile=256")
    p.add_argument("output", nargs="?", default="-", help="'-' (stdout; the only output)")
    p.add_argument("-f", dest="in_format", default=None, metavar="FORMAT",
                   help="carrier: " + ", ".join(CARRIERS) + " (default: recognised from the first bytes)")
    p.add_argument("--output-format", dest="out_format", default=None, metavar="FORMAT",
                   help="output carrier (default: the input's; also a -f after -i)")
    p.add_argument("-i", dest="input", default="-", help="'-' (stdin; the only input)")
    p.add_argument("-s", dest="size", default=None, metavar="WxH", help="raw input size")
    p.add_argument("-pix_fmt", dest="pix_fmt", default=None, metavar="F", help="raw input pixel format")
    p.add_argument("-r", dest="rate", default=None, metavar="RATE", help="raw input frame rate")
    colour = p.add_argument_group("colour of the input (default: its own tags; for y4m and raw, "
                                  "which carry no matrix, ffmpeg's default for the size)")
    for flag in ("matrix", "range", "primaries", "transfer", "chroma-location"):
        colour.add_argument(f"--{flag}", dest=flag.replace("-", "_"), default=None, metavar="NAME")
    p.add_argument("-loglevel", "-v", dest="loglevel", default=None, help="quiet, error, warning, info (default)")
    p.add_argument("-nostats", dest="stats", action="store_false", help="no progress line")
    p.add_argument("-stats", dest="stats", action="store_true", help="progress line (default)")
    p.add_argument("-hide_banner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-y", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--debug", action="store_true", help="traceback of internal errors on stderr")
    add_option_flags(p)
    p.set_defaults(stats=True)
    return p


def _split_at_input(argv: list[str]) -> tuple[list[str], str | None]:
    """ffmpeg's rule: a ``-f`` after ``-i`` names the output format."""
    if "-i" not in argv:
        return argv, None
    at = argv.index("-i")
    before, after = argv[:at + 2], argv[at + 2:]
    out_format = None
    rest = []
    i = 0
    while i < len(after):
        if after[i] == "-f" and i + 1 < len(after):
            out_format = after[i + 1]
            i += 2
            continue
        rest.append(after[i])
        i += 1
    return before + rest, out_format


def open_source(stdin: IO[bytes], args) -> tuple[FrameSource, PeekedInput]:
    stream = PeekedInput(stdin)
    overrides = ColourOverrides(args.matrix, args.range, args.primaries, args.transfer, args.chroma_location)
    forced = carrier(args.in_format) if args.in_format else None
    head = stream.peek(HEAD_BYTES)
    if not head:
        raise UnsupportedFormat("nothing arrived on stdin; pipe a video into it, e.g. "
                                "`ffmpeg -i IN -f yuv4mpegpipe - | superres-filter`")
    found = detect(head)
    if forced is None and found is None:
        if args.size or args.pix_fmt:
            forced = carrier("rawvideo")
        else:
            raise UnsupportedFormat(
                "stdin is not a recognised video stream: expected y4m (ffmpeg -f yuv4mpegpipe), "
                "NUT (-f nut) or Matroska (-f matroska), or raw frames with -f rawvideo -s WxH "
                f"-pix_fmt F -r RATE; it starts with {head[:16]!r}")
    chosen = forced or found
    assert chosen is not None
    if chosen.name == "rawvideo":
        return RawSource(stream, RawGeometry.parse(args.size, args.pix_fmt, args.rate), overrides), stream
    if forced is not None and found is not None and found.name != forced.name:
        raise UnsupportedFormat(f"-f {args.in_format} was given but the input is {found.description}; "
                                "drop -f or send the format it names")
    return ContainerSource(stream, chosen, overrides), stream


def run(argv: list[str] | None, stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """Filter ``stdin`` to ``stdout`` as the command line ``argv`` says; returns the exit
    status (messages go to ``sys.stderr``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, after_format = _split_at_input(argv)
    args = build_parser().parse_args(argv)
    level = status.loglevel(args.loglevel)
    logging.basicConfig(level=logging.WARNING if level >= 24 else logging.ERROR,
                        format=f"{PROG}: %(message)s", stream=sys.stderr)
    quiet = level < 16

    def say(text: str, at: int = 32) -> None:
        if level >= at:
            print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    bridge = None
    try:
        if args.output not in ("-", "pipe:", "pipe:1") or args.input not in ("-", "pipe:", "pipe:0"):
            raise SuperResError("superres-filter reads stdin and writes stdout only: use '-' for both "
                                "(superres-ffmpeg takes files)")
        if args.filter in ("-", "pipe:", "pipe:1"):
            args.filter = None
        raw = parse_filter(args.filter) if args.filter else {}
        raw.update(given_flags(args))
        model, kwargs = engine_arguments(raw)
        source, _ = open_source(stdin, args)
        out_name = args.out_format or after_format
        if out_name is None and args.in_format and "-i" not in argv:
            out_name = args.in_format
        out_carrier = carrier(out_name) if out_name else getattr(source, "carrier", carrier("rawvideo"))
        for note in source.notes:
            say(note, 24)
        from ..runtime.upscaler import Upscaler

        holder: dict = {}
        engine = Upscaler(model, cancel=lambda: bool(holder) and holder["bridge"].cancelled(), **kwargs)
        info = source.info
        say(f"{info.width}x{info.height} {info.pix_fmt} {float(info.fps):.3f} fps -> x{engine.scale} "
            f"with {engine.descriptor.name}, {out_carrier.name} out")
        progress = status.ProgressLine(PROG, float(info.fps), enabled=args.stats and level >= 32)

        def open_sink(width: int, height: int, first_pts: int) -> PipeSink:
            return PipeSink(stdout, out_carrier, info, width, height,
                            field_order=getattr(source, "field_order", None))

        bridge = Bridge(source, engine, open_sink, on_frame=progress)
        holder["bridge"] = bridge
        written = bridge.run()
        progress.finish()
        say(f"{written} frames written")
        return status.OK
    except IncompleteInput as exc:
        if not quiet:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
        return status.INCOMPLETE_INPUT
    except status.Terminated:
        _interrupted("terminated", quiet)
        return status.TERMINATED
    except (KeyboardInterrupt, Cancelled):
        _interrupted("interrupted", quiet)
        return status.INTERRUPTED
    except BaseException as exc:
        if status.is_broken_pipe(exc):
            status.silence_stdout()
            return status.BROKEN_PIPE
        if isinstance(exc, SuperResError):
            if not quiet:
                print(f"{PROG}: error: {exc}", file=sys.stderr)
            return status.USER_ERROR
        if isinstance(exc, SystemExit):
            raise
        if args.debug:
            log.error("internal error", exc_info=True)
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}; this is a bug in vs-superres, "
              "please report it" + ("" if args.debug else " (run with --debug for the traceback)"),
              file=sys.stderr)
        return status.INTERNAL_ERROR


def _interrupted(word: str, quiet: bool) -> None:
    if not quiet:
        print(f"\n{PROG}: {word}; the output stream ends here, incomplete", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """The console script: SIGTERM stops like Ctrl-C; stray prints go to stderr."""
    status.raise_on_sigterm()
    video_out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stdout carries only video: stray prints go to stderr
    code = run(argv, sys.stdin.buffer, video_out)
    if code == status.BROKEN_PIPE:
        status.silence_stdout()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
