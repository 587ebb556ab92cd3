"""The ``superres`` command line: the parser and the dispatch.

    superres upscale IN OUT [-n|-y] [--model NAME|PATH] [--tile N] [--overlap N] [--device D] [--dtype T]
    superres models list | download NAME... | verify [NAME...]
    superres comfyui install PATH/TO/ComfyUI [--api v1|v3] [--name N] [--force]
    superres demo [OUT] [-n|-y]

The subcommands live beside this module (:mod:`.upscale`, :mod:`.ray`, :mod:`.models`,
:mod:`.comfyui`); signals, the exit statuses (``superres --help`` prints the table,
:data:`vs_superres.hostkit.exits.EXIT_STATUSES`), the error ladder, flags and progress are the
host kit's (:mod:`vs_superres.hostkit`), shared with the FFmpeg bridge's commands.
"""
from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources

from vs_superres.cli.models import cmd_models
from vs_superres.cli.ray import add_arguments as add_distributed_arguments
from vs_superres.cli.upscale import cmd_upscale
from vs_superres.hostkit.exits import exit_table, run_guarded
from vs_superres.hostkit.flags import add_engine_flags, add_family_flags, flag_spelling
from vs_superres.hostkit.progress import end_open_lines
from vs_superres.runtime.engine_options import options_help
from vs_superres.runtime.registry import default_model

EXIT_CODES = exit_table([("1", "models verify: an installed weight file is wrong or a named model lacks one")])
OVERWRITE_HELP = "an existing OUTPUT is replaced by default, with a notice on stderr"
log = logging.getLogger("vs_superres")


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=default_model(),
                   help=f"registered model name or checkpoint path (default {default_model()})")
    add_engine_flags(p)
    p.add_argument("--bit-depth", type=int, choices=[8, 16], default=None, help="image output bit depth (default: the input's)")
    add_family_flags(p)
    p.add_argument("-O", "--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any model option by name, e.g. -O unet_tile=64 -O seed=3 (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_overwrite_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("-y", "--overwrite", dest="overwrite", action="store_const", const=True, default=None,
                       help=f"replace an existing OUTPUT without a notice ({OVERWRITE_HELP})")
    group.add_argument("-n", "--no-overwrite", dest="overwrite", action="store_const", const=False,
                       help="refuse, before any work, when OUTPUT exists (exit status 2)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="superres", description="Super-resolution for images and videos.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES)
    parser.add_argument("--debug", action="store_true", help="debug log on stderr, with the traceback of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("upscale", help="upscale an image or a video", formatter_class=argparse.RawDescriptionHelpFormatter,
                        description=f"Upscale INPUT into OUTPUT; {OVERWRITE_HELP} (-n refuses, -y is silent).",
                        epilog="model options by family (flags above, or -O NAME=VALUE):\n" + options_help(indent="  ")
                        + "\n\n" + EXIT_CODES)
    up.add_argument("input")
    up.add_argument("output")
    _add_overwrite_args(up)
    _add_engine_args(up)
    add_distributed_arguments(up)
    journal = up.add_argument_group(
        "long jobs", "a video written as .mkv, .mp4, .mov or .webm goes through a journal of segments beside "
        "the output (.OUTPUT.superres-job/): rerunning the same command after any interruption resumes")
    journal.add_argument("--no-resume", dest="resume", action="store_false",
                      help="start afresh even when a journal of this job exists (it is set aside)")
    journal.add_argument("--segment-seconds", type=float, default=None, metavar="S",
                      help="length of a journaled segment in seconds of video (default 30, fewer when frames are large)")

    demo = sub.add_parser("demo", help="upscale the embedded sample photo (the README's main job)",
                          formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES)
    demo.add_argument("output", nargs="?", default="superres-demo.png")
    _add_overwrite_args(demo)
    _add_engine_args(demo)

    comfy = sub.add_parser("comfyui", help="link this installation into a ComfyUI (see docs/comfyui.md)", add_help=False)
    comfy.add_argument("action", choices=["install"], help="install PATH/TO/ComfyUI [--api v1|v3] [--name N] [--force]")
    comfy.add_argument("rest", nargs=argparse.REMAINDER)

    jobs = sub.add_parser("jobs", help="list or remove the journals of resumable video jobs")
    jobs.add_argument("action", choices=["list", "clean"], help="list: show them; clean: remove them")
    jobs.add_argument("path", nargs="?", default=None, help="the folder holding the outputs (default: here)")

    models = sub.add_parser("models", help="list, download or verify model weights")
    msub = models.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="registered models, their weights and where they were found")
    dl = msub.add_parser("download", help="fetch weight files (sha256-checked) into the user cache")
    dl.add_argument("names", nargs="+")
    dl.add_argument("--dest", help="folder to download into (default: the user cache)")
    ver = msub.add_parser("verify", help="check the sha256 of installed weight files")
    ver.add_argument("names", nargs="*")
    return parser


def cmd_demo(args) -> int:
    sample = resources.files("vs_superres") / "data" / "astronaut_128.png"
    with resources.as_file(sample) as path:
        args.input = str(path)
        return cmd_upscale(args)


def _dispatch(args) -> int:
    if args.command == "upscale":
        return cmd_upscale(args)
    if args.command == "comfyui":
        from vs_superres.cli.comfyui import main as comfyui_install

        return comfyui_install(args.rest)
    if args.command == "demo":
        return cmd_demo(args)
    if args.command == "jobs":
        from vs_superres.cli.jobs import cmd_jobs

        return cmd_jobs(args)
    return cmd_models(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="superres: %(message)s", stream=sys.stderr)
    # SIGINT/SIGTERM/SIGHUP unwind through the atomic writers' clean-up; the ladder says how it ended.
    return run_guarded(lambda: _dispatch(args), "superres", aftermath="no output file was written",
                       spelling=flag_spelling, debug=args.debug, log=log, before=end_open_lines)
