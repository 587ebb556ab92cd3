"""UltraVSR DRS: frame sampling, CLIP-IQA estimator, schedule, one-step reconstruction."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from vs_superres.contracts.errors import SuperResError
from vs_superres.models.ultravsr import drs
from vs_superres.models.ultravsr.clip import (
    CLIP,
    RN50_CONFIG,
    TINY_CONFIG,
    clip_from_state_dict,
    config_from_state_dict,
    normalize_images,
)
from vs_superres.models.ultravsr.drs import (
    CLIPIQA_PROMPTS,
    ClipIqaEstimator,
    DegradationEstimator,
    FixedStrength,
    clipiqa_token_ids,
    reconstruct_x0,
    sample_frame_indices,
    sd21_alphas_cumprod,
    timestep_for,
)


def _photo(name: str, size=(96, 128)) -> torch.Tensor:
    """A real photo from scikit-image as [3, h, w] float in [0, 1], centre-cropped."""
    img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float().div(255)
    h, w = size
    top, left = (img.shape[1] - 2 * h) // 2, (img.shape[2] - 2 * w) // 2
    return img[:, top : top + 2 * h : 2, left : left + 2 * w : 2].contiguous()


@pytest.fixture(scope="module")
def clip_tiny() -> CLIP:
    torch.manual_seed(0)
    return CLIP(TINY_CONFIG).eval()


@pytest.fixture(scope="module")
def clip_rn50_meta() -> CLIP:
    with torch.device("meta"):
        return CLIP(RN50_CONFIG)


# ---------------------------------------------------------------------------- schedule
@pytest.mark.parametrize("d, t", [(0.05, 764), (0.1, 673), (0.2, 562), (0.3, 483), (0.5, 354)])
def test_timestep_worked_examples(d, t):
    assert timestep_for(d) == t
    assert timestep_for(d, sd21_alphas_cumprod()) == t


def test_sd21_schedule_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    )
    assert torch.equal(sd21_alphas_cumprod(), sched.alphas_cumprod)


def test_timestep_edges_and_errors():
    ac = sd21_alphas_cumprod()
    assert ac.shape == (1000,) and ac.dtype == torch.float32
    assert timestep_for(1.0) == 0
    assert timestep_for(1e-6) == 999
    assert timestep_for(0.5, torch.tensor([0.875, 0.625, 0.375, 0.125])) == 1  # exact tie: first
    for bad in (0.0, -0.2, 1.5, float("nan"), float("inf"), "x", None):
        with pytest.raises(SuperResError, match=r"\(0, 1\]"):
            timestep_for(bad)
    with pytest.raises(SuperResError, match="1-D"):
        timestep_for(0.5, torch.zeros(2, 3))


# ------------------------------------------------------------------- reconstruction
def test_reconstruct_x0_formula_and_inverse():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(2, 4, 8, 8, generator=g)
    eps = torch.randn(2, 4, 8, 8, generator=g)
    for d in (0.05, 0.3, 0.9):
        z = math.sqrt(d) * x0 + math.sqrt(1 - d) * eps  # the forward process at "alpha_bar = d"
        torch.testing.assert_close(reconstruct_x0(z, eps, d), x0, atol=1e-5, rtol=1e-5)
        expected = (z - math.sqrt(1 - d) * eps) / math.sqrt(d)
        torch.testing.assert_close(reconstruct_x0(z, eps, torch.tensor(d)), expected)
    assert torch.equal(reconstruct_x0(x0, eps, 1.0), x0)
    half = reconstruct_x0(x0.half(), eps.half(), 0.5)
    assert half.dtype == torch.float16


def test_reconstruct_x0_guards():
    z, eps = torch.ones(1, 4, 2, 2), torch.zeros(1, 4, 2, 2)
    with pytest.warns(RuntimeWarning, match="below"):
        out = reconstruct_x0(z, eps, 1e-6)
    torch.testing.assert_close(out, z / math.sqrt(drs.MIN_STRENGTH))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reconstruct_x0(z, eps, drs.MIN_STRENGTH)
    for bad in (0.0, -1.0, 1.01, float("nan")):
        with pytest.raises(SuperResError, match=r"\(0, 1\]"):
            reconstruct_x0(z, eps, bad)
    with pytest.raises(SuperResError, match="same shape"):
        reconstruct_x0(z, torch.zeros(1, 4, 2, 3), 0.5)


# -------------------------------------------------------------------- frame sampling
@pytest.mark.parametrize(
    "num_frames, expected",
    [
        (1, [0]),
        (3, [0]),
        (9, [0]),
        (10, [0]),
        (33, [0, 16, 32]),
        (100, [0, 11, 22, 33, 44]),
        (250, [0, 10, 20, 31, 41]),
    ],
)
def test_sample_frame_indices(num_frames, expected):
    assert sample_frame_indices(num_frames) == expected


def test_sample_frame_indices_official_rule_and_bounds():
    for t in range(1, 400):
        idx = sample_frame_indices(t)
        assert 1 <= len(idx) <= 5 and idx[0] == 0
        assert idx == sorted(set(idx)) and idx[-1] < t
        if t >= 10:  # the official rule, unchanged
            official = [int(v) for v in torch.linspace(0, t - 1, steps=t // 10)][:5]
            assert idx == official
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(SuperResError, match="at least one frame"):
            sample_frame_indices(bad)


# ---------------------------------------------------------------------- fixed strength
def test_fixed_strength():
    est = FixedStrength(0.25)
    assert isinstance(est, DegradationEstimator)
    assert est(torch.zeros(3, 3, 8, 8)) == 0.25
    assert FixedStrength(1)(torch.zeros(1, 3, 8, 8)) == 1.0
    for bad in (0, 0.0, -0.5, 1.0001, float("nan"), float("inf"), "strong", None):
        with pytest.raises(SuperResError, match=r"FixedStrength d must be .*\(0, 1\]"):
            FixedStrength(bad)


# ----------------------------------------------------------------------- token ids
def test_clipiqa_token_ids():
    ids = clipiqa_token_ids()
    assert ids.shape == (10, 77) and ids.dtype == torch.long
    assert torch.all(ids[:, 0] == 49406)
    lengths = [4, 4, 4, 4, 4, 4, 5, 5, 6, 4]  # SOT + words + EOT
    for row, n in zip(ids, lengths):
        assert row[n - 1] == 49407 and int(row.argmax()) == n - 1
        assert torch.all(row[n:] == 0)
    assert ids[0, :4].tolist() == [49406, 886, 2867, 49407]  # "Good image"
    assert ids[8, :6].tolist() == [49406, 9307, 268, 1139, 2867, 49407]  # "Noise-free image"
    assert ids[6, 1:3].tolist() == [1400, 9977]  # "High resolution"
    assert ids[7, 1:3].tolist() == [1042, 9977]  # "low resolution"
    assert CLIPIQA_PROMPTS[0::2] == (
        "Good image", "Sharp image", "sharp edges", "High resolution image", "Noise-free image"
    )


# ---------------------------------------------------------------------- RN50 layout
def test_rn50_state_dict_layout(clip_rn50_meta):
    sd = clip_rn50_meta.state_dict()
    shapes = {
        "visual.conv1.weight": (32, 3, 3, 3),
        "visual.conv3.weight": (64, 32, 3, 3),
        "visual.layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "visual.layer4.2.conv3.weight": (2048, 512, 1, 1),
        "visual.attnpool.positional_embedding": (50, 2048),
        "visual.attnpool.q_proj.weight": (2048, 2048),
        "visual.attnpool.c_proj.weight": (1024, 2048),
        "transformer.resblocks.11.attn.in_proj_weight": (1536, 512),
        "transformer.resblocks.0.mlp.c_fc.weight": (2048, 512),
        "token_embedding.weight": (49408, 512),
        "positional_embedding": (77, 512),
        "ln_final.weight": (512,),
        "text_projection": (512, 1024),
        "logit_scale": (),
    }
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    assert "visual.layer1.1.downsample.0.weight" not in sd
    assert "visual.layer4.3.conv1.weight" not in sd
    assert "transformer.resblocks.12.ln_1.weight" not in sd
    # Parameter counts of OpenAI RN50 (open_clip's model profile: 38.32 M + 63.69 M).
    n_visual = sum(p.numel() for p in clip_rn50_meta.visual.parameters())
    n_total = sum(p.numel() for p in clip_rn50_meta.parameters())
    assert round(n_visual / 1e6, 2) == 38.32 and round((n_total - n_visual) / 1e6, 2) == 63.69
    assert config_from_state_dict(sd) == RN50_CONFIG
    with torch.device("meta"):
        again = CLIP(config_from_state_dict(sd))
    again.load_state_dict(sd, strict=True, assign=True)


def test_state_dict_round_trip_and_openai_exports(clip_tiny, tmp_path):
    sd = clip_tiny.state_dict()
    x = normalize_images(_photo("astronaut", (64, 64)).unsqueeze(0))
    ref = clip_tiny.encode_image(x)
    export = {k: v.clone() for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    export.update(  # extra entries of state dicts taken from OpenAI's TorchScript archive
        input_resolution=torch.tensor(64),
        context_length=torch.tensor(77),
        vocab_size=torch.tensor(49408),
    )
    rebuilt = clip_from_state_dict(export)
    assert rebuilt.config == TINY_CONFIG
    torch.testing.assert_close(rebuilt.encode_image(x), ref)

    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "clip.safetensors"))
    torch.save(dict(sd), tmp_path / "clip.pt")
    frames = torch.stack([_photo("astronaut", (64, 64)), _photo("coffee", (64, 64))])
    d_ref = ClipIqaEstimator(clip_tiny)(frames)
    assert ClipIqaEstimator(tmp_path / "clip.safetensors")(frames) == pytest.approx(d_ref, rel=1e-5)
    assert ClipIqaEstimator(str(tmp_path / "clip.pt"))(frames) == pytest.approx(d_ref, rel=1e-5)


def test_state_dict_errors(clip_tiny):
    sd = clip_tiny.state_dict()
    with pytest.raises(SuperResError, match="vision-transformer"):
        clip_from_state_dict({**sd, "visual.proj": torch.zeros(1)})
    with pytest.raises(SuperResError, match="missing text_projection"):
        clip_from_state_dict({k: v for k, v in sd.items() if k != "text_projection"})
    broken = dict(sd)
    broken["visual.layer2.0.conv2.weight"] = torch.zeros(1, 1, 3, 3)
    with pytest.raises(SuperResError, match="does not match"):
        clip_from_state_dict(broken)
    with pytest.raises(SuperResError, match="CLIP module"):
        ClipIqaEstimator(42)


def test_clip_weights_go_through_the_safe_loader(tmp_path):
    import os
    import pickle

    from vs_superres.contracts.errors import WeightsError

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    evil = tmp_path / "RN50.pt"
    evil.write_bytes(pickle.dumps({"visual.conv1.weight": Payload()}))
    with pytest.raises(WeightsError, match="never runs code from checkpoints.*ResNet CLIP such as OpenAI RN50"):
        ClipIqaEstimator(evil)
    with pytest.raises(WeightsError, match="does not exist.*ResNet CLIP"):
        ClipIqaEstimator(tmp_path / "absent.safetensors")


# ------------------------------------------------------------------- image tower
def test_attention_pool_equals_full_multihead_attention(clip_tiny):
    pool = clip_tiny.visual.attnpool
    for h, w in ((2, 3), (5, 4)):
        feat = torch.randn(2, 256, h, w, generator=torch.Generator().manual_seed(h))
        tokens = feat.flatten(2).permute(2, 0, 1)  # [hw, N, C]
        tokens = torch.cat([tokens.mean(0, keepdim=True), tokens])
        full, _ = F.multi_head_attention_forward(
            tokens, tokens, tokens, 256, pool.heads,
            in_proj_weight=None,
            in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
            out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
            use_separate_proj_weight=True, q_proj_weight=pool.q_proj.weight,
            k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
            training=False, need_weights=False,
        )
        torch.testing.assert_close(pool(feat), full[0], atol=1e-5, rtol=1e-5)


def test_image_tower_any_resolution(clip_tiny):
    for h, w in ((64, 96), (45, 77), (32, 32)):
        out = clip_tiny.encode_image(torch.randn(1, 3, h, w))
        assert out.shape == (1, TINY_CONFIG.embed_dim) and torch.isfinite(out).all()
    # Positional embedding only at the native grid (64 px -> 2x2 + 1 tokens).
    clip_tiny.encode_image(torch.randn(1, 3, 64, 64), use_positional_embedding=True)
    with pytest.raises(SuperResError, match="positional embedding"):
        clip_tiny.encode_image(torch.randn(1, 3, 64, 96), use_positional_embedding=True)
    with pytest.raises(SuperResError, match="at least 32x32"):
        clip_tiny.encode_image(torch.randn(1, 3, 31, 64))


# ------------------------------------------------------------------------ estimator
def _clip_of(num_frames: int) -> torch.Tensor:
    names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
    return torch.stack([_photo(names[i % len(names)]) for i in range(num_frames)])


def _hand_d(model: CLIP, frames: torch.Tensor, indices: list[int]) -> float:
    with torch.no_grad():
        text = model.encode_text(clipiqa_token_ids())
        text = text / text.norm(dim=-1, keepdim=True)
        scores = []
        for i in indices:
            img = model.encode_image(normalize_images(frames[i : i + 1]))
            img = img / img.norm(dim=-1, keepdim=True)
            cos = (img @ text.t())[0]  # [10]
            logits = model.logit_scale.exp() * cos
            pos, neg = logits[0::2], logits[1::2]
            p_pos = torch.exp(pos) / (torch.exp(pos) + torch.exp(neg))
            scores.append(float(p_pos.mean()))
    return float(np.mean(scores)) ** 2


def test_estimator_matches_hand_formula(clip_tiny):
    frames = _clip_of(23)  # samples frames 0 and 22
    est = ClipIqaEstimator(clip_tiny)
    assert isinstance(est, DegradationEstimator)
    d = est(frames)
    assert 0.0 < d <= 1.0
    assert d == pytest.approx(_hand_d(clip_tiny, frames, [0, 22]), rel=1e-5)
    assert d == est(frames)  # deterministic
    assert ClipIqaEstimator(clip_tiny.state_dict())(frames) == pytest.approx(d, rel=1e-5)
    short = frames[:4]  # below 10 frames: frame 0 only
    assert est(short) == pytest.approx(_hand_d(clip_tiny, short, [0]), rel=1e-5)
    assert torch.all((est.score(frames[:3]) > 0) & (est.score(frames[:3]) < 1))


def test_estimator_sees_blur_without_asserting_a_direction(clip_tiny):
    # With random weights CLIP has no notion of quality: over seeds 0-7 the sharp photo
    # scored higher in only 2 of 8, so only a change of score is asserted here.
    sharp = _photo("astronaut", (128, 128)).unsqueeze(0)
    blurred = F.avg_pool2d(F.pad(sharp, (4, 4, 4, 4), mode="replicate"), 9, stride=1)
    scores = ClipIqaEstimator(clip_tiny).score(torch.cat([sharp, blurred]))
    assert scores[0] != scores[1]


def test_estimator_custom_prompts_and_errors(clip_tiny):
    frames = _clip_of(2)
    pairs = ("A photo", "A noisy photo")
    with pytest.raises(SuperResError, match="need their token ids"):
        ClipIqaEstimator(clip_tiny, prompts=pairs)
    with pytest.raises(SuperResError, match="pairs"):
        ClipIqaEstimator(clip_tiny, prompts=CLIPIQA_PROMPTS[:3])
    calls = []

    def tokenizer(texts):
        calls.append(list(texts))
        return drs.pad_token_ids([[320, 1125], [320, 33495, 1125]])

    d = ClipIqaEstimator(clip_tiny, prompts=pairs, tokenizer=tokenizer)(frames)
    assert calls == [list(pairs)] and 0.0 < d <= 1.0
    ids = drs.pad_token_ids([[320, 1125], [320, 33495, 1125]])
    assert ClipIqaEstimator(clip_tiny, prompts=pairs, token_ids=ids)(frames) == pytest.approx(d)
    with pytest.raises(SuperResError, match=r"\[2, 77\]"):
        ClipIqaEstimator(clip_tiny, prompts=pairs, token_ids=ids[:, :10])
    est = ClipIqaEstimator(clip_tiny)
    with pytest.raises(SuperResError, match=r"\[T, 3, H, W\]"):
        est(frames[0])
    with pytest.raises(SuperResError, match="float"):
        est((frames * 255).to(torch.uint8))
