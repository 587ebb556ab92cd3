"""The loader's ``backend`` widget in a real ComfyUI server (issue 26): derived from DITN's
declaration, and ``onnxruntime`` upscales a real photo within 1e-4 of the engine's PyTorch path.

The server is the session's (tests/comfyui/conftest.py); its environment has the ``[onnx]``
extra's packages (tools/comfy_env.sh). The exported graph goes to the server's user cache, as
it would for a user.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from graphs import image_prompt

from vs_superres import Upscaler
from vs_superres.runtime.registry import family


@pytest.fixture(scope="module")
def photo(comfy, astronaut):
    crop = (astronaut[140:180, 160:216] * 255).round().astype(np.uint8)
    Image.fromarray(crop).save(comfy.base / "input" / "backend_photo.png")
    return "backend_photo.png", crop.astype(np.float32) / 255.0


def test_backend_widget_is_the_declaration(comfy):
    required = comfy.object_info("SuperResLoadDITN")["input"]["required"]
    declared = family("ditn").options.get("backend")
    choices = required["backend"][0] if isinstance(required["backend"][0], list) else required["backend"][1]["options"]
    assert list(choices) == list(declared.choices) and required["backend"][1]["default"] == "torch"


def test_onnxruntime_backend_equals_the_torch_engine(comfy, photo, ditn_x4_path, torch_threads):
    name, frame = photo
    h = comfy.run(image_prompt(comfy, name, "ditn-real-x4", out="onnx", loader={"backend": "onnxruntime"}))
    assert h["status"]["status_str"] == "success", h["status"]
    got = np.load(comfy.output("onnx.npy"))
    with torch_threads(1), Upscaler("ditn-real-x4", device="cpu") as up:
        want = up.upscale(torch.from_numpy(frame).movedim(-1, 0)).movedim(1, -1).numpy()
    assert got.shape == want.shape == (1, 160, 224, 3)
    assert np.abs(got - want).max() < 1e-4
