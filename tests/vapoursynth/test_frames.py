"""Frames through core.superres equal the engine's own output, in any request order."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import vapoursynth as vs

from vs_superres import Upscaler

VIDEO_MODEL = "temporal-mean-x2"


def engine_render(up: Upscaler, frames: np.ndarray, cuts=()) -> np.ndarray:
    """The engine's random-access output for every frame, as the plugin should produce it."""
    t = len(frames)
    tensors = {i: torch.from_numpy(np.ascontiguousarray(frames[i].transpose(2, 0, 1))) for i in range(t)}
    scene_start = {i: i in cuts for i in range(t)}
    out = []
    for n in range(t):
        needed = up.frames_needed(n, t)
        out.append(up.render_frame(n, t, {i: tensors[i] for i in needed}, scene_start).numpy())
    return np.stack(out)


def test_ditn_matches_the_engine_exactly(ditn_model, photo, clip_from_frames, to_array):
    frames = photo(2, 40, 56)
    up = vs.core.superres.DITN(clip_from_frames(frames), model=ditn_model, device="cpu", tile=0)
    assert (up.width, up.height) == (224, 160)
    got = to_array(up)
    want = engine_render(Upscaler(ditn_model, device="cpu", tile=0), frames)
    np.testing.assert_array_equal(got, want)
    # And it is a real upscale of the photo, not a blank or shifted image.
    small = torch.nn.functional.avg_pool2d(torch.from_numpy(got), 4).numpy()
    assert np.abs(small - frames.transpose(0, 3, 1, 2)).mean() < 0.03


def test_ditn_tiled_matches_the_engine(ditn_model, photo, clip_from_frames, to_array):
    frames = photo(1, 48, 64)
    up = vs.core.superres.DITN(clip_from_frames(frames), model=ditn_model, device="cpu", tile=32, overlap=8)
    want = engine_render(Upscaler(ditn_model, device="cpu", tile=32, overlap=8), frames)
    np.testing.assert_array_equal(to_array(up), want)


@pytest.mark.parametrize("threads", [1, 4])
def test_video_model_matches_the_engine_in_any_request_order(threads, photo, clip_from_frames, frame_array):
    frames = photo(13, 24, 32)
    vs.core.num_threads = threads
    want = engine_render(Upscaler(VIDEO_MODEL, device="cpu"), frames)
    order = list(range(13))
    random.Random(threads).shuffle(order)
    up = vs.core.superres.Upscale(clip_from_frames(frames), model=VIDEO_MODEL, device="cpu")
    got = {n: frame_array(up.get_frame(n)) for n in order}
    for n in range(13):
        np.testing.assert_array_equal(got[n], want[n], err_msg=f"frame {n}")
    # Concurrent requests from VapourSynth's own scheduler, too.
    up2 = vs.core.superres.Upscale(clip_from_frames(frames), model=VIDEO_MODEL, device="cpu")
    futures = [(n, up2.get_frame_async(n)) for n in reversed(range(13))]
    for n, fut in futures:
        np.testing.assert_array_equal(frame_array(fut.result()), want[n], err_msg=f"frame {n}")


def test_video_matches_streaming_upscale(photo, clip_from_frames, to_array):
    frames = photo(11, 24, 32)
    got = to_array(vs.core.superres.Upscale(clip_from_frames(frames), model=VIDEO_MODEL, device="cpu", window=4, window_overlap=1))
    x = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
    want = Upscaler(VIDEO_MODEL, device="cpu", window=4, window_overlap=1).upscale(x).numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_scene_cuts_keep_scenes_apart(photo, clip_from_frames, to_array):
    frames = photo(13, 24, 32)
    other = frames.copy()
    other[6:] = 1.0 - other[6:]  # a different second scene
    cut = {6}
    a = to_array(vs.core.superres.Upscale(clip_from_frames(frames, cuts=cut), model=VIDEO_MODEL, device="cpu"))
    b = to_array(vs.core.superres.Upscale(clip_from_frames(other, cuts=cut), model=VIDEO_MODEL, device="cpu"))
    np.testing.assert_array_equal(a[:6], b[:6])  # scene 1 never saw scene 2
    want = engine_render(Upscaler(VIDEO_MODEL, device="cpu"), frames, cuts=cut)
    np.testing.assert_array_equal(a, want)
    # Without the cut, scene 2 leaks into the windows that cross it.
    c = to_array(vs.core.superres.Upscale(clip_from_frames(other), model=VIDEO_MODEL, device="cpu"))
    assert not np.array_equal(a[:6], c[:6])


def test_scene_change_next_on_the_previous_frame(photo, clip_from_frames, to_array):
    frames = photo(9, 16, 16)
    prev_style = to_array(vs.core.superres.Upscale(clip_from_frames(frames, cuts={4}), model=VIDEO_MODEL, device="cpu"))
    clip = clip_from_frames(frames)
    marked = vs.core.std.FrameEval(
        clip, lambda n, c=clip: vs.core.std.SetFrameProps(c, _SceneChangeNext=1) if n == 3 else c
    )
    next_style = to_array(vs.core.superres.Upscale(marked, model=VIDEO_MODEL, device="cpu"))
    np.testing.assert_array_equal(prev_style, next_style)


def test_clip_shorter_than_a_window(photo, clip_from_frames, to_array):
    frames = photo(3, 16, 24)
    up = vs.core.superres.Upscale(clip_from_frames(frames), model=VIDEO_MODEL, device="cpu")
    assert up.num_frames == 3
    got = to_array(up)
    x = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(got, Upscaler(VIDEO_MODEL, device="cpu").upscale(x).numpy(), atol=1e-6)
    single = to_array(vs.core.superres.Upscale(clip_from_frames(frames[:1]), model=VIDEO_MODEL, device="cpu"))
    assert single.shape == (1, 3, 32, 48)


def test_rgbh_in_rgbh_out(photo, clip_from_frames, to_array):
    frames = photo(5, 16, 24)
    notes = []
    handle = vs.core.add_log_handler(lambda level, msg: notes.append(msg))
    try:
        up = vs.core.superres.Upscale(clip_from_frames(frames, fmt=vs.RGBH), model=VIDEO_MODEL, device="cpu")
    finally:
        vs.core.remove_log_handler(handle)
    assert up.format.id == vs.RGBH
    got = to_array(up)
    # The fp32 result of the same half-precision input, rounded to half.
    halves = frames.astype(np.float16).astype(np.float32)
    want = engine_render(Upscaler(VIDEO_MODEL, device="cpu"), halves).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    if not torch.cuda.is_available():
        assert any("RGBH input is computed in fp32 on cpu" in m for m in notes), notes


def test_limited_range_video_with_super_whites_is_upscaled_as_converted(to_array):
    """The conversion the plugin's own hint recommends gives values outside [0, 1] for normal
    video (super-whites, out-of-gamut chroma); they are clipped like the CLI's, not refused."""
    # YUV is limited range unless tagged otherwise: Y=250 is a super-white, Cr=250 out of gamut.
    yuv = vs.core.std.BlankClip(width=32, height=24, format=vs.YUV420P8, length=3, color=[250, 128, 250])
    rgb = vs.core.resize.Bicubic(yuv, format=vs.RGBS, matrix_in_s="709")
    values = to_array(rgb)
    assert values.max() > 1.05  # the legal conversion really overshoots
    got = to_array(vs.core.superres.Upscale(rgb, model=VIDEO_MODEL, device="cpu"))
    clipped = values.transpose(0, 2, 3, 1).clip(0, 1)
    want = engine_render(Upscaler(VIDEO_MODEL, device="cpu"), clipped)
    np.testing.assert_array_equal(got, want)
