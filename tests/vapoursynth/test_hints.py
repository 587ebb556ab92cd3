"""VapourSynth's hints name options as a script writes them (#23 item 4): keyword arguments
with text quoted (``device="cpu"``), never the command line's ``--dtype fp32``."""

from __future__ import annotations

import pytest
import torch
import vapoursynth as vs

VIDEO_MODEL = "temporal-mean-x2"


def error_of(**kwargs) -> str:
    clip = vs.core.std.BlankClip(width=32, height=24, format=vs.RGBS, length=2)
    with pytest.raises(vs.Error) as info:
        vs.core.superres.Upscale(clip, model=VIDEO_MODEL, **kwargs).get_frame(0)
    return str(info.value)


def test_dtype_hint_is_a_keyword_argument():
    msg = error_of(device="cpu", dtype="fp16")
    assert "superres.Upscale: dtype fp16 is not supported on device cpu" in msg
    assert '(use dtype="fp32", or a GPU for fp16)' in msg and "--dtype" not in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="the hint is for a machine without a CUDA GPU")
def test_device_hint_is_a_keyword_argument():
    msg = error_of(device="cuda")
    assert 'use device="cpu" (or device="auto")' in msg and "--device" not in msg and "device='cpu'" not in msg


def test_the_hint_works_when_followed():
    clip = vs.core.std.BlankClip(width=32, height=24, format=vs.RGBS, length=2)
    frame = vs.core.superres.Upscale(clip, model=VIDEO_MODEL, device="cpu", dtype="fp32").get_frame(0)
    assert frame.width == 64 and frame.height == 48
