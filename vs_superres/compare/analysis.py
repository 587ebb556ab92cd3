"""The comparison itself: read the clips in step, measure the sampled frames, keep the pictures.

Which frames: ``frames`` evenly spaced frames are shown (slider and detail crops); ``measure``
evenly spaced frames (or every frame) get the figures over time, each against its predecessor
(flicker, frame change) and, with a reference, PSNR/SSIM. Every frame is decoded (the readers
stream), but only one frame per clip is held, plus the previous one when the next frame is
measured; the pictures kept are encoded at once, so memory does not grow with the clip.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from vs_superres.compare.flicker import estimate_motion, require_opencv, warp_error
from vs_superres.compare.inputs import Clip, check_together, frames_in_step, open_clip
from vs_superres.compare.metrics import LUMA_MATRICES, frame_change, psnr_y, ssim_y
from vs_superres.compare.pictures import encode
from vs_superres.compare.regions import crop_size, gradient_energy, most_detailed
from vs_superres.compare.result import Comparison, SampledFrame, Series
from vs_superres.compare.scaling import check_resampler, resize
from vs_superres.contracts.errors import InvalidOption, SuperResError, UnsupportedFormat
from vs_superres.contracts.progress import Progress, ProgressFn

DEFAULT_FRAMES = 3
DEFAULT_MEASURE = 120
DEFAULT_CROPS = 2
DEFAULT_VIEW_WIDTH = 1280
#: why perceptual scores are absent (said in every report with a reference)
PERCEPTUAL_NOTE = ("LPIPS and DISTS are not computed: their packages need torchvision and network weights "
                   "downloaded at run time, which this project does not depend on")
NO_REFERENCE_NOTE = ("no reference given: no quality score is shown (without the true high-resolution frames any "
                     "number would be a guess); pass --reference HR for PSNR/SSIM")


def evenly_spaced(count: int | None, first: int, end: int) -> list[int]:
    """``count`` indices spread over ``[first, end)`` (each the middle of its share); all of
    them when ``count`` is None or covers the range."""
    span = end - first
    if span <= 0:
        return []
    if count is None or count >= span:
        return list(range(first, end))
    return sorted({first + int((i + 0.5) * span / count) for i in range(count)})


def _labels(count: int) -> list[str]:
    return [chr(ord("A") + i) if i < 26 else f"I{i + 1}" for i in range(count)]


def _check_counts(frames: int, measure: int | None, crops: int, view_width: int, crop_border: int) -> None:
    for name, value, low in (("frames", frames, 1), ("crops", crops, 0), ("view_width", view_width, 64),
                             ("crop_border", crop_border, 0)):
        if value < low:
            raise InvalidOption(f"{name} must be at least {low}, got {value}", option=name)
    if measure is not None and measure < 1:
        raise InvalidOption(f"measure must be at least 1 (or None for every frame), got {measure}", option="measure")


def open_inputs(paths: Sequence[str | os.PathLike], reference: str | os.PathLike | None = None) -> tuple[list[Clip], Clip | None]:
    """Probe and check the inputs and the reference (:mod:`.inputs`); nothing is decoded
    beyond each video's first frame (the probe)."""
    if len(paths) + (reference is not None) < 2:
        raise InvalidOption("compare needs at least two inputs (A B [C ...]), or one and a reference", option="inputs")
    clips = [open_clip(p, label) for p, label in zip(paths, _labels(len(paths)))]
    ref = open_clip(reference, "ref") if reference is not None else None
    check_together(clips + ([ref] if ref else []))
    if ref is not None:
        largest = max(clips, key=lambda c: c.width)
        if ref.width < largest.width:
            raise UnsupportedFormat(
                f"the reference {ref.name} is {ref.width}x{ref.height}, smaller than {largest.title} "
                f"({largest.width}x{largest.height}); the reference must be the high-resolution original, at least "
                "as large as every output")
    return clips, ref


def compare(paths: Sequence[str | os.PathLike], *, reference: str | os.PathLike | None = None,
            frames: int = DEFAULT_FRAMES, measure: int | None = DEFAULT_MEASURE, crops: int = DEFAULT_CROPS,
            resampler: str = "lanczos", luma: str = "bt601", crop_border: int = 0, flicker: bool = True,
            view_width: int = DEFAULT_VIEW_WIDTH, on_progress: ProgressFn | None = None) -> Comparison:
    """Compare images or videos of one scene at the same or different scales.

    ``paths``: A (the input, or any clip), B, C, ... (outputs); ``reference``: the true
    high-resolution original (PSNR/SSIM of every input against it; none without it).
    ``frames``: how many frames are shown (evenly spaced); ``measure``: on how many frames the
    figures over time are measured (None: every frame); ``crops``: detail squares per shown
    frame; ``resampler``: how smaller clips are shown at the largest one's size (and scored
    against a larger reference): ``lanczos``, ``bicubic``, ``bilinear``, ``nearest``;
    ``luma``: ``bt601`` (as the papers) or ``bt709``; ``crop_border``: pixels left out at each
    edge for PSNR/SSIM (BasicSR crops the scale); ``flicker=False`` skips E*warp (no OpenCV
    needed); ``view_width``: the slider pictures' largest width; ``on_progress`` gets
    ``Progress(done, total, "sampled frames")``.

    Returns a :class:`~vs_superres.compare.result.Comparison`; raises
    :class:`~vs_superres.contracts.errors.SuperResError` for inputs that are not the same
    frames (sizes not a scale apart, other frame rates or lengths).
    """
    _check_counts(frames, measure, crops, view_width, crop_border)
    check_resampler(resampler)
    if luma not in LUMA_MATRICES:
        raise InvalidOption(f"luma must be one of {', '.join(LUMA_MATRICES)}, got {luma!r}", option="luma")
    clips, ref = open_inputs(paths, reference)
    every = clips + ([ref] if ref else [])
    is_video = clips[0].kind == "video"
    if is_video and flicker:
        require_opencv()  # before the clips are read
    largest = max(every, key=lambda c: c.width)
    display = (largest.width, largest.height)
    # the plan needs a length before reading: an announced count, else the shortest estimate
    exact = [c.frame_count for c in every if c.frame_count_exact]
    total = min(exact) if exact else min(c.frame_count for c in every)
    shown = set(evenly_spaced(frames, 0, total)) if is_video else {0}
    measured = set(evenly_spaced(measure, 1, total)) if is_video else set()
    scored = (measured | shown) if ref is not None else set()
    todo = sorted(shown | measured | scored)
    fps = float(clips[0].fps) if clips[0].fps else 0.0
    keys = (["flicker"] if is_video and flicker else []) + (["change"] if is_video else []) + \
        (["psnr_y", "ssim_y"] if ref is not None else [])
    series: dict[str, dict[str, list[float]]] = {k: {c.label: [] for c in (clips if k.endswith("_y") else every)}
                                                 for k in keys}
    at: dict[str, list[int]] = {k: [] for k in keys}
    sampled: list[SampledFrame] = []
    previous: list[np.ndarray] | None = None
    done = read = 0
    for index, current in frames_in_step(every):
        read = index + 1
        if index in measured and previous is not None:
            if "flicker" in series:
                motion = estimate_motion(previous[0], current[0])
                for clip, before, now in zip(every, previous, current):
                    series["flicker"][clip.label].append(warp_error(before, now, motion))
                at["flicker"].append(index)
            for clip, before, now in zip(every, previous, current):
                series["change"][clip.label].append(frame_change(before, now))
            at["change"].append(index)
        if index in scored and ref is not None:
            truth = current[-1]
            for clip, now in zip(clips, current):
                seen = resize(now, ref.width, ref.height, resampler)
                series["psnr_y"][clip.label].append(psnr_y(seen, truth, matrix=luma, crop_border=crop_border))
                series["ssim_y"][clip.label].append(ssim_y(seen, truth, matrix=luma, crop_border=crop_border))
            at["psnr_y"].append(index)
            at["ssim_y"].append(index)
        if index in shown:
            sampled.append(_sample(index, index / fps if fps else 0.0, len(clips), current, display, resampler, crops,
                                   view_width))
        if index in todo:
            done += 1
            if on_progress is not None:
                on_progress(Progress(done, len(todo), "sampled frames"))
        previous = current if index + 1 in measured else None
    if not sampled:
        raise SuperResError(f"{clips[0].title} holds no frame to compare (it announced {total}); check the file")
    out = tuple(Series(k, tuple(at[k]), tuple(i / fps if fps else 0.0 for i in at[k]),
                       {label: tuple(v) for label, v in series[k].items()}) for k in keys if at[k])
    notes = [NO_REFERENCE_NOTE] if ref is None else [PERCEPTUAL_NOTE]
    if is_video and not flicker:
        notes.append("flicker (E*warp) not measured: it was turned off")
    return Comparison(tuple(clips), ref, display, resampler, luma, crop_border, read, tuple(sampled), out, tuple(notes))


def _sample(index: int, time: float, inputs: int, current: Sequence[np.ndarray], display: tuple[int, int],
            resampler: str, crops: int, view_width: int) -> SampledFrame:
    """The pictures of one shown frame: every clip at the display size (smaller ones upscaled),
    scaled down to the view width for the slider, and the detail crops at full resolution."""
    width, height = display
    shown = [resize(frame, width, height, resampler) for frame in current]
    view_w = min(width, view_width)
    view_h = max(1, round(height * view_w / width))
    views = tuple(encode(resize(frame, view_w, view_h, "lanczos"), "jpeg") for frame in shown)
    # detail is judged on the outputs: the inputs after A (A itself when it is the only one)
    judged = shown[1:inputs] or shown[:1]
    energy = gradient_energy(judged[0])
    for frame in judged[1:]:
        energy += gradient_energy(frame)
    regions = tuple(most_detailed(energy, crops, crop_size(width, height)))
    cut = tuple(tuple(encode(frame[r.y:r.y + r.size, r.x:r.x + r.size], "png") for frame in shown) for r in regions)
    return SampledFrame(index, time, views, regions, cut)
