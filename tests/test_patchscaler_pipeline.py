"""PatchScaler end to end on a tiny release: loading through the real loader, registration as
``patchscaler-x4``, the CLI, determinism across batch sizes and devices, the zero-initialised
floor, and bad inputs with clear errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from vs_superres import InvalidOption, SuperResError, UnsupportedFormat, WeightsError

pytestmark = pytest.mark.torch_threads(1)

LIVE_GROUPS: dict[str, float] = {}  # thresholds that split the photo's 9 patches 3 / 3 / 3 (set by a fixture)



@pytest.fixture(scope="module")
def tiny_release(patchscaler_release):
    return patchscaler_release


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A real photograph, 64x64 crop of scikit-image's astronaut at 1/4: [1, 3, 64, 64] in [0, 1]."""
    from skimage import data

    img = data.astronaut()[::4, ::4][40:104, 32:96].astype(np.float32) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.fixture(scope="module", autouse=True)
def _live_groups(tiny_release, photo):
    """The tiny GRM's random confidence sits near 0.5: put gamma1 / gamma2 between its patch means so
    that every group is used (the thresholds are options; the paper's are the defaults)."""
    from vs_superres.models.patchscaler.pgs import PatchGrid
    from vs_superres.models.patchscaler.pipeline import PatchScalerPipeline

    pipe = PatchScalerPipeline.from_files(*tiny_release)
    with torch.no_grad():
        _, conf = pipe.networks.grm(pipe.upscale_and_encode(photo)[1])
    means = sorted(PatchGrid.of(32, 32, 16, 12).footprint_means(conf[0]).tolist())
    LIVE_GROUPS.update(gamma_medium=(means[2] + means[3]) / 2, gamma_simple=(means[5] + means[6]) / 2)


def _pipeline(tiny_release, **settings):
    from vs_superres.models.patchscaler.pipeline import PatchScalerPipeline

    ckpt, vae = tiny_release
    return PatchScalerPipeline.from_files(ckpt, vae, **{**LIVE_GROUPS, **settings})


def test_upscaler_loads_the_tiny_release_through_the_real_loader(tiny_release, photo):
    from vs_superres import Upscaler

    ckpt, vae = tiny_release
    up = Upscaler("patchscaler-x4", device="cpu", checkpoint=str(ckpt), autoencoder=str(vae), **LIVE_GROUPS)
    out = up.upscale(photo)
    assert out.shape == (1, 3, 256, 256) and torch.isfinite(out).all()
    stats = up._runner.last_run
    assert stats.group_sizes == {"simple": 3, "medium": 3, "hard": 3}  # 32x32 latent: origins 0, 12, 16 per axis
    assert stats.patch_evaluations == sum(stats.group_sizes[g] * n for g, n in (("simple", 8), ("medium", 14), ("hard", 20)))
    # the same through the pipeline directly, bit for bit
    direct = _pipeline(tiny_release)(photo).clamp(0, 1)
    assert torch.equal(out, direct)


def test_output_is_identical_across_batch_sizes_and_two_devices(tiny_release, photo):
    ref = _pipeline(tiny_release)(photo)
    assert torch.equal(_pipeline(tiny_release, patches_per_batch=5)(photo), ref)
    two = _pipeline(tiny_release, patches_per_batch=3)
    from vs_superres.models.patchscaler.pipeline import parse_devices

    two.devices = parse_devices(["cpu", "cpu"], torch.device("cpu"))
    two._replicas = {0: two.networks, 1: two.networks}
    assert torch.equal(two(photo), ref)
    assert torch.equal(_pipeline(tiny_release, devices="cpu,cpu")(photo), ref)
    # frames of one engine batch do not affect each other
    pair = _pipeline(tiny_release)(torch.cat([photo, photo.flip(-1)]))
    assert torch.equal(pair[:1], ref)
    assert not torch.equal(_pipeline(tiny_release, seed=1)(photo), ref)


def test_zero_initialised_model_returns_the_decoded_coarse_result(tmp_path, tiny_release, photo):
    """The floor: an untrained Patch-DiT (zero x0 head) returns decode(y_HR), colour-fixed."""
    from vs_superres.models.patchscaler.autoencoder import decode
    from vs_superres.models.patchscaler.pipeline import PatchScalerPipeline
    from vs_superres.models.patchscaler.tiny import write_tiny_checkpoint
    from vs_superres.numerics.colorfix import color_fix

    ckpt = write_tiny_checkpoint(tmp_path / "zero.safetensors", live=False)
    pipe = PatchScalerPipeline.from_files(ckpt, tiny_release[1], **LIVE_GROUPS)
    with torch.no_grad():
        up, y_lr = pipe.upscale_and_encode(photo)
        y_hr, conf = pipe.networks.grm(y_lr)
        assert torch.equal(y_hr, y_lr)  # the untrained GRM passes the latent through
        assert torch.equal(pipe.refine_latent(y_hr[0], conf[0]), y_hr[0])
        expected = color_fix(decode(pipe.vae, y_hr).clamp(0, 1), up.clamp(0, 1), "wavelet")
    assert torch.equal(pipe(photo), expected)


def test_odd_and_small_images(tiny_release):
    pipe = _pipeline(tiny_release, color_fix="none")
    for h, w in ((5, 7), (4, 4), (9, 30)):
        x = torch.rand(1, 3, h, w)
        assert pipe(x).shape == (1, 3, 4 * h, 4 * w)
    with pytest.raises(UnsupportedFormat, match=r"at least 4x4 pixels.*got 3x8"):
        pipe(torch.rand(1, 3, 8, 3))


def test_bad_inputs_fail_with_clear_errors(tmp_path, tiny_release, tiny_ditn_path, photo):
    from vs_superres import Upscaler

    ckpt, vae = tiny_release
    # no autoencoder anywhere: the runtime's search names the file, the places and the option
    empty = tmp_path / "empty"
    empty.mkdir()
    env_before = os.environ.get("SUPERRES_WEIGHTS")
    os.environ["SUPERRES_WEIGHTS"] = str(empty)
    try:
        with pytest.raises(WeightsError, match=r"sd-vae-ft-mse.*was not found[\s\S]*autoencoder=PATH"):
            Upscaler("patchscaler-x4", device="cpu", checkpoint=str(ckpt))
        with pytest.raises(WeightsError, match=r"patchscaler-x4.safetensors.*was not found[\s\S]*checkpoint=PATH"):
            Upscaler("patchscaler-x4", device="cpu", autoencoder=str(vae))
    finally:
        if env_before is None:
            os.environ.pop("SUPERRES_WEIGHTS")
        else:
            os.environ["SUPERRES_WEIGHTS"] = env_before
    with pytest.raises(WeightsError, match="has no config.json.*sd-vae-ft-mse"):
        Upscaler("patchscaler-x4", device="cpu", checkpoint=str(ckpt), autoencoder=str(empty))
    # a checkpoint of another model
    with pytest.raises(WeightsError, match=r"not a PatchScaler checkpoint: expected a .safetensors.*train"):
        Upscaler("patchscaler-x4", device="cpu", checkpoint=str(tiny_ditn_path), autoencoder=str(vae))
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(WeightsError, match="not a PatchScaler checkpoint .metadata format None"):
        Upscaler("patchscaler-x4", device="cpu", checkpoint=str(other), autoencoder=str(vae))
    from vs_superres.models.patchscaler.checkpoint import read_checkpoint, save_checkpoint
    from vs_superres.models.patchscaler.tiny import tiny_networks

    damaged = tmp_path / "damaged.safetensors"
    save_checkpoint(damaged, tiny_networks())
    config, tensors, _, _ = read_checkpoint(damaged)
    tensors.pop("dit.out.weight")
    save_file({f"net.{k}": v for k, v in tensors.items()}, str(damaged),
              metadata={"format": "vs-superres/patchscaler", "config": json.dumps(config.to_dict())})
    with pytest.raises(WeightsError, match=r"does not fit its own PatchScaler config: missing \['dit.out.weight'\]"):
        Upscaler("patchscaler-x4", device="cpu", checkpoint=str(damaged), autoencoder=str(vae))
    with pytest.raises(InvalidOption, match="tile and overlap do not apply.*patch_stride"):
        Upscaler("patchscaler-x4", device="cpu", tile=64, checkpoint=str(ckpt), autoencoder=str(vae))
    with pytest.raises(InvalidOption, match="devices: 'gpu7' is not a device"):
        Upscaler("patchscaler-x4", device="cpu", checkpoint=str(ckpt), autoencoder=str(vae), devices="gpu7")
    with pytest.raises(InvalidOption, match="tau_simple <= tau_medium"):
        Upscaler("patchscaler-x4", device="cpu", checkpoint=str(ckpt), autoencoder=str(vae), tau_simple=900)
    up = Upscaler("patchscaler-x4", device="cpu", checkpoint=str(ckpt), autoencoder=str(vae))
    with pytest.raises(UnsupportedFormat, match="at least 4x4"):
        up.upscale(photo[..., :3, :3])
    assert issubclass(WeightsError, SuperResError)


def test_checkpoint_round_trip(tmp_path):
    from vs_superres.models.patchscaler.checkpoint import load_networks, read_checkpoint, save_checkpoint
    from vs_superres.models.patchscaler.configs import TINY_CONFIG
    from vs_superres.models.patchscaler.tiny import tiny_networks

    nets = tiny_networks(seed=3)
    path = save_checkpoint(tmp_path / "a.safetensors", nets, train_state={"step": 5})
    again = load_networks(path)
    assert again.config == TINY_CONFIG
    for (k, a), (k2, b) in zip(nets.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    assert read_checkpoint(path)[2] == {"step": 5}


def test_cli_lists_and_runs_patchscaler(tmp_path, tiny_release, capsys):
    """In-process (the registry above already holds the family; a subprocess would register it from
    SUPERRES_FAMILIES=...:vs_superres.models.patchscaler.family the same way)."""
    from PIL import Image

    from vs_superres.cli import main

    ckpt, vae = tiny_release
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "patchscaler-x4" in listing and "no released weights" in listing
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray((np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)).save(src)
    code = main(["upscale", str(src), str(dst), "--model", "patchscaler-x4", "-O", f"checkpoint={ckpt}",
                 "-O", f"autoencoder={vae}", "-O", "steps_hard=4", "-O", "steps_medium=3", "-O", "steps_simple=2", "-q"])
    assert code == 0, capsys.readouterr().err
    assert Image.open(dst).size == (40, 48)
    code = main(["upscale", str(src), str(dst), "--model", "patchscaler-x4", "-O", f"checkpoint={ckpt}",
                 "-O", f"autoencoder={vae}", "-O", "gamma_simple=2", "-q"])
    assert code == 2 and "--gamma-simple must be a number in [0, 1], got 2.0" in capsys.readouterr().err


def test_bf16_runs_close_to_fp32_and_hosts_see_the_options(tiny_release, photo):
    from vs_superres.models.patchscaler.pipeline import PatchScalerPipeline
    from vs_superres.vapoursynth.signatures import signature

    ckpt, vae = tiny_release
    ref = _pipeline(tiny_release)(photo)
    bf = PatchScalerPipeline.from_files(ckpt, vae, dtype=torch.bfloat16, **LIVE_GROUPS)(photo)
    assert bf.dtype == torch.bfloat16 and (bf.float() - ref).abs().mean() < 0.05
    sig = signature("PatchScaler")
    for part in ("checkpoint:data:opt;", "autoencoder:data:opt;", "devices:data:opt;", "tau_hard:int:opt;",
                 "gamma_simple:float:opt;", "color_fix:data:opt;"):
        assert part in sig
