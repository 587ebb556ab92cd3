"""The ``superres`` command line.

    superres upscale IN OUT [--model NAME|PATH] [--tile N] [--overlap N] [--device D] [--dtype T]
    superres models list | download NAME... | verify [NAME...]
    superres demo [OUT]

Images (PNG/JPEG/TIFF, 8/16-bit) and videos (anything PyAV reads) are told apart by the input
extension. Output goes to a temporary name and is renamed only on success, so Ctrl-C or an
error never leaves a truncated file under the final name. User errors print one line to
stderr and exit with status 2; Ctrl-C exits with 130; an internal error (a bug) says so in one
line and exits with 3 (``superres --debug ...`` logs its traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources
from pathlib import Path

from .contracts.errors import Cancelled, InvalidOption, SuperResError
from .contracts.options import Option
from .runtime import registry, weights as weights_mod
from .runtime.engine_options import ENGINE_OPTIONS, options_help

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
DEFAULT_MODEL = "ditn-real-x4"
log = logging.getLogger("vs_superres")


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"registered model name or checkpoint path (default {DEFAULT_MODEL})")
    for opt in ENGINE_OPTIONS:
        _add_option_flag(p, opt)
    p.add_argument("--bit-depth", type=int, choices=[8, 16], default=None, help="image output bit depth (default: the input's)")
    _add_family_args(p)
    p.add_argument("-O", "--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any model option by name, e.g. -O unet_tile=64 -O seed=3 (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _family_options() -> dict[str, Option]:
    """Every host-facing option of every registered family, by name (first declaration wins)."""
    out: dict[str, Option] = {}
    for family in registry.default_registry().families():
        for opt in family.options.for_hosts():
            out.setdefault(opt.name, opt)
    return out


def _add_family_args(p: argparse.ArgumentParser) -> None:
    """One flag per declared family option (``--frames-per-batch``), grouped by family."""
    added: set[str] = set()
    reg = registry.default_registry()
    for family in reg.families():
        opts = [o for o in family.options.for_hosts() if o.name not in added]
        if not opts:
            continue
        models = ", ".join(m.name for m in reg.models_of(family.name))
        group = p.add_argument_group(family.title or family.name, f"options of {models} (--model {models})")
        for opt in opts:
            added.add(opt.name)
            _add_option_flag(group, opt)


def _add_option_flag(p, opt: Option) -> None:
    """``--name-with-dashes``, explained from the option's declaration; its value is parsed and
    checked by the declaration too (:func:`_given`), so a bad value is one clear line."""
    flag = "--" + opt.name.replace("_", "-")
    rng = opt.range_text()
    text = f"{opt.help} ({rng + '; ' if rng else ''}default {opt.default!r})".replace("%", "%%")
    if opt.type == "bool":
        p.add_argument(flag, dest=opt.name, action="store_const", const="true", default=None, help=text)
    else:
        p.add_argument(flag, dest=opt.name, default=None, metavar=opt.type.upper(), help=text)


def _given(args, options) -> dict:
    """The options of ``options`` given on the command line, parsed by their declarations."""
    return {o.name: o.parse(getattr(args, o.name)) for o in options if getattr(args, o.name, None) is not None}


def cli_spelling(name: str, value: str | None) -> str:
    """How this command line writes option ``name`` in a message (``--strength D``), so errors
    raised deep in the engine name the flag the user typed, not a Python keyword."""
    declared = {**{o.name: o for o in ENGINE_OPTIONS}, **_family_options()}
    if name not in declared:  # a Python-only option (a callable): only -O could name it
        return f"-O {name}={value}" if value is not None else name
    flag = "--" + name.replace("_", "-")
    if declared[name].type == "bool":
        return flag if value in (None, "True", "true") else f"-O {name}={value}"
    return flag if value is None else f"{flag} {value}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="superres", description="Super-resolution for images and videos.")
    parser.add_argument("--debug", action="store_true", help="debug log on stderr, with the traceback of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("upscale", help="upscale an image or a video", formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="model options by family (flags above, or -O NAME=VALUE):\n" + options_help(indent="  "))
    up.add_argument("input")
    up.add_argument("output")
    _add_engine_args(up)

    demo = sub.add_parser("demo", help="upscale the embedded sample photo (the README's main job)")
    demo.add_argument("output", nargs="?", default="superres-demo.png")
    _add_engine_args(demo)

    models = sub.add_parser("models", help="list, download or verify model weights")
    msub = models.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="registered models, their weights and where they were found")
    dl = msub.add_parser("download", help="fetch weight files (sha256-checked) into the user cache")
    dl.add_argument("names", nargs="+")
    dl.add_argument("--dest", help="folder to download into (default: the user cache)")
    ver = msub.add_parser("verify", help="check the sha256 of installed weight files")
    ver.add_argument("names", nargs="*")
    return parser


def model_options(args) -> dict:
    """Model options given on the command line (only those given), typed by their declaration."""
    declared = _family_options()
    options = _given(args, declared.values())
    for item in args.model_option:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InvalidOption(f"-O takes KEY=VALUE, got {item!r}", option="-O")
        # Unknown names go through as text; the model refuses them with its list of options.
        options[key] = declared[key].parse(value) if key in declared else value.strip()
    return options


def _engine(args, progress):
    from .runtime.upscaler import Upscaler

    return Upscaler(args.model, progress=progress, **_given(args, ENGINE_OPTIONS), **model_options(args))


def _upscale_image(src: Path, dst: Path, args) -> None:
    import torch

    from .media import read_image, write_image
    from .progress_bar import ProgressBar

    rgb, info = read_image(src)
    if info.has_alpha:
        log.warning("%s has an alpha channel; it is dropped (the models are RGB only)", src)
    bar = ProgressBar(f"{src.name}", force=False) if not args.quiet else None
    up = _engine(args, bar)
    out = up.upscale(torch.from_numpy(rgb).permute(2, 0, 1))[0]
    bit_depth = args.bit_depth or (16 if info.bit_depth > 8 else 8)
    if dst.suffix.lower() in (".jpg", ".jpeg") and bit_depth != 8:
        bit_depth = 8
    write_image(dst, out.permute(1, 2, 0).numpy(), bit_depth=bit_depth)
    if bar:
        bar.close()
    print(f"{src} ({rgb.shape[1]}x{rgb.shape[0]}) -> {dst} ({out.shape[2]}x{out.shape[1]}, {bit_depth}-bit) with {up.descriptor.name}", file=sys.stderr)


def _upscale_video(src: Path, dst: Path, args) -> None:
    import torch

    from .media import transcode
    from .progress_bar import ProgressBar

    bar = ProgressBar(src.name) if not args.quiet else None
    up = _engine(args, None)

    def process(frames):
        # The container's frame count: clip-level statistics (UltraVSR's d) pick their frames by it.
        for out in up.stream((torch.from_numpy(f) for f in frames), total=getattr(frames, "total", None)):
            yield out.numpy()

    path = transcode(src, dst, process, on_progress=bar)
    if bar:
        bar.close()
    print(f"{src} -> {path} with {up.descriptor.name}", file=sys.stderr)


def cmd_upscale(args) -> int:
    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise SuperResError(f"input {str(src)!r} does not exist or is not a file")
    if src.resolve() == dst.resolve():
        raise SuperResError("the output path is the input path; choose another output name")
    if not dst.parent.exists():
        raise SuperResError(f"output folder {str(dst.parent)!r} does not exist")
    if src.suffix.lower() in IMAGE_EXTENSIONS:
        if dst.suffix.lower() not in IMAGE_EXTENSIONS:
            raise SuperResError(f"input is an image, so the output must be .png, .jpg or .tif, got {dst.name!r}")
        _upscale_image(src, dst, args)
    else:
        if dst.suffix.lower() in IMAGE_EXTENSIONS:
            raise SuperResError(f"input is a video, so the output must be a video file (.mp4, .mkv, .mov), got {dst.name!r}")
        _upscale_video(src, dst, args)
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
    failed = 0
    for d in descs:
        for wf in d.weights:
            try:
                path = weights_mod.resolve(wf, model_name=d.name)
                print(f"OK       {d.name}: {path}")
            except SuperResError as e:
                if not wf.required:
                    print(f"OPTIONAL {d.name}: {wf.relpath} not installed")
                    continue
                failed += 1
                print(f"PROBLEM  {d.name}: {str(e).splitlines()[0]}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="superres: %(message)s", stream=sys.stderr)
    try:
        if args.command == "upscale":
            return cmd_upscale(args)
        if args.command == "demo":
            return cmd_demo(args)
        return cmd_models(args)
    except SuperResError as e:
        print(f"superres: error: {e.render(cli_spelling)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print("\nsuperres: interrupted; no output file was written", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not the user's mistake: say so, keep the traceback for the report
        log.debug("internal error", exc_info=True)
        how = "" if args.debug else " (run with --debug for the traceback)"
        print(f"superres: internal error: {type(e).__name__}: {e}; this is a bug in vs-superres, "
              f"please report it{how}; no output file was written", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
