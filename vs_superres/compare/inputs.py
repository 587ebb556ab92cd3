"""The compared files: opened, checked against each other, and read in step, one frame at a time.

Every input is an image or a video (told by its extension, as every host tells them: see
:data:`~vs_superres.media.images.IMAGE_READ_EXTENSIONS`); all of one kind. They must show the
same frames: the same frame rate and length (videos), and sizes that are one picture at
different scales (each input's width and height the largest input's times one factor). What
does not fit is refused before the clips are read (each video is probed: its header and first
frame), in one line that names both files and the fix; a length the containers did not announce
exactly is checked as the frames are read.
Memory: :func:`frames_in_step` holds one decoded frame per input at a time.
"""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from vs_superres.contracts.errors import SuperResError, UnsupportedFormat
from vs_superres.media.images import IMAGE_READ_EXTENSIONS, probe_image, read_image
from vs_superres.media.video import VideoReader


@dataclasses.dataclass(frozen=True)
class Clip:
    """One compared file: ``label`` (A, B, ... in the order given; ``ref`` for the reference),
    ``path``, ``kind`` (``image``/``video``), ``width``/``height``, ``fps`` (None for an image),
    ``frame_count`` (1 for an image; estimated unless ``frame_count_exact``), ``has_audio``."""

    label: str
    path: Path
    kind: str
    width: int
    height: int
    fps: Fraction | None
    frame_count: int
    frame_count_exact: bool
    has_audio: bool

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def title(self) -> str:
        return f"{self.label}: {self.name}"

    def summary(self) -> dict:
        return {"label": self.label, "path": str(self.path), "kind": self.kind, "width": self.width,
                "height": self.height, "fps": None if self.fps is None else float(self.fps),
                "frames": self.frame_count, "has_audio": self.has_audio}


def is_image(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_READ_EXTENSIONS


def open_clip(path: str | os.PathLike, label: str) -> Clip:
    """Probe one file (an image's header; a video's stream and first frame)."""
    p = Path(path)
    if is_image(p):
        image = probe_image(p)
        return Clip(label, p, "image", image.width, image.height, None, 1, True, False)
    with VideoReader(p, passthrough=True) as reader:
        info = reader.info
        return Clip(label, p, "video", info.width, info.height, Fraction(info.fps), info.frame_count,
                    info.frame_count_exact, any(s.kind == "audio" for s in info.passthrough or ()))


def _factor(clip: Clip, largest: Clip) -> str:
    return f"x{largest.width / clip.width:.4g} wide, x{largest.height / clip.height:.4g} high"


def check_together(clips: Sequence[Clip]) -> None:
    """Refuse inputs that cannot be the same frames (module docstring)."""
    kinds = {c.kind for c in clips}
    if len(kinds) > 1:
        images = ", ".join(c.name for c in clips if c.kind == "image")
        videos = ", ".join(c.name for c in clips if c.kind == "video")
        raise UnsupportedFormat(f"compare takes images or videos, not both: {images} (images) and {videos} (videos); "
                                "compare a video with videos, or a frame of it saved as an image with images")
    largest = max(clips, key=lambda c: c.width * c.height)
    for clip in clips:
        if clip.width * largest.height != clip.height * largest.width:
            raise UnsupportedFormat(
                f"{clip.title} is {clip.width}x{clip.height} and {largest.title} is {largest.width}x{largest.height}: "
                f"not one picture at two scales ({_factor(clip, largest)}); compare outputs made from the same input, "
                "or crop or pad them to the same aspect ratio first")
    first = clips[0]
    for clip in clips[1:]:
        if clip.fps != first.fps:
            raise UnsupportedFormat(
                f"{first.title} runs at {float(first.fps or 0):.6g} fps and {clip.title} at {float(clip.fps or 0):.6g} fps: "
                "frames would not line up; compare outputs made from this input (superres upscale keeps the rate), "
                f"or convert one first, e.g. `ffmpeg -i {clip.name} -r {first.fps} OUT`")
        if clip.frame_count_exact and first.frame_count_exact and clip.frame_count != first.frame_count:
            raise UnsupportedFormat(
                f"{first.title} has {first.frame_count} frames and {clip.title} has {clip.frame_count}: the clips must "
                "hold the same frames; compare outputs of the whole input, or cut them to the same range first")


def length_error(clips: Sequence[Clip], ended: Sequence[bool], index: int) -> SuperResError:
    short = ", ".join(c.title for c, e in zip(clips, ended) if e)
    longer = ", ".join(c.title for c, e in zip(clips, ended) if not e)
    return UnsupportedFormat(f"{short} ended after {index} frames but {longer} goes on: the clips must hold the same "
                             "frames; compare outputs of the whole input, or cut them to the same range first")


def frames_in_step(clips: Sequence[Clip]) -> Iterator[tuple[int, list[np.ndarray]]]:
    """``(index, [frame of each clip])``, frames float32 ``[H, W, 3]`` in [0, 1]; one frame
    per clip in memory at a time; raises when the clips end at different frames."""
    if clips[0].kind == "image":
        yield 0, [read_image(c.path)[0] for c in clips]
        return
    readers = [VideoReader(c.path) for c in clips]
    try:
        streams = [iter(r) for r in readers]
        index = 0
        while True:
            decoded = [next(s, None) for s in streams]
            ended = [d is None for d in decoded]
            if all(ended):
                return
            if any(ended):
                raise length_error(clips, ended, index)
            yield index, [np.ascontiguousarray(d.rgb.transpose(1, 2, 0)) for d in decoded if d is not None]
            index += 1
    finally:
        for r in readers:
            r.close()
