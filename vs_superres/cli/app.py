"""The ``superres`` command line: the parser and the dispatch.

    superres upscale IN OUT [-n|-y] [--model NAME|PATH] [--tile N] [--overlap N] [--device D] [--dtype T]
    superres models list | show NAME | download NAME... | verify [NAME...]
    superres export MODEL OUT.onnx [--fp16] [--static WxH] [-n|-y]
    superres comfyui install PATH/TO/ComfyUI [--api v1|v3] [--name N] [--force]
    superres vapoursynth install | status
    superres demo [OUT] [-n|-y]
    superres compare A B [C ...] [-o REPORT.html] [--json] [--video SIDE.mp4] [--reference HR]

The subcommands live beside this module (:mod:`.upscale`, :mod:`.ray`, :mod:`.models`,
:mod:`.comfyui`, :mod:`.vapoursynth`); signals, the exit statuses (``superres --help`` prints the table,
:data:`vs_superres.hostkit.exits.EXIT_STATUSES`), the error ladder, flags and progress are the
host kit's (:mod:`vs_superres.hostkit`), shared with the FFmpeg bridge's commands.
"""
from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources

from vs_superres.cli.comfyui import add_parser as add_comfyui_parser
from vs_superres.cli.compare import add_parser as add_compare_parser, cmd_compare
from vs_superres.cli.encoding import add_arguments as add_encoder_arguments
from vs_superres.cli.export import add_parser as add_export_parser, cmd_export
from vs_superres.cli.models import cmd_models
from vs_superres.cli.ray import add_arguments as add_distributed_arguments
from vs_superres.cli.scenes import add_arguments as add_scene_arguments
from vs_superres.cli.upscale import cmd_upscale
from vs_superres.cli.vapoursynth import add_parser as add_vapoursynth_parser
from vs_superres.hostkit.exits import exit_table, run_guarded
from vs_superres.hostkit.flags import add_engine_flags, add_family_flags, family_of, flag_spelling
from vs_superres.hostkit.logs import logging_to_stderr
from vs_superres.hostkit.progress import end_open_lines
from vs_superres.runtime.registry import default_model

EXIT_CODES = exit_table([("1", "models verify: an installed weight file is wrong or a named model lacks one; "
                              "vapoursynth status: the plugin is not installed")])
OVERWRITE_HELP = "an existing OUTPUT is replaced by default, with a notice on stderr"
DEBUG_HELP = "debug log of vs-superres on stderr, with the traceback of internal errors (anywhere on the line)"
log = logging.getLogger("vs_superres")


def _model_named(argv: list[str]) -> str | None:
    """The ``--model`` given on the command line (the last one), read before parsing: ``--help``
    lists that model's options, and argparse prints help as soon as it meets ``--help``."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--model" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--model="):
            found = arg.split("=", 1)[1]
    return found


def _model_help(model: str) -> str:
    """What ``--help`` says about the options it does not list."""
    others = "other models: `superres models list`; the options of one: `superres upscale --model NAME --help` or `superres models show NAME`"
    family = family_of(model)
    if family is None:
        return (f"{model!r} is not a registered model name (a checkpoint file): its options are those of its family, "
                f"listed by `superres models show FAMILY`\n{others}")
    if not len(family.options.for_hosts()):
        return f"{model} takes the engine's options above and none of its own\n{others}"
    return others


def _add_engine_args(p: argparse.ArgumentParser, model: str) -> None:
    p.add_argument("--model", default=default_model(),
                   help=f"registered model name or checkpoint path (default {default_model()})")
    add_engine_flags(p)
    p.add_argument("--bit-depth", type=int, choices=[8, 16], default=None, help="image output bit depth (default: the input's)")
    p.add_argument("-O", "--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any model option by name, e.g. -O unet_tile=64 -O seed=3 (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_family_flags(p, listed=family_of(model))


def _add_overwrite_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("-y", "--overwrite", dest="overwrite", action="store_const", const=True, default=None,
                       help=f"replace an existing OUTPUT without a notice ({OVERWRITE_HELP})")
    group.add_argument("-n", "--no-overwrite", dest="overwrite", action="store_const", const=False,
                       help="refuse, before any work, when OUTPUT exists (exit status 2)")


def _subcommand(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand's parser; ``--debug`` is accepted after the subcommand too (argparse takes a
    top-level flag only before it), without overriding one given before it."""
    p = sub.add_parser(name, **kwargs)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return p


HELP_ALL = "--help-all"
MORE_FLAGS = ("more flags (Ray, bit rate and encoder parameters, long jobs, scene cuts): "
              f"`superres upscale {HELP_ALL}`")
#: what ``superres upscale --help`` leaves to ``--help-all``: whole groups, and single flags
ADVANCED_GROUPS = ("distributed (Ray)", "long jobs", "scenes")
ADVANCED_FLAGS = ("bitrate", "x264_params", "x265_params", "svtav1_params")


def _hide_advanced(parser: argparse.ArgumentParser) -> None:
    """Keep ``--help`` to what most runs set (every flag is still accepted)."""
    for group in parser._action_groups:
        hidden = group.title in ADVANCED_GROUPS
        if hidden:
            group.description = None
        for action in group._group_actions:
            if hidden or action.dest in ADVANCED_FLAGS:
                action.help = argparse.SUPPRESS


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv`` (its ``--model`` chooses which model's options ``--help`` lists;
    every model's flags are accepted)."""
    model = _model_named(list(argv or [])) or default_model()
    full = HELP_ALL in (argv or [])
    parser = argparse.ArgumentParser(prog="superres", description="Super-resolution for images and videos.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES)
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = _subcommand(sub, "upscale", help="upscale an image or a video", formatter_class=argparse.RawDescriptionHelpFormatter,
                     description=f"Upscale INPUT into OUTPUT; {OVERWRITE_HELP} (-n refuses, -y is silent).",
                     epilog=_model_help(model) + ("" if full else "\n" + MORE_FLAGS) + "\n\n" + EXIT_CODES)
    up.add_argument("input", help="the image or video to upscale (images: .png, .jpg, .tif, .bmp, .webp; anything else is "
                    "read as a video); a folder or a quoted glob ('shots/*.mov') of them, upscaled with one model load; "
                    "or an image sequence in ffmpeg's syntax ('scan/frame_%%05d.png'), upscaled as one clip")
    up.add_argument("output", help="the file to write: an image for an image, a video for a video (its extension picks the "
                    "container); a folder for a folder or a glob; a folder, a pattern or a video file for a sequence")
    _add_overwrite_args(up)
    _add_engine_args(up, model)
    add_distributed_arguments(up)
    add_encoder_arguments(up)
    journal = up.add_argument_group(
        "long jobs", "a video written as .mkv, .mp4, .mov or .webm goes through a journal of segments beside "
        "the output (.OUTPUT.superres-job/): rerunning the same command after any interruption resumes")
    journal.add_argument("--no-resume", dest="resume", action="store_false",
                      help="start afresh even when a journal of this job exists (it is set aside)")
    journal.add_argument("--segment-seconds", type=float, default=None, metavar="S",
                      help="length of a journaled segment in seconds of video (default 30, fewer when frames are large)")
    add_scene_arguments(up.add_argument_group("scenes"))
    up.add_argument(HELP_ALL, action="help", help="show every flag (Ray, bit rate and encoder parameters, long jobs, "
                    "scene cuts) and exit")
    if not full:
        _hide_advanced(up)

    demo = _subcommand(sub, "demo", help="upscale the embedded sample photo (the README's main job)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_model_help(model) + "\n\n" + EXIT_CODES)
    demo.add_argument("output", nargs="?", default="superres-demo.png", help="the image to write (default: superres-demo.png)")
    _add_overwrite_args(demo)
    _add_engine_args(demo, model)

    _add_overwrite_args(add_export_parser(sub, _subcommand))
    _add_overwrite_args(add_compare_parser(sub, _subcommand))

    install = add_comfyui_parser(sub)
    install.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    plugin = add_vapoursynth_parser(sub)
    plugin.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)

    jobs = _subcommand(sub, "jobs", help="list or remove the journals of resumable video jobs")
    jobs.add_argument("action", choices=["list", "clean"], help="list: show them; clean: remove them")
    jobs.add_argument("path", nargs="?", default=None, help="the folder holding the outputs (default: here)")

    models = _subcommand(sub, "models", help="list, show, download or verify models and their weights")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    _subcommand(msub, "list", help="registered models, their weights and where they were found")
    show = _subcommand(msub, "show", help="one model (or family): its weights and every option it takes")
    show.add_argument("name", help="a registered model name (superres models list) or a family name")
    dl = _subcommand(msub, "download", help="fetch weight files (sha256-checked) into the user cache")
    dl.add_argument("names", nargs="+", help="registered model names")
    dl.add_argument("--dest", help="folder to download into (default: the user cache)")
    ver = _subcommand(msub, "verify", help="check the sha256 of installed weight files")
    ver.add_argument("names", nargs="*", help="registered model names (default: every model)")
    return parser


def cmd_demo(args) -> int:
    sample = resources.files("vs_superres") / "data" / "astronaut_128.png"
    with resources.as_file(sample) as path:
        args.input = str(path)
        return cmd_upscale(args)


def _dispatch(args) -> int:
    if args.command == "upscale":
        status = cmd_upscale(args)
    elif args.command == "comfyui":
        from vs_superres.cli.comfyui import cmd_comfyui

        status = cmd_comfyui(args)
    elif args.command == "vapoursynth":
        from vs_superres.cli.vapoursynth import cmd_vapoursynth

        status = cmd_vapoursynth(args)
    elif args.command == "demo":
        status = cmd_demo(args)
    elif args.command == "export":
        status = cmd_export(args)
    elif args.command == "compare":
        status = cmd_compare(args)
    elif args.command == "jobs":
        from vs_superres.cli.jobs import cmd_jobs

        status = cmd_jobs(args)
    else:
        status = cmd_models(args)
    # What is still buffered for stdout is written here, inside the ladder: a reader that has
    # gone (`superres models list | head -1`) is then the quiet status 141, not a traceback at exit.
    sys.stdout.flush()
    return status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    with logging_to_stderr("superres", debug=args.debug):
        # SIGINT/SIGTERM/SIGHUP unwind through the atomic writers' clean-up; the ladder says how it ended.
        return run_guarded(lambda: _dispatch(args), "superres", aftermath="no output file was written",
                           spelling=flag_spelling, debug=args.debug, log=log, before=end_open_lines)
