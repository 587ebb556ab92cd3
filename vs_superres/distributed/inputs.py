"""Input frames as the decoder's own integer planes, so they travel small and exact.

The driver decodes once; instead of the reader's float32 R'G'B' (12 bytes a pixel) it ships
each frame's planes as decoded (8 or 16 bit: 1.5 or 3 bytes a pixel for 4:2:0) with the pixel
format and colour tags, and a worker rebuilds the frame and converts it with
:func:`~vs_superres.media.convert.frame_to_rgb`, the very conversion
:class:`~vs_superres.media.video.VideoReader` applies, with the reader's
:class:`~vs_superres.media.colour.ColourInfo`. The float frames are therefore the reader's, bit
for bit. :func:`packs_exactly` checks that on the first frame of a run; a layout the rebuild
does not reproduce (a palette, say) falls back to shipping float32.
"""

from __future__ import annotations

import dataclasses

import av
import numpy as np

from vs_superres.media.colour import ColourInfo
from vs_superres.media.convert import frame_to_rgb
from vs_superres.media.pyav_features import frame_primaries_transfer, tag_frame


@dataclasses.dataclass(frozen=True)
class PackedFrame:
    """One decoded frame's planes: each ``[rows, bytes]`` uint8, the visible samples of a row
    (all of its ``line_size`` where a plane interleaves components), and the frame's tags."""

    pix_fmt: str
    width: int
    height: int
    planes: tuple[np.ndarray, ...]
    tags: tuple[int, int, int, int]  # colorspace, color_range, color_primaries, color_trc

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.planes)


@dataclasses.dataclass(frozen=True)
class PackedInputs:
    """A segment's input frames, in order, and the reader's colour to convert them with."""

    colour: ColourInfo
    frames: tuple[PackedFrame, ...]

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def nbytes(self) -> int:
        return sum(f.nbytes for f in self.frames)


def _row_bytes(frame: av.VideoFrame, index: int) -> int:
    """Bytes a row of plane ``index`` holds samples in (padding left out where that is known)."""
    plane = frame.planes[index]
    fmt = frame.format
    parts = [c for c in fmt.components if c.plane == index]
    if len(parts) == 1 and not fmt.has_palette:
        return min(plane.line_size, plane.width * ((parts[0].bits + 7) // 8))
    if len(frame.planes) == 1 and fmt.padded_bits_per_pixel:  # packed: every component in one plane
        return min(plane.line_size, -(-plane.width * fmt.padded_bits_per_pixel // 8))
    return plane.line_size


def _rows(plane, row_bytes: int) -> np.ndarray:
    raw = np.frombuffer(plane, dtype=np.uint8)
    return raw[: plane.height * plane.line_size].reshape(plane.height, plane.line_size)[:, :row_bytes]


def pack(frame: av.VideoFrame) -> PackedFrame:
    """The planes of a decoded ``frame``, copied out of the decoder's buffers."""
    # a copy, always (also where the rows are contiguous already): the packed frame must not
    # keep the decoder's buffer, and its padding, alive in the driver's buffer
    planes = tuple(np.array(_rows(frame.planes[i], _row_bytes(frame, i)), order="C", copy=True)
                   for i in range(len(frame.planes)))
    tags = (int(frame.colorspace), int(frame.color_range), *frame_primaries_transfer(frame))
    return PackedFrame(frame.format.name, frame.width, frame.height, planes, tags)


def unpack(packed: PackedFrame) -> av.VideoFrame:
    """A frame holding ``packed``'s samples and tags, as the decoder gave it."""
    frame = av.VideoFrame(packed.width, packed.height, packed.pix_fmt)
    if len(frame.planes) != len(packed.planes):
        raise ValueError(f"{packed.pix_fmt} has {len(frame.planes)} planes, {len(packed.planes)} were sent")
    for plane, rows in zip(frame.planes, packed.planes):
        if rows.shape[0] != plane.height:
            raise ValueError(f"a plane of {rows.shape[0]} rows was sent for one of {plane.height}")
        # a row's samples come first and fit any buffer made for the format; the rest is padding
        width = min(rows.shape[1], plane.line_size)
        _rows(plane, width)[:] = rows[:, :width]
    tag_frame(frame, *packed.tags)
    return frame


def to_rgb(packed: PackedFrame, colour: ColourInfo) -> np.ndarray:
    """The reader's float32 R'G'B' ``[3, H, W]`` of ``packed``."""
    return frame_to_rgb(unpack(packed), colour)


def packs_exactly(frame: av.VideoFrame, rgb: np.ndarray, colour: ColourInfo) -> bool:
    """Whether packing ``frame`` and converting it on a worker gives the reader's ``rgb``."""
    try:
        again = to_rgb(pack(frame), colour)
    except (ValueError, TypeError, av.FFmpegError):
        return False
    return again.shape == rgb.shape and again.dtype == rgb.dtype and np.array_equal(again, rgb)


def rgb_of(inputs: PackedInputs | np.ndarray) -> np.ndarray:
    """Float32 ``[T, 3, H, W]`` of a segment's inputs, packed or already float (a fresh,
    writable array either way: the store's arrays are read-only views)."""
    if isinstance(inputs, PackedInputs):
        return np.stack([to_rgb(f, inputs.colour) for f in inputs.frames])
    return np.array(inputs)
