"""The engine's user-facing contract: frames, devices, precisions, models, DITN end to end."""

import numpy as np
import pytest
import torch

from vs_superres import Upscaler
from vs_superres.contracts.errors import Cancelled, SuperResError, WeightsError
from vs_superres.contracts.frames import as_frames
from vs_superres.runtime.registry import get_model, list_models


# ----------------------------------------------------------------------------- frames
def test_as_frames_layouts():
    hwc = np.random.rand(5, 7, 3).astype(np.float32)
    t = as_frames(hwc)
    assert t.shape == (1, 3, 5, 7)
    torch.testing.assert_close(t[0, :, 2, 3], torch.from_numpy(hwc[2, 3]))
    assert as_frames(torch.rand(4, 3, 5, 7)).shape == (4, 3, 5, 7)
    assert as_frames(torch.rand(4, 5, 7, 3)).shape == (4, 3, 5, 7)
    u8 = np.full((2, 2, 3), 255, np.uint8)
    assert float(as_frames(u8).max()) == 1.0
    u16 = np.full((2, 2, 3), 1023, np.uint16)
    assert float(as_frames(u16, bit_depth=10).max()) == 1.0


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((5, 7, 4), np.float32), "expected 3-channel RGB frames.*4 channels"),
        (np.zeros((5, 7), np.float32), r"must be \[H, W, C\]"),
        (np.zeros((0, 7, 3), np.float32), "empty"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (np.full((4, 4, 3), 255.0, np.float32), r"must be in \[0, 1\].*divide it by its peak value \(255 for 8-bit"),
        (np.zeros((4, 4, 3), np.uint16), "need their bit depth.*pass bit_depth=10"),
        (np.zeros((4, 4, 3), bool), "unsupported frame dtype"),
        ("a string", "numpy array or a torch tensor"),
    ],
)
def test_as_frames_rejects_bad_input(bad, match):
    with pytest.raises(SuperResError, match=match):
        as_frames(bad)


def test_floats_from_legal_conversions_are_clipped_not_refused():
    """Limited-range YUV with super-whites and out-of-gamut chroma gives RGB outside [0, 1]."""
    x = np.array([[[1.068, -0.2, 0.5], [1.98, -1.13, 0.0]]], np.float32)
    got = as_frames(x)
    assert torch.equal(got, torch.from_numpy(x).permute(2, 0, 1)[None].clamp(0, 1))


# ----------------------------------------------------------------------------- arguments
def test_unknown_model_suggests_names():
    with pytest.raises(SuperResError, match="unknown model 'ditn-real-x3'.*Did you mean ditn-real-x4"):
        get_model("ditn-real-x3")


def test_registry_describes_models():
    d = get_model("ditn-real-x4")
    assert (d.scale, d.kind, d.alignment, d.licence) == (4, "image", 8, "Apache-2.0")
    assert d.weights[0].sha256 == "989dc21e2379c6924a6bd32696df0f1fa8cfd43dd557e1ae4126b97708695b5a"
    assert {m.name for m in list_models()} >= {"ditn-real-x4", "ditn-real-gan-x4", "ultravsr"}
    # the tests' diagnostic model is registered (by tests/conftest.py) but not listed for users
    assert "temporal-mean-x2" not in {m.name for m in list_models()}
    assert "temporal-mean-x2" in {m.name for m in list_models(include_diagnostic=True)}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(device="tpu"), "unknown device 'tpu'; allowed: auto, cpu, cuda"),
        (dict(device="cuda:3"), "device 'cuda:3'"),
        (dict(dtype="int8"), "unknown dtype 'int8'; allowed: fp32, fp16, bf16"),
        (dict(device="cpu", dtype="fp16"), "fp16 is not supported on device cpu"),
        (dict(tile=-4), "tile must be >= 0"),
        (dict(batch=0), "batch must be >= 1"),
        (dict(window=5), "window applies to video models only"),
        (dict(strength=0.5), r"unknown option\(s\) strength for tiny_ditn; its options are: backend"),
    ],
)
def test_bad_engine_arguments(kwargs, match, tiny_ditn_path):
    with pytest.raises(SuperResError, match=match):
        Upscaler(str(tiny_ditn_path), **{"device": "cpu", **kwargs})


def test_missing_weights_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(WeightsError, match=r"(?s)ditn/DITN_Real_x4.pth.*989dc21e.*superres models download ditn-real-x4"):
        Upscaler("ditn-real-x4", device="cpu")


def test_checkpoint_of_another_network_is_refused(tmp_path):
    p = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, p)
    with pytest.raises(SuperResError, match="does not match any known architecture"):
        Upscaler(str(p), device="cpu")


def test_wrong_checkpoint_for_registered_model(tmp_path, ditn_x4_path):
    sd = torch.load(ditn_x4_path, weights_only=True)
    sd.pop("conv_after_body.bias")
    p = tmp_path / "cut.pth"
    torch.save(sd, p)
    with pytest.raises(SuperResError, match="does not fit ditn-real-x4.*missing \\['conv_after_body.bias'\\]"):
        Upscaler("ditn-real-x4", device="cpu", weights=p)


# ----------------------------------------------------------------------------- DITN end to end
def test_ditn_by_name_and_by_path_agree(ditn_x4_path, astronaut):
    crop = astronaut[100:148, 180:244]
    a = Upscaler("ditn-real-x4", device="cpu").upscale(crop)
    b = Upscaler(str(ditn_x4_path), device="cpu").upscale(crop)
    assert a.shape == (1, 3, 192, 256)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert 0 <= float(a.min()) and float(a.max()) <= 1


def test_ditn_deterministic(ditn_x4_path, astronaut):
    crop = astronaut[:40, :56]
    up = Upscaler("ditn-real-x4", device="cpu")
    torch.testing.assert_close(up.upscale(crop), up.upscale(crop), atol=0, rtol=0)


def test_ditn_tiled_equals_untiled(ditn_x4_path, astronaut):
    crop = astronaut[:320, 100:388]  # 320 x 288: 2 x 2 tiles of 256 with the default overlap
    full = Upscaler("ditn-real-x4", device="cpu", tile=0).upscale(crop)
    up = Upscaler("ditn-real-x4", device="cpu", tile=256)
    assert up.overlap == 128  # DITN's declared overlap (its receptive field is 57 px)
    tiled = up.upscale(crop)
    border = 4 * 8
    inner = (slice(None), slice(None), slice(border, -border), slice(border, -border))
    assert float((tiled[inner] - full[inner]).abs().max()) <= 1e-4
    # no seam: the largest difference anywhere stays far below one 8-bit step
    assert float((tiled - full).abs().max()) < 1 / 255


def test_ditn_small_tiles_stay_seamless(ditn_x4_path, astronaut):
    # tiles too small for the declared overlap still blend without a visible seam
    crop = astronaut[200:296, 200:296]
    full = Upscaler("ditn-real-x4", device="cpu", tile=0).upscale(crop)
    tiled = Upscaler("ditn-real-x4", device="cpu", tile=64, overlap=32).upscale(crop)
    assert float((tiled - full).abs().mean()) < 2e-3


def test_bf16_on_cpu_runs_close_to_fp32(ditn_x4_path, astronaut):
    crop = astronaut[200:232, 200:232]
    a = Upscaler("ditn-real-x4", device="cpu").upscale(crop)
    b = Upscaler("ditn-real-x4", device="cpu", dtype="bf16").upscale(crop)
    assert float((a - b).abs().mean()) < 0.02


def test_progress_and_cancel(tiny_ditn_path, astronaut):
    seen = []
    up = Upscaler(str(tiny_ditn_path), device="cpu", tile=32, overlap=16, progress=lambda p: seen.append((p.done, p.total)))
    up.upscale(astronaut[:64, :64])
    assert seen[-1][0] == seen[-1][1] and len(seen) > 3

    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    up = Upscaler(str(tiny_ditn_path), device="cpu", tile=32, overlap=16, cancel=cancel)
    with pytest.raises(Cancelled):
        up.upscale(astronaut[:64, :64])
