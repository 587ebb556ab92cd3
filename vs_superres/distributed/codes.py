"""Output frames as the writer's own integer codes, so they travel small and exact.

A worker turns each float R'G'B' output frame into the planes of the output pixel format with
:func:`~vs_superres.media.convert.rgb_to_frame` (the very conversion the writer applies to the
single-process CLI's frames), and sends those 8- or 16-bit samples; the driver puts them back
into a frame and encodes it. A 4x 1080p output is 12 MB as yuv420p codes and 100 MB as float32
RGB, and the encoded video is bit-identical because the codes are.
"""

from __future__ import annotations

import dataclasses
import functools

import av
import numpy as np

from vs_superres.contracts.errors import SuperResError
from vs_superres.media.colour import ColourInfo
from vs_superres.media.convert import pixel_layout, rgb_to_frame
from vs_superres.media.pyav_features import frame_primaries_transfer, tag_frame


@dataclasses.dataclass(frozen=True)
class OutputFormat:
    """What the driver's writer encodes: its pixel format and colour tags (picklable)."""

    pix_fmt: str
    colour: ColourInfo
    width: int
    height: int


def _visible(plane) -> np.ndarray:
    """One plane's rows as bytes, ``[height, line_size]`` (the visible samples come first)."""
    raw = np.frombuffer(plane, dtype=np.uint8)
    return raw[: plane.height * plane.line_size].reshape(plane.height, plane.line_size)


def to_codes(rgb: np.ndarray, fmt: OutputFormat) -> tuple[np.ndarray, ...]:
    """One output frame's planes, as :func:`rgb_to_frame` fills them (checked like the writer)."""
    array = np.asarray(rgb, dtype=np.float32)
    if array.shape != (3, fmt.height, fmt.width):
        raise SuperResError(f"a worker made a frame shaped {tuple(array.shape)} for a {fmt.width}x{fmt.height} "
                            "output; every worker must run the same model and options")
    if not np.isfinite(array).all():
        raise SuperResError("frame contains NaN or infinite values; check the model output (fp16 "
                            "overflow is a common cause; try fp32)")
    frame = rgb_to_frame(array, fmt.pix_fmt, fmt.colour)
    sample_bytes = 2 if pixel_layout(fmt.pix_fmt).bits > 8 else 1
    out = []
    for plane in frame.planes:
        out.append(np.ascontiguousarray(_visible(plane)[:, : plane.width * sample_bytes]))
    return tuple(out)


def from_codes(planes: tuple[np.ndarray, ...], fmt: OutputFormat) -> av.VideoFrame:
    """The frame :func:`rgb_to_frame` made on the worker, rebuilt from its planes and tags."""
    frame = av.VideoFrame(fmt.width, fmt.height, fmt.pix_fmt)
    if len(planes) != len(frame.planes):
        raise SuperResError(f"a worker sent {len(planes)} planes for a {fmt.pix_fmt} frame of {len(frame.planes)}")
    for plane, samples in zip(frame.planes, planes):
        view = _visible(plane)
        view[:, : samples.shape[1]] = samples
    like = _tagged(fmt.pix_fmt, fmt.colour)
    tag_frame(frame, int(like.colorspace), int(like.color_range), *frame_primaries_transfer(like))
    return frame


@functools.lru_cache(maxsize=8)
def _tagged(pix_fmt: str, colour: ColourInfo) -> av.VideoFrame:
    """A tiny frame tagged by :func:`rgb_to_frame`, so the tags are set in one place only."""
    return rgb_to_frame(np.zeros((3, 2, 2), np.float32), pix_fmt, colour)
