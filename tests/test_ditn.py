"""DITN network: checkpoint compatibility, fidelity to the official release, shapes, configs.

The reference outputs in ``tests/data/ditn_reference.npz`` were produced by the unmodified
official code (see ``tests/data/README.md``). Tests that need the released checkpoints find
them through ``$SUPERRES_WEIGHTS`` (fixtures in ``conftest.py``) and skip when absent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vs_superres.contracts.errors import SuperResError
from vs_superres.models.ditn import (
    DITN,
    build,
    config_from_state_dict,
    reflect_pad_to_multiple,
)
from vs_superres.models.ditn.family import DITNConfig
from vs_superres.runtime.registry import family, get_model

REFERENCE = Path(__file__).parent / "data" / "ditn_reference.npz"
CHECKPOINTS = {"real": "ditn_x4_path", "gan": "ditn_gan_x4_path"}


def _load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _official(request: pytest.FixtureRequest, tag: str) -> DITN:
    model = DITN().eval()
    model.load_state_dict(_load(request.getfixturevalue(CHECKPOINTS[tag])), strict=True)
    return model


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` uint8 or float in [0, 1] -> ``[1, 3, H, W]`` float32."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    return t / 255.0 if image.dtype == np.uint8 else t


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@torch.no_grad()
def _run(model: DITN, x: torch.Tensor) -> torch.Tensor:
    return model(x)


# --- checkpoints -------------------------------------------------------------------------


@pytest.mark.parametrize("tag", sorted(CHECKPOINTS))
def test_official_checkpoint_loads_strictly_with_unchanged_keys(request, tag):
    state = _load(request.getfixturevalue(CHECKPOINTS[tag]))
    assert len(state) == 122
    model = DITN()
    assert set(model.state_dict()) == set(state)
    model.load_state_dict(state, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_parameter_count_matches_release():
    assert sum(p.numel() for p in DITN().parameters()) == 444_112


@pytest.mark.parametrize("tag", sorted(CHECKPOINTS))
def test_registered_weight_files_match_checkpoints(request, tag):
    name = {"real": "ditn-real-x4", "gan": "ditn-real-gan-x4"}[tag]
    desc = get_model(name)
    (weight,) = desc.weights
    path = request.getfixturevalue(CHECKPOINTS[tag])
    assert path.as_posix().endswith(weight.relpath)
    assert path.stat().st_size == weight.size
    assert hashlib.sha256(path.read_bytes()).hexdigest() == weight.sha256


# --- fidelity to the official implementation ---------------------------------------------


@pytest.mark.parametrize("crop", ["a", "b"])
@pytest.mark.parametrize("tag", sorted(CHECKPOINTS))
def test_matches_official_reference_output(request, reference, tag, crop):
    model = _official(request, tag)
    out = _run(model, _to_tensor(reference[f"input_{crop}"]))[0].permute(1, 2, 0).numpy()
    expected = reference[f"output_{crop}_{tag}"]
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 1e-5


def test_reference_inputs_are_astronaut_crops(reference, astronaut):
    for crop in ("a", "b"):
        y, x, h, w = reference[f"box_{crop}"]
        expected = np.round(astronaut[y:y + h, x:x + w] * 255).astype(np.uint8)
        np.testing.assert_array_equal(reference[f"input_{crop}"], expected)


def test_gan_and_plain_checkpoints_differ(request, reference):
    x = _to_tensor(reference["input_a"])
    plain, gan = _run(_official(request, "real"), x), _run(_official(request, "gan"), x)
    assert (plain - gan).abs().max() > 0.05


# --- behaviour on real photos ------------------------------------------------------------


def test_deterministic(request, astronaut):
    model = _official(request, "real")
    x = _to_tensor(astronaut[100:141, 200:233])
    assert torch.equal(_run(model, x), _run(model, x))


def test_output_range_and_content_on_photo(request, astronaut):
    model = _official(request, "real")
    x = _to_tensor(astronaut[100:164, 200:264])
    y = _run(model, x)
    assert y.shape == (1, 3, 256, 256)
    assert torch.isfinite(y).all()
    assert y.min() > -0.2 and y.max() < 1.2
    # Downscaling the result gives back (nearly) the input: no colour shift, no offset.
    assert (F.avg_pool2d(y, 4) - x).abs().mean() < 0.01


def test_batch_items_are_independent(request, astronaut):
    model = _official(request, "real")
    a, b = _to_tensor(astronaut[0:24, 0:24]), _to_tensor(astronaut[300:324, 100:124])
    both = _run(model, torch.cat([a, b]))
    assert torch.allclose(both[1:], _run(model, b), atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_stays_close(request, astronaut, dtype):
    model = _official(request, "real")
    x = _to_tensor(astronaut[100:132, 200:232])
    y32 = _run(model, x)
    y = _run(model.to(dtype), x.to(dtype)).float()
    assert (y - y32).abs().mean() < 5e-3


# --- shapes, padding and configs (random weights, no checkpoint needed) ------------------


@pytest.mark.parametrize(
    "size", [(37, 29), (5, 7), (1, 1), (1, 9), (3, 3), (4, 4), (8, 8), (2, 13), (17, 16)]
)
def test_output_shape_for_odd_and_tiny_sizes(size):
    model = DITN(dim=12, num_itl=1, num_sal=1).eval()
    h, w = size
    y = _run(model, torch.rand(2, 3, h, w))
    assert y.shape == (2, 3, 4 * h, 4 * w)
    assert torch.isfinite(y).all()


def test_padding_is_the_release_reflect_when_it_can_run():
    x = torch.rand(1, 2, 5, 7)
    assert torch.equal(reflect_pad_to_multiple(x, 8), F.pad(x, (0, 1, 0, 3), mode="reflect"))
    aligned = torch.rand(1, 2, 4, 8)
    assert torch.equal(reflect_pad_to_multiple(aligned, 4), aligned)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 6])
def test_padding_of_tiny_sides_continues_the_mirror(size):
    x = torch.arange(size, dtype=torch.float32).reshape(1, 1, 1, size).repeat(1, 1, size, 1)
    padded = reflect_pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (8, 8)
    period = max(2 * (size - 1), 1)
    index = [min(i % period, period - i % period) for i in range(8)]
    expected = torch.tensor(index, dtype=torch.float32) if size > 1 else torch.zeros(8)
    assert torch.equal(padded[0, 0, 0], expected)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_scales_build_and_run(scale):
    model = build({"upscale": scale, "dim": 12, "num_itl": 1, "num_sal": 1}).eval()
    assert model.upsample[0].weight.shape[0] == 3 * scale * scale
    assert _run(model, torch.rand(1, 3, 11, 13)).shape == (1, 3, 11 * scale, 13 * scale)


def test_config_round_trip_on_official_checkpoint(ditn_x4_path):
    state = _load(ditn_x4_path)
    config = config_from_state_dict(state)
    assert config == DITNConfig()
    build(config).load_state_dict(state, strict=True)


def test_config_round_trip_on_random_x2_model():
    config = {
        "in_channels": 3, "dim": 24, "num_itl": 2, "num_sal": 3, "num_ufone": 2,
        "ffn_expansion": 3, "bias": True, "patch_size": 8, "upscale": 2,
    }
    state = build(config).state_dict()
    assert config_from_state_dict(state) == DITNConfig(**config)
    rebuilt = build(config_from_state_dict(state))
    rebuilt.load_state_dict(state, strict=True)


def test_config_errors_name_the_problem():
    with pytest.raises(SuperResError, match="not a DITN state dict"):
        config_from_state_dict({"conv_first.weight": torch.zeros(1)})
    with pytest.raises(SuperResError, match="unknown keys"):
        build({"dimension": 60})


def test_registration():
    fam = family("ditn")
    assert fam.config_type is DITNConfig and fam.options.names() == ("backend",)  # issue 26
    assert fam.export is not None
    state = build(DITNConfig()).state_dict()
    assert fam.config_from_state_dict(state) == DITNConfig()
    for name in ("ditn-real-x4", "ditn-real-gan-x4"):
        desc = get_model(name)
        assert desc.family == "ditn" and desc.scale == 4 and desc.kind == "image"
        assert desc.alignment == 8 and desc.config == DITNConfig()
        assert desc.licence == "Apache-2.0" and desc.weights[0].licence == "Apache-2.0"
        assert desc.weights[0].url.startswith("https://drive.google.com/")
