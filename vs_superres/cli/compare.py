"""``superres compare A B [C ...] -o report.html``: input and outputs side by side, with honest figures.

The work is :mod:`vs_superres.compare`'s (the same figures are its Python API); this command
parses the flags, checks every output can be written before anything is decoded, drives the
progress bar over the sampled frames, and writes the report (atomically), the JSON on stdout
(``--json``) and the split-screen video (``--video``). See docs/compare.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from vs_superres.compare.analysis import DEFAULT_CROPS, DEFAULT_FRAMES, DEFAULT_MEASURE, DEFAULT_VIEW_WIDTH, compare
from vs_superres.compare.metrics import LUMA_MATRICES
from vs_superres.compare.report import write_report
from vs_superres.compare.scaling import RESAMPLERS
from vs_superres.compare.splitscreen import DEFAULT_PERIOD_S, MODES, write_split_video
from vs_superres.contracts.errors import InvalidOption, SuperResError
from vs_superres.hostkit.progress import ProgressBar
from vs_superres.media.atomic import check_writable


def _measure(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of frames or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 frame (or 'all'), got {value}")
    return value


def add_parser(sub, subcommand: Callable[..., argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """``superres compare``'s parser (``subcommand`` is the app's: it adds ``--debug``)."""
    p = subcommand(sub, "compare", help="a side-by-side report of an input and its outputs (slider, crops, flicker, metrics)",
                   description="Compare INPUT (A) with outputs (B, C, ...): images, or videos of the same frames, sizes a "
                               "scale apart. Writes a self-contained HTML report (-o), the figures as JSON (--json) "
                               "and/or a split-screen video (--video). Flicker needs the 'compare' extra "
                               "(pip install 'vs-superres[compare]'). See docs/compare.md.")
    p.add_argument("inputs", nargs="+", metavar="FILE", help="A (the input, or any clip), then the outputs to compare with it")
    p.add_argument("-o", "--output", metavar="REPORT.html", default=None, help="write the HTML report here")
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.add_argument("--video", metavar="SIDE.mp4", default=None,
                   help="write a split-screen video of two clips (--video-clips), audio kept")
    p.add_argument("--video-clips", metavar="I,J", default="A,B", help="which two clips the video shows, left and right (default A,B)")
    p.add_argument("--video-mode", choices=MODES, default="split",
                   help="split: the line stays in the middle; wipe: it sweeps across and back (default split)")
    p.add_argument("--wipe-period", type=float, default=DEFAULT_PERIOD_S, metavar="S",
                   help=f"seconds of one sweep across and back in wipe mode (default {DEFAULT_PERIOD_S:g})")
    p.add_argument("--reference", metavar="HR", default=None,
                   help="the true high-resolution original: PSNR and SSIM on Y of every clip against it (none without it)")
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES, metavar="K",
                   help=f"frames shown with a slider and crops, evenly spaced (default {DEFAULT_FRAMES})")
    p.add_argument("--measure", type=_measure, default=DEFAULT_MEASURE, metavar="N|all",
                   help=f"frames the figures over time are measured at, evenly spaced, or all (default {DEFAULT_MEASURE})")
    p.add_argument("--crops", type=int, default=DEFAULT_CROPS, metavar="K",
                   help=f"full-resolution detail crops per shown frame (default {DEFAULT_CROPS})")
    p.add_argument("--resampler", choices=sorted(RESAMPLERS), default="lanczos",
                   help="how a smaller clip is upscaled to line up with the largest (default lanczos)")
    p.add_argument("--luma", choices=sorted(LUMA_MATRICES), default="bt601",
                   help="the luma of PSNR/SSIM: bt601 as the video-SR papers (default), or bt709")
    p.add_argument("--crop-border", type=int, default=0, metavar="PX", help="pixels left out at each edge for PSNR/SSIM (default 0)")
    p.add_argument("--view-width", type=int, default=DEFAULT_VIEW_WIDTH, metavar="PX",
                   help=f"largest width of the slider pictures (default {DEFAULT_VIEW_WIDTH}; crops are always full resolution)")
    p.add_argument("--no-flicker", dest="flicker", action="store_false",
                   help="skip the flicker measure (E*warp), which needs OpenCV")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _clip_pair(text: str, count: int) -> tuple[int, int]:
    labels = [chr(ord("A") + i) for i in range(count)]
    parts = [t.strip().upper() for t in text.split(",")]
    if len(parts) != 2 or any(p not in labels for p in parts):
        raise InvalidOption(f"--video-clips must name two of {', '.join(labels)} as I,J (e.g. A,B), got {text!r}",
                            option="video_clips")
    return labels.index(parts[0]), labels.index(parts[1])


def _check_output(path: Path, overwrite: bool | None, what: str) -> None:
    if path.is_dir():
        raise SuperResError(f"{what} {str(path)!r} is a folder; give a file name")
    exists = path.exists()
    if exists and overwrite is False:
        raise SuperResError(f"{what} {str(path)!r} already exists and -n/--no-overwrite was given; remove it, choose "
                            "another name, or pass -y/--overwrite to replace it")
    check_writable(path)
    if exists and overwrite is None:
        print(f"superres: replacing existing {path} (-n refuses, -y replaces without this notice)", file=sys.stderr)


def cmd_compare(args) -> int:
    if not (args.output or args.json or args.video):
        raise SuperResError("compare needs something to write: -o REPORT.html, --json, and/or --video SIDE.mp4")
    overwrite = getattr(args, "overwrite", None)
    report = Path(args.output) if args.output else None
    video = Path(args.video) if args.video else None
    if report is not None:
        if report.suffix.lower() not in (".html", ".htm"):
            raise InvalidOption(f"the report is HTML: give -o a name ending in .html, got {str(report)!r}", option="output")
        _check_output(report, overwrite, "report")
    pair = _clip_pair(args.video_clips, len(args.inputs)) if video is not None else None
    if video is not None:
        _check_output(video, overwrite, "video")
    if report is not None or args.json:
        bar = ProgressBar("compare") if not args.quiet else None
        try:
            result = compare(args.inputs, reference=args.reference, frames=args.frames, measure=args.measure,
                             crops=args.crops, resampler=args.resampler, luma=args.luma, crop_border=args.crop_border,
                             flicker=args.flicker, view_width=args.view_width, on_progress=bar)
        finally:
            if bar is not None:
                bar.close()
        if report is not None:
            write_report(result, report)
            print(f"superres: wrote {report}", file=sys.stderr)
        if args.json:
            json.dump(result.to_dict(), sys.stdout, indent=2)
            sys.stdout.write("\n")
    if video is not None and pair is not None:
        bar = ProgressBar("video") if not args.quiet else None
        try:
            write_split_video(args.inputs[pair[0]], args.inputs[pair[1]], video, mode=args.video_mode,
                              period=args.wipe_period, resampler=args.resampler, on_progress=bar)
        finally:
            if bar is not None:
                bar.close()
        print(f"superres: wrote {video}", file=sys.stderr)
    return 0
