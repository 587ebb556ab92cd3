"""core.superres.UltraVSR on a tiny UltraVSR release, in real VapourSynth and vspipe.

The release (``conftest.ultravsr_release``) is written from a fixed seed and loads through the
same code as the real one; its weights are random, so these tests check what the host adds:
requests reaching the engine's temporal windows and per-clip state, scene cuts, formats,
frame properties and error messages. The reference is always the engine itself
(``Upscaler(...).upscale``) on the same frames. Frames are tiny (16x20 input) because the tiny
VAE is slow at larger sizes on a small CPU.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
import vapoursynth as vs

from vs_superres import Upscaler
from vs_superres.contracts.errors import SuperResError
from vs_superres.numerics.resample import upscale_bicubic
from vs_superres.vapoursynth.bridge import convert_hint

H, W = 16, 20  # input frame size; output is 64x80
STRENGTH = 0.3
# The plugin renders frame by frame (random access), upscale() streams: the same windows and
# crossfades, summed in another order.
TOL = dict(rtol=0, atol=1e-5)


def options(release, kw):
    """UltraVSR arguments: the release, a fixed strength unless told otherwise (None drops it)."""
    kw = {"strength": STRENGTH, **release, **kw}
    return {k: v for k, v in kw.items() if v is not None}


def ultravsr(clip, release, **kw):
    return vs.core.superres.UltraVSR(clip, **{"device": "cpu", **options(release, kw)})


def engine(release, **kw) -> Upscaler:
    return Upscaler("ultravsr", **{"device": "cpu", **options(release, kw)})


def engine_upscale(up: Upscaler, frames: np.ndarray, cuts=()) -> np.ndarray:
    """The engine's streaming output for ``[T, H, W, 3]`` frames, as ``[T, 3, 4H, 4W]``."""
    x = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
    starts = [i in cuts for i in range(len(frames))] if cuts else None
    return up.upscale(x, scene_starts=starts).numpy()


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(vs.Error) as info:
        fn(*args, **kwargs)
    text = str(info.value)
    assert "Traceback" not in text and 'File "' not in text, text
    return text


# ------------------------------------------------------------------ frames


def test_matches_the_engine_and_keeps_frame_properties(ultravsr_release, photo, clip_from_frames, to_array):
    frames = photo(9, H, W)  # window 4, overlap 1: windows at 0, 3, 6, every frame crossfaded or not
    clip = vs.core.std.SetFrameProps(
        clip_from_frames(frames), _Matrix=1, _Transfer=1, _Primaries=1, _Range=0, _ChromaLocation=0,
        _SARNum=4, _SARDen=3, Custom="kept",
    )
    up = ultravsr(clip, ultravsr_release, window=4, window_overlap=1)
    assert (up.width, up.height, up.num_frames, up.format.id) == (4 * W, 4 * H, 9, vs.RGBS)
    assert (up.fps_num, up.fps_den) == (clip.fps_num, clip.fps_den)
    got = to_array(up)
    want = engine_upscale(engine(ultravsr_release, window=4, window_overlap=1), frames)
    np.testing.assert_allclose(got, want, **TOL)
    # The networks ran: the output is neither blank nor the bicubic pre-upscale.
    x = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
    assert got.std() > 0.05 and np.abs(got - upscale_bicubic(x, 4).clamp(0, 1).numpy()).mean() > 0.01
    # Every property of source frame n is kept. Both axes scale by 4, so the sample aspect
    # ratio (the shape of one pixel) is unchanged: 4:3 in, 4:3 out.
    for n in (0, 4, 8):
        assert dict(up.get_frame(n).props) == dict(clip.get_frame(n).props)
    assert (up.get_frame(4).props["_SARNum"], up.get_frame(4).props["_SARDen"]) == (4, 3)


def test_clip_iqa_estimate_in_any_request_order(ultravsr_release, clip_iqa_weights, photo, clip_from_frames, to_array, frame_array):
    """Without a strength, d comes from CLIP-IQA on frames 0 and 20 (the released sampling rule
    for 21 frames), whichever frame is asked for first."""
    frames = photo(21, H, W)
    kw = dict(strength=None, clip_iqa=clip_iqa_weights, window=4, window_overlap=1)
    up = engine(ultravsr_release, **kw)
    assert up.frames_needed(10, 21) == [0, 9, 10, 11, 12, 20]  # window 3 plus the scored frames
    want = engine_upscale(up, frames)

    sequential = to_array(ultravsr(clip_from_frames(frames), ultravsr_release, **kw))
    np.testing.assert_allclose(sequential, want, **TOL)

    threads = vs.core.num_threads
    vs.core.num_threads = 4
    try:
        # Frame 10 first: its windows hold neither scored frame, so the plugin must fetch them.
        order = [n for n in range(21) if n != 10]
        random.Random(7).shuffle(order)
        clip = ultravsr(clip_from_frames(frames), ultravsr_release, **kw)
        futures = {n: clip.get_frame_async(n) for n in [10, *order]}
        parallel = np.stack([frame_array(futures[n].result()) for n in range(21)])
    finally:
        vs.core.num_threads = threads
    np.testing.assert_allclose(parallel, want, **TOL)
    # The estimate is not some default: a fixed strength gives other frames.
    fixed = to_array(ultravsr(clip_from_frames(frames[:4]), ultravsr_release, window=4, window_overlap=1))
    assert np.abs(fixed - want[:4]).max() > 1e-3


def test_scene_cuts_keep_scenes_apart(ultravsr_release, photo, clip_from_frames, to_array):
    frames = photo(10, H, W)
    other = frames.copy()
    other[5:] = 1.0 - other[5:]  # another second scene
    cut, kw = {5}, dict(window=4, window_overlap=1)  # window 1 (frames 3..6) crosses the cut
    a = to_array(ultravsr(clip_from_frames(frames, cuts=cut), ultravsr_release, **kw))
    b = to_array(ultravsr(clip_from_frames(other, cuts=cut), ultravsr_release, **kw))
    np.testing.assert_allclose(a[:5], b[:5], rtol=0, atol=1e-6)  # scene 1 never saw scene 2
    want = engine_upscale(engine(ultravsr_release, **kw), frames, cuts=cut)
    np.testing.assert_allclose(a, want, **TOL)
    # Without the cut, scene 2 leaks into frames 3 and 4 through window 1.
    c = to_array(ultravsr(clip_from_frames(other), ultravsr_release, **kw))
    np.testing.assert_allclose(a[:3], c[:3], rtol=0, atol=1e-6)
    assert np.abs(a[3:5] - c[3:5]).max() > 1e-3


def test_clip_shorter_than_a_window(ultravsr_release, photo, clip_from_frames, to_array):
    frames = photo(3, H, W)
    up = ultravsr(clip_from_frames(frames), ultravsr_release)  # the default window is 30 frames
    assert up.num_frames == 3
    np.testing.assert_allclose(to_array(up), engine_upscale(engine(ultravsr_release), frames), **TOL)
    single = to_array(ultravsr(clip_from_frames(frames[:1]), ultravsr_release, window=4, window_overlap=2))
    np.testing.assert_allclose(single, engine_upscale(engine(ultravsr_release), frames[:1]), **TOL)


def test_rgbh_in_rgbh_out(ultravsr_release, photo, clip_from_frames, to_array):
    frames = photo(4, H, W)
    notes = []
    handle = vs.core.add_log_handler(lambda level, msg: notes.append(msg))
    try:
        up = ultravsr(clip_from_frames(frames, fmt=vs.RGBH), ultravsr_release, window=4)
    finally:
        vs.core.remove_log_handler(handle)
    assert up.format.id == vs.RGBH and (up.width, up.height) == (4 * W, 4 * H)
    got = to_array(up)
    # The fp32 result of the same half-precision input, rounded to half (one half-precision
    # step at most where the two sums round differently).
    halves = frames.astype(np.float16).astype(np.float32)
    want = engine_upscale(engine(ultravsr_release, window=4), halves).astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(got, want, rtol=0, atol=2 ** -11)
    assert np.mean(got == want) > 0.99
    if not torch.cuda.is_available():
        assert any("superres.UltraVSR: RGBH input is computed in fp32 on cpu" in m for m in notes), notes


def test_options_reach_the_engine(ultravsr_release, photo, clip_from_frames, to_array):
    """Every option changes the output exactly as it does in the engine; 0/1 become booleans."""
    frames = photo(2, H, W)
    kw = dict(prompt="a cat", color_fix="adain", sample_latent=1, seed=3, merge_lora=1, frames_per_batch=2,
              unet_tile=8, unet_overlap=4, decoder_tile=8, decoder_overlap=4, encoder_tile=64, encoder_overlap=32,
              tile_grid="balanced", strength=0.5)
    got = to_array(ultravsr(clip_from_frames(frames), ultravsr_release, **kw))
    want = engine_upscale(engine(ultravsr_release, **dict(kw, sample_latent=True, merge_lora=True)), frames)
    np.testing.assert_allclose(got, want, **TOL)
    default = engine_upscale(engine(ultravsr_release), frames)
    assert np.abs(got - default).max() > 1e-3


# ------------------------------------------------------------------ errors at creation


def rgbs(length=4):
    return vs.core.std.BlankClip(width=W, height=H, format=vs.RGBS, length=length, color=[0.2, 0.4, 0.6])


# Engine errors arrive intact: "superres.UltraVSR: " + the engine's own message.
ENGINE_ERRORS = [
    (dict(strength=0.0), "strength must be a number in (0, 1]"),
    (dict(strength=1.5), "strength must be a number in (0, 1], got 1.5"),
    (dict(color_fix="lab"), "color_fix must be one of wavelet, adain, none, got 'lab'"),
    (dict(tile_grid="square"), "tile_grid must be one of balanced, official, got 'square'"),
    (dict(unet_tile=16, unet_overlap=16), "unet_overlap must be less than unet_tile (16), got 16"),
    (dict(encoder_tile=100), "encoder_tile must be an integer >= 64, a multiple of 8, got 100"),
    (dict(frames_per_batch=0), "frames_per_batch must be an integer >= 1, got 0"),
    (dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(window=0), "window must be >= 1, got 0"),
    (dict(window=4, window_overlap=4), "window_overlap must be in [0, 3], got 4"),
    (dict(clip_iqa="RN50.safetensors"), "pass either strength (a fixed degradation factor) or clip_iqa"),
    (dict(dtype="fp64"), "unknown dtype 'fp64'; allowed: fp32, fp16, bf16"),
    (dict(device="tpu"), "unknown device 'tpu'"),
]


@pytest.mark.parametrize("kwargs, expected", ENGINE_ERRORS, ids=[",".join(k) for k, _ in ENGINE_ERRORS])
def test_bad_values_fail_at_creation_with_the_engines_message(ultravsr_release, kwargs, expected):
    msg = error_of(ultravsr, rgbs(), ultravsr_release, **kwargs)
    assert msg.startswith("superres.UltraVSR: ") and expected in msg, msg
    with pytest.raises(SuperResError) as engine_error:
        engine(ultravsr_release, **kwargs)
    assert msg == f"superres.UltraVSR: {engine_error.value}"


@pytest.mark.parametrize("name, value", [("sample_latent", 2), ("merge_lora", -1)])
def test_boolean_options_are_0_or_1(ultravsr_release, name, value):
    msg = error_of(ultravsr, rgbs(), ultravsr_release, **{name: value})
    assert msg == f"superres.UltraVSR: {name} must be 0 or 1 (False or True), got {value}"


def test_engine_tiling_is_refused_with_the_models_own_options(ultravsr_release):
    # UltraVSR's signature has no tile: VapourSynth itself names the argument.
    msg = error_of(ultravsr, rgbs(), ultravsr_release, tile=64)
    assert "UltraVSR" in msg and "argument(s) named tile" in msg, msg
    # Through Upscale, which takes every argument, the engine says what to use instead.
    msg = error_of(vs.core.superres.Upscale, rgbs(), model="ultravsr", device="cpu", tile=64, **options(ultravsr_release, {}))
    assert msg.startswith("superres.Upscale: tile and overlap do not apply to ultravsr: it tiles by itself")
    assert "unet_tile, unet_overlap, decoder_tile, decoder_overlap, encoder_tile, encoder_overlap, tile_grid" in msg


def test_missing_files_are_named(ultravsr_release, tmp_path):
    nowhere = tmp_path / "nowhere"
    msg = error_of(ultravsr, rgbs(), ultravsr_release, base=str(nowhere))
    assert msg.startswith(f"superres.UltraVSR: base model folder {nowhere} does not exist.")
    assert "stable-diffusion-2-1-base" in msg and "hf download" in msg
    (tmp_path / "half").mkdir()
    msg = error_of(ultravsr, rgbs(), ultravsr_release, base=str(tmp_path / "half"))
    assert msg.startswith(f"superres.UltraVSR: base model folder {tmp_path / 'half'} lacks [") and "'unet'" in msg, msg
    missing = tmp_path / "missing.pkl"
    msg = error_of(ultravsr, rgbs(), ultravsr_release, checkpoint=str(missing))
    assert msg.startswith(f"superres.UltraVSR: checkpoint {str(missing)!r} does not exist."), msg
    assert "github.com/yongliuy/UltraVSR" in msg, msg
    msg = error_of(ultravsr, rgbs(), ultravsr_release, clip_iqa=str(tmp_path / "RN50.safetensors"), strength=None)
    assert msg.startswith("superres.UltraVSR: ") and f"{tmp_path / 'RN50.safetensors'}' does not exist" in msg, msg


def test_no_strength_and_no_clip_weights_names_both_ways_out(ultravsr_release, tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    msg = error_of(ultravsr, rgbs(), ultravsr_release, strength=None)
    assert msg.startswith("superres.UltraVSR: UltraVSR needs the clip's degradation factor d: pass strength=D")
    assert "clip_iqa=PATH" in msg and "clip/RN50.safetensors" in msg


def test_frames_too_small_fail_at_creation(ultravsr_release):
    tiny = vs.core.std.BlankClip(width=3, height=8, format=vs.RGBS, length=2)
    msg = error_of(ultravsr, tiny, ultravsr_release)
    assert msg == ("superres.UltraVSR: ultravsr needs frames of at least 4x4 pixels, got 3x8; "
                   "enlarge tiny clips with a classical resizer first")


@pytest.mark.parametrize("fmt", [vs.YUV420P8, vs.RGB24, vs.GRAYS, vs.YUV444PS])
def test_formats_other_than_rgbs_and_rgbh_are_refused(ultravsr_release, fmt):
    clip = vs.core.std.BlankClip(width=W, height=H, format=fmt, length=4)
    name = vs.core.get_video_format(fmt).name
    msg = error_of(ultravsr, clip, ultravsr_release)
    assert msg == f"superres.UltraVSR: only RGBS and RGBH clips are supported, got {name}; {convert_hint(name, H)}"


def test_other_families_are_refused(ditn_model):
    msg = error_of(vs.core.superres.UltraVSR, rgbs(), model=ditn_model, device="cpu")
    assert msg.startswith("superres.UltraVSR: ") and "not an UltraVSR model" in msg, msg
    assert "core.superres.Upscale(clip, model=" in msg


# ------------------------------------------------------------------ vspipe


def test_vspipe_start_parallel_and_a_clean_y4m_stream(tmp_path, ultravsr_release, photo, write_script, vspipe, run_cmd, read_y4m):
    frames = photo(10, H, W)
    np.save(tmp_path / "frames.npy", frames)
    args = options(ultravsr_release, dict(window=4, window_overlap=1))
    body = (f"clip = clip_from_frames(np.load({str(tmp_path / 'frames.npy')!r}), cuts={{7}})\n"
            f"up = core.superres.UltraVSR(clip, device='cpu', **{args!r})\n")
    raw = write_script(body + "up.set_output()\n", "raw.vpy")
    runs = {}
    for name, flags in {"sequential": ["-r", "1"], "start4": ["-r", "1", "--start", "4", "--end", "8"],
                        "parallel": ["-r", "4"]}.items():
        out = tmp_path / f"{name}.raw"
        r = run_cmd([vspipe, *flags, str(raw), str(out)], timeout=300)
        assert r.returncode == 0, (name, r.stderr.decode())
        assert not r.stdout, r.stdout[:200]  # nothing printed
        runs[name] = np.frombuffer(out.read_bytes(), dtype=np.float32).reshape(-1, 3, 4 * H, 4 * W)
    assert len(runs["sequential"]) == 10 and len(runs["start4"]) == 5
    np.testing.assert_array_equal(runs["start4"], runs["sequential"][4:9])
    np.testing.assert_array_equal(runs["parallel"], runs["sequential"])

    # To stdout as y4m with 4 requests in flight and 4 threads: no deadlock, and the stream is
    # nothing but video (a stray print from a library would break the header or a frame).
    y4m = write_script("core.num_threads = 4\n" + body
                       + 'core.resize.Bicubic(up, format=vs.YUV444P8, matrix_s="709").set_output()\n', "y4m.vpy")
    # Two torch threads inside each of VapourSynth's threads (OpenMP teams per thread); passive
    # waiting keeps OpenMP from spinning against the other requests on a small machine.
    env = dict(os.environ, OMP_NUM_THREADS="2", OMP_WAIT_POLICY="PASSIVE")
    r = run_cmd([vspipe, "-r", "4", "-c", "y4m", str(y4m), "-"], timeout=300, env=env)
    assert r.returncode == 0, r.stderr.decode()
    fields, payloads = read_y4m(r.stdout)
    assert (fields["W"], fields["H"], fields["C"]) == (str(4 * W), str(4 * H), "444")
    assert len(payloads) == 10 and all(len(p) == 3 * 4 * W * 4 * H for p in payloads)
