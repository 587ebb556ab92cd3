"""PatchScaler's EMA of the weights: the update maths by hand, the EMA through save / resume of a
real training run (tiny config, real photos), the freezing of untrained modules at their
averages, and inference reading the EMA tensors by default."""

from __future__ import annotations

import pytest
import torch

from vs_superres import SuperResError, WeightsError

pytestmark = pytest.mark.torch_threads(1)



@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from vs_superres.models.patchscaler.data import write_skimage_photos

    return write_skimage_photos(tmp_path_factory.mktemp("photos"), ("astronaut", "coffee"))


@pytest.fixture(scope="module")
def autoencoder(tiny_autoencoder):
    return tiny_autoencoder


def test_ema_update_matches_a_hand_computation():
    from vs_superres.models.patchscaler.train import DEFAULT_EMA, ema_decay, update_ema

    assert DEFAULT_EMA == 0.9999  # the notes' value
    # warm-up (1 + n) / (10 + n), capped by the decay
    assert ema_decay(0.9999, 0) == pytest.approx(0.1)
    assert ema_decay(0.9999, 8) == pytest.approx(0.5)
    assert ema_decay(0.9, 1000) == 0.9
    assert ema_decay(0.9999, 10**7) == 0.9999
    ema = {"w": torch.tensor([1.0, 2.0, -4.0])}
    update_ema(ema, {"w": torch.tensor([3.0, 2.0, 0.0])}, 0.75)
    assert torch.equal(ema["w"], torch.tensor([1.5, 2.0, -3.0]))  # 0.75 * ema + 0.25 * param
    # three updates against the closed form, with the warm-up decays 0.1, 2/11, 0.25
    seq = [torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor([5.0])]
    ema = {"w": torch.tensor([0.0])}
    expected = 0.0
    for n, p in enumerate(seq):
        d = ema_decay(0.9999, n)
        update_ema(ema, {"w": p}, d)
        expected = d * expected + (1 - d) * float(p)
    assert float(ema["w"]) == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(((0.1 * 0 + 0.9 * 2) * 2 / 11 + 9 / 11 * -1) * 0.25 + 0.75 * 5)


def test_ema_is_saved_resumed_and_freezes_untrained_modules(tmp_path, photos, autoencoder):
    from vs_superres.models.patchscaler.checkpoint import ema_parameter_names, load_networks, read_contents, save_checkpoint
    from vs_superres.models.patchscaler.configs import TINY_CONFIG
    from vs_superres.models.patchscaler.train import SMOKE_DEGRADATIONS, ema_decay, main, train

    out = tmp_path / "ps.safetensors"
    common = dict(data=photos, autoencoder=autoencoder, out=out, crop=128, pool=8, refresh=0, quiet=True,
                  degradations=SMOKE_DEGRADATIONS, lr=2e-3, batch=4)
    train("dit", steps=6, config=TINY_CONFIG, ema=0.9, **common)
    c = read_contents(out)
    names = ema_parameter_names(load_networks(out))
    assert sorted(c.ema) == sorted(names) and not any(n.startswith("classifier.") for n in c.ema)
    assert c.train_state["ema"] == 0.9 and c.train_state["ema_updates"] == 6
    dit_names = [n for n in names if n.startswith("dit.")]
    assert any(not torch.equal(c.ema[n], c.networks[n]) for n in dit_names)  # averaged, not a copy
    assert all(torch.equal(c.ema[n], c.networks[n]) for n in names if n.startswith("grm."))  # frozen: equal

    # pretend the run stopped at step 6 of 7: the resumed step continues the saved average and count
    save_checkpoint(out, load_networks(out, ema=False), optimizer_tensors=c.optimizer, ema_tensors=c.ema,
                    train_state={**c.train_state, "steps": 7, "finished": False})
    train("dit", steps=7, ema=0.9, **common)
    r = read_contents(out)
    assert r.train_state["step"] == 7 and r.train_state["ema_updates"] == 7
    d = ema_decay(0.9, 6)  # 7 / 16
    for n in dit_names:
        expected = d * c.ema[n] + (1 - d) * r.networks[n]
        assert torch.allclose(r.ema[n], expected, atol=1e-6), n
    assert any(not torch.allclose(r.ema[n], d * c.networks[n] + (1 - d) * r.networks[n], atol=1e-6)
               for n in dit_names)  # a restarted (re-initialised) average would differ

    # a new stage freezes the modules it does not train at their averages; --ema 0 drops the average
    train("grm", steps=2, eta=0.01, ema=0.0, **common)
    g = read_contents(out)
    assert g.ema == {} and g.train_state["ema"] == 0.0
    for n in dit_names:
        assert torch.equal(g.networks[n], r.ema[n]), n
    with pytest.raises(SuperResError, match=r"--ema must be in \[0, 1\)"):
        train("grm", steps=1, ema=1.0, **common)
    assert main(["--stage", "grm", "--data", str(photos), "--autoencoder", str(autoencoder), "--out", str(out),
                 "--ema", "2", "--quiet"]) == 2


def _with_ema(tmp_path, name="ema.safetensors", stray=False):
    """A tiny checkpoint whose EMA tensors differ from its raw weights."""
    from vs_superres.models.patchscaler.checkpoint import ema_parameter_names, save_checkpoint
    from vs_superres.models.patchscaler.tiny import tiny_networks

    nets = tiny_networks(seed=2)
    g = torch.Generator().manual_seed(9)
    own = nets.state_dict()
    ema = {n: own[n] + 0.05 * torch.randn(own[n].shape, generator=g) for n in ema_parameter_names(nets)}
    if stray:
        ema["dit.not_a_parameter"] = torch.zeros(1)
    return save_checkpoint(tmp_path / name, nets, ema_tensors=ema), nets, ema


def test_inference_reads_the_ema_weights_by_default(tmp_path, autoencoder):
    from vs_superres import Upscaler
    from vs_superres.models.patchscaler.checkpoint import load_networks
    from vs_superres.models.patchscaler.pipeline import PatchScalerPipeline

    path, raw, ema = _with_ema(tmp_path)
    loaded = load_networks(path).state_dict()
    for n, v in raw.state_dict().items():
        want = ema[n] if n in ema else v  # classifier and every buffer (the RTM) from net.*
        assert torch.equal(loaded[n], want), n
    assert all(torch.equal(a, b) for a, b in zip(load_networks(path, ema=False).state_dict().values(),
                                                 raw.state_dict().values()))
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    fast = dict(steps_simple=2, steps_medium=3, steps_hard=4)
    with_ema = PatchScalerPipeline.from_files(path, autoencoder, **fast)(x)
    without = PatchScalerPipeline.from_files(path, autoencoder, ignore_ema=True, **fast)(x)
    assert not torch.equal(with_ema, without)
    up = Upscaler("patchscaler-x4", device="cpu", checkpoint=str(path), autoencoder=str(autoencoder), **fast)
    assert torch.equal(up.upscale(x), with_ema.clamp(0, 1))
    up = Upscaler("patchscaler-x4", device="cpu", checkpoint=str(path), autoencoder=str(autoencoder), ignore_ema=True,
                  **fast)
    assert torch.equal(up.upscale(x), without.clamp(0, 1))

    bad, _, _ = _with_ema(tmp_path, "stray.safetensors", stray=True)
    with pytest.raises(WeightsError, match=r"EMA tensors \['dit.not_a_parameter'\].*ignore_ema=true"):
        load_networks(bad)
    load_networks(bad, ema=False)  # the raw weights still load
