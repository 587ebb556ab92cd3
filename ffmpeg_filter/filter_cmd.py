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

from vs_superres.contracts.errors import SuperResError, UnsupportedFormat
from vs_superres.ffmpeg_filter.carriers import CARRIERS, HEAD_BYTES, PeekedInput, carrier, detect, y4m_colour_note
from vs_superres.ffmpeg_filter.cmdline import loglevel
from vs_superres.ffmpeg_filter.options import (add_option_flags, engine_arguments, filter_syntax_help,
                                               given_flags, parse_filter)
from vs_superres.ffmpeg_filter.sink import PipeSink
from vs_superres.ffmpeg_filter.source import ColourOverrides, ContainerSource, RawGeometry, RawSource
from vs_superres.hostkit.engine_frames import upscaled
from vs_superres.hostkit.exits import (ExitStatus, closed_stream_error, exit_table, guard_std_streams, run_guarded,
                                       silence_stdout)
from vs_superres.hostkit.logs import logging_to_stderr
from vs_superres.hostkit.progress import ProgressLine
from vs_superres.media.pump import Pump, SinkRequest

PROG = "superres-filter"
log = logging.getLogger("vs_superres.ffmpeg_filter")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Upscale the video on stdin to stdout (y4m, NUT, Matroska or raw frames).",
        epilog=filter_syntax_help() + "\n\n" + exit_table())
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


def open_source(stdin: IO[bytes], args) -> tuple[ContainerSource | RawSource, PeekedInput]:
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
    status (messages go to ``sys.stderr``; the statuses are the host kit's table)."""
    guard_std_streams()  # messages and progress survive a closed or full stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, after_format = _split_at_input(argv)
    args = build_parser().parse_args(argv)
    level = loglevel(args.loglevel)

    def say(text: str, at: int = 32) -> None:
        if level >= at:
            print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    def body() -> int:
        for name, fix in (("stdin", "pipe a video into it, e.g. `ffmpeg -i IN -f yuv4mpegpipe - | "
                                    "superres-filter | ffmpeg -i - OUT`"),
                          ("stdout", "it writes the upscaled video there: pipe it into ffmpeg "
                                     "(`| ffmpeg -i - OUT`) or redirect it to a file (`> out.y4m`)")):
            closed = closed_stream_error(name, PROG, fix)
            if closed is not None:
                raise closed
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
        if out_carrier.name == "y4m":
            say(y4m_colour_note(source.info.colour), 24)
        from vs_superres.runtime.upscaler import Upscaler

        info = source.info
        progress = ProgressLine(PROG, float(info.fps), enabled=args.stats and level >= 32)

        def open_sink(request: SinkRequest) -> PipeSink:
            return PipeSink(stdout, out_carrier, info, request.width, request.height,
                            field_order=source.field_order, packets=request.packets)

        run = Pump(source, lambda inputs: upscaled(engine, inputs), open_sink, on_progress=progress)
        engine = Upscaler(model, cancel=run.cancelled, **kwargs)
        run.model = engine.descriptor  # the memory budget: the output size, the model's share
        say(f"{info.width}x{info.height} {info.pix_fmt} {float(info.fps):.3f} fps -> x{engine.scale} "
            f"with {engine.descriptor.name}, {out_carrier.name} out")
        written = run.run().frames
        progress.finish()
        say(f"{written} frames written")
        return ExitStatus.OK

    # our log at the stream's level, each warning once per run (hostkit.logs)
    with logging_to_stderr(PROG, debug=args.debug, level=logging.WARNING if level >= 24 else logging.ERROR):
        return run_guarded(body, PROG, aftermath="the output stream ends here, incomplete",
                           debug=args.debug, quiet=level < 16, log=log)


def main(argv: list[str] | None = None) -> int:
    """The console script: stray prints go to stderr (stdout carries only video). A closed
    stream is opened on /dev/null first and refused with a message by :func:`run`."""
    guard_std_streams()
    video_out = sys.stdout.buffer if sys.stdout is not None else open(1, "wb", closefd=False)
    video_in = sys.stdin.buffer if sys.stdin is not None else open(0, "rb", closefd=False)
    sys.stdout = sys.stderr
    code = run(argv, video_in, video_out)
    if code == ExitStatus.BROKEN_PIPE:
        silence_stdout()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
