"""``superres upscale "scan/frame_%05d.png" OUT``: an image sequence as one clip.

The input pattern is ffmpeg's (:mod:`vs_superres.media.sequences`). The output is a video file
when ``OUT`` has a video suffix (``out.mkv``: a PNG or TIFF sequence stays lossless by
default, see :mod:`vs_superres.media.encoders`), else a sequence of images with the input's
pattern in the folder ``OUT`` (created when missing), or with ``OUT``'s own pattern
(``up/f_%04d.tif``). Either way the frames run through the one run path
(:mod:`vs_superres.media.pump`) and the command's one engine: a video model sees the sequence
as one clip (windows across frames), an image model one image after another. Images are
written at the input's bit depth (16 when it has more than 8, or ``--bit-depth``) with the
first image's ICC profile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vs_superres.cli.batch import output_folder
from vs_superres.cli.engine import SharedEngine
from vs_superres.contracts.errors import SuperResError
from vs_superres.hostkit.engine_frames import upscaled
from vs_superres.hostkit.progress import ProgressBar


def sequence_target(sequence, output_text: str) -> tuple[str, Path]:
    """``("video", path)`` or ``("images", output pattern)`` for the output ``output_text``."""
    from vs_superres.media.images import IMAGE_READ_EXTENSIONS, IMAGE_WRITE_EXTENSIONS
    from vs_superres.media.sequences import is_pattern

    out = Path(output_text)
    if is_pattern(out.name):
        if out.suffix.lower() not in IMAGE_WRITE_EXTENSIONS:
            raise SuperResError(f"cannot write the sequence '{out}': its images must be "
                                f"{', '.join(sorted(IMAGE_WRITE_EXTENSIONS))}")
        output_folder(str(out.parent) + "/", None, f"the sequence {sequence.name}")
        pattern = out
    elif out.suffix.lower() in IMAGE_READ_EXTENSIONS | IMAGE_WRITE_EXTENSIONS:
        raise SuperResError(f"the input is the image sequence {sequence.name}; write it to a folder, a pattern "
                            f"such as 'up/frame_%05d.png', or a video file (.mkv, .mp4, ...), not the image '{out.name}'")
    elif out.is_dir() or not out.suffix or output_text.endswith("/"):
        folder = output_folder(output_text, None, f"the sequence {sequence.name}")
        pattern = folder / sequence.pattern.name
        if pattern.suffix.lower() not in IMAGE_WRITE_EXTENSIONS:
            pattern = pattern.with_suffix(".png")
    else:
        return "video", out
    if pattern.parent.resolve() == sequence.pattern.parent.resolve() and pattern.name == sequence.pattern.name:
        raise SuperResError(f"the output sequence '{pattern}' is the input sequence; choose another folder or name")
    return "images", pattern


def _check_images(pattern: Path, numbers: list[int], overwrite: bool | None) -> None:
    from vs_superres.media.sequences import frame_name

    existing = [n for n in numbers if (pattern.parent / frame_name(pattern.name, n)).exists()]
    if not existing:
        return
    first = pattern.parent / frame_name(pattern.name, existing[0])
    if overwrite is False:
        raise SuperResError(f"{len(existing)} images of the output sequence exist (e.g. '{first}') and -n/--no-overwrite "
                            "was given; remove them, choose another folder, or pass -y/--overwrite to replace them")
    if overwrite is None:
        print(f"superres: replacing {len(existing)} existing images of '{pattern}' (-n refuses, -y replaces without "
              "this notice)", file=sys.stderr)


def upscale_sequence(sequence, kind: str, dst: Path, args: argparse.Namespace, engines: SharedEngine,
                     writer_options: dict) -> None:
    """Upscale the :class:`~vs_superres.media.sequences.ImageSequence` into ``dst`` (a video
    file for ``kind`` ``"video"``, else an output pattern); the output checks are done."""
    from vs_superres.media.pump import Pump, SinkRequest
    from vs_superres.media.sequences import SequenceSink, SequenceSource
    from vs_superres.media.writer import VideoWriter

    source = SequenceSource(sequence)
    numbers = [n for n, _ in sequence.frames]
    if kind == "images":
        _check_images(dst, numbers, getattr(args, "overwrite", None))
    bit_depth = args.bit_depth or source.bit_depth
    if kind == "images" and dst.suffix.lower() in (".jpg", ".jpeg"):
        bit_depth = 8

    def open_sink(request: SinkRequest):
        if kind == "video":
            return VideoWriter(dst, request.info, request.width, request.height, packets=request.packets,
                               **writer_options)
        return SequenceSink(dst, numbers, bit_depth, source.icc_profile)

    def process(inputs):
        yield from upscaled(engines.get(None, run.cancelled), inputs)

    def output_size(info) -> tuple[int, int]:
        scale = engines.model().descriptor.scale
        return info.width * scale, info.height * scale

    bar = ProgressBar(sequence.pattern.name) if not args.quiet else None
    try:
        run = Pump(source, process, open_sink, output_size=output_size, on_progress=bar, phase="transcode",
                   model=lambda: engines.model().descriptor)
        result = run.run()
    finally:
        if bar:
            bar.close()
    what = f"{result.frames} images as '{dst}'" if kind == "images" else f"'{dst}'"
    print(f"{sequence.pattern} ({len(numbers)} images) -> {what} with {engines.name}", file=sys.stderr)
