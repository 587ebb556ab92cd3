"""Bounded memory: a clip four times as long costs no more memory to compare (frames are read
in step and dropped; the kept pictures are encoded at once)."""

from __future__ import annotations

import tracemalloc

import pytest

from compare_helpers import LR_SIZE, noisy, pan, resized, write_clip
from vs_superres.compare import compare

pytest.importorskip("cv2", reason="the compare extra (opencv-python-headless) is not installed")


def _peak(paths) -> int:
    tracemalloc.start()
    try:
        compare(paths, frames=2, measure=None)  # every frame measured: the most work per frame
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_clips_length(tmp_path):
    lengths = (12, 48)
    peaks = []
    for n in lengths:
        hr = pan(n, step=2)
        paths = [write_clip(tmp_path / f"lr{n}.mkv", resized(hr, LR_SIZE)), write_clip(tmp_path / f"hr{n}.mkv", hr),
                 write_clip(tmp_path / f"noisy{n}.mkv", noisy(hr))]
        peaks.append(_peak(paths))
    one_frame = 256 * 192 * 3 * 4  # a float32 frame of the outputs
    # 36 more frames of three clips held would be ~100 frames more; allow a few frames of noise
    assert peaks[1] - peaks[0] < 4 * one_frame, peaks
    assert peaks[0] > one_frame  # numpy's allocations are traced at all
