"""What a comparison finds, as data: the figures, the sampled frames' pictures, and a JSON form.

Every figure carries a one-line ``caption`` saying what it measures; a score is only present
where it means something (PSNR/SSIM only against a reference, flicker only for videos).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from vs_superres.compare.inputs import Clip
from vs_superres.compare.pictures import Picture
from vs_superres.compare.regions import Region

#: the captions: what each figure measures, in one line (shown under every table and plot)
CAPTIONS = {
    "flicker": "E*warp (x10^-3): mean squared error after warping the previous frame onto the current one with the "
               "input's optical flow (OpenCV DIS), over pixels visible in both; lower is steadier, ~0 when the frame "
               "moves exactly as the input does",
    "change": "frame change (x10^-3): mean squared difference between consecutive frames with no motion "
              "compensation; rises with motion and cuts as well as flicker (compare it with the input's)",
    "psnr_y": "PSNR-Y (dB): peak signal-to-noise ratio of the luma against the reference (studio-range Y, data range 255); "
              "higher is closer",
    "ssim_y": "SSIM-Y: structural similarity of the luma against the reference (Gaussian window 11 px, sigma 1.5); "
              "1 is identical",
}
#: the figures shown x10^3 (E*warp's convention in the papers)
MILLI = frozenset({"flicker", "change"})
TITLES = {"flicker": "Temporal instability (E*warp)", "change": "Frame-to-frame change",
          "psnr_y": "PSNR on Y", "ssim_y": "SSIM on Y"}


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


@dataclasses.dataclass(frozen=True)
class Series:
    """One figure over time: ``key`` (a :data:`CAPTIONS` key), the ``frames`` it was measured at
    (indices and ``times`` in seconds), and ``values[label]`` per clip (NaN where no pixel could
    be compared; ``inf`` PSNR for identical frames)."""

    key: str
    frames: tuple[int, ...]
    times: tuple[float, ...]
    values: dict[str, tuple[float, ...]]

    @property
    def caption(self) -> str:
        return CAPTIONS[self.key]

    @property
    def title(self) -> str:
        return TITLES[self.key]

    def mean(self, label: str) -> float | None:
        """The mean over the measured frames; frames with no measure (NaN) and PSNR's ``inf``
        (frames identical to the reference) are left out; ``inf`` when every frame is identical."""
        values = [v for v in self.values.get(label, ()) if not math.isnan(v)]
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            return sum(finite) / len(finite)
        return math.inf if values else None

    def to_dict(self) -> dict:
        return {"key": self.key, "caption": self.caption, "frames": list(self.frames), "times": list(self.times),
                "values": {k: [_finite(x) for x in v] for k, v in self.values.items()}}


@dataclasses.dataclass(frozen=True)
class SampledFrame:
    """One frame shown in the report: ``index``, ``time`` (seconds), ``views`` (one picture per
    clip at the view size, in the order of :attr:`Comparison.clips`), the detail ``regions``
    (at the display size) and ``crops[region][clip]`` (full resolution, lossless)."""

    index: int
    time: float
    views: tuple[Picture, ...]
    regions: tuple[Region, ...]
    crops: tuple[tuple[Picture, ...], ...]

    def to_dict(self) -> dict:
        return {"index": self.index, "time": self.time,
                "regions": [dataclasses.asdict(r) for r in self.regions]}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The result of :func:`vs_superres.compare.compare`.

    ``inputs`` (and ``reference``, or None) as probed; ``display`` the ``(width, height)`` every
    clip is shown at (the largest; smaller clips are upscaled with ``resampler``); ``luma`` the
    matrix of the Y figures; ``frames_read`` the frames decoded per clip; ``frames`` the sampled
    frames' pictures; ``series`` the figures over time; ``notes``: what was not measured and why.
    """

    inputs: tuple[Clip, ...]
    reference: Clip | None
    display: tuple[int, int]
    resampler: str
    luma: str
    crop_border: int
    frames_read: int
    frames: tuple[SampledFrame, ...]
    series: tuple[Series, ...]
    notes: tuple[str, ...]

    @property
    def clips(self) -> tuple[Clip, ...]:
        """The inputs, then the reference when there is one: the order of views and crops."""
        return self.inputs + ((self.reference,) if self.reference is not None else ())

    def figure(self, key: str) -> Series | None:
        return next((s for s in self.series if s.key == key), None)

    def scale_of(self, clip: Clip) -> float:
        return self.display[0] / clip.width

    def summary(self) -> dict[str, dict[str, float | None]]:
        """``{label: {figure key: mean over the measured frames}}`` (keys absent where not measured)."""
        return {clip.label: {s.key: s.mean(clip.label) for s in self.series if clip.label in s.values}
                for clip in self.clips}

    def to_dict(self) -> dict[str, Any]:
        """Everything but the pictures, in JSON types (non-finite numbers as null)."""
        summary = {label: {k: _finite(v) for k, v in figures.items()} for label, figures in self.summary().items()}
        return {
            "inputs": [c.summary() for c in self.inputs],
            "reference": self.reference.summary() if self.reference is not None else None,
            "display": {"width": self.display[0], "height": self.display[1], "resampler": self.resampler},
            "luma": self.luma, "crop_border": self.crop_border, "frames_read": self.frames_read,
            "captions": {s.key: s.caption for s in self.series},
            "summary": summary,
            "identical": {c.label: True for c in self.inputs
                          if (self.figure("psnr_y") or _NO_SERIES).mean(c.label) == math.inf},
            "series": [s.to_dict() for s in self.series],
            "sampled_frames": [f.to_dict() for f in self.frames],
            "notes": list(self.notes),
        }


_NO_SERIES = Series("psnr_y", (), (), {})
