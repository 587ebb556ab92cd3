"""UltraVSR end to end through the engine, on a tiny release written to disk.

No SD-2.1 weights exist on these machines: ``vs_superres.models.ultravsr.tiny`` writes a
base-model folder with SD-2.1's structure at small widths and an official-layout checkpoint,
and everything below loads them through the same code as the real release. The weights are
random, so these tests check the machinery (shapes, determinism, TAI, windows, clip state,
tiling, colour, errors), not image quality.
"""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vs_superres.numerics.colorfix import wavelet_decompose
from vs_superres import Upscaler
from vs_superres.contracts.errors import SuperResError
from vs_superres.models.ultravsr import checkpoint as ckpt_mod
from vs_superres.models.ultravsr.drs import ClipIqaEstimator, timestep_for
from vs_superres.models.ultravsr.pipeline import UltraVSRPipeline
from vs_superres.models.ultravsr.tiny import write_tiny_clip
from vs_superres.numerics.resample import upscale_bicubic

pytestmark = pytest.mark.torch_threads(2)

TOL = dict(rtol=1e-5, atol=1e-5)



@pytest.fixture(scope="module")
def release(ultravsr_release):
    base, ckpt = ultravsr_release
    return {"base": str(base), "checkpoint": str(ckpt)}


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("clip") / "RN50-tiny.safetensors")


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255


def pan(photo, count, h=16, w=20, step=1):
    """``count`` crops of a real photo panning ``step`` pixels per frame: ``[T, 3, h, w]``."""
    return torch.stack([photo[:, 120 + i * step: 120 + i * step + h, 150 + 2 * i * step: 150 + 2 * i * step + w] for i in range(count)])


def engine(release, **kw):
    kw.setdefault("strength", 0.3)
    return Upscaler("ultravsr", device="cpu", **release, **kw)


def pipeline(release, **kw):
    kw.setdefault("strength", 0.3)
    return UltraVSRPipeline.from_pretrained(release["checkpoint"], release["base"], **kw)


# ------------------------------------------------------------------ basics


def test_registered_as_a_video_model():
    from vs_superres.runtime import registry

    d = registry.get_model("ultravsr")
    assert (d.kind, d.scale, d.tileable, d.window, d.window_overlap) == ("video", 4, False, 30, 4)
    assert d.weights[0].relpath == "ultravsr/UltraVSR.pkl"
    assert "unet_tile" in d.tiling_options


def test_upscales_4x_deterministically(release, photo):
    x = pan(photo, 5)
    up = engine(release)
    y = up.upscale(x)
    assert y.shape == (5, 3, 64, 80) and y.dtype == torch.float32
    assert 0 <= y.min() and y.max() <= 1 and y.std() > 0.05
    assert torch.equal(y, engine(release).upscale(x))  # a fresh engine, same bits
    # Not the bicubic pre-upscale: the networks did something.
    assert (y - upscale_bicubic(x, 4).clamp(0, 1)).abs().mean() > 0.01
    # Other sizes: odd, not a multiple of 8 after x4, a single frame, the smallest allowed.
    for shape in ((1, 3, 9, 13), (2, 3, 4, 4)):
        z = up.upscale(torch.rand(shape, generator=torch.Generator().manual_seed(1)))
        assert z.shape == (shape[0], 3, shape[2] * 4, shape[3] * 4)


def test_tai_output_is_the_same_for_every_batch_size(release, photo):
    x = pan(photo, 5)
    ref = pipeline(release, frames_per_batch=None)(x)
    for b in (1, 2, 3):
        torch.testing.assert_close(pipeline(release, frames_per_batch=b)(x), ref, **TOL)


def test_window_borders_have_no_jump_on_a_smooth_clip(release, photo):
    """Temporal acceleration |y[n+1] - 2y[n] + y[n-1]| in the crossfades stays at the level seen
    inside windows; without overlap (the released 30-frame intervals) it jumps at the cut."""
    small = F.interpolate(photo[None], scale_factor=0.25, mode="area")[0]
    frames = []
    for i in range(16):  # a slow sub-pixel pan (0.08 px per frame)
        theta = torch.tensor([[[0.5, 0, i / 256], [0, 0.5, 0]]])
        grid = F.affine_grid(theta, (1, 3, 16, 20), align_corners=False)
        frames.append(F.grid_sample(small[None, :, 30:62, 30:70], grid, align_corners=False)[0])
    x = torch.stack(frames)

    def acceleration(overlap):
        y = engine(release, window=6, window_overlap=overlap).upscale(x)
        acc = (y[2:] - 2 * y[1:-1] + y[:-2]).abs().mean(dim=(1, 2, 3))
        return {n: acc[n - 1].item() for n in range(1, 15)}  # keyed by the centre frame

    crossfaded = acceleration(2)  # windows [0,6) [4,10) [8,14) [12,16): crossfades at 4-5, 8-9
    border = np.mean([crossfaded[n] for n in (4, 5, 8, 9)])
    inside = np.mean([crossfaded[n] for n in (2, 3, 6, 7, 10, 11)])
    assert border < 1.6 * inside, (border, inside)
    hard = acceleration(0)  # windows [0,6) [6,12) [12,16): cuts between 5|6 and 11|12
    assert np.mean([hard[n] for n in (5, 6, 11, 12)]) > 2 * np.mean([hard[n] for n in (2, 3, 8, 9)])


# ------------------------------------------------------------------ clip state (DRS, prompt)


def test_clip_iqa_state_is_per_clip_and_request_order_free(release, clip_weights, photo):
    x = pan(photo, 23, 12, 16)  # the released rule samples frames 0 and 22
    up = engine(release, strength=None, clip_iqa=str(clip_weights), window=6, window_overlap=2, cache_windows=8)
    assert up.frames_needed(3, 23) == [0, 1, 2, 3, 4, 5, 22]  # window 0 plus the sampled frames

    expected_d = ClipIqaEstimator(clip_weights).estimate(upscale_bicubic(x[[0, 22]], 4).clamp(0, 1))
    state = up._runner.clip_state({0: x[0], 22: x[22]}, 23)
    assert state.d == pytest.approx(expected_d, rel=1e-6)
    assert state.timestep == timestep_for(expected_d, up._runner.alphas_cumprod)

    whole = up.upscale(x)
    streamed = torch.stack(list(engine(release, strength=None, clip_iqa=str(clip_weights), window=6, window_overlap=2).stream(iter(x), total=23)))
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-6)

    order = list(range(23))
    random.Random(4).shuffle(order)
    rand = engine(release, strength=None, clip_iqa=str(clip_weights), window=6, window_overlap=2, cache_windows=8)
    got = {}
    for n in order:
        need = rand.frames_needed(n, 23)
        got[n] = rand.render_frame(n, 23, {i: x[i] for i in need})
    assert rand.frames_needed(3, 23) == [0, 1, 2, 3, 4, 5]  # the state exists: no extra frames
    torch.testing.assert_close(torch.stack([got[n] for n in range(23)]), whole, rtol=0, atol=1e-6)


def test_the_frame_count_is_needed_only_for_an_estimate(release, clip_weights, photo):
    x = pan(photo, 3, 12, 16)
    with pytest.raises(SuperResError, match="frame count.*strength"):
        list(engine(release, strength=None, clip_iqa=str(clip_weights)).stream(iter(x)))
    assert len(list(engine(release).stream(iter(x)))) == 3  # a fixed strength needs no frames


def test_stream_announced_longer_than_it_is(release, clip_weights, photo):
    x = pan(photo, 12, 12, 16)
    ref = engine(release, strength=None, clip_iqa=str(clip_weights), window=6, window_overlap=2).upscale(x)
    # A container that announces 40 frames but holds 12: the rule is applied to the real length.
    got = list(engine(release, strength=None, clip_iqa=str(clip_weights), window=6, window_overlap=2).stream(iter(x), total=40))
    torch.testing.assert_close(torch.stack(got), ref, rtol=0, atol=1e-6)


def test_strength_changes_the_restoration(release, photo):
    x = pan(photo, 3)
    p = pipeline(release)
    weak, strong = (p(x, clip_state=p.clip_state({}, 3)), pipeline(release, strength=0.1)(x))
    assert p.clip_state({}, 3).timestep == 483  # d = 0.3 on SD-2.1's schedule
    assert (weak - strong).abs().mean() > 0.01


def test_prompt_and_tagger(release, photo, caplog):
    x = pan(photo, 3)
    seen = []

    def tagger(frames):
        seen.append(tuple(frames.shape))
        return "fur, grass"

    p = pipeline(release, prompt="a cat", tagger=tagger)
    state = p.clip_state({0: x[0]}, 3)
    assert state.prompt == "a cat, fur, grass" and seen == [(1, 3, 64, 80)]
    assert p.clip_frames(3) == [0]  # a tagger needs the sampled frames even with a fixed d
    assert state.context.shape == (1, 77, 32)
    empty = pipeline(release)
    assert not torch.allclose(empty.encode_prompt(""), p.encode_prompt("a cat"))
    assert (empty(x) - p(x, clip_state=state)).abs().mean() > 1e-4
    with caplog.at_level(logging.WARNING, logger="vs_superres"):
        p.encode_prompt("word " * 100)
    assert "longer than 77 tokens" in caplog.text


# ------------------------------------------------------------------ latent, colour, precision, tiling


def test_sampled_latent_is_seeded_per_frame(release, photo):
    x = upscale_bicubic(pan(photo, 3), 4) * 2 - 1
    p = pipeline(release, sample_latent=True, seed=7)
    z = p.encode(x, [10, 11, 12])
    # Frame 11 gets the same latent in a window that starts elsewhere.
    torch.testing.assert_close(p.encode(x[1:], [11, 12])[0], z[1], **TOL)
    torch.testing.assert_close(p.encode(x, [10, 11, 12]), z, rtol=0, atol=0)
    mean = pipeline(release).encode(x, [10, 11, 12])
    assert (z - mean).abs().mean() > 1e-3
    assert (pipeline(release, sample_latent=True, seed=8).encode(x, [10, 11, 12]) - z).abs().mean() > 1e-3


def test_colour_fix_takes_the_coarse_colour_from_the_input(release, photo):
    x = pan(photo, 2)
    pre = upscale_bicubic(x, 4).clamp(0, 1)
    fixed = pipeline(release)(x)
    raw = pipeline(release, color_fix="none")(x)
    low_pre, low_fixed, low_raw = (wavelet_decompose(t)[1] for t in (pre, fixed, raw))
    assert (low_fixed - low_pre).abs().mean() < 0.2 * (low_raw - low_pre).abs().mean()
    adain = pipeline(release, color_fix="adain")(x)
    torch.testing.assert_close(adain.mean(dim=(2, 3)), pre.mean(dim=(2, 3)), rtol=0, atol=0.02)


def test_merged_lora_bf16_and_safetensors(release, photo, tmp_path):
    x = pan(photo, 2)
    ref = pipeline(release, merge_lora=False)(x)  # the released script's unmerged layers
    torch.testing.assert_close(pipeline(release, merge_lora=True)(x), ref, rtol=0, atol=1e-4)
    st = tmp_path / "tiny.safetensors"
    ckpt_mod.save_safetensors_checkpoint(ckpt_mod.read_checkpoint(release["checkpoint"]), st)
    assert torch.equal(engine(release | {"checkpoint": str(st)}).upscale(x), engine(release).upscale(x))
    low = engine(release, dtype="bf16").upscale(x)
    assert low.dtype == torch.float32 and (low - engine(release).upscale(x)).abs().mean() < 0.05


def test_tiled_stages_run_every_tile_without_seams(release, photo):
    x = pan(photo, 2, 32, 40)  # latent 16x20
    steps = []
    up = engine(release, unet_tile=12, unet_overlap=6, decoder_tile=12, decoder_overlap=6, encoder_tile=96, encoder_overlap=48,
                progress=lambda p: steps.append((p.phase, p.total)))
    y = up.upscale(x)
    assert y.shape == (2, 3, 128, 160)
    totals = {phase.rsplit(": ", 1)[1]: t for phase, t in steps if ": " in phase}
    assert totals == {"encoder": 6, "unet": 6, "decoder": 6}  # 2x3 tiles in every stage
    assert torch.equal(y, engine(release, unet_tile=12, unet_overlap=6, decoder_tile=12, decoder_overlap=6,
                                 encoder_tile=96, encoder_overlap=48).upscale(x))
    # No seam: where tiles meet (latent columns 4..12 -> output 32..96 for the decoder, with the
    # UNet's and encoder's cuts inside too) the output changes no more than elsewhere.
    grad = (y[..., 1:] - y[..., :-1]).abs().mean(dim=(0, 1, 2))
    assert grad[32:96].mean() < 1.2 * grad.mean() and grad[32:96].max() <= grad.max()
    official = engine(release, unet_tile=12, unet_overlap=6, decoder_tile=12, decoder_overlap=4, encoder_tile=96,
                      encoder_overlap=16, tile_grid="official").upscale(x)
    assert official.shape == y.shape
    with pytest.raises(SuperResError, match="released tiling gives tiles of 32.*overlap 48"):
        engine(release, encoder_tile=96, encoder_overlap=48, tile_grid="official").upscale(x)


def test_cancellation_between_tiles(release, photo):
    from vs_superres.contracts.errors import Cancelled

    calls = []
    up = engine(release, unet_tile=12, unet_overlap=6, cancel=lambda: len(calls) > 2,
                progress=lambda p: calls.append(p.phase))
    with pytest.raises(Cancelled):
        up.upscale(pan(photo, 2, 32, 40))


# ------------------------------------------------------------------ errors


def test_base_as_a_hub_id_goes_through_the_runtime(release, photo, monkeypatch):
    """The family never asks the Hub: the runtime turns a hub id into the cached folder."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    asked = []

    def snapshot_download(repo, *, allow_patterns=None, local_files_only=False):
        asked.append((repo, local_files_only))
        return release["base"]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    x = pan(photo, 2)
    by_id = engine(release | {"base": "someone/sd-2-1-base"}).upscale(x)
    assert asked == [("someone/sd-2-1-base", True)]
    assert torch.equal(by_id, engine(release).upscale(x))


def test_the_pipeline_runs_as_the_descriptor_it_is_given(release):
    """The runtime hands the family its descriptor; nothing looks it up by name."""
    import dataclasses
    from pathlib import Path

    from vs_superres.contracts.runners import LoadRequest
    from vs_superres.models.ultravsr.family import BASE, CHECKPOINT, CLIP_RN50, FAMILY, MODEL

    assert pipeline(release).descriptor is MODEL
    renamed = dataclasses.replace(MODEL, name="my-ultravsr", min_size=8)
    found = {CHECKPOINT.relpath: None, BASE.relpath: Path(release["base"]), CLIP_RN50.relpath: None}
    runner = FAMILY.load(LoadRequest(descriptor=renamed, device="cpu", dtype=torch.float32, weights=found,
                                     options={"checkpoint": release["checkpoint"], "strength": 0.3}))
    assert runner.descriptor is renamed
    with pytest.raises(SuperResError, match="my-ultravsr needs frames of at least 8x8 pixels, got 6x6"):
        runner(torch.rand(2, 3, 6, 6))


def test_errors_name_the_problem(release, tmp_path, monkeypatch, photo):
    with pytest.raises(SuperResError, match="stable-diffusion-2-1-base"):
        engine(release | {"base": str(tmp_path / "nowhere")})
    with pytest.raises(SuperResError, match="does not exist"):
        engine(release | {"checkpoint": str(tmp_path / "missing.pkl")})
    with pytest.raises(SuperResError, match="unknown option.*unet_tiles for ultravsr .did you mean unet_tile.*its options are:.*unet_tile"):
        engine(release, unet_tiles=64)
    with pytest.raises(SuperResError, match="tile and overlap do not apply to ultravsr.*unet_tile"):
        engine(release, tile=128)
    with pytest.raises(SuperResError, match=r"^strength must be a number in \(0, 1\]"):
        engine(release, strength=0.0)
    with pytest.raises(SuperResError, match="either strength.*or clip_iqa"):
        engine(release, clip_iqa="x.safetensors")
    with pytest.raises(SuperResError, match=r"unet_overlap must be less than unet_tile \(16\), got 16"):
        engine(release, unet_tile=16, unet_overlap=16)
    with pytest.raises(SuperResError, match="encoder_tile must be .* multiple of 8"):
        engine(release, encoder_tile=100)
    with pytest.raises(SuperResError, match="color_fix must be one of wavelet, adain, none"):
        engine(release, color_fix="lab")
    with pytest.raises(SuperResError, match="ultravsr needs frames of at least 4x4 pixels, got 3x3"):
        engine(release).upscale(torch.rand(2, 3, 3, 3))
    # No strength and no CLIP weights anywhere: both ways out are named.
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(SuperResError, match="strength=D.*clip_iqa=PATH.*clip/RN50.safetensors"):
        engine(release, strength=None)
    # No checkpoint anywhere: the file, where it was looked for, and where it comes from.
    with pytest.raises(SuperResError, match="(?s)ultravsr/UltraVSR.pkl.*Looked in.*yongliuy/UltraVSR"):
        Upscaler("ultravsr", device="cpu", base=release["base"], strength=0.3)


def test_mismatched_checkpoints_are_refused(release, tmp_path, ditn_x4_path):
    official = torch.load(release["checkpoint"], weights_only=True)
    shapes = dict(official, state_dict_unet=dict(official["state_dict_unet"]))
    key = next(k for k in shapes["state_dict_unet"] if "RTSConv.conv1" in k)
    shapes["state_dict_unet"][key] = torch.zeros(3, 3, 1, 1)
    torch.save(shapes, tmp_path / "shapes.pkl")
    with pytest.raises(SuperResError, match="does not fit this UltraVSR UNet.*shape mismatches"):
        engine(release | {"checkpoint": str(tmp_path / "shapes.pkl")})
    missing = dict(official, state_dict_vae={k: v for k, v in official["state_dict_vae"].items() if "RTS" not in k})
    torch.save(missing, tmp_path / "missing.pkl")
    with pytest.raises(SuperResError, match="does not fit this UltraVSR VAE.*missing keys"):
        engine(release | {"checkpoint": str(tmp_path / "missing.pkl")})
    with pytest.raises(SuperResError, match="not an UltraVSR checkpoint"):
        engine(release | {"checkpoint": str(ditn_x4_path)})
