"""PatchScaler inside one image: the VAE decoder in overlapping latent tiles (the project's one
blender), and progress / cancellation between Patch-DiT steps, on the tiny release and a real photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vs_superres import InvalidOption
from vs_superres.contracts.errors import Cancelled
from vs_superres.contracts.progress import Progress

pytestmark = pytest.mark.torch_threads(1)

FAST = dict(steps_simple=2, steps_medium=3, steps_hard=4, color_fix="none")



@pytest.fixture(scope="module")
def release(patchscaler_release):
    return patchscaler_release


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """64x64 of scikit-image's astronaut at 1/4: a 32x32 latent, 9 patches."""
    from skimage import data

    img = data.astronaut()[::4, ::4][40:104, 32:96].astype(np.float32) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).contiguous()


def _pipe(release, **settings):
    from vs_superres.models.patchscaler.pipeline import PatchScalerPipeline

    return PatchScalerPipeline.from_files(*release, **{**FAST, **settings})


def _decoder_inputs(pipe) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    pipe.vae.decoder.register_forward_pre_hook(lambda m, a: sizes.append(tuple(a[0].shape[-2:])))
    return sizes


def test_tiled_decoder_is_close_to_untiled_and_bounded(release, photo):
    untiled = _pipe(release, decoder_tile=0)
    ref = untiled(photo)
    tiled = _pipe(release, decoder_tile=24, decoder_overlap=8)
    sizes = _decoder_inputs(tiled)
    out = tiled(photo)
    assert sizes == [(24, 24)] * 4  # the 32x32 latent in four overlapping tiles, none larger than the tile
    # The decoder's GroupNorm and mid-block attention see the whole tile, so tiles differ from the
    # whole: on the tiny random autoencoder the mean difference is 0.022 (a mirrored image: 0.15).
    diff = (out - ref).abs()
    assert out.shape == ref.shape and diff.mean() < 0.03 and torch.quantile(diff, 0.9) < 0.06
    assert diff.mean() < 0.2 * (ref.flip(-1) - ref).abs().mean()
    # the overlap is blended (feathered weights), not cut: it brings the tiles closer to the whole
    no_overlap = (_pipe(release, decoder_tile=16, decoder_overlap=0)(photo) - ref).abs().mean()
    overlapped = (_pipe(release, decoder_tile=16, decoder_overlap=8)(photo) - ref).abs().mean()
    assert overlapped < 0.7 * no_overlap


def test_a_tile_as_large_as_the_latent_decodes_untiled_exactly(release, photo):
    ref = _pipe(release, decoder_tile=0)(photo)
    for tile in (32, 200):  # the latent is 32x32
        pipe = _pipe(release, decoder_tile=tile)
        sizes = _decoder_inputs(pipe)
        assert torch.equal(pipe(photo), ref)
        assert sizes == [(32, 32)]
    assert _pipe(release).settings.decoder_tile == 128  # default: outputs up to 1024 px decode in one piece


def test_bad_decoder_tiles_are_refused_by_name(release):
    from vs_superres import Upscaler

    ckpt, vae = release
    cases = [(dict(decoder_tile=8), r"decoder_tile must be 0 \(one piece\) or at least 16 latent pixels, got 8"),
             (dict(decoder_tile=-1), r"decoder_tile"),
             (dict(decoder_tile=32, decoder_overlap=32), r"decoder_overlap \(32\) must be less than decoder_tile \(32\)"),
             (dict(decoder_overlap=-2), r"decoder_overlap")]
    for options, message in cases:
        with pytest.raises(InvalidOption, match=message) as info:
            Upscaler("patchscaler-x4", device="cpu", checkpoint=str(ckpt), autoencoder=str(vae), **options)
        assert info.value.option in options
    with pytest.raises(InvalidOption, match="tile and overlap do not apply.*decoder_tile"):
        Upscaler("patchscaler-x4", device="cpu", tile=64, checkpoint=str(ckpt), autoencoder=str(vae))


def test_progress_is_monotonic_up_to_the_patch_evaluations(release, photo):
    seen: list[Progress] = []
    pipe = _pipe(release, decoder_tile=24, decoder_overlap=8, patches_per_batch=2,
                 gamma_simple=0.5, gamma_medium=0.49)
    pipe(photo, on_step=seen.append)
    sampling = [p for p in seen if p.unit == "patch-steps"]
    total = pipe.last_run.patch_evaluations
    assert total > 0 and {p.total for p in sampling} == {total}
    done = [p.done for p in sampling]
    assert done[0] == 0 and done[-1] == total and done == sorted(done)
    # one report per Patch-DiT step of each batch of <= 2 patches, after the first at 0
    steps = {"simple": 2, "medium": 3, "hard": 4}
    sizes = pipe.last_run.group_sizes
    assert len(done) - 1 == sum(-(-sizes[g] // 2) * steps[g] for g in steps)
    assert {p.phase for p in sampling[1:]} <= {"sampling: simple group", "sampling: medium group", "sampling: hard group"}
    tiles = [p for p in seen if p.unit == "tiles"]
    assert [p.done for p in tiles] == [0, 1, 2, 3, 4] and {p.phase for p in tiles} == {"decoder"}
    assert seen.index(tiles[0]) > seen.index(sampling[-1])  # the decoder runs after the sampling
    # several images: each reports its own run, prefixed
    seen.clear()
    pipe(torch.cat([photo, photo]), on_step=seen.append)
    assert {p.phase.split(":")[0] for p in seen} == {"image 1/2", "image 2/2"}


@pytest.mark.parametrize("devices", [None, "cpu,cpu"])
def test_cancel_mid_image_stops_with_cancelled(release, photo, devices):
    pipe = _pipe(release, devices=devices, patches_per_batch=1)
    calls: list[Progress] = []

    def cancel_halfway(p: Progress) -> None:
        calls.append(p)
        if p.unit == "patch-steps" and p.done * 2 >= p.total > 0:
            raise Cancelled("cancelled by the caller")

    decoded = _decoder_inputs(pipe)
    with pytest.raises(Cancelled, match="cancelled by the caller"):
        pipe(photo, on_step=cancel_halfway)
    assert decoded == []  # no image was made
    stop = next(p for p in calls if p.done * 2 >= p.total)
    assert stop.done < stop.total and calls[-1] == stop  # nothing ran after the cancel was seen


def _engine(release, **kw):
    from vs_superres import Upscaler

    checkpoint, autoencoder = release
    return Upscaler("patchscaler-x4", checkpoint=str(checkpoint), autoencoder=str(autoencoder),
                    device="cpu", **FAST, **kw)


def test_engine_reports_the_steps_inside_one_image(release, photo):
    """Through ``Upscaler``: the sampler's steps reach the caller's progress, in order."""
    seen: list[Progress] = []
    _engine(release, progress=seen.append).upscale(photo)
    steps = [p for p in seen if p.unit == "patch-steps"]
    assert steps and all(p.phase.startswith("upscale: sampling") for p in steps)
    assert [p.done for p in steps] == sorted(p.done for p in steps)
    assert steps[-1].done == steps[-1].total > 1


def test_engine_cancel_stops_inside_one_image(release, photo):
    """A cancel request seen between two sampler steps stops the image: ``Cancelled``, and no
    step runs after it."""
    seen: list[Progress] = []
    engine = _engine(release, progress=seen.append,
                     cancel=lambda: any(p.unit == "patch-steps" and p.done * 2 >= p.total for p in seen))
    with pytest.raises(Cancelled):
        engine.upscale(photo)
    steps = [p for p in seen if p.unit == "patch-steps"]
    assert steps and steps[-1].done < steps[-1].total  # stopped before the last step
    assert not any(p.unit == "tiles" for p in seen)  # the decoder never ran
