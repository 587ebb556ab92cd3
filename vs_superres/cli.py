"""The ``superres`` command line.

    superres upscale IN OUT [-n|-y] [--model NAME|PATH] [--tile N] [--overlap N] [--device D] [--dtype T]
    superres models list | download NAME... | verify [NAME...]
    superres comfyui install PATH/TO/ComfyUI [--api v1|v3] [--name N] [--force]
    superres demo [OUT] [-n|-y]

Images and videos are told apart by the input extension: the image reader's list
(``vs_superres.media.images.IMAGE_READ_EXTENSIONS``: .bmp .jpeg .jpg .png .tif .tiff .webp) are
images, anything else is a video (anything PyAV reads). An image is written as one of
``IMAGE_WRITE_EXTENSIONS`` (.jpeg .jpg .png .tif .tiff).

Before the model is loaded, ``upscale`` checks that the input is a readable file, that the
output's extension suits the input, that the output folder is writable (a temporary file is
created there and removed) and the overwrite rule: an existing output is replaced by default,
with a notice on stderr (``-y``/``--overwrite`` replaces it silently, ``-n``/``--no-overwrite``
refuses before any work). Output goes to a temporary name and is renamed only on success, so
Ctrl-C, a termination signal, a full disk or an error never leaves a truncated file under the
final name (an existing file stays as it was); partial files of runs killed outright
(SIGKILL) are deleted by the next run that writes the same output.

Exit status:

* 0: success;
* 2: a user error (bad option, unreadable input, unwritable or full disk, output exists with
  ``-n``, missing weights): one line on stderr naming the problem and the fix;
* 3: an internal error (a bug): one line (``superres --debug ...`` logs its traceback);
* 4: the input ended early (a cut or truncated file): the output holding every complete frame
  WAS written, and the message says how many frames were read;
* 130: interrupted by Ctrl-C (SIGINT); 143: by SIGTERM; 129: by SIGHUP (128 + the signal's
  number); no output file was written;
* ``superres models verify`` exits 1 when an installed weight file is wrong (bad sha256,
  unreadable) or a model named on its command line lacks a required file.
"""
from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources
from pathlib import Path

from .contracts.errors import Cancelled, IncompleteInput, InvalidOption, SuperResError
from .hostkit.flags import add_engine_flags, add_family_flags, flag_spelling, given, model_options
from .runtime import registry, weights as weights_mod
from .runtime.engine_options import ENGINE_OPTIONS, options_help
from .hostkit.signals import Terminated, signals_as_exceptions

EXIT_CODES = """exit status:
  0    success
  2    user error (bad option or input, unwritable or full disk, output exists with -n,
       missing weights); one line on stderr says what and how to fix it
  3    internal error (a bug); --debug shows its traceback
  4    the input ended early: the output with every complete frame WAS written
  129  interrupted by SIGHUP, 130 by Ctrl-C (SIGINT), 143 by SIGTERM; no output was written
  (models verify: 1 when an installed weight file is wrong or a named model lacks one)"""
OVERWRITE_HELP = "an existing OUTPUT is replaced by default, with a notice on stderr"
DEFAULT_MODEL = "ditn-real-x4"
log = logging.getLogger("vs_superres")


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"registered model name or checkpoint path (default {DEFAULT_MODEL})")
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
    from .distributed.cli import add_arguments as add_distributed_arguments

    add_distributed_arguments(up)

    demo = sub.add_parser("demo", help="upscale the embedded sample photo (the README's main job)",
                          formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES)
    demo.add_argument("output", nargs="?", default="superres-demo.png")
    _add_overwrite_args(demo)
    _add_engine_args(demo)

    comfy = sub.add_parser("comfyui", help="link this installation into a ComfyUI (see docs/comfyui.md)", add_help=False)
    comfy.add_argument("action", choices=["install"], help="install PATH/TO/ComfyUI [--api v1|v3] [--name N] [--force]")
    comfy.add_argument("rest", nargs=argparse.REMAINDER)

    models = sub.add_parser("models", help="list, download or verify model weights")
    msub = models.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="registered models, their weights and where they were found")
    dl = msub.add_parser("download", help="fetch weight files (sha256-checked) into the user cache")
    dl.add_argument("names", nargs="+")
    dl.add_argument("--dest", help="folder to download into (default: the user cache)")
    ver = msub.add_parser("verify", help="check the sha256 of installed weight files")
    ver.add_argument("names", nargs="*")
    return parser


def _engine(args, progress):
    from .runtime.upscaler import Upscaler

    return Upscaler(args.model, progress=progress, **given(args, ENGINE_OPTIONS), **model_options(args))


def _upscale_image(src: Path, dst: Path, args) -> None:
    """The output's bit depth, the header, the pixel limit, the decoding and the memory the job
    needs are checked before the model loads (and before torch is imported, for a registered
    model), so a broken, oversized or impossible request fails in milliseconds. Each frame is
    then made once: no stacked copy of the output, and the writer converts it to integer codes
    a band of rows at a time."""
    from .contracts.errors import WeightsError
    from .media import read_image, write_image
    from .media.image_memory import check_upscale_memory
    from .media.image_probe import check_pixel_limit, probe_image

    def check_memory(desc) -> None:
        # The model's share at a small tile: --tile can shrink it that far, never the frames.
        check_upscale_memory(probe.width, probe.height, desc.scale, model=desc.name, source=src,
                             model_bytes=desc.bytes_per_pixel * 128 * 128)

    to_jpeg = dst.suffix.lower() in (".jpg", ".jpeg")
    if to_jpeg and args.bit_depth == 16:
        raise InvalidOption(
            f"--bit-depth 16 cannot be written to {dst.name!r}: JPEG stores 8 bits per sample; name "
            "the output .png or .tif for 16-bit output, or drop --bit-depth 16", option="--bit-depth")
    probe = probe_image(src)
    check_pixel_limit(probe, src)
    known = registry.default_registry()
    model_error: SuperResError | None = None
    if args.model in known:  # a registered name: the scale without importing torch
        check_memory(known.get(args.model))
    else:
        # A checkpoint path: its shapes give the scale (nothing is built), before decoding,
        # which may take gigabytes. A missing or unreadable checkpoint is reported after the
        # image is decoded, so a broken image is what the user hears about first.
        from .runtime.loading import resolve_model

        try:
            check_memory(resolve_model(args.model)[0])
        except WeightsError as exc:
            model_error = exc
        except InvalidOption as exc:
            if exc.option != "model":
                raise
            model_error = exc
    rgb, info = read_image(src)
    if model_error is not None:
        raise model_error

    import torch

    from .hostkit.progress import ProgressBar

    if info.has_alpha:
        log.warning("%s has an alpha channel; it is dropped (the models are RGB only)", src)
    if info.icc_note:
        log.warning("%s: %s", src, info.icc_note)
    bit_depth = args.bit_depth or (16 if info.bit_depth > 8 else 8)
    if to_jpeg and bit_depth != 8:
        log.warning("%s has %d-bit samples but JPEG stores 8, so %s is written with 8 bits (name it "
                    ".png or .tif to keep %d)", src, info.bit_depth, dst.name, bit_depth)
        bit_depth = 8
    bar = ProgressBar(f"{src.name}", force=False) if not args.quiet else None
    up = _engine(args, bar)
    height, width = rgb.shape[:2]
    # stream, not upscale: upscale stacks its results into a second copy of the output
    (out,) = up.stream([torch.from_numpy(rgb).permute(2, 0, 1)], total=1)
    write_image(dst, out, bit_depth=bit_depth, icc_profile=info.icc_profile)
    if bar:
        bar.close()
    print(f"{src} ({width}x{height}) -> {dst} ({out.shape[2]}x{out.shape[1]}, {bit_depth}-bit) with {up.descriptor.name}", file=sys.stderr)


def _upscale_video(src: Path, dst: Path, args) -> None:
    import torch

    from .media import transcode
    from .hostkit.progress import ProgressBar

    from .runtime.loading import resolve_model

    # Order matters: a broken input or an output the container refuses must fail in
    # milliseconds, so the input is probed and the output header written (output_size) before
    # the model is built, which happens lazily inside process.
    engines: list = []

    def output_size(info) -> tuple[int, int]:
        scale = resolve_model(args.model)[0].scale
        return info.width * scale, info.height * scale

    def process(frames):
        up = _engine(args, None)
        engines.append(up)
        # The container's frame count: clip-level statistics (UltraVSR's d) pick their frames by it.
        for out in up.stream((torch.from_numpy(f) for f in frames), total=getattr(frames, "total", None)):
            yield out.numpy()

    bar = ProgressBar(src.name) if not args.quiet else None
    try:
        path = transcode(src, dst, process, on_progress=bar, output_size=output_size)
    finally:
        if bar:
            bar.close()
    print(f"{src} -> {path} with {engines[0].descriptor.name}", file=sys.stderr)


def _extensions(names) -> str:
    return ", ".join(sorted(names))


def _video_output_extensions() -> set[str]:
    """Extensions FFmpeg has a muxer for (it picks the muxer from the output name)."""
    import av

    from .media.files import FORMAT_OF_SUFFIX

    found = set(FORMAT_OF_SUFFIX)
    for name in av.formats_available:
        try:
            fmt = av.ContainerFormat(name, "w")
        except (ValueError, av.FFmpegError):
            continue
        found.update("." + ext.strip().lower() for ext in fmt.extensions if ext.strip())
    return found


def _check_kinds(src: Path, dst: Path) -> str:
    """``"image"`` or ``"video"``, from the input's extension; refuses an output of the other kind."""
    from .media.images import IMAGE_READ_EXTENSIONS, IMAGE_WRITE_EXTENSIONS

    src_ext, dst_ext = src.suffix.lower(), dst.suffix.lower()
    if src_ext in IMAGE_READ_EXTENSIONS:
        if dst_ext not in IMAGE_WRITE_EXTENSIONS:
            raise SuperResError(
                f"input is an image, so the output must be an image file ("
                f"{_extensions(IMAGE_WRITE_EXTENSIONS)}), got {dst.name!r} (inputs named "
                f"{_extensions(IMAGE_READ_EXTENSIONS)} are read as images)")
        return "image"
    if dst_ext in IMAGE_READ_EXTENSIONS or dst_ext in IMAGE_WRITE_EXTENSIONS:
        raise SuperResError(
            f"input {src.name!r} is read as a video (only {_extensions(IMAGE_READ_EXTENSIONS)} are "
            f"read as images), so the output must be a video file (.mkv, .mp4, .mov, .webm, ...); "
            f"got {dst.name!r}")
    if dst_ext not in _video_output_extensions():
        shown = f"the extension {dst_ext!r}" if dst_ext else "no extension"
        raise SuperResError(
            f"cannot write the video {dst.name!r}: FFmpeg picks the container from the file name and "
            f"has none for {shown}; name the output .mkv, .mp4, .mov or .webm")
    return "video"


def _check_output(src: Path, dst: Path, overwrite: bool | None) -> None:
    """The output can be written and may be replaced; raises before any work otherwise."""
    from .media.atomic import check_writable

    if not dst.parent.exists():
        raise SuperResError(f"output folder {str(dst.parent)!r} does not exist; create it first or choose another output path")
    if dst.is_dir():
        raise SuperResError(f"output {str(dst)!r} is a folder; give a file name instead")
    exists = dst.exists() or dst.is_symlink()
    if exists and overwrite is False:
        raise SuperResError(
            f"output {str(dst)!r} already exists and -n/--no-overwrite was given; remove it, "
            "choose another name, or pass -y/--overwrite to replace it")
    check_writable(dst)  # creates and removes a temporary file there; stale partials go too
    if exists and overwrite is None:
        print(f"superres: replacing existing {dst} (-n refuses, -y replaces without this notice)", file=sys.stderr)


def _check_input(src: Path) -> None:
    if not src.is_file():
        raise SuperResError(f"input {str(src)!r} does not exist or is not a file")
    try:
        with open(src, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise SuperResError(f"cannot read input {str(src)!r}: {exc.strerror or exc}; check its permissions") from None


def cmd_upscale(args) -> int:
    """Every check that needs no model runs first (milliseconds), then the model loads."""
    from .media.atomic import disk_full_error

    src, dst = Path(args.input), Path(args.output)
    _check_input(src)
    if src.resolve() == dst.resolve():
        raise SuperResError("the output path is the input path; choose another output name")
    kind = _check_kinds(src, dst)
    _check_output(src, dst, getattr(args, "overwrite", None))
    try:
        from .distributed.cli import run as run_distributed

        status = run_distributed(args, src, dst)  # None unless --ray/--workers was given
        if status is not None:
            return status
        if kind == "image":
            _upscale_image(src, dst, args)
        else:
            _upscale_video(src, dst, args)
    except Exception as exc:
        # Encoders report a full disk deep inside FFmpeg; say it in the user's terms.
        full = disk_full_error(exc, dst)
        if full is not None and full is not exc:
            raise full from None
        raise
    return 0


def cmd_demo(args) -> int:
    sample = resources.files("vs_superres") / "data" / "astronaut_128.png"
    with resources.as_file(sample) as path:
        args.input = str(path)
        return cmd_upscale(args)


def _where(wf) -> str:
    try:
        return str(weights_mod.resolve(wf, verify=False))
    except SuperResError:
        return "not installed" + ("" if wf.required else f" (optional; or give {wf.option}=)")


def cmd_models(args) -> int:
    if args.action == "list":
        for d in registry.list_models():
            print(f"{d.name}  [{d.kind}, x{d.scale}, {d.family}, licence {d.licence}]  {d.description}")
            for wf in d.weights:
                print(f"    {wf.relpath}  sha256 {wf.sha256}  ({_where(wf)})")
        return 0
    names = args.names or [d.name for d in registry.list_models()]
    descs = [registry.get_model(n) for n in names]
    if args.action == "download":
        dest = Path(args.dest) if args.dest else None
        for d in descs:
            for wf in d.weights:
                try:
                    path = weights_mod.resolve(wf, model_name=d.name)
                    print(f"{d.name}: {wf.relpath} already present at {path}")
                    continue
                except SuperResError:
                    if not wf.url and not wf.required:
                        print(f"{d.name}: {wf.relpath} is optional and has no download location; get it from {wf.upstream}")
                        continue
                path = weights_mod.download(wf, dest)
                print(f"{d.name}: downloaded {wf.relpath} -> {path} (sha256 ok)")
        return 0
    return _verify(descs, named=bool(args.names))


def _how_to_get(d, wf) -> str:
    if wf.url:
        return f"run `superres models download {d.name}`"
    where = f"get it from {wf.upstream} and " if wf.upstream else "get it and "
    flag = f"pass --{wf.option.replace('_', '-')} PATH, or " if wf.option else ""
    return f"{where}{flag}put it at $SUPERRES_WEIGHTS/{wf.relpath}"


def _verify(descs, *, named: bool) -> int:
    """Check what is installed; list what is not. Fails (1) only for an installed file that is
    wrong, or a required file of a model the user named."""
    failed = checked = absent = 0
    for d in descs:
        for wf in d.weights:
            try:
                path = weights_mod.resolve(wf, model_name=d.name, verify=False)
            except SuperResError:
                if named and wf.required:
                    failed += 1
                    print(f"MISSING        {d.name}: {wf.relpath} is required and not installed; {_how_to_get(d, wf)}")
                else:
                    absent += 1
                    optional = " (optional)" if not wf.required else ""
                    print(f"NOT INSTALLED  {d.name}: {wf.relpath}{optional}")
                continue
            checked += 1
            try:
                weights_mod.verify_file(path, wf)
            except SuperResError as e:
                failed += 1
                print(f"CORRUPT        {d.name}: {str(e).splitlines()[0]}")
                continue
            except OSError as e:
                failed += 1
                print(f"UNREADABLE     {d.name}: {path}: {e.strerror or e}; check its permissions or download it again")
                continue
            how = "folder, not hashed" if wf.folder else ("sha256 ok" if wf.sha256 else "no sha256 registered")
            print(f"OK             {d.name}: {path} ({how})")
    verdict = f"{failed} problem(s)" if failed else "no problems"
    print(f"{checked} installed file(s) checked, {absent} not installed, {verdict}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="superres: %(message)s", stream=sys.stderr)
    from .hostkit.progress import end_open_lines

    try:
        # SIGTERM/SIGHUP unwind like Ctrl-C, through the atomic writers' clean-up.
        with signals_as_exceptions():
            if args.command == "upscale":
                return cmd_upscale(args)
            if args.command == "comfyui":
                from .comfy_nodes.install import main as comfyui_install

                return comfyui_install(args.rest)
            if args.command == "demo":
                return cmd_demo(args)
            return cmd_models(args)
    except IncompleteInput as e:  # before SuperResError: it is one, but the output was written
        end_open_lines()
        print(f"superres: error: {e.render(flag_spelling)}", file=sys.stderr)
        return 4
    except SuperResError as e:
        end_open_lines()
        print(f"superres: error: {e.render(flag_spelling)}", file=sys.stderr)
        return 2
    except Terminated as e:
        end_open_lines()
        print(f"superres: interrupted by {e.signal_name}; no output file was written", file=sys.stderr)
        return e.exit_status
    except (KeyboardInterrupt, Cancelled):
        # The terminal echoed "^C" without a newline: start the message on a line of its own.
        if not end_open_lines() and sys.stderr.isatty():
            print(file=sys.stderr)
        print("superres: interrupted; no output file was written", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not the user's mistake: say so, keep the traceback for the report
        end_open_lines()
        log.debug("internal error", exc_info=True)
        how = "" if args.debug else " (run with --debug for the traceback)"
        print(f"superres: internal error: {type(e).__name__}: {e}; this is a bug in vs-superres, "
              f"please report it{how}; no output file was written", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
