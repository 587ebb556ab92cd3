"""Bad input on the VapourSynth path: every hint the plugin gives is right for the clip it is
shown for (following it makes the call work), and unusual but legal data is handled."""

from __future__ import annotations

import re

import numpy as np
import pytest
import vapoursynth as vs

from vs_superres.vapoursynth.bridge import RANGE_HINT

VIDEO_MODEL = "temporal-mean-x2"


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(vs.Error) as info:
        clip = fn(*args, **kwargs)
        clip.get_frame(0)
    return str(info.value)


def follow(hint: str, clip: vs.VideoNode) -> vs.VideoNode:
    """Run the ``clip = ...`` statement a hint gives, as a user pasting it into a script would."""
    statement = re.search(r"clip = (.+?)(?: \(|$)", hint)
    assert statement, hint
    return eval(statement.group(1), {"core": vs.core, "vs": vs, "clip": clip})  # noqa: S307 - our own hint text


@pytest.mark.parametrize("fmt", [vs.YUV420P8, vs.YUV420P10, vs.YUV422P16, vs.YUV444PS, vs.RGB24, vs.RGB30,
                                 vs.RGB48, vs.GRAY8, vs.GRAY16, vs.GRAYS])
@pytest.mark.parametrize("height", [24, 720])
def test_the_conversion_hint_works_for_every_format(fmt, height):
    clip = vs.core.std.BlankClip(width=32, height=height, format=fmt, length=2)
    msg = error_of(vs.core.superres.Upscale, clip, model=VIDEO_MODEL, device="cpu")
    name = vs.core.get_video_format(fmt).name
    assert msg.startswith(f"superres.Upscale: only RGBS and RGBH clips are supported, got {name}; convert first")
    if name.startswith("YUV"):
        assert ('matrix_in_s="709"' if height >= 720 else 'matrix_in_s="170m"') in msg
    converted = follow(msg, clip)
    out = vs.core.superres.Upscale(converted, model=VIDEO_MODEL, device="cpu")
    assert (out.width, out.height, out.format.name) == (64, 2 * height, "RGBS")
    assert np.isfinite(np.asarray(out.get_frame(0)[0])).all()


def test_a_variable_format_clip_gets_a_hint_for_every_part():
    mixed = vs.core.std.Splice([vs.core.std.BlankClip(width=32, height=24, format=vs.RGBS, length=2),
                                vs.core.std.BlankClip(width=32, height=24, format=vs.YUV420P8, length=2)], mismatch=True)
    msg = error_of(vs.core.superres.Upscale, mixed, model=VIDEO_MODEL)
    assert "variable format" in msg and "convert every part to one format" in msg


def test_float_rgb_holding_8_bit_codes_gets_the_script_fix():
    codes = vs.core.std.BlankClip(width=32, height=24, format=vs.RGBS, length=2, color=[200.0, 100.0, 50.0])
    msg = error_of(vs.core.superres.Upscale, codes, model=VIDEO_MODEL, device="cpu")
    assert "float frames must be in [0, 1]" in msg and "unscaled integer data" in msg
    assert msg.endswith(RANGE_HINT), msg
    assert "divide it by its peak value" not in msg  # the engine's array advice is replaced
    fixed = follow(RANGE_HINT, codes)
    frame = vs.core.superres.Upscale(fixed, model=VIDEO_MODEL, device="cpu").get_frame(0)
    np.testing.assert_allclose(np.asarray(frame[0])[0, 0], 200.0 / 255.0, rtol=1e-6)


def test_option_errors_use_keyword_spelling():
    clip = vs.core.std.BlankClip(width=32, height=24, format=vs.RGBS, length=2)
    msg = error_of(vs.core.superres.Upscale, clip, model=VIDEO_MODEL, tile=-3)
    assert "tile must be >= 0, got -3" in msg and "--tile" not in msg
