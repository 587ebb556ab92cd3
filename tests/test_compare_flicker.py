"""Flicker (E*warp with the input's optical flow) on synthetic clips whose behaviour is known:
a static scene with fresh noise on every frame against the same scene clean, and a pan whose
frames move exactly as the input's (near zero) against the same pan shaken."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from compare_helpers import FPS, HR_SIZE, LR_SIZE, noisy, pan, resized, static, write_clip
from vs_superres.compare import compare

pytest.importorskip("cv2", reason="the compare extra (opencv-python-headless) is not installed")
FRAMES = 10


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flicker")
    moving = pan(FRAMES)
    rng = np.random.default_rng(1)
    # the same pan with each frame off by up to 3 px sideways: motion the input does not have
    shaken = [frame if t == 0 else np.roll(frame, int(rng.integers(-3, 4)), axis=1) for t, frame in enumerate(moving)]
    return {
        "static_lr": write_clip(folder / "static_lr.mkv", resized(static(FRAMES), LR_SIZE)),
        "static_clean": write_clip(folder / "static_clean.mkv", static(FRAMES)),
        "static_noisy": write_clip(folder / "static_noisy.mkv", noisy(static(FRAMES))),
        "pan_lr": write_clip(folder / "pan_lr.mkv", resized(moving, LR_SIZE)),
        "pan_hr": write_clip(folder / "pan_hr.mkv", moving),
        "pan_shaken": write_clip(folder / "pan_shaken.mkv", shaken),
    }


def test_static_scene_with_per_frame_noise_flickers_and_the_clean_one_does_not(clips):
    result = compare([clips["static_lr"], clips["static_clean"], clips["static_noisy"]], measure=None, frames=1)
    summary = result.summary()
    clean, noisy_ = summary["B"]["flicker"], summary["C"]["flicker"]
    assert clean == 0.0  # identical frames, no motion: nothing to see
    # sigma 12/255 per channel, independent between frames: E = 2 sigma^2 (clipping takes a little off)
    assert noisy_ == pytest.approx(2 * (12 / 255) ** 2, rel=0.15)
    assert summary["C"]["change"] > 1e-3 > summary["B"]["change"]
    assert len(result.figure("flicker").frames) == FRAMES - 1  # every pair measured
    assert result.figure("flicker").times[0] == pytest.approx(1 / FPS)


def test_pan_that_moves_as_the_input_scores_near_zero_and_a_shaken_one_does_not(clips):
    result = compare([clips["pan_lr"], clips["pan_hr"], clips["pan_shaken"]], measure=None, frames=1)
    summary = result.summary()
    faithful, shaken = summary["B"], summary["C"]
    assert faithful["change"] > 5e-3  # the frames do change a lot: it is the motion that is explained
    assert faithful["flicker"] < 2e-4  # E*warp x10^-3 < 0.2
    assert faithful["flicker"] < faithful["change"] / 50
    assert shaken["flicker"] > 10 * faithful["flicker"]
    assert summary["A"]["flicker"] < 2e-4  # the input against its own flow


def test_flow_is_scaled_to_each_size(clips):
    """The same pan judged at the input's size and at twice it gives the same verdict: the
    flow measured on the small clip is scaled in position and length."""
    result = compare([clips["pan_lr"], clips["pan_hr"]], measure=3, frames=1)
    assert result.figure("flicker").frames == (2, 5, 8)
    assert max(result.figure("flicker").values["B"]) < 2e-4
    assert result.display == HR_SIZE


def test_without_opencv_flicker_names_the_extra_and_no_flicker_runs(clips, tmp_path):
    block = "import sys; sys.modules['cv2'] = None; from vs_superres.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["compare", str(clips["pan_lr"]), str(clips["pan_hr"]), "--json", "-q"]
    run = subprocess.run([sys.executable, "-c", block, *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        "superres: error: measuring flicker needs OpenCV's optical flow, which is not installed: pip install "
        "'vs-superres[compare]', or leave flicker out (--no-flicker; flicker=False in Python)")
    assert "Traceback" not in run.stderr
    run = subprocess.run([sys.executable, "-c", block, *args, "--no-flicker"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert '"change"' in run.stdout and '"flicker"' not in run.stdout
