"""Every hint names an option in the syntax of the host that shows it (#23 item 4): the engine's
messages hold option references and each host writes them its own way. The CLI says
``--device cpu``, ComfyUI ``widget 'dtype' = fp32``, VapourSynth ``device="cpu"``
(``tests/vapoursynth/test_hints.py``, run in the VapourSynth root by
``tests/test_vapoursynth_host.py``), filter strings and the Python API ``device=cpu``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vs_superres.contracts.errors import InvalidOption

MODEL = "temporal-mean-x2"  # weightless, registered by the tests, takes fp16
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the hint is for a machine without a CUDA GPU")


def superres_upscale(tmp_path, *args):
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(src)
    return subprocess.run([sys.executable, "-m", "vs_superres.cli", "upscale", str(src), str(tmp_path / "out.png"),
                           "--model", MODEL, "-q", *args], capture_output=True, text=True, timeout=120)


@no_cuda
def test_cli_device_hint_is_a_flag(tmp_path):
    run = superres_upscale(tmp_path, "--device", "cuda")
    assert run.returncode == 2, run.stderr
    assert run.stderr == ("superres: error: device 'cuda' was asked for but this PyTorch build sees no CUDA GPU; "
                          "use --device cpu (or --device auto)\n")


def test_cli_dtype_hint_is_a_flag(tmp_path):
    run = superres_upscale(tmp_path, "--device", "cpu", "--dtype", "fp16")
    assert run.returncode == 2, run.stderr
    assert "(use --dtype fp32, or a GPU for fp16)" in run.stderr
    assert "dtype=" not in run.stderr and "device=" not in run.stderr


def test_cli_weights_listing_names_flags():
    run = subprocess.run([sys.executable, "-m", "vs_superres.cli", "models", "list"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "SUPERRES_WEIGHTS": "/nonexistent"})
    assert run.returncode == 0, run.stderr
    assert "or give --base PATH" in run.stdout and "base=" not in run.stdout.replace("needs base=", "")


# ComfyUI's hints (widget names) are tested through the real server: tests/comfyui/test_nodes.py
# (test_comfyui_hints_name_the_widget).


@no_cuda
def test_python_api_hint_is_a_keyword():
    from vs_superres import Upscaler

    with pytest.raises(InvalidOption) as info:
        Upscaler(MODEL, device="cuda")
    assert "use device=cpu (or device=auto)" in str(info.value) and info.value.option == "device"


def test_memory_hints_reference_the_tile_option():
    from vs_superres.hostkit.flags import flag_spelling
    from vs_superres.media.budget import OverBudget, check_memory

    with pytest.raises(OverBudget) as info:
        check_memory((1000, 1000), (4000, 4000), 10**9, model="m", source="x.png", model_bytes=4 * 10**9,
                     available=10**9)
    assert "a smaller tile (--tile 128) lowers the model's working memory" in info.value.render(flag_spelling)
    assert "a smaller tile (tile=128)" in str(info.value)
