"""An ffmpeg command line, read the way ffmpeg reads it, and the two commands it becomes.

``superres-ffmpeg [global] [in-opts] -i IN ... [out-opts] OUT`` with ``superres=...`` in the
output's ``-vf``/``-filter:v`` chain is split at our filter into

- the **front**: ``ffmpeg [global] [inputs] [video maps] -an -sn -dn -vf BEFORE -c:v ffv1 -f
  matroska -`` (Matroska keeps every colour tag and pixel format);
- the **back**: ``ffmpeg [global] [in-opts -vn -i IN]... -f nut [colour] -i - [out-opts with
  -vf AFTER] OUT``: the original inputs first, their video blocked with ``-vn``, so
  ffmpeg's own automatic selection of audio and subtitles, and its default
  ``-map_metadata``/``-map_chapters`` (from the first input), are exactly what ffmpeg
  alone would do; the upscaled video comes from the pipe, the last input.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

from vs_superres.contracts.errors import InvalidOption
from vs_superres.ffmpeg_filter.options import FILTER_NAME

LOGLEVELS = {"quiet": -8, "panic": 0, "fatal": 8, "error": 16, "warning": 24, "info": 32,
             "verbose": 40, "debug": 48, "trace": 56}


def loglevel(name: str | None) -> int:
    """ffmpeg's ``-loglevel`` as a number (names, numbers, ``repeat+level`` flags)."""
    if not name:
        return LOGLEVELS["info"]
    name = name.split("+")[-1]
    if name.lstrip("-").isdigit():
        return int(name)
    return LOGLEVELS.get(name, LOGLEVELS["info"])

#: ffmpeg options that take no value (everything else starting with '-' takes one)
FLAGS = frozenset("""y n hide_banner nostdin stdin an vn sn dn shortest stats nostats re copyts
start_at_zero benchmark benchmark_all dump hex ignore_unknown copy_unknown debug_ts xerror
accurate_seek noaccurate_seek autorotate noautorotate autoscale noautoscale psnr vstats
find_stream_info nofind_stream_info fix_sub_duration seek_timestamp report bitexact
copytb_never""".split())
#: options that are global wherever they stand
GLOBALS = frozenset("""y n v loglevel hide_banner nostdin stdin stats nostats stats_period progress
benchmark benchmark_all report max_error_rate filter_threads filter_complex_threads
ignore_unknown copy_unknown xerror abort_on max_alloc cpuflags debug_ts sdp_file vstats
vstats_file init_hw_device filter_hw_device filter_complex lavfi filter_complex_script""".split())


@dataclasses.dataclass
class Input:
    options: list[str]
    url: str


@dataclasses.dataclass
class Command:
    global_options: list[str]
    inputs: list[Input]
    output_options: list[str]
    output: str


def _name(arg: str) -> str:
    return arg[1:]


def parse(argv: list[str]) -> Command:
    """Split ffmpeg's arguments into globals, inputs (with their options) and one output."""
    globals_: list[str] = []
    inputs: list[Input] = []
    pending: list[str] = []
    outputs: list[tuple[list[str], str]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and arg != "-":
            name = _name(arg)
            base = name.split(":")[0]
            takes_value = base not in FLAGS
            if takes_value and i + 1 >= len(argv):
                raise InvalidOption(f"ffmpeg option {arg} needs a value", option=arg)
            chunk = [arg, argv[i + 1]] if takes_value else [arg]
            i += len(chunk)
            if base in GLOBALS:
                globals_ += chunk
            elif base == "i":
                inputs.append(Input(pending, chunk[1]))
                pending = []
            else:
                pending += chunk
            continue
        outputs.append((pending, arg))
        pending = []
        i += 1
    if pending:
        raise InvalidOption("options after the last output file apply to nothing: "
                            + " ".join(pending) + "; put them before the output name")
    if not inputs:
        raise InvalidOption("no input: give one with -i FILE, as for ffmpeg")
    if not outputs:
        raise InvalidOption("no output file: give one after the options, as for ffmpeg")
    if len(outputs) > 1:
        raise InvalidOption("superres-ffmpeg writes one output; run it once per output file")
    return Command(globals_, inputs, outputs[0][0], outputs[0][1])


def split_chain(chain: str) -> list[str]:
    """The filters of a linear chain (commas not inside quotes, brackets or escaped)."""
    parts: list[str] = []
    current: list[str] = []
    quoted, depth, i = False, 0, 0
    while i < len(chain):
        ch = chain[i]
        if ch == "\\" and i + 1 < len(chain):
            current += chain[i:i + 2]
            i += 2
            continue
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "[":
            depth += 1
        elif not quoted and ch == "]":
            depth -= 1
        elif not quoted and depth == 0 and ch == ";":
            raise InvalidOption("the -vf chain holds a filter graph (';'); superres-ffmpeg takes a "
                                "linear chain: filter,filter,...", option="-vf")
        if ch == "," and not quoted and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def filter_name(spec: str) -> str:
    return re.split(r"[=@]", spec.strip(), maxsplit=1)[0]


def _is_video_filter_option(arg: str) -> bool:
    name = _name(arg)
    return name == "vf" or name.startswith("vf:") or name == "filter:v" or name.startswith("filter:v:")


@dataclasses.dataclass
class Split:
    """Where our filter sits: the filters ``before`` and ``after`` it (chains, maybe empty),
    its own arguments, and the output options without the ``-vf``."""

    before: str
    ours: str
    after: str
    output_options: list[str]
    filter_option: str


def find_filter(cmd: Command) -> Split | None:
    """Our filter in the output's video chain, or None when the command does not use it."""
    graph = [v for k, v in zip(cmd.global_options, cmd.global_options[1:])
             if _name(k) in ("filter_complex", "lavfi")]
    if any(FILTER_NAME in filter_name_list(g) for g in graph):
        raise InvalidOption(
            "superres inside -filter_complex/-lavfi is not supported; put it in the output's "
            "linear video chain instead: -vf \"scale=...,superres=model=...,unsharp\" (or "
            "-filter:v); a filter graph can run before it in a separate ffmpeg, piped into "
            "superres-filter", option="-filter_complex")
    opts = cmd.output_options
    # ffmpeg's rule: of several -vf/-filter:v, the last one is used (it warns about the others)
    given = [index for index in range(0, len(opts) - 1) if _is_video_filter_option(opts[index])]
    if not given:
        return None
    index = given[-1]
    filters = split_chain(opts[index + 1])
    ours = [n for n, f in enumerate(filters) if filter_name(f) == FILTER_NAME]
    if not ours:
        return None
    if len(ours) > 1:
        raise InvalidOption("the chain holds superres more than once; use one superres "
                            "per command", option=opts[index])
    at = ours[0]
    rest = [arg for i, arg in enumerate(opts) if not any(i in (g, g + 1) for g in given)]
    return Split(",".join(filters[:at]), filters[at], ",".join(filters[at + 1:]), rest, opts[index])


def filter_name_list(graph: str) -> list[str]:
    names = []
    for chain in re.split(r";", graph):
        for spec in split_chain_loose(chain):
            # the pads' labels on both sides: [0:v]superres[v]
            bare = re.sub(r"(\[[^\]]*\]\s*)+$", "", re.sub(r"^\s*(\[[^\]]*\]\s*)+", "", spec))
            names.append(filter_name(bare))
    return names


def split_chain_loose(chain: str) -> list[str]:
    return [p for p in re.split(r",(?![^\[]*\])", chain) if p.strip()]


#: ``-map`` naming one stream by its index: ``0:1``, ``-0:1``, ``0:1?``
_INDEX_MAP = re.compile(r"^(-?)(\d+):(\d+)(\??)$")

#: ``(input index, stream index) -> is that stream a video stream``; what the wrapper learns by
#: probing the inputs, since a map by index says nothing about the stream's type
VideoIndex = Callable[[int, int], bool]


def _stream_spec_is_video(spec: str, is_video: VideoIndex | None = None) -> bool:
    """``0:v``, ``1:v:0``, ``0:V``, and ``0:N`` when stream N of input 0 is a video stream
    (not ``0``, ``0:a`` or a negative map)."""
    by_index = _INDEX_MAP.match(spec)
    if by_index:
        negative, source, index, _ = by_index.groups()
        return not negative and is_video is not None and is_video(int(source), int(index))
    parts = spec.split(":")
    return not spec.startswith("-") and len(parts) > 1 and parts[1] in ("v", "V")


def index_maps(output_options: list[str]) -> list[tuple[int, int]]:
    """The ``(input, stream)`` pairs the output's maps name by index (``-map 0:1``)."""
    found = []
    for i, arg in enumerate(output_options[:-1]):
        if arg == "-map":
            by_index = _INDEX_MAP.match(output_options[i + 1])
            if by_index and not by_index.group(1):
                found.append((int(by_index.group(2)), int(by_index.group(3))))
    return found


def back_maps(output_options: list[str], pipe: int, is_video: VideoIndex | None = None) -> list[str]:
    """The output options with video maps pointed at the pipe (input ``pipe``): maps of a
    video stream (by type, or by index where ``is_video`` says so) are replaced by ``-map
    PIPE:v`` at the first of them; without one, it goes before the first map (so the video
    stays the output's first stream, as alone)."""
    out, placed, has_map = [], False, False
    i = 0
    while i < len(output_options):
        arg = output_options[i]
        if arg == "-map" and i + 1 < len(output_options):
            has_map = True
            spec = output_options[i + 1]
            if _stream_spec_is_video(spec, is_video):
                if not placed:
                    out += ["-map", f"{pipe}:v:0"]
                    placed = True
                i += 2
                continue
        out.append(arg)
        i += 1
    if has_map and not placed:
        first = out.index("-map")
        out[first:first] = ["-map", f"{pipe}:v:0"]
    return out


def front_maps(output_options: list[str]) -> list[str]:
    """The user's maps, for the front (which then drops every non-video stream)."""
    out = []
    for i, arg in enumerate(output_options[:-1]):
        if arg == "-map":
            out += ["-map", output_options[i + 1]]
    return out
