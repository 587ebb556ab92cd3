"""A split-screen or wipe video of two clips, for playback in any player, audio kept.

The left clip fills the picture left of a white line, the right clip the rest; ``split`` keeps
the line in the middle, ``wipe`` sweeps it across and back every ``period`` seconds. A clip
smaller than the other is upscaled with the named resampler, and each side is labelled. It
runs through the one run path (:func:`vs_superres.media.pump.pump`): the clip that has audio
(the left one when both or neither do) is the pump's source, read with its audio, subtitles,
timestamps and colour tags carried to the writer; the other clip is read in step beside it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vs_superres.compare.inputs import Clip, check_together, length_error, open_clip
from vs_superres.compare.scaling import check_resampler, resample_title_or_none, resize
from vs_superres.contracts.errors import InvalidOption, UnsupportedFormat
from vs_superres.contracts.progress import ProgressFn
from vs_superres.media.pump import Inputs, ReaderSource, SinkRequest, pump
from vs_superres.media.video import VideoReader
from vs_superres.media.writer import VideoWriter

MODES = ("split", "wipe")
DEFAULT_PERIOD_S = 4.0


class _Label:
    """White text on a dark box, rendered once, laid onto float frames."""

    def __init__(self, text: str, height: int):
        size = max(12, height // 36)
        try:
            font: Any = ImageFont.load_default(size=size)
        except TypeError:  # Pillow without FreeType sizes: its bitmap font
            font = ImageFont.load_default()
        box = [int(math.ceil(v)) for v in ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)]
        pad = max(2, size // 4)
        mask = Image.new("L", (box[2] - box[0] + 2 * pad, box[3] - box[1] + 2 * pad), 0)
        ImageDraw.Draw(mask).text((pad - box[0], pad - box[1]), text, fill=255, font=font)
        self.alpha = (np.asarray(mask, dtype=np.float32) / 255.0)[..., None]

    def draw(self, frame: np.ndarray, x: int, y: int) -> None:
        h, w = self.alpha.shape[:2]
        h, w = min(h, frame.shape[0] - y), min(w, frame.shape[1] - x)
        if h <= 0 or w <= 0:
            return
        area = frame[y:y + h, x:x + w]
        area *= 0.4  # the dark box keeps the text readable on any picture
        area += (1.0 - area) * self.alpha[:h, :w]


def line_position(index: int, fps: float, width: int, mode: str, period: float) -> int:
    """Where the line is at frame ``index``: the middle (``split``), or a sweep between 5% and
    95% of the width and back every ``period`` seconds (``wipe``)."""
    if mode == "split":
        return width // 2
    phase = (index / fps) / period if fps else 0.0
    return int(round(width * (0.05 + 0.9 * (0.5 - 0.5 * math.cos(2 * math.pi * phase)))))


def write_split_video(left: str | os.PathLike, right: str | os.PathLike, output: str | os.PathLike, *,
                      mode: str = "split", period: float = DEFAULT_PERIOD_S, resampler: str = "lanczos",
                      on_progress: ProgressFn | None = None, **writer_options) -> Path:
    """Write ``output``: ``left`` and ``right`` (two videos of the same frames, sizes a scale
    apart) side by side at the larger size (module docstring). ``writer_options`` go to
    :class:`~vs_superres.media.writer.VideoWriter` (``codec``, ``crf``, ...). Returns the
    path; the file appears only when complete."""
    if mode not in MODES:
        raise InvalidOption(f"video mode must be one of {', '.join(MODES)}, got {mode!r}", option="video_mode")
    if not period > 0:
        raise InvalidOption(f"the wipe period must be more than 0 seconds, got {period}", option="wipe_period")
    check_resampler(resampler)
    clips = [open_clip(left, "A"), open_clip(right, "B")]
    if any(c.kind != "video" for c in clips):
        raise UnsupportedFormat(f"a split-screen video needs two videos; {', '.join(c.name for c in clips if c.kind != 'video')} "
                                "is an image; the HTML report (-o) compares images")
    check_together(clips)
    width, height = max((c.width, c.height) for c in clips)
    leader = 1 if clips[1].has_audio and not clips[0].has_audio else 0
    labels = [_Label(_caption(c, width, resampler), height) for c in clips]
    fps = float(clips[0].fps or 0)

    def compose(index: int, frames: list[np.ndarray]) -> np.ndarray:
        a, b = (resize(f, width, height, resampler) for f in frames)
        x = line_position(index, fps, width, mode, period)
        out = a.copy()
        out[:, x:] = b[:, x:]
        out[:, max(0, x - 1):x + 1] = 1.0
        margin = max(4, height // 60)
        labels[0].draw(out, margin, margin)
        labels[1].draw(out, max(margin, width - margin - labels[1].alpha.shape[1]), margin)
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    def process(inputs: Inputs) -> Iterator[np.ndarray]:
        with VideoReader(clips[1 - leader].path) as other_reader:
            other = iter(other_reader)
            index = 0
            for frame in inputs:
                beside = next(other, None)
                if beside is None:
                    raise length_error([clips[1 - leader], clips[leader]], [True, False], index)
                pair = [frame.rgb, beside.rgb] if leader == 0 else [beside.rgb, frame.rgb]
                yield compose(index, [p.transpose(1, 2, 0) for p in pair])
                index += 1
            if next(other, None) is not None:
                raise length_error([clips[leader], clips[1 - leader]], [True, False], index)

    def open_sink(request: SinkRequest) -> VideoWriter:
        return VideoWriter(output, request.info, request.width, request.height, packets=request.packets, **writer_options)

    with VideoReader(clips[leader].path, passthrough=True) as reader:
        result = pump(ReaderSource(reader), process, open_sink, output_size=(width, height), on_progress=on_progress,
                      phase="split-screen frames")
    assert result.path is not None
    return result.path


def _caption(clip: Clip, width: int, resampler: str) -> str:
    scale = width / clip.width
    how = resample_title_or_none(resampler, scale)
    return f"{clip.label}: {clip.name}" + (f" ({how})" if how else "")
