"""The one progress type: every long loop reports a :class:`Progress` to a :data:`ProgressFn`.

Tiles, windows, model stages, frames of a video, bytes of a download: all are reported the
same way, so a host needs one adapter (a terminal bar, ``comfy.utils.ProgressBar``, an
FFmpeg-style stderr line) for everything.
"""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units (``total`` 0 when unknown) in ``phase`` (``"frames"``,
    ``"window 3: unet"``, ``"tiles"``, ``"download"``)."""

    done: int
    total: int
    phase: str = ""
    unit: str = "frames"

    @property
    def fraction(self) -> float | None:
        return min(self.done / self.total, 1.0) if self.total else None


ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]
