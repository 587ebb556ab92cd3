"""``superres-ffmpeg``: ffmpeg's own command line with ``superres=...`` in the video chain.

    superres-ffmpeg -i in.mp4 -vf "scale=iw/2:-2,superres=model=ditn-real-x4,unsharp" \\
        -c:v libx264 -crf 18 -c:a copy out.mp4

runs ``ffmpeg (front) -> the engine, in this process -> ffmpeg (back)`` (see
:mod:`.cmdline` for how the command is split). Both ffmpeg processes' warnings and errors reach
our stderr (:mod:`.messages`: each once, no banner or stream dump; ``-v LEVEL`` or ``-stats``
gives ffmpeg's own output), beside our progress line with the pipeline's true speed; the exit
status is the first failing stage's (the front's, then the back's, then the engine's), 0 only
when every frame was written. ``-h``/``--help`` prints ours; ``-h TOPIC``, ``-version`` and other
commands without an input and without our filter are ffmpeg's. The output file is written under a
temporary name and renamed when everything succeeded, so Ctrl-C, SIGTERM or an error never
leave a half-written file under the final name. A command without our filter runs ffmpeg
unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading

import av

from vs_superres.contracts.errors import Cancelled, IncompleteInput, InvalidOption, SuperResError
from vs_superres.ffmpeg_filter.carriers import CARRIERS, PeekedInput
from vs_superres.ffmpeg_filter.cmdline import (Command, VideoIndex, back_maps, find_filter, front_maps,
                                               index_maps, loglevel, parse)
from vs_superres.ffmpeg_filter.messages import Messages
from vs_superres.ffmpeg_filter.options import engine_arguments, filter_syntax_help, parse_filter
from vs_superres.ffmpeg_filter.sink import PipeSink
from vs_superres.ffmpeg_filter.source import ColourOverrides, ContainerSource
from vs_superres.hostkit.engine_frames import upscaled
from vs_superres.hostkit.exits import ExitStatus, classify, exit_table, guard_std_streams, report
from vs_superres.hostkit.logs import logging_to_stderr
from vs_superres.hostkit.progress import ProgressLine
from vs_superres.hostkit.signals import signals_as_exceptions
from vs_superres.media.atomic import AtomicFile
from vs_superres.media.colour import (CHROMA_LOCATION_NAMES, MATRIX_NAMES, PRIMARIES_NAMES, RANGE_NAMES,
                                      TRANSFER_NAMES)
from vs_superres.media.pump import Pump, SinkRequest

PROG = "superres-ffmpeg"
_AFTERMATH = "no output file was written"
HELP_ARGS = ("-h", "--help", "-help", "-?")
#: the level both ffmpeg processes run at unless the user gives -v/-loglevel: warnings and errors
QUIET_LEVEL = "warning"


def wrapper_help() -> str:
    """``superres-ffmpeg --help``: how the command works, the filter's options, where ffmpeg's are."""
    return "\n".join([
        "usage: superres-ffmpeg [ffmpeg options] -i INPUT ... -vf \"[filters,]superres[=model=NAME:key=value...][,filters]\" "
        "[ffmpeg options] OUTPUT",
        "",
        "ffmpeg's own command line with the superres filter in the output's video chain (-vf or -filter:v),",
        "e.g.  superres-ffmpeg -i in.mp4 -vf \"superres=model=ditn-real-x4\" -c:v libx264 -crf 18 -c:a copy out.mp4",
        "The filters before superres run in a first ffmpeg, the model in this process, the filters after it,",
        "the encoding, audio, subtitles and metadata in a second ffmpeg, exactly as ffmpeg alone would choose them.",
        "The output is written under a temporary name and renamed when every frame was written.",
        "",
        "messages: ffmpeg's warnings and errors, each once, and our progress line (frame=, fps=, time=, and",
        "speed=, the whole pipeline's); -v info (or verbose, debug) shows everything both ffmpeg processes say,",
        "-stats their own statistics, -nostats hides our progress line, -v error only errors.",
        "A command without superres is ffmpeg itself.",
        "",
        filter_syntax_help(families=False),
        "",
        "ffmpeg's own options: ffmpeg -h (ffmpeg -h full for all of them); superres-ffmpeg -h TOPIC, -version,",
        "-encoders, ... are passed to ffmpeg.",
        "",
        exit_table([("1", "ffmpeg's own refusals and failures (the status of the ffmpeg that failed)")]),
    ])


def _informational(argv: list[str]) -> bool:
    """ffmpeg's informational commands (``-h TOPIC``, ``-version``, ``-encoders``, ...): no
    input and nothing of ours; ffmpeg answers them."""
    return "-i" not in argv and not any("superres" in arg for arg in argv)


def ffmpeg_binary() -> str:
    """The ffmpeg to run: ``$SUPERRES_FFMPEG`` (checked: it must run and say it is ffmpeg, so a
    wrong one fails here in words, not later as a silent status) or the one on PATH."""
    given = os.environ.get("SUPERRES_FFMPEG")
    if not given:
        exe = shutil.which("ffmpeg")
        if not exe:
            raise SuperResError("ffmpeg was not found on PATH; install it (apt-get install ffmpeg) "
                                "or set SUPERRES_FFMPEG to its path")
        return exe
    exe = shutil.which(given)
    fix = "point it at an ffmpeg executable (e.g. SUPERRES_FFMPEG=/usr/bin/ffmpeg) or unset it"
    if exe is None:
        raise SuperResError(f"SUPERRES_FFMPEG={given} is not an executable file; {fix}")
    try:
        probe = subprocess.run([exe, "-hide_banner", "-version"], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SuperResError(f"SUPERRES_FFMPEG={given} does not run ({exc}); {fix}") from exc
    if probe.returncode != 0 or not probe.stdout.startswith(b"ffmpeg version"):
        raise SuperResError(f"SUPERRES_FFMPEG={given} is not ffmpeg (`{exe} -version` exited "
                            f"{probe.returncode} without saying 'ffmpeg version'); {fix}")
    return exe


def _is_file(url: str) -> bool:
    return url not in ("-",) and not url.startswith("pipe:") and "://" not in url


def _local_path(url: str) -> str:
    """A file URL as the path it names (ffmpeg's ``file:`` protocol prefix dropped)."""
    return url[len("file:"):] if url.startswith("file:") else url


_STDIN_URLS = ("-", "pipe:", "pipe:0", "/dev/stdin", "fd:", "fd:0", "file:/dev/stdin")


def check_command(cmd: Command) -> int | None:
    """What ffmpeg refuses before it reads anything, refused the same way before the model
    loads: ``-y`` with ``-n``, an output that is one of the inputs (resolved, links followed),
    an existing output without ``-y``; and what the bridge cannot do: an input on stdin (each
    input is read twice, by the front and the back). Returns ffmpeg's status, or None."""
    if "-y" in cmd.global_options and "-n" in cmd.global_options:
        print("Error, both -y and -n supplied. Exiting.", file=sys.stderr)
        return 1
    for source in cmd.inputs:
        if source.url in _STDIN_URLS:
            raise InvalidOption(
                f"superres-ffmpeg cannot take its input from stdin (-i {source.url}): it reads "
                "each input twice, the video in one ffmpeg and the audio and subtitles in "
                "another; pipe the video through superres-filter instead: `... | ffmpeg -i - -f "
                "yuv4mpegpipe - | superres-filter -m MODEL | ffmpeg -i - OUT`, or give a file",
                option="-i")
    if _is_file(cmd.output):
        out = _local_path(cmd.output)
        for index, source in enumerate(cmd.inputs):
            if _is_file(source.url) and _same_file(_local_path(source.url), out):
                print(f"Output #0 same as Input #{index} - exiting\nFFmpeg cannot edit existing "
                      "files in-place.", file=sys.stderr)
                return 1
    return _exists_refusal(cmd)


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _global(cmd: Command, drop: tuple[str, ...]) -> list[str]:
    out, opts = [], cmd.global_options
    i = 0
    while i < len(opts):
        name = opts[i][1:]
        takes = name not in ("y", "n", "hide_banner", "nostdin", "stdin", "stats", "nostats",
                             "benchmark", "benchmark_all", "report", "ignore_unknown",
                             "copy_unknown", "xerror", "debug_ts")
        chunk = opts[i:i + 2] if takes else opts[i:i + 1]
        if name not in drop:
            out += chunk
        i += len(chunk)
    return out


def probe_video_index(cmd: Command, output_options: list[str]) -> VideoIndex:
    """Which of the streams the output maps by index (``-map 0:1``) are video streams: the
    back must take those from the pipe. Only the inputs such maps name are opened (the
    front reads every input once more anyway); an input that cannot be read twice (a pipe)
    is refused with the spelling that needs no probe."""
    wanted = index_maps(output_options)
    kinds: dict[tuple[int, int], bool] = {}
    for source, index in wanted:
        spelling = f"-map {source}:{index}"
        if source >= len(cmd.inputs):
            raise InvalidOption(f"{spelling} names input {source}, but the command has "
                                f"{len(cmd.inputs)} input(s)", option="-map")
        url = cmd.inputs[source].url
        if not _is_file(url):
            raise InvalidOption(f"{spelling} names a stream of {url!r} by index, which cannot be "
                                f"read twice; name it by type instead: -map {source}:v:0 (video) "
                                f"or -map {source}:a:0 (audio)", option="-map")
        options = cmd.inputs[source].options
        fmt = next((options[i + 1] for i, o in enumerate(options[:-1]) if o == "-f"), None)
        try:
            # The URL as the user wrote it, not media's file: form: the front ffmpeg reads
            # `-i URL` with ffmpeg's own rules (protocols included), and the probe must see
            # the same input.
            with av.open(url, format=fmt) as container:
                types = [stream.type for stream in container.streams]
        except (av.FFmpegError, OSError) as exc:
            raise InvalidOption(f"cannot read {url!r} to resolve {spelling}: {exc}",
                                option="-map") from exc
        if index >= len(types):
            raise InvalidOption(f"{spelling}: {url!r} has {len(types)} stream(s) (0 to "
                                f"{len(types) - 1})", option="-map")
        kinds[(source, index)] = types[index] == "video"
    return lambda source, index: kinds.get((source, index), False)


def front_command(exe: str, cmd: Command, before: str) -> list[str]:
    args = [exe, "-nostdin", "-hide_banner", "-nostats",
            *_global(cmd, ("y", "n", "stats", "nostats", "progress", "stats_period", "stdin", "nostdin"))]
    if "-loglevel" not in args and "-v" not in args:
        args += ["-loglevel", QUIET_LEVEL]
    for source in cmd.inputs:
        args += [*source.options, "-i", source.url]
    args += front_maps(cmd.output_options)
    # Every decoded frame with its own time stamp (no CFR duplication before the model, no
    # rounding to 1/fps); the back applies the output's frame-rate mode as ffmpeg alone would.
    args += ["-an", "-sn", "-dn", "-fps_mode", "passthrough", "-enc_time_base:v", "-1"]
    if before:
        args += ["-vf", before]
    return args + ["-c:v", "ffv1", "-level", "3", "-f", "matroska", "-"]


def colour_input_options(info) -> list[str]:
    """The colour tags of the upscaled video, as decoder options of the back's pipe input
    (NUT carries none)."""
    colour = info.colour
    out = []
    if colour.range:
        out += ["-color_range", RANGE_NAMES[colour.range]]
    if info.layout.kind == "rgb":
        out += ["-colorspace", "rgb"]  # ffprobe calls it gbr, the option rgb
    elif not colour.matrix_guessed and colour.matrix in MATRIX_NAMES and colour.matrix != 2:
        out += ["-colorspace", MATRIX_NAMES[colour.matrix]]
    if colour.primaries not in (0, 2) and colour.primaries in PRIMARIES_NAMES:
        out += ["-color_primaries", PRIMARIES_NAMES[colour.primaries]]
    if colour.transfer not in (0, 2) and colour.transfer in TRANSFER_NAMES:
        out += ["-color_trc", TRANSFER_NAMES[colour.transfer]]
    if info.layout.kind == "yuv" and not colour.chroma_location_guessed:
        out += ["-chroma_sample_location", CHROMA_LOCATION_NAMES[colour.chroma_location]]
    return out


def back_command(exe: str, cmd: Command, after: str, output_options: list[str], target: str,
                 info, stats: bool, start: float = 0.0, is_video: VideoIndex | None = None) -> list[str]:
    args = [exe, "-hide_banner", *_global(cmd, ("nostdin", "stdin", "y", "n")), "-y"]
    if "-loglevel" not in args and "-v" not in args:
        args += ["-loglevel", QUIET_LEVEL]
    if not stats:
        args.append("-nostats")
    for source in cmd.inputs:
        args += [*source.options, "-vn", "-i", source.url]
    # ffmpeg moves each input to start at 0; the pipe starts where the front's first frame
    # was (e.g. after the audio's first sample), and -itsoffset keeps it there, as alone.
    # NUT carries no aspect and no colour tags: they are given back here.
    args += ["-f", "nut", *colour_input_options(info)]
    if start:
        args += ["-itsoffset", f"{start:.9f}"]
    args += ["-i", "-"]
    args += back_maps(output_options, len(cmd.inputs), is_video)
    chain = [f"setsar={info.sample_aspect_ratio.numerator}/{info.sample_aspect_ratio.denominator}"]
    if after:
        chain.append(after)
    return args + ["-vf", ",".join(chain), target]


def _exists_refusal(cmd: Command) -> int | None:
    """ffmpeg's answer to an existing output without -y (it never asks: stdin is not free)."""
    if not _is_file(cmd.output) or not os.path.exists(_local_path(cmd.output)) or "-y" in cmd.global_options:
        return None
    print(f"File '{cmd.output}' already exists. Exiting.", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """The console script: SIGINT, SIGTERM and SIGHUP stop like Ctrl-C (the host kit's policy:
    a second signal cannot cut the clean-up short); our own text never goes to stdout (ffmpeg
    may be writing the video there, ``-``). A closed standard stream is opened on /dev/null
    first (the ffmpeg processes inherit fds 0-2: a pipe must never take one's number), and a
    closed or full stderr drops messages instead of stopping the run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    guard_std_streams()
    if len(argv) == 1 and argv[0] in HELP_ARGS:
        return run_command(argv)  # help goes to stdout, as ffmpeg's does
    sys.stdout = sys.stderr
    with signals_as_exceptions():
        return run_command(argv)


def _log_level(argv: list[str]) -> int:
    given = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-loglevel", "-v")), None)
    return loglevel(given)


def run_command(argv: list[str]) -> int:
    """Run one ffmpeg command line; returns the exit status. Our own log follows ffmpeg's
    ``-loglevel`` (info by default; debug shows ours at debug), each warning once."""
    if len(argv) == 1 and argv[0] in HELP_ARGS:
        print(wrapper_help())
        return 0
    level = _log_level(argv)
    ours = logging.DEBUG if level >= 48 else logging.INFO if level >= 32 else logging.WARNING if level >= 24 else logging.ERROR
    with logging_to_stderr(PROG, level=ours):
        return _run_command(argv)


def _run_command(argv: list[str]) -> int:
    try:
        exe = ffmpeg_binary()
        if _informational(argv):
            return subprocess.call([exe, *argv])
        cmd = parse(argv)
        split = find_filter(cmd)
        if split is None:  # nothing of ours: ffmpeg itself
            return subprocess.call([exe, *argv])
        refused = check_command(cmd)
        if refused is not None:
            return refused
    except SuperResError as exc:
        return report(classify(exc, PROG, aftermath=_AFTERMATH))
    return _run(exe, cmd, split)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run(exe: str, cmd: Command, split) -> int:
    level = loglevel(next((cmd.global_options[i + 1] for i, a in enumerate(cmd.global_options[:-1])
                                  if a in ("-loglevel", "-v")), None))
    user_stats = "-stats" in cmd.global_options
    front = None
    children: dict = {}
    failure: BaseException | None = None
    front_died = threading.Event()  # the front ended in failure: stop computing at once
    try:
        atomic = AtomicFile(_local_path(cmd.output)) if _is_file(cmd.output) else None
    except SuperResError as exc:
        return report(classify(exc, PROG, aftermath=_AFTERMATH))
    target = str(atomic.tmp_path) if atomic else cmd.output
    # Unless the user asked for ffmpeg's own output, its messages come through a filter.
    given_level = any(a in ("-loglevel", "-v") for a in cmd.global_options)
    messages = None if given_level or user_stats else Messages(
        [(target, cmd.output), (os.path.basename(target), os.path.basename(cmd.output))])
    errors = subprocess.PIPE if messages is not None else None
    try:
        model, kwargs = engine_arguments(parse_filter(split.ours))
        is_video = probe_video_index(cmd, split.output_options)
        from vs_superres.runtime.upscaler import Upscaler

        holder: dict = {}
        engine = Upscaler(model, cancel=lambda: front_died.is_set() or (bool(holder) and holder["run"].cancelled()),
                          **kwargs)
        front = subprocess.Popen(front_command(exe, cmd, split.before), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=errors)
        assert front.stdout is not None
        if messages is not None and front.stderr is not None:
            messages.forward(front.stderr)
        threading.Thread(target=_watch, args=(front, front_died), daemon=True).start()
        source = ContainerSource(PeekedInput(front.stdout), CARRIERS["matroska"], ColourOverrides())
        info = source.info
        progress = ProgressLine(PROG, float(info.fps), enabled=level >= 32 and "-nostats" not in cmd.global_options)
        if messages is not None:
            messages.say = progress.say  # a message ends the progress line on a terminal first

        def open_sink(request: SinkRequest) -> PipeSink:
            first = float((request.first_pts or 0) * info.time_base)
            back = subprocess.Popen(back_command(exe, cmd, split.after, split.output_options, target, info,
                                                 user_stats, first, is_video),
                                    stdin=subprocess.PIPE, stderr=errors)
            if messages is not None and back.stderr is not None:
                messages.forward(back.stderr)
            children["back"] = back
            assert back.stdin is not None
            return PipeSink(back.stdin, CARRIERS["nut"], info, request.width, request.height, copy_streams=False)

        run = Pump(source, lambda inputs: upscaled(engine, inputs), open_sink, on_progress=progress,
                   model=engine.descriptor)  # the memory budget: the output size, the model's share
        holder["run"] = run
        run.run()
        progress.finish()
    except BaseException as exc:  # decided below, once the children's statuses are known
        failure = exc
    finally:
        back = children.get("back")
        if back is not None and back.stdin is not None:
            with contextlib.suppress(OSError):
                back.stdin.close()
        # The front caused the end when it died (we cancelled the engine for it) or its stream
        # ended early: its status tells. Otherwise it is stopped as a consequence of ours, and
        # its status (a broken pipe, a signal) says nothing.
        if failure is not None and front is not None and not front_died.is_set():
            # a front that ended on its own (its stream is what failed us) is exiting now
            with contextlib.suppress(subprocess.TimeoutExpired):
                if front.wait(timeout=0.5) != 0:
                    front_died.set()
        front_caused = front_died.is_set() or isinstance(failure, IncompleteInput)
        if front_died.is_set() and isinstance(failure, Cancelled):
            failure = None  # our own stop, for the front's failure: that is what is reported
        outcome = classify(failure, PROG, aftermath=_AFTERMATH) if failure is not None else None
        interrupted = outcome is not None and outcome.interrupted
        if front is not None and front.stdout is not None:
            # first: a front blocked writing to us gets a broken pipe and ends, not a 10 s wait
            with contextlib.suppress(OSError):
                front.stdout.close()
        consequence = failure is not None and not front_caused
        if consequence:
            _stop(front)
        if interrupted:
            _stop(back)
        front_rc = front.wait() if front is not None else 0
        back_rc = back.wait() if back is not None else 0
        if messages is not None:
            messages.join()  # every message of theirs before our last word
        if consequence:
            front_rc = 0
    return _conclude(outcome, front_rc, back_rc, atomic)


def _watch(front: subprocess.Popen, died: threading.Event) -> None:
    """Set ``died`` as soon as the front ffmpeg ends in failure (killed, a read error)."""
    if front.wait() != 0:
        died.set()


def _conclude(outcome, front_rc: int, back_rc: int, atomic: AtomicFile | None) -> int:
    """The exit status: an interruption first; then the first failure: the front ffmpeg's, the
    back's when it ended before us (it said why on stderr; what we saw after it is a
    consequence), else ours, down the kit's ladder."""
    if outcome is not None and outcome.interrupted:
        if atomic:
            atomic.abort()
        return report(outcome)
    if front_rc:
        code = front_rc if front_rc > 0 else 128 - front_rc
    elif back_rc and (outcome is None or outcome.status == ExitStatus.BROKEN_PIPE):
        # The back ended first (we met its closed pipe). When our own failure came first, the
        # back's complaint about the stream we then stopped sending is the consequence.
        code = back_rc if back_rc > 0 else 128 - back_rc
    elif outcome is not None:
        code = report(outcome)
    else:
        code = ExitStatus.OK
    if atomic:
        if code:
            atomic.abort()
        else:
            atomic.commit()
    return int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
