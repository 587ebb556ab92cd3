"""PatchScaler training on real photographs (scikit-image's bundled ones), on the CPU: the
degradations, every stage, a loss that falls, resuming, and the trained checkpoint in the pipeline."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vs_superres import SuperResError
from vs_superres.models.patchscaler.degradations import DEFAULT, degrade, gaussian_kernel, jpeg, sinc_kernel

pytestmark = pytest.mark.torch_threads(1)



@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from vs_superres.models.patchscaler.data import write_skimage_photos

    return write_skimage_photos(tmp_path_factory.mktemp("photos"), ("astronaut", "coffee", "chelsea", "rocket"))


@pytest.fixture(scope="module")
def autoencoder(tiny_autoencoder):
    return tiny_autoencoder


def _astronaut(size: int = 128) -> torch.Tensor:
    import numpy as np
    from skimage import data

    return torch.from_numpy(data.astronaut()[:size, 100:100 + size].astype(np.float32) / 255).permute(2, 0, 1)[None]


def test_degradations_are_real_esrgan_shaped_and_seeded():
    hr = _astronaut()
    lo = degrade(hr, torch.Generator().manual_seed(4))
    assert lo.shape == (1, 3, 32, 32) and 0 <= lo.min() and lo.max() <= 1
    assert torch.equal(lo, degrade(hr, torch.Generator().manual_seed(4)))
    assert not torch.equal(lo, degrade(hr, torch.Generator().manual_seed(5)))
    for k in (gaussian_kernel(21, 3.0, 0.5, 0.7), gaussian_kernel(7, 1.0, 1.0, 0.0, beta=0.5), sinc_kernel(13, 1.5)):
        assert k.sum().item() == pytest.approx(1.0, abs=1e-5)
    aniso = gaussian_kernel(21, 3.0, 0.5, 0.0)
    assert torch.allclose(aniso, aniso.flip(0)) and not torch.allclose(aniso, aniso.T)  # rotated by theta only
    errors = [(jpeg(hr, q) - hr).abs().mean().item() for q in (20, 50, 95)]
    assert errors[0] > errors[1] > errors[2] > 0
    assert DEFAULT.jpeg_range == (30.0, 95.0) and DEFAULT.scale == 4


def test_training_stages_on_real_photos_loss_falls_and_resumes(tmp_path, photos, autoencoder):
    from vs_superres.models.patchscaler.checkpoint import read_checkpoint
    from vs_superres.models.patchscaler.configs import TINY_CONFIG
    from vs_superres.models.patchscaler.pipeline import PatchScalerPipeline
    from vs_superres.models.patchscaler.train import SMOKE_DEGRADATIONS, train

    out = tmp_path / "ps.safetensors"
    common = dict(data=photos, autoencoder=autoencoder, out=out, crop=128, pool=24, refresh=0, quiet=True,
                  degradations=SMOKE_DEGRADATIONS, lr=2e-3, batch=8)
    cls = train("classifier", steps=40, config=TINY_CONFIG, **common)
    assert sum(cls.losses[-10:]) < sum(cls.losses[:10])
    rtm = train("rtm", steps=1, candidates=200, **common)
    assert rtm.extra["candidates"] == 200
    config, tensors, state, _ = read_checkpoint(out)
    assert state["stage"] == "rtm" and torch.allclose(tensors["rtm_keys"].norm(dim=1), torch.ones(TINY_CONFIG.rtm_size))
    grm = train("grm", steps=150, eta="auto", **common)
    assert sum(grm.losses[-20:]) < 0.8 * sum(grm.losses[:20]), grm.losses[::10]
    assert 0.0 < grm.extra["eta"] and abs(sum(grm.extra["group_shares"].values()) - 1) < 1e-9
    dit = train("dit", steps=200, save_every=100, **common)
    first, last = sum(dit.losses[:20]) / 20, sum(dit.losses[-20:]) / 20
    assert last < 0.8 * first, (first, last)
    assert dit.samples_per_second > 0
    state = read_checkpoint(out)[2]
    assert state["stage"] == "dit" and state["step"] == 200 and state["finished"]
    # joint: the GRM trains together with the DiT (the paper's first 100K iterations)
    grm_before = {k: v.clone() for k, v in read_checkpoint(out)[1].items() if k.startswith("grm.")}
    joint = train("joint", steps=5, eta=0.003, **common)
    assert all(math.isfinite(v) for v in joint.losses)
    grm_after = read_checkpoint(out)[1]
    assert any(not torch.equal(v, grm_after[k]) for k, v in grm_before.items())

    # resume: a stage stopped at step 100 continues from there with its optimiser state
    again = tmp_path / "resume.safetensors"
    out.replace(again)
    steps = []
    part = dict(common, out=again)
    train("dit", steps=100, **part)
    state = read_checkpoint(again)[2]
    state_opt = read_checkpoint(again)[3]
    assert state["step"] == 100 and any(k.endswith(".exp_avg") for k in state_opt)
    # pretend the run was interrupted at 100 of 130
    from vs_superres.models.patchscaler.checkpoint import load_networks, save_checkpoint

    save_checkpoint(again, load_networks(again), optimizer_tensors=state_opt, train_state={**state, "steps": 130, "finished": False})
    train("dit", steps=130, on_step=lambda s, loss: steps.append(s), **part)
    assert steps == list(range(101, 131))

    pipe = PatchScalerPipeline.from_files(again, autoencoder, steps_hard=4, steps_medium=3, steps_simple=2)
    assert pipe(_astronaut(32)).shape == (1, 3, 128, 128)


def test_training_refuses_bad_setups(tmp_path, photos, autoencoder):
    from vs_superres.models.patchscaler.train import main, train

    with pytest.raises(SuperResError, match="no images"):
        train("grm", data=tmp_path, autoencoder=autoencoder, out=tmp_path / "x.safetensors", steps=1, quiet=True)
    with pytest.raises(SuperResError, match="smaller than V = 16"):
        train("dit", data=photos, autoencoder=autoencoder, out=tmp_path / "x.safetensors", steps=1, crop=64, pool=2,
              quiet=True)
    assert main(["--stage", "grm", "--data", str(photos), "--out", str(tmp_path / "y.safetensors")]) == 2


def test_training_entry_point_runs_a_stage(tmp_path, photos, autoencoder, capsys):
    from vs_superres.models.patchscaler.train import main

    out = tmp_path / "cli.safetensors"
    code = main(["--stage", "grm", "--data", str(photos), "--autoencoder", str(autoencoder), "--out", str(out),
                 "--steps", "5", "--batch", "2", "--crop", "128", "--pool", "4", "--config", "tiny",
                 "--smoke-degradations", "--device", "cpu"])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["stage"] == "grm" and summary["checkpoint"] == str(out) and out.is_file()
    assert "grm [" in captured.err and "5/5" in captured.err


def test_bf16_autocast_training_path_runs_on_the_cpu(tmp_path, photos, autoencoder):
    """The bf16 path CUDA takes by default (autocast to bfloat16, fp32 master weights), run on
    the CPU: the losses stay finite and fall, and the checkpoint keeps fp32 weights. (No GPU is
    lent to this project's CI: the CUDA device itself is not exercised here.)"""
    from vs_superres.models.patchscaler.checkpoint import read_checkpoint
    from vs_superres.models.patchscaler.configs import TINY_CONFIG
    from vs_superres.models.patchscaler.train import SMOKE_DEGRADATIONS, train

    out = tmp_path / "bf16.safetensors"
    result = train("grm", data=photos, autoencoder=autoencoder, out=out, steps=120, config=TINY_CONFIG,
                   crop=128, pool=24, refresh=0, quiet=True, degradations=SMOKE_DEGRADATIONS, lr=2e-3,
                   batch=8, eta="auto", bf16=True)
    assert all(math.isfinite(v) for v in result.losses)
    assert sum(result.losses[-20:]) < 0.8 * sum(result.losses[:20]), result.losses[::10]
    _, tensors, _, _ = read_checkpoint(out)
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float32}
