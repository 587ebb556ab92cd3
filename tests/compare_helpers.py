"""What the ``superres compare`` tests share: synthetic clips with known behaviour, written
losslessly (FFV1, RGB) by the ffmpeg CLI, from a real photograph (scikit-image's astronaut)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from media_helpers import HAVE_FFMPEG

FPS = 24
HR_SIZE = (256, 192)  # width, height of the "high-resolution" clips
LR_SIZE = (128, 96)
PAN_PX = 4  # high-resolution pixels the pan moves per frame


def needs_ffmpeg() -> None:
    if not HAVE_FFMPEG:
        pytest.skip("ffmpeg/ffprobe CLI not installed")


def write_clip(path: Path, frames: list[np.ndarray], fps: int | str = FPS, audio: bool = False) -> Path:
    """``frames`` (uint8 ``[H, W, 3]``) as a lossless FFV1 video (RGB, no colour conversion),
    with a 440 Hz AAC tone as long as the video when ``audio``."""
    needs_ffmpeg()
    h, w = frames[0].shape[:2]
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-shortest", "-c:a", "aac"]
    cmd += ["-c:v", "ffv1", "-pix_fmt", "bgr0", str(path)]
    subprocess.run(cmd, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames), check=True)
    return path


def photo() -> np.ndarray:
    return skimage.data.astronaut()  # 512x512 RGB, a real photograph


def pan(count: int, step: int = PAN_PX) -> list[np.ndarray]:
    """A horizontal pan over the photo at the high-resolution size, ``step`` px per frame."""
    w, h = HR_SIZE
    return [photo()[100:100 + h, 60 + step * t:60 + step * t + w] for t in range(count)]


def static(count: int) -> list[np.ndarray]:
    w, h = HR_SIZE
    return [photo()[100:100 + h, 60:60 + w]] * count


def resized(frames: list[np.ndarray], size: tuple[int, int], method=Image.Resampling.LANCZOS) -> list[np.ndarray]:
    return [np.asarray(Image.fromarray(f).resize(size, method)) for f in frames]


def noisy(frames: list[np.ndarray], sigma: float = 12.0, seed: int = 0) -> list[np.ndarray]:
    """Fresh Gaussian noise on every frame: what flicker looks like."""
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]
