"""UltraVSR networks: RTS maths, SD-2.1 key layout, TAI invariance, checkpoint loading."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vs_superres.contracts.errors import InternalError, SuperResError, WeightsError
from vs_superres.models.ultravsr import configs
from vs_superres.models.ultravsr.rts import RTSAttenBlock, RTSConvBlock, RTSModule, attention_width, conv_width

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402

from vs_superres.models.ultravsr import adapters as adapters_mod  # noqa: E402
from vs_superres.models.ultravsr import base as base_mod  # noqa: E402
from vs_superres.models.ultravsr import checkpoint as ckpt_mod  # noqa: E402
from vs_superres.models.ultravsr import loader as loader_mod  # noqa: E402
from vs_superres.models.ultravsr.unet import UltraVSRUNet  # noqa: E402
from vs_superres.models.ultravsr.vae import UltraVSRAutoencoder  # noqa: E402

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module", autouse=True)
def one_thread(torch_threads):
    """These networks are tiny: one thread avoids OpenMP spin-waiting on busy 2-core CI machines."""
    with torch_threads(1):
        yield


def randomize_rts(model: nn.Module, seed: int = 0) -> None:
    """Give every RTS module non-zero output projections so that it really mixes frames."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, RTSModule):
                for p in m.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.2)


# ----------------------------------------------------------------------------- RTS by hand


def ref_rts_conv(block: RTSConvBlock, x: torch.Tensor) -> torch.Tensor:
    frames = x.shape[0]
    y = F.conv2d(x, block.conv1.weight)
    h1 = y.shape[1]
    third = h1 // 3
    s = torch.zeros_like(y)
    for t in range(frames):
        if t - 1 >= 0:
            s[t, :third] = y[t - 1, :third]
        if t + 1 < frames:
            s[t, h1 - third :] = y[t + 1, h1 - third :]
    conv = block.conv_blocks[0]
    z = F.silu(F.conv2d(s, conv.weight, conv.bias, padding=1))
    return x + F.conv2d(z, block.conv3.weight)


def ref_rts_atten(block: RTSAttenBlock, x: torch.Tensor, with_current: bool = False) -> torch.Tensor:
    frames, _, height, width = x.shape
    qkv = F.conv2d(F.conv2d(x, block.qkv.weight), block.qkv_dwconv.weight, block.qkv_dwconv.bias, padding=1,
                   groups=block.width)
    a3 = block.width // 3
    per_head = a3 // 8
    q, k, v = qkv[:, :a3], qkv[:, a3 : 2 * a3], qkv[:, 2 * a3 :]
    out = torch.zeros(frames, a3, height * width, dtype=x.dtype)

    def unit(t):
        return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)

    for t in range(frames):
        for head in range(8):
            sl = slice(head * per_head, (head + 1) * per_head)
            qt = unit(q[t, sl].reshape(per_head, -1))
            for n in (t - 1, t, t + 1) if with_current else (t - 1, t + 1):
                if 0 <= n < frames:
                    kn = unit(k[n, sl].reshape(per_head, -1))
                    vn = v[n, sl].reshape(per_head, -1)
                    out[t, sl] += torch.softmax(qt @ kn.T * block.temperature[head], dim=-1) @ vn
    return x + F.conv2d(out.reshape(frames, a3, height, width), block.project_out.weight)


def test_rts_widths_and_parameter_counts():
    table = {256: (24, 48, 34_368), 320: (30, 72, 58_778), 512: (51, 120, 158_812),
             640: (63, 144, 240_752), 1280: (126, 312, 1_001_178)}
    for c, (h1, a, count) in table.items():
        assert (conv_width(c), attention_width(c)) == (h1, a)
        m = RTSModule(c)
        assert sum(p.numel() for p in m.parameters()) == count
        assert torch.equal(m.RTSConv.conv3.weight, torch.zeros_like(m.RTSConv.conv3.weight))
        assert torch.equal(m.RTSAtten.project_out.weight, torch.zeros_like(m.RTSAtten.project_out.weight))
        assert torch.equal(m.RTSAtten.temperature, torch.ones(8, 1, 1))


@pytest.mark.parametrize("channels", [48, 95])
def test_rts_refuses_too_few_channels(channels):
    with pytest.raises(SuperResError, match="at least 96"):
        RTSModule(channels)


def test_temporal_shift_by_hand():
    y = torch.tensor([[1000.0 * t + c for c in range(9)] for t in range(3)]).reshape(3, 9, 1, 1)
    s = RTSConvBlock.temporal_shift(y).reshape(3, 9).tolist()
    assert s == [
        [0, 0, 0, 0, 0, 0, 1006, 1007, 1008],  # no previous frame; middle third stays zero
        [0, 1, 2, 0, 0, 0, 2006, 2007, 2008],
        [1000, 1001, 1002, 0, 0, 0, 0, 0, 0],  # no next frame
    ]
    assert RTSConvBlock.temporal_shift(y[:1]).abs().sum() == 0  # T = 1: nothing to shift in


def test_rts_conv_matches_hand_computation_and_ignores_middle_third():
    torch.manual_seed(1)
    block = RTSConvBlock(96).double()
    with torch.no_grad():
        block.conv3.weight.normal_(std=0.3)
    x = torch.randn(4, 96, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(block(x), ref_rts_conv(block, x), rtol=1e-12, atol=1e-12)

    # Only the middle third of conv1 is non-zero: the shifted tensor is all zero, whatever x is.
    with torch.no_grad():
        keep = block.conv1.weight[3:6].clone()
        block.conv1.weight.zero_()
        block.conv1.weight[3:6] = keep
    constant = block.conv3(F.silu(block.conv_blocks[0].bias.reshape(1, -1, 1, 1)))
    torch.testing.assert_close(block(x), x + constant, rtol=1e-12, atol=1e-12)


def test_rts_conv_single_frame_adds_a_constant():
    torch.manual_seed(2)
    block = RTSConvBlock(96).double()
    with torch.no_grad():
        block.conv3.weight.normal_(std=0.3)
    x = torch.randn(1, 96, 4, 4, dtype=torch.float64)
    constant = block.conv3(F.silu(block.conv_blocks[0].bias.reshape(1, -1, 1, 1)))
    torch.testing.assert_close(block(x), x + constant, rtol=1e-12, atol=1e-12)


def test_rts_attention_matches_hand_computation_without_current_frame():
    torch.manual_seed(3)
    block = RTSAttenBlock(192).double()
    with torch.no_grad():
        block.project_out.weight.normal_(std=0.3)
        block.temperature.copy_(torch.linspace(0.5, 2.0, 8).reshape(8, 1, 1))
    x = torch.randn(4, 192, 3, 5, dtype=torch.float64)
    out = block(x)
    torch.testing.assert_close(out, ref_rts_atten(block, x), rtol=1e-10, atol=1e-10)
    # The paper's current-frame term would change the result: the released code adds exactly 0.
    assert (out - ref_rts_atten(block, x, with_current=True)).abs().max() > 1e-3
    # Two frames: each has exactly one neighbour.
    torch.testing.assert_close(block(x[:2]), ref_rts_atten(block, x[:2]), rtol=1e-10, atol=1e-10)


def test_rts_attention_single_frame_is_identity():
    torch.manual_seed(4)
    block = RTSAttenBlock(96)
    with torch.no_grad():
        block.project_out.weight.normal_()
    x = torch.randn(1, 96, 4, 4)
    assert torch.equal(block(x), x)


def test_rts_chunk_list_equals_tensor_and_leaves_caller_list_alone():
    torch.manual_seed(5)
    module = RTSModule(96)
    randomize_rts(module)
    x = torch.randn(6, 96, 5, 4)
    whole = module(x)
    assert isinstance(whole, torch.Tensor)
    chunks = list(x.split([2, 1, 3]))
    before = [c.clone() for c in chunks]
    ids = [id(c) for c in chunks]
    out = module(chunks)
    assert isinstance(out, list) and out is not chunks and [o.shape[0] for o in out] == [2, 1, 3]
    torch.testing.assert_close(torch.cat(out), whole, **TOL)
    assert [id(c) for c in chunks] == ids and all(torch.equal(a, b) for a, b in zip(chunks, before))
    one_by_one = module(list(x.split(1)))
    torch.testing.assert_close(torch.cat(one_by_one), whole, **TOL)


# ----------------------------------------------------------------------------- SD-2.1 layout

RTS_SUFFIX_SHAPES = {
    "RTSConv.conv1.weight": lambda c, h, a: (h, c, 1, 1),
    "RTSConv.conv_blocks.0.weight": lambda c, h, a: (h, h, 3, 3),
    "RTSConv.conv_blocks.0.bias": lambda c, h, a: (h,),
    "RTSConv.conv3.weight": lambda c, h, a: (c, h, 1, 1),
    "RTSAtten.temperature": lambda c, h, a: (8, 1, 1),
    "RTSAtten.qkv.weight": lambda c, h, a: (a, c, 1, 1),
    "RTSAtten.qkv_dwconv.weight": lambda c, h, a: (a, 1, 3, 3),
    "RTSAtten.qkv_dwconv.bias": lambda c, h, a: (a,),
    "RTSAtten.project_out.weight": lambda c, h, a: (c, a // 3, 1, 1),
}
COUNTS = {256: 34_368, 320: 58_778, 512: 158_812, 640: 240_752, 1280: 1_001_178}


def expected_rts_keys(prefix: str, channels) -> dict[str, tuple]:
    out = {}
    for i, c in enumerate(channels):
        for suffix, shape in RTS_SUFFIX_SHAPES.items():
            out[f"{prefix}.{i}.{suffix}"] = shape(c, conv_width(c), attention_width(c))
    return out


@pytest.fixture(scope="module")
def sd21_meta():
    with torch.device("meta"):
        return UltraVSRUNet(**configs.SD21_BASE_UNET_CONFIG), UltraVSRAutoencoder(**configs.SD21_BASE_VAE_CONFIG)


def test_sd21_rts_keys_and_shapes(sd21_meta):
    unet, vae = sd21_meta
    expected = expected_rts_keys("video_down_RTS_blocks", (320, 640, 1280, 1280))
    expected.update(expected_rts_keys("video_up_RTS_blocks", (1280, 1280, 1280, 640)))
    got = {k: tuple(v.shape) for k, v in unet.state_dict().items() if "RTS" in k}
    assert got == expected
    vae_expected = expected_rts_keys("decoder.video_up_RTS_blocks", (512, 512, 512, 256))
    assert {k: tuple(v.shape) for k, v in vae.state_dict().items() if "RTS" in k} == vae_expected
    for blocks in (unet.video_down_RTS_blocks, unet.video_up_RTS_blocks, vae.decoder.video_up_RTS_blocks):
        for m in blocks:
            assert sum(p.numel() for p in m.parameters()) == COUNTS[m.nhidden]
    rts_unet = sum(p.numel() for n, p in unet.named_parameters() if "RTS" in n)
    assert rts_unet == 2 * 1_001_178 + 58_778 + 240_752 + 3 * 1_001_178 + 240_752
    # The widely quoted SD-2.x UNet / SD VAE sizes: the configs reproduce the real networks.
    assert sum(p.numel() for p in unet.parameters()) - rts_unet == 865_910_724
    assert sum(p.numel() for n, p in vae.named_parameters() if "RTS" not in n) == 83_653_863


def test_sd21_official_target_lists(sd21_meta):
    unet, vae = sd21_meta
    targets = adapters_mod.official_unet_targets(unet)
    enc, dec, oth = (targets[a] for a in ckpt_mod.UNET_ADAPTERS)
    assert "conv_in" in enc and "down_blocks.0.resnets.0.conv1" in enc
    assert "conv_out" in dec and "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2" in dec
    assert "mid_block.attentions.0.transformer_blocks.0.attn2.to_k" in oth
    assert all(n.startswith("mid_block.") for n in oth)
    everything = enc + dec + oth
    assert not any("RTS" in n or "time_emb" in n or "norm" in n for n in everything)
    vae_targets = adapters_mod.official_vae_targets(vae)
    assert "encoder.down_blocks.0.resnets.0.conv1" in vae_targets and "quant_conv" in vae_targets
    assert "encoder.mid_block.attentions.0.to_q" in vae_targets
    assert not any(n.startswith(("decoder.", "post_quant_conv")) for n in vae_targets)


# ----------------------------------------------------------------------------- TAI invariance


class Passthrough(nn.Module):
    """Stands in for an RTS module (same call signature) to compare with stock diffusers."""

    def forward(self, x, inplace=False):
        return list(x) if isinstance(x, (list, tuple)) else x


def test_rts_inplace_equals_out_of_place_and_reuses_the_input():
    torch.manual_seed(3)
    module = RTSModule(96)
    randomize_rts(module, seed=4)
    chunks = [torch.randn(2, 96, 5, 6), torch.randn(3, 96, 5, 6)]
    with torch.no_grad():
        ref = module([c.clone() for c in chunks])
        out = module(chunks, inplace=True)
    assert all(o is c for o, c in zip(out, chunks))  # no new full-size tensors
    for o, r in zip(out, ref):
        torch.testing.assert_close(o, r, rtol=0, atol=0)


@pytest.fixture(scope="module")
def tiny_unet():
    torch.manual_seed(10)
    unet = UltraVSRUNet(**configs.TINY_UNET_CONFIG).eval()
    randomize_rts(unet, seed=11)
    return unet


def test_unet_tai_same_result_for_every_batch_size(tiny_unet):
    torch.manual_seed(12)
    x = torch.randn(4, 4, 10, 14)  # not a multiple of 8: exercises forwarded upsample sizes
    ctx = torch.randn(4, 7, 32)
    with torch.no_grad():
        ref = tiny_unet(x, 500, ctx)
        for b in (1, 2, 3, 4):
            torch.testing.assert_close(tiny_unet(x, torch.tensor([500]), ctx, frames_per_batch=b), ref, **TOL)
        shared = tiny_unet(x, 500, ctx[:1], frames_per_batch=2)
        torch.testing.assert_close(shared, tiny_unet(x, 500, ctx[:1].expand(4, -1, -1)), **TOL)
    with pytest.raises(InternalError, match="one timestep"):  # a network invariant, not a user error
        tiny_unet(x, torch.tensor([1, 2]), ctx)
    with pytest.raises(SuperResError, match="frames_per_batch"):
        tiny_unet(x, 1, ctx, frames_per_batch=0)


def test_unet_rts_placement_and_skips(tiny_unet):
    seen = {}

    def hook(name):
        def record(mod, args, out):
            seen.setdefault(name, [tuple(c.shape) for c in args[0]])

        return record

    handles = [m.register_forward_hook(hook(f"down{i}")) for i, m in enumerate(tiny_unet.video_down_RTS_blocks)]
    handles += [m.register_forward_hook(hook(f"up{i}")) for i, m in enumerate(tiny_unet.video_up_RTS_blocks)]
    skips_made, skips_used = [], []
    handles += [b.register_forward_hook(lambda m, a, out: skips_made.extend(out[1])) for b in tiny_unet.down_blocks]
    handles += [b.register_forward_pre_hook(lambda m, a, kw: skips_used.extend(kw["res_hidden_states_tuple"]),
                                            with_kwargs=True) for b in tiny_unet.up_blocks]
    try:
        with torch.no_grad():
            tiny_unet(torch.randn(3, 4, 16, 16), 10, torch.randn(3, 5, 32), frames_per_batch=3)
    finally:
        for h in handles:
            h.remove()
    assert [seen[f"down{i}"][0][1:] for i in range(4)] == [(96, 8, 8), (96, 4, 4), (192, 2, 2), (192, 2, 2)]
    assert [seen[f"up{i}"][0][1:] for i in range(4)] == [(192, 2, 2), (192, 4, 4), (192, 8, 8), (96, 16, 16)]
    # Every skip tensor an up block receives is a down block's own output, taken before the RTS.
    # (plus conv_in's output, the first skip).
    made = {id(t) for t in skips_made}
    assert len(skips_used) == len(skips_made) + 1 and sum(id(t) in made for t in skips_used) == len(skips_made)


def test_unet_forward_equals_diffusers_without_rts(tiny_unet):
    unet = UltraVSRUNet(**configs.TINY_UNET_CONFIG).eval()
    unet.load_state_dict(tiny_unet.state_dict())
    unet.video_down_RTS_blocks = nn.ModuleList(Passthrough() for _ in range(4))
    unet.video_up_RTS_blocks = nn.ModuleList(Passthrough() for _ in range(4))
    x, ctx = torch.randn(3, 4, 12, 10), torch.randn(3, 5, 32)
    with torch.no_grad():
        stock = UNet2DConditionModel.forward(unet, x, 321, ctx).sample
        torch.testing.assert_close(unet(x, 321, ctx, frames_per_batch=2), stock, **TOL)


@pytest.fixture(scope="module")
def tiny_vae():
    torch.manual_seed(20)
    vae = UltraVSRAutoencoder(**configs.TINY_VAE_CONFIG).eval()
    randomize_rts(vae, seed=21)
    return vae


def test_vae_tai_same_result_for_every_batch_size(tiny_vae):
    torch.manual_seed(22)
    pixels = torch.rand(3, 3, 24, 32) * 2 - 1
    latents = torch.randn(3, 4, 3, 5)
    with torch.no_grad():
        mean = tiny_vae.encode_frames(pixels)
        dec = tiny_vae.decode_frames(latents)
        assert mean.shape == (3, 4, 3, 4) and dec.shape == (3, 3, 24, 40)
        torch.testing.assert_close(mean, tiny_vae.encode(pixels).latent_dist.mode(), **TOL)
        for b in (1, 2, 3):
            torch.testing.assert_close(tiny_vae.encode_frames(pixels, frames_per_batch=b), mean, **TOL)
            torch.testing.assert_close(tiny_vae.decode_frames(latents, frames_per_batch=b), dec, **TOL)
        s1 = tiny_vae.encode_frames(pixels, sample=True, generator=torch.Generator().manual_seed(7))
        s2 = tiny_vae.encode_frames(pixels, frames_per_batch=1, sample=True, generator=torch.Generator().manual_seed(7))
        torch.testing.assert_close(s1, s2, **TOL)
        assert (s1 - mean).abs().max() > 1e-4
        tiny_vae.enable_slicing()
        try:
            torch.testing.assert_close(tiny_vae.decode(latents).sample, dec, **TOL)
        finally:
            tiny_vae.disable_slicing()


def test_vae_decoder_equals_diffusers_without_rts(tiny_vae):
    stock = AutoencoderKL(**configs.TINY_VAE_CONFIG).eval()
    stock.load_state_dict({k: v for k, v in tiny_vae.state_dict().items() if "RTS" not in k})
    vae = UltraVSRAutoencoder(**configs.TINY_VAE_CONFIG).eval()
    vae.load_state_dict(tiny_vae.state_dict())
    vae.decoder.video_up_RTS_blocks = nn.ModuleList(Passthrough() for _ in range(4))
    z = torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(vae.decode_frames(z, frames_per_batch=1), stock.decode(z).sample, **TOL)


# ----------------------------------------------------------------------------- checkpoints


def fresh_pair(base_unet: dict, base_vae: dict):
    unet = UltraVSRUNet(**configs.TINY_UNET_CONFIG).eval()
    vae = UltraVSRAutoencoder(**configs.TINY_VAE_CONFIG).eval()
    unet.load_state_dict(base_unet)
    vae.load_state_dict(base_vae)
    return unet, vae


@pytest.fixture(scope="module")
def trained():
    """A tiny 'trained' UltraVSR: adapters at rank 4, every trained tensor random."""
    torch.manual_seed(30)
    unet = UltraVSRUNet(**configs.TINY_UNET_CONFIG).eval()
    vae = UltraVSRAutoencoder(**configs.TINY_VAE_CONFIG).eval()
    base = ({k: v.clone() for k, v in unet.state_dict().items()}, {k: v.clone() for k, v in vae.state_dict().items()})
    unet_targets = adapters_mod.official_unet_targets(unet)
    vae_targets = adapters_mod.official_vae_targets(vae)
    adapters_mod.add_unet_adapters(unet, 4, unet_targets)
    adapters_mod.add_vae_adapter(vae, 4, vae_targets)
    g = torch.Generator().manual_seed(31)
    with torch.no_grad():
        for model, markers in ((unet, ("lora", "conv_in", "RTS")), (vae, ("lora", "RTS"))):
            for name, p in model.named_parameters():
                if any(m in name for m in markers):
                    p.copy_(p + torch.randn(p.shape, generator=g) * 0.05)
    ckpt = adapters_mod.checkpoint_from_models(unet, vae)
    return unet, vae, base, ckpt, (unet_targets, vae_targets)


def run_pair(unet, vae):
    g = torch.Generator().manual_seed(40)
    x, ctx = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 5, 32, generator=g)
    pixels = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    with torch.no_grad():
        return unet(x, 400, ctx), vae.encode_frames(pixels), vae.decode_frames(x)


def assert_same_outputs(a, b, **tol):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, **(tol or dict(rtol=0, atol=0)))


def test_adapter_layout_matches_official_names(trained):
    unet, vae, _, ckpt, (unet_targets, vae_targets) = trained
    keys = unet.state_dict()
    for key in ("conv_in.base_layer.weight", "conv_in.base_layer.bias", "conv_in.lora_A.default_encoder.weight",
                "down_blocks.0.resnets.0.conv1.lora_B.default_encoder.weight", "conv_out.lora_A.default_decoder.weight",
                "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.default_others.weight",
                "video_down_RTS_blocks.0.RTSConv.conv1.weight"):
        assert key in keys, key
    assert tuple(keys["conv_in.lora_A.default_encoder.weight"].shape) == (4, 4, 3, 3)
    assert tuple(keys["conv_in.lora_B.default_encoder.weight"].shape) == (96, 4, 1, 1)
    assert unet.conv_in.scaling["default_encoder"] == 2.0  # lora_alpha 8 / rank 4
    assert not any("RTS" in k and "lora" in k for k in keys)
    vkeys = vae.state_dict()
    assert "encoder.down_blocks.0.resnets.0.conv1.lora_A.default_encoder.weight" in vkeys
    assert "quant_conv.lora_A.default_encoder.weight" in vkeys
    assert not any(k.startswith(("decoder.", "post_quant_conv")) and "lora" in k for k in vkeys)
    assert ckpt.unet_lora_encoder_modules == unet_targets["default_encoder"]
    assert ckpt.unet_lora_decoder_modules == unet_targets["default_decoder"]
    assert ckpt.unet_lora_others_modules == unet_targets["default_others"]
    assert ckpt.vae_lora_modules == vae_targets and ckpt.rank_unet == ckpt.rank_vae == 4
    assert all(("lora" in k or "conv_in" in k or "RTS" in k) for k in ckpt.state_dict_unet)


def test_official_format_round_trip_and_merge(trained, tmp_path):
    unet, vae, base, ckpt, _ = trained
    path = tmp_path / "UltraVSR.pkl"
    torch.save(ckpt.to_official_dict(), path)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # the format is weights-only loadable
    assert sorted(raw) == sorted(ckpt.to_official_dict())
    loaded = ckpt_mod.read_checkpoint(path)
    assert loaded.source == str(path)
    expected = run_pair(unet, vae)

    fresh = fresh_pair(*base)
    adapters_mod.apply_checkpoint(*fresh, loaded)
    assert_same_outputs(run_pair(*fresh), expected)
    assert (expected[0] - run_pair(*fresh_pair(*base))[0]).abs().max() > 1e-3  # the checkpoint matters

    merged = fresh_pair(*base)
    adapters_mod.apply_checkpoint(*merged, loaded, merge_lora=True)
    assert not any("lora" in k or "base_layer" in k for k in merged[0].state_dict())
    assert "conv_in.weight" in merged[0].state_dict() and "quant_conv.weight" in merged[1].state_dict()
    assert_same_outputs(run_pair(*merged), expected, **TOL)


def test_safetensors_round_trip(trained, tmp_path):
    unet, vae, base, ckpt, _ = trained
    path = tmp_path / "ultravsr.safetensors"
    ckpt_mod.save_safetensors_checkpoint(ckpt, path)
    loaded = ckpt_mod.read_checkpoint(path)
    for key in ("rank_unet", "unet_lora_encoder_modules", "unet_lora_decoder_modules", "unet_lora_others_modules",
                "rank_vae", "vae_lora_modules"):
        assert getattr(loaded, key) == getattr(ckpt, key)
    for a, b in ((loaded.state_dict_unet, ckpt.state_dict_unet), (loaded.state_dict_vae, ckpt.state_dict_vae)):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fresh = fresh_pair(*base)
    adapters_mod.apply_checkpoint(*fresh, loaded)
    assert_same_outputs(run_pair(*fresh), run_pair(unet, vae))


def test_checkpoint_errors(trained, tmp_path):
    _, _, base, ckpt, _ = trained

    def saved(obj, name="bad.pkl"):
        torch.save(obj, tmp_path / name)
        return tmp_path / name

    missing_tensor = ckpt.to_official_dict()
    missing_tensor["state_dict_unet"] = dict(ckpt.state_dict_unet)
    gone = "conv_in.lora_A.default_encoder.weight"
    del missing_tensor["state_dict_unet"][gone]
    path = saved(missing_tensor)
    with pytest.raises(WeightsError, match="missing keys") as err:
        adapters_mod.apply_checkpoint(*fresh_pair(*base), ckpt_mod.read_checkpoint(path))
    assert gone in str(err.value) and str(path) in str(err.value)

    extra = ckpt.to_official_dict()
    extra["state_dict_vae"] = {**ckpt.state_dict_vae, "decoder.something.weight": torch.zeros(1)}
    with pytest.raises(WeightsError, match="unexpected keys.*decoder.something.weight"):
        adapters_mod.apply_checkpoint(*fresh_pair(*base), ckpt_mod.read_checkpoint(saved(extra, "extra.pkl")))
    adapters_mod.apply_checkpoint(*fresh_pair(*base), ckpt_mod.read_checkpoint(tmp_path / "extra.pkl"), strict=False)

    no_rank = {k: v for k, v in ckpt.to_official_dict().items() if k != "rank_vae"}
    with pytest.raises(WeightsError, match=r"\['rank_vae'\] are missing"):
        ckpt_mod.read_checkpoint(saved(no_rank, "norank.pkl"))

    wider_text = UltraVSRUNet(**{**configs.TINY_UNET_CONFIG, "cross_attention_dim": 48}).eval()
    mismatch = r"shape mismatches.*attn2.to_k.lora_A.default_encoder.weight: file \(4, 32\), model \(4, 48\)"
    with pytest.raises(WeightsError, match=mismatch):
        adapters_mod.apply_checkpoint(wider_text, fresh_pair(*base)[1], ckpt)
    other_blocks = UltraVSRUNet(**{**configs.TINY_UNET_CONFIG, "block_out_channels": (96, 192, 192, 192)}).eval()
    with pytest.raises(WeightsError, match="different base model"):
        adapters_mod.apply_checkpoint(other_blocks, fresh_pair(*base)[1], ckpt)

    with pytest.raises(WeightsError, match="LoRA targets"):
        wrong_targets = ckpt_mod.UltraVSRCheckpoint(**{**ckpt.to_official_dict(),
                                                       "unet_lora_others_modules": ["mid_block.nothing_here"]})
        adapters_mod.apply_checkpoint(*fresh_pair(*base), wrong_targets)


class NotWeights:
    def __init__(self):
        self.payload = [1, 2, 3]


def test_refuses_files_that_are_not_checkpoints(tmp_path):
    """Every file goes through the one safe loader: its error texts, plus where UltraVSR's come from."""
    get_it = "Use the official UltraVSR checkpoint"
    evil = tmp_path / "object.pkl"
    with open(evil, "wb") as f:
        pickle.dump(NotWeights(), f)
    with pytest.raises(WeightsError, match="never runs code from checkpoints.*weights-only") as err:
        ckpt_mod.read_checkpoint(evil)
    assert str(evil) in str(err.value) and get_it in str(err.value)
    torch.save(NotWeights(), tmp_path / "object.pt")
    with pytest.raises(WeightsError, match="weights-only"):
        ckpt_mod.read_checkpoint(tmp_path / "object.pt")
    (tmp_path / "text.pkl").write_text("hello")
    with pytest.raises(WeightsError, match=f"not a readable PyTorch checkpoint.*{get_it}"):
        ckpt_mod.read_checkpoint(tmp_path / "text.pkl")
    torch.save([1, 2], tmp_path / "list.pkl")
    with pytest.raises(WeightsError, match="expected a dict"):
        ckpt_mod.read_checkpoint(tmp_path / "list.pkl")
    with pytest.raises(WeightsError, match=f"does not exist.*{get_it}"):
        ckpt_mod.read_checkpoint(tmp_path / "absent.pkl")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="not an UltraVSR checkpoint"):
        ckpt_mod.read_checkpoint(tmp_path / "other.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(WeightsError, match=f"not a readable safetensors file.*{get_it}"):
        ckpt_mod.read_checkpoint(tmp_path / "broken.safetensors")


def write_base_folder(root, unet_state, vae_state, old_attention_names=False):
    from safetensors.torch import save_file

    for sub, cls_name, cfg, state in (("unet", "UNet2DConditionModel", configs.TINY_UNET_CONFIG, unet_state),
                                      ("vae", "AutoencoderKL", configs.TINY_VAE_CONFIG, vae_state)):
        (root / sub).mkdir(parents=True)
        config = {"_class_name": cls_name, "_diffusers_version": "0.10.0", "some_future_key": 1,
                  **{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}}
        (root / sub / "config.json").write_text(json.dumps(config))
        state = {k: v.contiguous() for k, v in state.items() if "RTS" not in k}
        if old_attention_names and sub == "vae":
            state = {k.replace(".to_q.", ".query.").replace(".to_out.0.", ".proj_attn."): v for k, v in state.items()}
        save_file(state, str(root / sub / "diffusion_pytorch_model.safetensors"))
    for sub in ("text_encoder", "tokenizer", "scheduler"):
        (root / sub).mkdir()


def test_load_from_base_folder(trained, tmp_path):
    unet, vae, base, ckpt, _ = trained
    folder = tmp_path / "sd21"
    write_base_folder(folder, *base, old_attention_names=True)
    path = tmp_path / "UltraVSR.pkl"
    ckpt_mod.save_official_checkpoint(ckpt, path)
    loaded_unet, loaded_vae = loader_mod.load_ultravsr(path, folder)
    assert not any(p.requires_grad for p in loaded_unet.parameters())
    for a, b in ((loaded_unet, unet), (loaded_vae, vae)):
        ours, theirs = a.state_dict(), b.state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    # Same weights; torch may pick another (equally exact) kernel for frozen weights, hence TOL.
    assert_same_outputs(run_pair(loaded_unet, loaded_vae), run_pair(unet, vae), **TOL)


def test_base_weights_go_through_the_safe_loader(trained, tmp_path):
    _, _, base, _, _ = trained
    folder = tmp_path / "sd21"
    write_base_folder(folder, *base)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(WeightsError, match="not a readable safetensors file.*Re-download the base model"):
        base_mod.load_base_unet(folder)
    # A weights-only .bin works the same; one holding code is refused.
    weights.unlink()
    plain = {k: v.contiguous() for k, v in base[0].items() if "RTS" not in k}
    torch.save(plain, folder / "unet" / "diffusion_pytorch_model.bin")
    loaded = base_mod.load_base_unet(folder).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in plain.items())
    torch.save({**plain, "extra": NotWeights()}, folder / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(WeightsError, match="never runs code from checkpoints.*Re-download the base model"):
        base_mod.load_base_unet(folder)
