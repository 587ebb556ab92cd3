"""The driver's writer: :class:`~vs_superres.media.writer.VideoWriter`, fed integer codes.

Everything else about the output (pixel format and encoder choice, colour tags, timestamps,
audio/subtitle/attachment pass-through, the atomic rename, the full-disk error) is the
writer's own, so a distributed output is the single-process CLI's, byte for byte.
"""

from __future__ import annotations

from vs_superres.distributed.codes import OutputFormat, from_codes
from vs_superres.media.writer import VideoWriter


class CodeWriter(VideoWriter):
    """A :class:`VideoWriter` that also takes frames already converted to its codes (a worker
    made them with ``rgb_to_frame`` and this writer's :attr:`output_format`)."""

    @property
    def output_format(self) -> OutputFormat:
        return OutputFormat(self.pix_fmt, self.colour, self.width, self.height)

    def write_codes(self, planes, pts: int | None) -> None:
        self.write_frame(from_codes(planes, self.output_format), pts)

    def write(self, planes, pts: int | None = None) -> None:  # type: ignore[override]
        """The run path's sink call: a distributed run's outputs are always code planes."""
        self.write_codes(planes, pts)
