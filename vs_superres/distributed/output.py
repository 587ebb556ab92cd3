"""The driver's writer: :class:`~vs_superres.media.writer.VideoWriter`, fed integer codes.

Everything else about the output (pixel format and encoder choice, colour tags, timestamps,
audio/subtitle/attachment pass-through, the atomic rename, the full-disk error) is the
writer's own, so a distributed output is the single-process CLI's, byte for byte.
"""

from __future__ import annotations

import av

from ..contracts.errors import SuperResError
from ..media.writer import VideoWriter
from .codes import OutputFormat, from_codes


class CodeWriter(VideoWriter):
    """A :class:`VideoWriter` that also takes frames already converted to its codes.

    ``write_codes`` is :meth:`VideoWriter.write` from the point where ``rgb_to_frame`` has
    made the frame (a worker made it, with the same function and this writer's format).
    """

    @property
    def output_format(self) -> OutputFormat:
        return OutputFormat(self.pix_fmt, self.colour, self.width, self.height)

    def write_codes(self, planes, pts: int | None) -> None:
        frame = from_codes(planes, self.output_format)
        source_pts = self._next_pts if pts is None else int(pts)
        self._next_pts = source_pts + self.info.frame_step
        frame.pts = self._fit_pts(source_pts)
        frame.time_base = self._time_base
        try:
            self._mux_video(self._video.encode(frame))
        except (av.FFmpegError, OSError) as exc:
            full = self._full_disk(exc)
            if full is not None:
                raise full from exc
            raise SuperResError(f"encoding frame {self.frames_written} failed: {exc}") from exc
        self.frames_written += 1
