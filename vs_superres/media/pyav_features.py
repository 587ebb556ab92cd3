"""The differences between the PyAV releases vs-superres supports, asked of PyAV itself.

The oldest supported PyAV is 14.2 (Debian 13's ``python3-av``); the newest is whatever the
registry has. Features are detected, never inferred from a version number, so a backport or a
distribution patch is used where it exists:

- ``Stream.disposition`` is a plain ``enum.Flag`` before PyAV 15, which ``int()`` refuses; later
  an ``IntFlag``. Its setter takes an ``int`` in every release.
- ``VideoFrame.color_primaries``/``color_trc`` appeared after 14.2 (PyAV pull 2175). Without
  them a decoded frame's primaries and transfer are read from the decoder's context (which the
  decoder fills from the bitstream and the container), and a frame built for an encoder is
  tagged through the encoder's context, which is what the encoder writes anyway.
- ``OutputContainer.add_attachment`` is missing from 14.2: a Matroska source's attachments
  (fonts) are then not carried, and the writer says so.
- ``VideoStream.set_display_rotation`` appeared in PyAV 18 (PyAV pull 2287). Without it an
  output's display rotation cannot be written: :func:`set_display_rotation` says so and the
  writer tells the user how to add it afterwards.
"""

from __future__ import annotations

from typing import Any

import av

#: whether ``VideoFrame`` carries its colour primaries and transfer
FRAME_HAS_PRIMARIES = hasattr(av.VideoFrame, "color_primaries") and hasattr(av.VideoFrame, "color_trc")
#: whether an output container can be given attachments (a Matroska file's fonts)
CONTAINER_HAS_ATTACHMENTS = hasattr(av.container.OutputContainer, "add_attachment")
#: whether an output video stream can be given a display rotation
STREAM_HAS_DISPLAY_ROTATION = hasattr(av.video.stream.VideoStream, "set_display_rotation")


def disposition_flags(stream: Any) -> int:
    """The disposition flags of a PyAV stream as an ``int`` (default, forced, ...)."""
    flags = stream.disposition
    return int(getattr(flags, "value", flags) or 0)


def frame_primaries_transfer(frame: av.VideoFrame) -> tuple[int, int]:
    """``(primaries, transfer)`` of a decoded ``frame`` as FFmpeg enum numbers; ``(0, 0)`` (no
    tag) where this PyAV does not expose them, so that callers fall back to the stream's."""
    if not FRAME_HAS_PRIMARIES:
        return 0, 0
    return int(frame.color_primaries or 0), int(frame.color_trc or 0)


def tag_frame(frame: av.VideoFrame, matrix: int, colour_range: int, primaries: int,
              transfer: int) -> None:
    """Tag ``frame`` with its colour matrix, range, primaries and transfer (the last two only
    where this PyAV has them: an encoder takes them from its context, which the writer sets)."""
    frame.colorspace = matrix
    frame.color_range = colour_range
    if FRAME_HAS_PRIMARIES:
        frame.color_primaries = primaries
        frame.color_trc = transfer


def add_copied_stream(container: Any, template: Any) -> Any:
    """An output stream of ``container`` that takes ``template``'s packets as they are (a
    stream copy). ``opaque=True`` keeps the template's own codec: PyAV 14.2 opens a video
    stream's codec when the header is written, and without it that is a fresh *encoder*
    whose parameters (extradata, pixel format) replace the template's, giving a file no
    decoder can read; later releases leave a template's codec closed either way."""
    return container.add_stream_from_template(template, opaque=True)


def set_display_rotation(stream: Any, degrees: int) -> bool:
    """Give the output video ``stream`` a display rotation of ``degrees`` counter-clockwise
    (as ``VideoFrame.rotation`` reads it back), before its first frame is encoded. False, with
    nothing done, where this PyAV cannot write one."""
    if not STREAM_HAS_DISPLAY_ROTATION:
        return False
    stream.set_display_rotation(degrees)
    return True


def pyav_version() -> str:
    """The installed PyAV's version, for messages."""
    return str(getattr(av, "__version__", "unknown"))


__all__ = ["CONTAINER_HAS_ATTACHMENTS", "FRAME_HAS_PRIMARIES", "STREAM_HAS_DISPLAY_ROTATION",
           "add_copied_stream", "disposition_flags", "frame_primaries_transfer", "pyav_version",
           "set_display_rotation", "tag_frame"]
