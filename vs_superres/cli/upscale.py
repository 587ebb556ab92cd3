"""``superres upscale IN OUT``: one image or video, checked before any work, then upscaled.

Images and videos are told apart by the input extension: the image reader's list
(``vs_superres.media.images.IMAGE_READ_EXTENSIONS``) are images, anything else is a video
(anything PyAV reads). Before the model is loaded, the input is checked to be a readable
file, the output's extension to suit the input, the output folder to be writable (a temporary
file is created there and removed) and the overwrite rule (replaced with a notice by default,
``-y`` silently, ``-n`` refuses). Output goes to a temporary name and is renamed only on
success, so Ctrl-C, a termination signal, a full disk or an error never leaves a truncated
file under the final name; partial files of runs killed outright (SIGKILL) are deleted by the
next run that writes the same output.

A video runs through the one run path (:mod:`vs_superres.media.pump`); ``--ray``/``--workers``
through the Ray driver (:mod:`.ray`), which writes through the same pump.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from vs_superres.cli.batch import batch_inputs, run_batch
from vs_superres.cli.encoding import check as check_encoder, encoder_settings
from vs_superres.cli.engine import SharedEngine
from vs_superres.cli.ray import run as run_distributed, wanted as distributed_wanted
from vs_superres.cli.scenes import scene_cuts
from vs_superres.contracts.errors import InvalidOption, SuperResError
from vs_superres.hostkit.engine_frames import upscaled
from vs_superres.hostkit.flags import engine_options, model_options
from vs_superres.hostkit.progress import ProgressBar, end_open_lines
from vs_superres.media.atomic import disk_full_error
from vs_superres.runtime import registry

log = logging.getLogger("vs_superres")


def _upscale_image(src: Path, dst: Path, args, engines: SharedEngine) -> None:
    """The output's bit depth, the header, the pixel limit, the decoding and the memory the job
    needs are checked before the model loads (and before torch is imported, for a registered
    model), so a broken, oversized or impossible request fails in milliseconds. Each frame is
    then made once: no stacked copy of the output, and the writer converts it to integer codes
    a band of rows at a time."""
    from vs_superres.contracts.errors import WeightsError
    from vs_superres.media import read_image, write_image
    from vs_superres.media.budget import check_image_memory, model_share_bytes
    from vs_superres.media.image_probe import check_pixel_limit, probe_image

    def check_memory(desc) -> None:
        # The model's share at a small tile: --tile can shrink it that far, never the frames.
        check_image_memory(probe.width, probe.height, desc.scale, model=desc.name, source=src,
                           model_bytes=model_share_bytes(desc.bytes_per_pixel))

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
        try:
            check_memory(engines.model().descriptor)  # read once: the engine is built from it
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
    up = engines.get(bar)
    height, width = rgb.shape[:2]
    # stream, not upscale: upscale stacks its results into a second copy of the output
    (out,) = up.stream([torch.from_numpy(rgb).permute(2, 0, 1)], total=1)
    write_image(dst, out, bit_depth=bit_depth, icc_profile=info.icc_profile)
    if bar:
        bar.close()
    print(f"{src} ({width}x{height}) -> {dst} ({out.shape[2]}x{out.shape[1]}, {bit_depth}-bit) with {up.descriptor.name}", file=sys.stderr)


def _upscale_video(src: Path, dst: Path, args, engines: SharedEngine, writer_options: dict) -> None:
    """The input is probed and the output header written before the model is built (inside
    ``process``): a broken input or an output the container refuses fails in milliseconds. The
    model is resolved once (a checkpoint file is read once). Outputs in a container that joins
    by stream copy go through a journal of segments (:mod:`vs_superres.jobs`), so a rerun after
    any interruption resumes; the others run in one pass, with a notice."""
    import torch

    from vs_superres.jobs import JOURNALED_SUFFIXES, device_kind, journaled_output, upscale_journaled, weight_hashes
    model = engines.model  # resolved once, after the input was probed

    def make_engine(cancel):
        return engines.get(None, cancel)

    bar = ProgressBar(src.name) if not args.quiet else None
    try:
        if journaled_output(dst):
            path = upscale_journaled(
                src, dst, model=model, make_engine=make_engine, options={**engine_options(args), **model_options(args)},
                weights=weight_hashes(str(args.model)), device_kind=device_kind(engine_options(args).get("device", "auto")),
                threads=torch.get_num_threads(), resume=args.resume,
                segment_seconds=args.segment_seconds, progress=bar, say=_say, writer_options=writer_options,
                scene_starts=scene_cuts(args))
        else:
            _say(f"'{dst.name}' is written in one pass: an interrupted run starts over (a resumable job writes "
                 + ", ".join(JOURNALED_SUFFIXES) + ")")
            path = _one_pass(src, dst, model, make_engine, bar, writer_options, scene_cuts(args))
    finally:
        if bar:
            bar.close()
    print(f"{src} -> {path} with {model().descriptor.name}", file=sys.stderr)


def _one_pass(src: Path, dst: Path, model, make_engine, bar, writer_options: dict, scene_starts=None) -> Path | None:
    from vs_superres.media import VideoReader, VideoWriter
    from vs_superres.media.pump import Pump, ReaderSource, SinkRequest

    def open_sink(request: SinkRequest) -> VideoWriter:
        return VideoWriter(dst, request.info, request.width, request.height, packets=request.packets,
                           **writer_options)

    def process(inputs):
        yield from upscaled(make_engine(run.cancelled), inputs, scene_starts)

    def output_size(info) -> tuple[int, int]:
        scale = model().descriptor.scale
        return info.width * scale, info.height * scale

    with VideoReader(src, passthrough=True) as reader:
        run = Pump(ReaderSource(reader), process, open_sink, output_size=output_size, on_progress=bar,
                   phase="transcode", model=lambda: model().descriptor)
        return run.run().path


def _say(line: str) -> None:
    end_open_lines()
    print(f"superres: {line}", file=sys.stderr)


def _extensions(names) -> str:
    return ", ".join(sorted(names))


def _video_output_extensions() -> set[str]:
    """Extensions FFmpeg has a muxer for (it picks the muxer from the output name)."""
    import av

    from vs_superres.media.files import FORMAT_OF_SUFFIX

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
    from vs_superres.media.images import IMAGE_READ_EXTENSIONS, IMAGE_WRITE_EXTENSIONS

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


def _check_output(dst: Path, overwrite: bool | None) -> None:
    """The output can be written and may be replaced; raises before any work otherwise."""
    from vs_superres.media.atomic import check_writable

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
    """Every check that needs no model runs first (milliseconds), then the model loads, once
    for all the inputs of a folder, a glob or a sequence (:mod:`.batch`, :mod:`.sequence`)."""
    from vs_superres.media.sequences import find_sequence, is_pattern

    settings = encoder_settings(args)
    engines = SharedEngine(args)
    batch = batch_inputs(args.input, args.output)
    if batch is not None:
        if distributed_wanted(args):
            raise SuperResError("--ray/--workers take one video; upscale a folder or a glob without them")

        def upscale_one(src: Path, dst: Path) -> None:
            _upscale_file(src, dst, args, settings, engines, batch=True)

        return run_batch(batch, args, upscale_one, lambda: engines.name, lambda: engines.loads)
    if not Path(args.input).exists() and is_pattern(args.input):
        from vs_superres.cli.sequence import sequence_target, upscale_sequence

        if distributed_wanted(args):
            raise SuperResError("--ray/--workers take one video file; upscale an image sequence without them")
        sequence = find_sequence(args.input)
        kind, dst = sequence_target(sequence, args.output)
        if kind == "video":
            _check_video_output(dst, settings)
            _check_output(dst, getattr(args, "overwrite", None))
        upscale_sequence(sequence, kind, dst, args, engines, settings.writer_options())
        return 0
    return _upscale_file(Path(args.input), Path(args.output), args, settings, engines)


def _upscale_file(src: Path, dst: Path, args, settings, engines: SharedEngine, batch: bool = False) -> int:
    _check_input(src)
    if src.resolve() == dst.resolve():
        raise SuperResError("the output path is the input path; choose another output name")
    kind = _check_kinds(src, dst)
    if kind == "video":
        check_encoder(settings, dst.suffix.lower())
    elif settings.given and not batch:
        raise SuperResError(f"the encoder flags (-c:v, -crf, ...) apply to video outputs; {dst.name!r} is an image "
                            "(--bit-depth chooses its bit depth)")
    _check_output(dst, getattr(args, "overwrite", None))
    try:
        status = run_distributed(args, src, dst, settings.writer_options())  # None unless --ray/--workers was given
        if status is not None:
            return status
        if kind == "image":
            _upscale_image(src, dst, args, engines)
        else:
            _upscale_video(src, dst, args, engines, settings.writer_options())
    except Exception as exc:
        # Encoders report a full disk deep inside FFmpeg; say it in the user's terms.
        full = disk_full_error(exc, dst)
        if full is not None and full is not exc:
            raise full from None
        raise
    return 0


def _check_video_output(dst: Path, settings) -> None:
    """A video output named ``dst`` can be written with ``settings`` (checked from its name)."""
    from vs_superres.media.images import IMAGE_READ_EXTENSIONS, IMAGE_WRITE_EXTENSIONS

    if dst.suffix.lower() in IMAGE_READ_EXTENSIONS | IMAGE_WRITE_EXTENSIONS:
        raise SuperResError(f"{dst.name!r} is an image name; a video needs a video file (.mkv, .mp4, .mov, .webm, ...)")
    if dst.suffix.lower() not in _video_output_extensions():
        _check_kinds(Path("input.mkv"), dst)  # its message names the suffix and the way out
    check_encoder(settings, dst.suffix.lower())
