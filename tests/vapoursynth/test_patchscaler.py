"""core.superres.PatchScaler on a tiny PatchScaler release, in real VapourSynth.

No PatchScaler weights exist, so the release is ``models/patchscaler/tiny.py``'s: random weights
loaded through the real loader (the real checkpoint format, a real diffusers AutoencoderKL
folder). These tests check what the host adds on top of the engine: the function exists with
the declared options and types, its frames are the engine's bit for bit (one torch thread;
tests/vapoursynth/conftest.py also sets OMP_NUM_THREADS=1), options reach the engine, and user
errors arrive as the engine's own message behind the function's prefix. Frames are 32x40 (a
16x20 latent: two overlapping 16x16 patches), two of them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import vapoursynth as vs

from vs_superres import Upscaler
from vs_superres.contracts.errors import SuperResError, WeightsError
from vs_superres.models.patchscaler.options import OPTIONS
from vs_superres.numerics.resample import upscale_bicubic
from vs_superres.vapoursynth.signatures import function_options, vs_type

H, W = 32, 40  # output 128x160
FRAMES = 2


@pytest.fixture(autouse=True)
def _one_thread(torch_threads):
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> dict[str, str]:
    from vs_superres.models.patchscaler.tiny import write_tiny_release

    ckpt, vae = write_tiny_release(tmp_path_factory.mktemp("patchscaler"))
    return {"checkpoint": str(ckpt), "autoencoder": str(vae)}


def patchscaler(clip, release, **kw):
    return vs.core.superres.PatchScaler(clip, **{"device": "cpu", **release, **kw})


def engine(release, **kw) -> Upscaler:
    return Upscaler("patchscaler-x4", **{"device": "cpu", **release, **kw})


def as_tensor(frames: np.ndarray) -> torch.Tensor:
    """``[T, H, W, 3]`` numpy frames as the engine's ``[T, 3, H, W]``."""
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(vs.Error) as info:
        fn(*args, **kwargs)
    text = str(info.value)
    assert "Traceback" not in text and 'File "' not in text, text
    return text


def rgbs(length=FRAMES, width=W, height=H):
    return vs.core.std.BlankClip(width=width, height=height, format=vs.RGBS, length=length, color=[0.2, 0.4, 0.6])


# ------------------------------------------------------------------ the function and its signature


def test_signature_lists_the_declared_options_with_their_types():
    fn = {f.name: f for f in vs.core.superres.functions()}["PatchScaler"]
    parts = [p.split(":") for p in fn.signature.rstrip(";").split(";")]
    assert parts[0] == ["clip", "vnode"] and parts[1] == ["model", "data", "opt"], fn.signature
    assert all(p[2:] == ["opt"] for p in parts[1:]), fn.signature
    registered = {p[0]: p[1] for p in parts[2:]}
    assert list(registered) == list(function_options("PatchScaler").names())
    # Every option PatchScaler declares, typed as VapourSynth has it (no bool, no path).
    for opt in OPTIONS:
        assert registered.get(opt.name) == vs_type(opt), (opt.name, registered.get(opt.name), opt.type)
    # Written out, so that a wrong type in the declaration (or the mapping) fails here too.
    for name, kind in {"checkpoint": "data", "autoencoder": "data", "devices": "data", "patch_stride": "int",
                       "gamma_simple": "float", "gamma_medium": "float", "tau_simple": "int", "tau_hard": "int",
                       "steps_simple": "int", "steps_hard": "int", "patches_per_batch": "int", "seed": "int",
                       "color_fix": "data", "device": "data", "dtype": "data"}.items():
        assert registered[name] == kind, (name, registered[name])
    # PatchScaler tiles by its own patch grid and is an image model: no engine tiles, no windows.
    assert not {"tile", "overlap", "window", "window_overlap", "batch"} & set(registered), registered


# ------------------------------------------------------------------ frames


def test_frames_equal_the_engine_bit_for_bit(release, photo, clip_from_frames, to_array, frame_array):
    frames = photo(FRAMES, H, W)
    clip = vs.core.std.SetFrameProps(clip_from_frames(frames), _Matrix=0, Custom="kept")
    up = patchscaler(clip, release)
    assert (up.width, up.height, up.num_frames, up.format.id) == (4 * W, 4 * H, FRAMES, vs.RGBS)
    assert (up.fps_num, up.fps_den) == (clip.fps_num, clip.fps_den)
    # Frame 1 first: an image model's frame depends on its own input only, whatever the order.
    got = np.stack([frame_array(up.get_frame(n)) for n in (1, 0)][::-1])
    eng = engine(release)
    x = as_tensor(frames)
    want = eng.upscale(x).numpy()
    np.testing.assert_array_equal(got, want)
    for n in range(FRAMES):  # the host's path through the engine, frame by frame
        np.testing.assert_array_equal(got[n], eng.render_frame(n, FRAMES, {n: x[n]}).numpy())
    np.testing.assert_array_equal(to_array(up), got)  # asked again: the same frames
    # The networks ran: neither blank nor the bicubic pre-upscale.
    assert got.std() > 0.05 and np.abs(got - upscale_bicubic(x, 4).clamp(0, 1).numpy()).mean() > 1e-3
    assert dict(up.get_frame(1).props) == dict(clip.get_frame(1).props)


def test_options_reach_the_engine(release, photo, clip_from_frames, to_array):
    """Grouping thresholds, schedule, stride, batch, seed and colour fix: the plugin's frames are
    the engine's with the same options, and differ from the defaults'."""
    frames = photo(FRAMES, H, W)
    kw = dict(gamma_simple=0.3, gamma_medium=0.1, tau_simple=300, tau_medium=500, tau_hard=800, steps_simple=3,
              steps_medium=4, steps_hard=5, patch_stride=4, patches_per_batch=2, seed=3, color_fix="adain")
    got = to_array(patchscaler(clip_from_frames(frames), release, **kw))
    eng = engine(release, **kw)
    want = eng.upscale(as_tensor(frames)).numpy()
    np.testing.assert_array_equal(got, want)
    # The thresholds took effect: with gamma1 = 0.3 the tiny GRM's confidence (about 0.5) is simple.
    assert eng._runner.last_run.group_sizes["simple"] > 0, eng._runner.last_run
    default = engine(release).upscale(as_tensor(frames)).numpy()
    assert np.abs(got - default).max() > 1e-3


# ------------------------------------------------------------------ errors at creation


# "superres.PatchScaler: " + the engine's own message, for each kind of check.
ENGINE_ERRORS = [
    (dict(gamma_simple=2.0), "gamma_simple must be a number in [0, 1], got 2.0"),
    (dict(gamma_simple=0.5, gamma_medium=0.6), "gamma_medium (0.6) must be less than gamma_simple (0.5)"),
    (dict(tau_simple=900), "tau_simple <= tau_medium <= tau_hard is required"),
    (dict(steps_simple=0), "steps_simple must be an integer"),
    (dict(tau_simple=4, steps_simple=8), "steps_simple (8) cannot exceed tau_simple (4)"),
    (dict(color_fix="lab"), "color_fix must be one of wavelet, adain, none, got 'lab'"),
    (dict(devices="gpu7"), "devices: 'gpu7' is not a device"),
    (dict(dtype="fp16"), "fp16"),
]


@pytest.mark.parametrize("kwargs, expected", ENGINE_ERRORS, ids=[",".join(f"{k}={v}" for k, v in kw.items()) for kw, _ in ENGINE_ERRORS])
def test_bad_values_fail_at_creation_with_the_engines_message(release, kwargs, expected):
    msg = error_of(patchscaler, rgbs(), release, **kwargs)
    assert msg.startswith("superres.PatchScaler: ") and expected in msg, msg
    with pytest.raises(SuperResError) as engine_error:
        engine(release, **kwargs)
    assert msg == f"superres.PatchScaler: {engine_error.value}"


def test_missing_autoencoder_names_the_file_the_places_and_the_option(release, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    msg = error_of(patchscaler, rgbs(), {"checkpoint": release["checkpoint"]})
    assert msg.startswith("superres.PatchScaler: weight file 'sd-vae-ft-mse' was not found"), msg
    assert str(empty / "sd-vae-ft-mse") in msg and "stabilityai/sd-vae-ft-mse" in msg, msg
    assert "autoencoder=PATH" in msg, msg  # the keyword spelling a script uses
    with pytest.raises(WeightsError) as engine_error:
        engine({"checkpoint": release["checkpoint"]})
    assert msg == f"superres.PatchScaler: {engine_error.value}"
    # And the checkpoint, which nobody has released: the same search, its own option.
    msg = error_of(patchscaler, rgbs(), {"autoencoder": release["autoencoder"]})
    assert msg.startswith("superres.PatchScaler: weight file 'patchscaler/patchscaler-x4.safetensors' was not found"), msg
    assert "checkpoint=PATH" in msg, msg


def test_bad_files_are_named(release, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = error_of(patchscaler, rgbs(), release, autoencoder=str(empty))
    assert msg.startswith(f"superres.PatchScaler: autoencoder folder {empty} has no config.json."), msg
    assert "stabilityai/sd-vae-ft-mse" in msg and "autoencoder=DIR" in msg, msg
    msg = error_of(patchscaler, rgbs(), release, checkpoint=release["autoencoder"])  # a folder, not the file
    assert msg.startswith(f"superres.PatchScaler: {release['autoencoder']} is not a PatchScaler checkpoint"), msg
    assert "checkpoint=PATH" in msg, msg


def test_tiles_windows_and_small_frames_are_refused(release):
    msg = error_of(patchscaler, rgbs(), release, tile=64)  # not in the signature: VapourSynth says so
    assert "PatchScaler" in msg and "argument(s) named tile" in msg, msg
    msg = error_of(vs.core.superres.Upscale, rgbs(), model="patchscaler-x4", device="cpu", tile=64, **release)
    assert msg.startswith("superres.Upscale: tile and overlap do not apply") and "patch_stride" in msg, msg
    msg = error_of(patchscaler, rgbs(width=3, height=8), release)
    assert msg.startswith("superres.PatchScaler: ") and "at least 4x4 pixels" in msg and "got 3x8" in msg, msg


def test_other_families_are_refused(release):
    msg = error_of(vs.core.superres.PatchScaler, rgbs(), model="temporal-mean-x2", device="cpu")
    assert msg.startswith("superres.PatchScaler: model 'temporal-mean-x2' is a ") and "not a PatchScaler model" in msg, msg
    assert "patchscaler-x4" in msg and "core.superres.Upscale(clip, model=" in msg, msg
