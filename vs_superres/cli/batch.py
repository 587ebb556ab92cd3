"""``superres upscale DIR/ OUTDIR/`` and ``superres upscale "shots/*.mov" OUTDIR/``: many inputs,
one model load, a summary at the end.

:func:`batch_inputs` tells a batch from a single input: an existing folder (its images and
videos, by extension, hidden files left out) or a glob (``*``, ``?``, ``[...]``; quote it so
that the shell does not expand it). Each input is written into the output folder under its
own name (an image format that cannot be written becomes ``.png``, a container that cannot hold
video ``.mkv``); the output folder is created when missing. :func:`run_batch` upscales them in
order with the command's one engine (:class:`~.engine.SharedEngine`): one input that fails
(unreadable, corrupt, too large) is reported and the others go on; Ctrl-C or a termination
signal stops the batch (the input being written leaves nothing). The summary lists every input
as done, skipped (its output exists and ``-n`` was given) or failed with its one-line reason;
the exit status is 0 when none failed, else that of the gravest failure (3 a bug, then 2 a
user error, then 4 a cut input; :mod:`vs_superres.hostkit.exits`).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import logging
import os
import re
import sys
from pathlib import Path
from typing import Callable

from vs_superres.contracts.errors import IncompleteInput, SuperResError
from vs_superres.hostkit.exits import ExitStatus
from vs_superres.hostkit.flags import flag_spelling
from vs_superres.hostkit.logs import new_input
from vs_superres.hostkit.progress import end_open_lines

log = logging.getLogger("vs_superres")

_GLOB = re.compile(r"[*?[]")
#: file name extensions a folder's videos are recognised by (any file a glob names is taken)
VIDEO_INPUT_SUFFIXES = frozenset(
    ".mp4 .m4v .mkv .mov .webm .avi .ts .m2ts .mts .mpg .mpeg .vob .flv .wmv .asf .y4m .nut .ogv .3gp .3g2 .mxf "
    ".dv .264 .265 .h264 .hevc .ivf .obu".split())


@dataclasses.dataclass(frozen=True)
class Batch:
    """The inputs of a batch (in order), the folder they go to, what a folder held that is
    neither image nor video, and how the inputs were named (for messages)."""

    inputs: tuple[Path, ...]
    output_dir: Path
    left_out: tuple[Path, ...] = ()
    named: str = ""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What became of one input: ``state`` ``done``, ``skipped`` or ``failed``; ``detail`` the
    output written, or why; ``status`` the exit status it stands for."""

    source: Path
    state: str
    detail: str
    status: int = 0


def is_glob(text: str) -> bool:
    return bool(_GLOB.search(text)) and not Path(text).exists()


def batch_inputs(input_text: str, output_text: str) -> Batch | None:
    """The batch ``input_text`` names (a folder or a glob), or None for a single input."""
    from vs_superres.media.images import IMAGE_READ_EXTENSIONS

    source = Path(input_text)
    if source.is_dir():
        left_out: list[Path] = []
        inputs: list[Path] = []
        for entry in sorted(source.iterdir()):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            suffix = entry.suffix.lower()
            (inputs if suffix in IMAGE_READ_EXTENSIONS or suffix in VIDEO_INPUT_SUFFIXES else left_out).append(entry)
        if not inputs:
            raise SuperResError(f"the folder '{source}' holds no image or video to upscale (images: "
                                f"{', '.join(sorted(IMAGE_READ_EXTENSIONS))}; videos: .mp4, .mkv, .mov, ...)")
        named = f"the folder '{source}'"
    elif is_glob(input_text):
        inputs = [Path(p) for p in sorted(glob.glob(input_text)) if Path(p).is_file()]
        left_out = []
        if not inputs:
            raise SuperResError(f"no file matches {input_text!r}; check the pattern (quote it so that the shell "
                                "passes it as it is)")
        named = repr(input_text)
    else:
        return None
    return Batch(tuple(inputs), output_folder(output_text, source if source.is_dir() else None, named),
                 tuple(left_out), named)


def output_folder(output_text: str, source_dir: Path | None, named: str) -> Path:
    """The output folder ``output_text`` names for several outputs, created when missing (its
    parent must exist); refused when it is a file or the input folder ``source_dir``."""
    out = Path(output_text)
    if out.exists() and not out.is_dir():
        raise SuperResError(f"{named} names several inputs, so the output must be a folder; '{out}' is a file")
    if not out.exists():
        if not out.parent.exists():
            raise SuperResError(f"the output folder '{out}' cannot be created: '{out.parent}' does not exist")
        if out.suffix and not output_text.endswith(("/", os.sep)):
            raise SuperResError(f"{named} names several inputs, so the output must be a folder; '{out}' looks like "
                                "a file name (end it with / to make a folder of that name)")
        out.mkdir()
    if source_dir is not None and out.resolve() == source_dir.resolve():
        raise SuperResError(f"the output folder is the input folder '{source_dir}', so the outputs would replace "
                            "the inputs; choose another output folder")
    return out


def output_name(source: Path) -> str:
    """The name an input's output gets in the output folder: its own, unless its kind cannot be
    written in that format (then ``.png`` for an image, ``.mkv`` for a video)."""
    from vs_superres.media.encoders import check_output_container
    from vs_superres.media.images import IMAGE_READ_EXTENSIONS, IMAGE_WRITE_EXTENSIONS

    suffix = source.suffix.lower()
    if suffix in IMAGE_READ_EXTENSIONS:
        return source.name if suffix in IMAGE_WRITE_EXTENSIONS else source.stem + ".png"
    try:
        check_output_container(suffix)
    except SuperResError:
        return source.stem + ".mkv"
    return source.name


def _reason(exc: BaseException, debug: bool) -> tuple[str, int]:
    """The one line an input's failure is summed up in, and the exit status it stands for."""
    if isinstance(exc, IncompleteInput):
        return exc.render(flag_spelling), ExitStatus.INCOMPLETE_INPUT
    if isinstance(exc, SuperResError):
        return exc.render(flag_spelling), ExitStatus.USER_ERROR
    from vs_superres.hostkit.exits import no_space_error

    full = no_space_error(exc)
    if full is not None:
        return f"no space left to write it ({full.strerror or full}); free space or write elsewhere", ExitStatus.USER_ERROR
    (log.error if debug else log.debug)("internal error", exc_info=exc)
    how = "" if debug else " (--debug shows the traceback)"
    return f"internal error: {type(exc).__name__}: {exc}; this is a bug in vs-superres{how}", ExitStatus.INTERNAL_ERROR


def run_batch(batch: Batch, args: argparse.Namespace, upscale_one: Callable[[Path, Path], None],
              model_name: Callable[[], str], loads: Callable[[], int]) -> int:
    """Upscale every input of ``batch`` with ``upscale_one(src, dst)`` (module docstring);
    prints the summary and returns the exit status."""
    if batch.left_out:
        shown = ", ".join(p.name for p in batch.left_out[:5]) + (", ..." if len(batch.left_out) > 5 else "")
        _say(f"{len(batch.left_out)} files of {batch.named} are neither images nor videos and are left out: {shown}")
    outcomes: list[Outcome] = []
    taken: dict[Path, Path] = {}
    try:
        for source in batch.inputs:
            dst = batch.output_dir / output_name(source)
            if dst in taken:
                outcomes.append(Outcome(source, "failed", f"its output '{dst.name}' is also the output of "
                                        f"'{taken[dst].name}'; rename one of them", ExitStatus.USER_ERROR))
                continue
            taken[dst] = source
            if (dst.exists() or dst.is_symlink()) and getattr(args, "overwrite", None) is False:
                outcomes.append(Outcome(source, "skipped", f"'{dst}' exists (-n)"))
                continue
            new_input()
            try:
                upscale_one(source, dst)
            except Exception as exc:  # noqa: BLE001 - one bad input never stops the others
                reason, status = _reason(exc, bool(getattr(args, "debug", False)))
                end_open_lines()
                _say(f"{source}: {reason}")
                outcomes.append(Outcome(source, "failed", reason, status))
            else:
                outcomes.append(Outcome(source, "done", str(dst)))
    finally:
        # Also on Ctrl-C or a signal: what was done is said before the ladder reports the stop.
        _summary(batch, outcomes, model_name(), loads())
    failed = [o.status for o in outcomes if o.state == "failed"]
    for status in (ExitStatus.INTERNAL_ERROR, ExitStatus.USER_ERROR, ExitStatus.INCOMPLETE_INPUT):
        if status in failed:
            return int(status)
    return 0


def _summary(batch: Batch, outcomes: list[Outcome], model: str, loads: int) -> None:
    end_open_lines()
    counts = {state: sum(o.state == state for o in outcomes) for state in ("done", "skipped", "failed")}
    not_run = len(batch.inputs) - len(outcomes)
    _say(f"summary of {len(batch.inputs)} inputs from {batch.named} (model {model}, loaded {loads} "
         f"time{'s' if loads != 1 else ''}):")
    width = max((len(str(o.source)) for o in outcomes), default=0)
    for o in outcomes:
        arrow = "->" if o.state == "done" else "  "
        print(f"  {o.state:<8}{str(o.source):<{width}}  {arrow} {o.detail}", file=sys.stderr)
    tail = f", {not_run} not run (stopped)" if not_run else ""
    _say(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed{tail}")


def _say(line: str) -> None:
    print(f"superres: {line}", file=sys.stderr)
