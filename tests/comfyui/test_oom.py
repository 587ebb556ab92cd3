"""Out-of-memory in a real ComfyUI server: the Upscale Image node backs off to smaller tiles
(the engine's back-off), finishes, and gives the engine's pixels for the tile it ended at.

``oom-probe-x2`` (tests/families/oom_probe.py) fails with the CPU allocator's own error on
tiles over 32 px, so a 64x48 image asked for in one tile must be redone in 32x32 tiles.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from graphs import image_prompt

from vs_superres import Upscaler

RETRY = "out of memory: retrying oom-probe-x2 with 32x32 tiles"


@pytest.fixture(scope="module")
def photo_64x48(comfy, astronaut):
    """A 64x48 crop of a real photograph in ComfyUI's input folder, and the IMAGE LoadImage makes of it."""
    crop = (astronaut[40:88, 170:234] * 255).round().astype(np.uint8)
    Image.fromarray(crop).save(comfy.base / "input" / "oom.png")
    return "oom.png", crop.astype(np.float32) / 255.0


def engine(frame_hwc: np.ndarray, torch_threads, tile: int) -> np.ndarray:
    """The engine in this process with an explicit tile, ``[1, sH, sW, C]`` as ComfyUI holds it."""
    with torch_threads(1):
        with Upscaler("oom-probe-x2", device="cpu", tile=tile) as up:
            x = torch.from_numpy(np.ascontiguousarray(frame_hwc[None])).movedim(-1, 1)
            return up.upscale(x).movedim(1, -1).numpy()


def test_upscale_image_backs_off_on_out_of_memory(comfy, photo_64x48, torch_threads):
    name, frame = photo_64x48
    log_before = len(comfy.log())
    h = comfy.run(image_prompt(comfy, name, "oom-probe-x2", out="oom", tile=0))  # 0: the whole image in one tile
    assert h["status"]["status_str"] == "success", h["status"]
    assert RETRY in comfy.log()[log_before:]
    got = np.load(comfy.output("oom.npy"))
    assert got.shape == (1, 96, 128, 3) and got.dtype == np.float32
    assert np.array_equal(got, engine(frame, torch_threads, tile=32))
    # not what one 64x48 pass would give: the node really ran in smaller tiles
    whole = torch.nn.functional.interpolate(torch.from_numpy(frame).movedim(-1, 0)[None], scale_factor=2,
                                            mode="bicubic", align_corners=False).clamp(0, 1)
    assert np.abs(got - whole.movedim(1, -1).numpy()).max() > 0.01
