"""Image sequences named in ffmpeg's pattern syntax (``frame_%05d.png``) as one video-like clip.

Film scans and VFX plates arrive as numbered still images. :func:`find_sequence` lists the
files a pattern names, in frame-number order; :class:`SequenceSource` is the run path's
:class:`~.pump.FrameSource` over them (each image read with :func:`~.images.read_image`:
orientation, 16-bit samples and ICC profiles as for a single image), so a video model sees them
as one clip and an image model as one image after another; :class:`SequenceSink` writes the
upscaled frames as a sequence of the same numbers (``out/frame_%05d.png``). A video output takes
them through a :class:`~.writer.VideoWriter` instead, at ``fps`` (ffmpeg's image2 default, 25,
unless given).

The pattern syntax is ffmpeg's: one ``%d`` or ``%0Nd`` field (``%%`` is a literal ``%``), and
a file belongs to the sequence when printing its number into the pattern gives its name
(``frame_%05d.png`` takes ``frame_00007.png`` and ``frame_123456.png``, not ``frame_7.png``;
ffmpeg pads ``%5d`` with zeros too).
Unlike ffmpeg, which stops at the first missing number, every matching file is taken; a gap is
said in a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from vs_superres.contracts.errors import SuperResError, UnsupportedFormat
from vs_superres.media.colour import ColourInfo, RANGE_FULL
from vs_superres.media.convert import pixel_layout
from vs_superres.media.images import read_image, write_image
from vs_superres.media.pump import FrameSource
from vs_superres.media.streaminfo import StreamInfo

log = logging.getLogger(__name__)

_FIELD = re.compile(r"%(0?)(\d*)d")
#: the codec a still-image format is, for the writer's choice (a PNG/TIFF sequence is lossless)
_CODEC_OF_FORMAT = {"png": "png", "tiff": "tiff", "jpeg": "mjpeg", "bmp": "bmp", "webp": "webp"}
#: BT.709 primaries and the sRGB transfer (FFmpeg's numbers): what still images are shown as
_SRGB = ColourInfo(matrix=0, range=RANGE_FULL, primaries=1, transfer=13)


def _fields(name: str) -> list[re.Match]:
    return list(_FIELD.finditer(name.replace("%%", "\0\0")))


def is_pattern(path: str | Path) -> bool:
    """Whether the file name of ``path`` holds exactly one ffmpeg number field (``%05d``)."""
    return len(_fields(Path(path).name)) == 1


def frame_name(pattern: str | Path, number: int) -> str:
    """The file name of frame ``number`` of ``pattern`` (the name part of a path)."""
    name = Path(pattern).name
    field = _fields(name)[0]
    text = f"{number:0{int(field.group(2) or 0)}d}"  # ffmpeg pads %5d with zeros too
    return (name[:field.start()] + text + name[field.end():]).replace("%%", "%")


@dataclasses.dataclass(frozen=True)
class ImageSequence:
    """The files of ``pattern``: ``frames`` are ``(number, path)`` in number order."""

    pattern: Path
    frames: tuple[tuple[int, Path], ...]

    @property
    def name(self) -> str:
        return f"'{self.pattern}'"


def find_sequence(pattern: str | Path) -> ImageSequence:
    """The files the pattern names (see the module docstring); raises when there are none."""
    pattern = Path(pattern)
    name = pattern.name
    if not is_pattern(name):
        raise SuperResError(f"'{pattern}' is not an image sequence pattern: it needs one number field "
                            "such as %05d in the file name (frame_%05d.png)")
    if not pattern.parent.is_dir():
        raise SuperResError(f"cannot read the sequence '{pattern}': the folder '{pattern.parent}' does not exist")
    field = _fields(name)[0]
    head, tail = (part.replace("\0\0", "%") for part in (name.replace("%%", "\0\0")[:field.start()],
                                                         name.replace("%%", "\0\0")[field.end():]))
    matcher = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + r"\Z")
    frames = []
    for entry in pattern.parent.iterdir():
        match = matcher.match(entry.name)
        if match and entry.is_file() and frame_name(name, int(match.group(1))) == entry.name:
            frames.append((int(match.group(1)), entry))
    if not frames:
        raise SuperResError(f"no file matches the sequence '{pattern}' (e.g. '{frame_name(name, 1)}'); check the "
                            "pattern: %05d stands for 5-digit numbers with leading zeros, %d for numbers without")
    frames.sort()
    gaps = [n for (n, _), (m, _) in zip(frames, frames[1:]) if m != n + 1]
    if gaps:
        log.warning("the sequence '%s' has gaps (after frame %s); its %d frames are taken in number order",
                    pattern, ", ".join(map(str, gaps[:5])) + (", ..." if len(gaps) > 5 else ""), len(frames))
    return ImageSequence(pattern, tuple(frames))


@dataclasses.dataclass(frozen=True)
class SequenceFrame:
    """One image of a sequence as the pump reads it: ``rgb`` float32 ``[3, H, W]``, ``pts``
    (its position in the clip), ``number`` (its frame number in the file name)."""

    rgb: np.ndarray
    pts: int
    number: int


class SequenceSource(FrameSource):
    """An :class:`ImageSequence` as the run path's source (module docstring). The first image's
    header gives ``info`` (size, bit depth, its ICC profile as :attr:`icc_profile`); every image
    must have the first one's size."""

    reads_pipe = False

    def __init__(self, sequence: ImageSequence, fps: Fraction = Fraction(25)):
        from vs_superres.media.image_probe import probe_image

        self.sequence, self.name = sequence, sequence.name
        first = sequence.frames[0][1]
        probe = probe_image(first)
        self.bit_depth = 16 if probe.bit_depth > 8 else 8
        self.icc_profile = probe.icc_profile
        pix_fmt = "rgb48le" if self.bit_depth > 8 else "rgb24"
        self.info = StreamInfo(
            width=probe.width, height=probe.height, fps=Fraction(fps), time_base=1 / Fraction(fps),
            pix_fmt=pix_fmt, layout=pixel_layout(pix_fmt), colour=_SRGB,
            codec_name=_CODEC_OF_FORMAT.get(probe.format, probe.format), frame_count=len(sequence.frames),
            frame_count_exact=True, duration=len(sequence.frames) / float(fps))
        self.alpha_dropped = False

    def frames(self) -> Iterator[Any]:
        width, height = self.info.width, self.info.height
        for pts, (number, path) in enumerate(self.sequence.frames):
            rgb, info = read_image(path)
            if (info.width, info.height) != (width, height):
                raise UnsupportedFormat(
                    f"'{path}' is {info.width}x{info.height} but the sequence's first image is {width}x{height}; "
                    "every image of a sequence must have one size (upscale images of other sizes as a folder)")
            if info.has_alpha and not self.alpha_dropped:
                self.alpha_dropped = True
                log.warning("%s has an alpha channel; it is dropped (the models are RGB only)", path)
            yield SequenceFrame(np.ascontiguousarray(rgb.transpose(2, 0, 1)), pts, number)


class SequenceSink:
    """The run path's sink writing each output frame as an image named by ``pattern`` with the
    source frame's number (``numbers[pts]``), at ``bit_depth`` with ``icc_profile``. Each image
    is written atomically; :meth:`abort` removes the images this sink wrote, so a failed run
    leaves no partial sequence that passes for a complete one."""

    def __init__(self, pattern: Path, numbers: list[int], bit_depth: int, icc_profile: bytes | None = None):
        self.pattern, self.numbers = Path(pattern), numbers
        self.bit_depth, self.icc_profile = bit_depth, icc_profile
        self.written: list[Path] = []

    def path_of(self, number: int) -> Path:
        return self.pattern.parent / frame_name(self.pattern.name, number)

    def write(self, item: Any, pts: int | None) -> None:
        number = self.numbers[int(pts or 0)]
        path = self.path_of(number)
        write_image(path, item, bit_depth=self.bit_depth, icc_profile=self.icc_profile)
        self.written.append(path)

    def close(self) -> Path | None:
        return self.pattern.parent

    def abort(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written.clear()
