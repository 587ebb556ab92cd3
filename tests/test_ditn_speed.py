"""DITN's fast inference path (``models/ditn/fast.py``) computes what the checkpoint-true network does.

``DITNInference`` is what the runtime builds; ``DITN`` (``arch.py``) is the reference that
reproduces the authors' outputs (``tests/test_ditn.py``). These tests compare the two on real
weights and photos, on odd and tiny sizes, batches, reduced precision and after the weights
change, and check that gradients still flow through the reference forward.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vs_superres.models.ditn.arch import DITN
from vs_superres.models.ditn.fast import DITNInference


def _pair(state: dict | None = None, **config) -> tuple[DITN, DITNInference]:
    torch.manual_seed(0)
    ref = DITN(**config).eval()
    if state is None:
        # Random weights leave SDA.scale at zero (the release's init), which would hide the SDA
        # branch from the comparison; give every parameter a value.
        with torch.no_grad():
            for p in ref.parameters():
                p.copy_(torch.randn_like(p) * 0.2)
        state = ref.state_dict()
    ref.load_state_dict(state, strict=True)
    fast = DITNInference(**config).eval()
    fast.load_state_dict(state, strict=True)
    return ref, fast


def _photo(astronaut: np.ndarray, top: int, left: int, h: int, w: int) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(astronaut[top:top + h, left:left + w])).permute(2, 0, 1)[None].float()


@pytest.fixture
def real_pair(ditn_x4_path):
    return _pair(torch.load(ditn_x4_path, map_location="cpu", weights_only=True))


def test_same_state_dict_keys_as_the_release_network():
    assert set(DITNInference().state_dict()) == set(DITN().state_dict())


def test_real_weights_on_a_photo_match_the_reference(real_pair, astronaut):
    torch.set_num_threads(1)
    ref, fast = real_pair
    x = _photo(astronaut, 150, 180, 48, 72)
    with torch.no_grad():
        a, b = ref(x), fast(x)
    assert b.shape == a.shape == (1, 3, 192, 288)
    assert (a - b).abs().max() < 1e-4


@pytest.mark.parametrize("size", [(1, 1), (3, 3), (5, 7), (8, 8), (9, 17), (37, 29), (16, 40)])
def test_odd_and_tiny_sizes_match(size):
    ref, fast = _pair(dim=12, num_itl=2, num_sal=2, num_ufone=2)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        a, b = ref(x), fast(x)
    assert b.shape == a.shape
    assert (a - b).abs().max() < 1e-4 * max(1.0, a.abs().max().item())


def test_bias_and_x2_configs_match():
    ref, fast = _pair(dim=16, num_itl=1, num_sal=1, bias=True, upscale=2, ffn_expansion=1.5)
    x = torch.rand(1, 3, 19, 23)
    with torch.no_grad():
        assert (ref(x) - fast(x)).abs().max() < 1e-4


def test_many_patches_cross_the_chunk_border():
    # More patches than one ITL chunk holds, so a chunk boundary falls inside the map.
    ref, fast = _pair(dim=8, num_itl=1, num_sal=1)
    x = torch.rand(1, 3, 8 * 9, 8 * 9)  # 81 patches
    with torch.no_grad():
        assert (ref(x) - fast(x)).abs().max() < 1e-4


def test_bf16_stays_close_to_fp32(real_pair, astronaut):
    ref, _ = real_pair
    _, fast = _pair(ref.state_dict())
    fast = fast.to(torch.bfloat16)
    x = _photo(astronaut, 100, 200, 32, 32)
    with torch.no_grad():
        y32 = ref(x)
        y = fast(x.bfloat16()).float()
    assert (y - y32).abs().mean() < 5e-3


def test_changed_weights_are_picked_up():
    ref, fast = _pair(dim=8, num_itl=1, num_sal=1)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        before = fast(x)
        for net in (ref, fast):
            net.sft.bias.add_(0.5)
        after = fast(x)
        assert (after - before).abs().max() > 1e-3
        assert (after - ref(x)).abs().max() < 1e-4


def test_gradients_use_the_reference_forward():
    ref, fast = _pair(dim=8, num_itl=1, num_sal=1)
    x = torch.rand(1, 3, 16, 16)
    fast(x).sum().backward()
    assert fast.sft.weight.grad is not None and fast.sft.weight.grad.abs().sum() > 0


def test_a_model_loaded_under_inference_mode_runs_the_fast_path():
    """ComfyUI builds and runs models under torch.inference_mode: their parameters are inference
    tensors, which keep no version counter; the fused-weight cache must still work."""
    from vs_superres.models.ditn.family import DITNConfig, _build

    with torch.inference_mode():
        torch.manual_seed(0)
        net = _build(DITNConfig(dim=8)).eval()
        x = torch.rand(1, 3, 12, 16)
        fast = net(x)
        again = net(x)
    from vs_superres.models.ditn.arch import DITN

    with torch.no_grad():  # the checkpoint-true forward of the same weights
        slow = DITN.forward(net, x.clone())
    assert torch.equal(fast, again)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-4)


@pytest.mark.parametrize("size", [(40, 24), (37, 61), (64, 8)])
def test_row_strips_and_patch_row_chunks_match_the_whole_map(monkeypatch, size):
    """Maps far taller than one strip: every strip border (halo rows, the map's own edges) and
    every chunk of patch rows must give what the whole map (the GPU blocking) gives."""
    from vs_superres.models.ditn import fast as fast_module

    ref, fast = _pair(dim=12, num_itl=2, num_sal=2)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        whole = fast(x)
        # strips of 2 * halo rows, one row of patches per chunk
        monkeypatch.setattr(fast_module, "CPU_BLOCKING", fast_module.Blocking(1, 1, 1))
        strips = fast(x)
        whole_map = fast_module.fast_forward(fast._prepared_weights(), x, blocking=fast_module.WHOLE_MAP)
        expected = ref(x)
    assert (strips - whole).abs().max() < 1e-5
    assert (whole_map - whole).abs().max() < 1e-5
    assert (strips - expected).abs().max() < 1e-4


def test_the_portable_kernels_compute_what_onednn_computes(real_pair, astronaut):
    """The ATen kernel set (CUDA, fp16, a PyTorch without oneDNN's fused operators) runs here too."""
    from vs_superres.models.ditn import kernels
    from vs_superres.models.ditn.fast import fast_forward, prepare

    ref, fast = real_pair
    x = _photo(astronaut, 60, 90, 40, 56)
    with torch.no_grad():
        expected = ref(x)
        portable = fast_forward(prepare(fast), x, kernels=kernels.ATEN)
        default = fast(x)
    assert (portable - expected).abs().max() < 1e-4
    assert (default - expected).abs().max() < 1e-4
    if kernels.ONEDNN is not None:
        assert kernels.kernels_for(x) is kernels.ONEDNN
    assert kernels.kernels_for(x.half()) is kernels.ATEN


@pytest.mark.parametrize("dilation", [1, 2, 3, 5])
@pytest.mark.parametrize("size", [(1, 1), (7, 11), (24, 9)])
def test_dilated_depthwise_by_phases_equals_the_dilated_conv(dilation, size):
    from vs_superres.models.ditn import kernels

    torch.manual_seed(1)
    x = torch.randn(2, *size, 6)
    w = torch.randn(6, 1, 7, 7)
    b = torch.randn(6)
    expected = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), w, b, padding=3 * dilation, dilation=dilation, groups=6)
    for k in filter(None, (kernels.ATEN, kernels.ONEDNN)):
        got = kernels.dilated_depthwise(k, x, w.contiguous(memory_format=torch.channels_last), b, dilation)
        assert got.shape == x.shape
        torch.testing.assert_close(got.permute(0, 3, 1, 2), expected, rtol=0, atol=1e-5)
