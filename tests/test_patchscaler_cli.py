"""`superres upscale --model patchscaler-x4` on a tiny PatchScaler release, in-process.

No PatchScaler weights exist: the release is ``models/patchscaler/tiny.py``'s (random weights,
the real checkpoint format and a real diffusers AutoencoderKL folder, loaded by the real
loader). The CLI must add nothing to the engine's pixels: its PNG is the engine's output on the
same decoded input, rounded to 8 bits. ``main([...])`` runs in this process (one torch thread,
so both sides sum in the same order), the family's options come from their declaration, and
user errors are one line on stderr, exit status 2, spelled as CLI flags.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vs_superres import Upscaler
from vs_superres.cli import main
from vs_superres.media import read_image, write_image
from vs_superres.models.patchscaler.options import OPTIONS
from vs_superres.numerics.resample import upscale_bicubic

pytestmark = pytest.mark.torch_threads(1)

CLI_METAVARS = {"path": "PATH", "int": "INT", "float": "FLOAT", "str": "STR", "bool": ""}



@pytest.fixture(scope="module")
def release(patchscaler_release):
    return patchscaler_release


@pytest.fixture
def photo(tmp_path, astronaut):
    path = tmp_path / "in.png"
    write_image(path, astronaut[140:164, 200:228], bit_depth=8)  # 28 x 24: a 14x12 latent, padded to one patch
    return path


def flags(release) -> list[str]:
    ckpt, vae = release
    return ["--model", "patchscaler-x4", "--checkpoint", str(ckpt), "--autoencoder", str(vae), "--device", "cpu", "-q"]


def engine_codes(release, src, **options) -> np.ndarray:
    """The engine's output on the decoded input, as 8-bit codes ``[H, W, 3]``."""
    ckpt, vae = release
    img, _ = read_image(src)
    up = Upscaler("patchscaler-x4", device="cpu", checkpoint=str(ckpt), autoencoder=str(vae), **options)
    out = up.upscale(img)[0].permute(1, 2, 0).numpy()
    return np.round(out.astype(np.float64) * 255).astype(np.int64)


def codes_of(path) -> np.ndarray:
    img, info = read_image(path)
    assert info.bit_depth == 8
    return np.round(img.astype(np.float64) * 255).astype(np.int64)


def assert_same_image(got: np.ndarray, want: np.ndarray) -> None:
    """Equal 8-bit codes; one code apart at most where a value sits on a rounding boundary."""
    assert got.shape == want.shape
    diff = np.abs(got - want)
    assert diff.max() <= 1, diff.max()
    assert (diff == 0).mean() > 0.999, (diff == 0).mean()


def test_upscale_writes_the_engines_image(release, photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["upscale", str(photo), str(out), *flags(release)]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing on stdout: pipelines stay clean
    got = codes_of(out)
    assert got.shape == (96, 112, 3)
    want = engine_codes(release, photo)
    assert_same_image(got, want)
    # The networks ran: not the bicubic pre-upscale that the engine starts from.
    src, _ = read_image(photo)
    bicubic = upscale_bicubic(torch.from_numpy(src).permute(2, 0, 1)[None], 4)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    assert np.abs(got - np.round(bicubic * 255)).mean() > 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]  # no temporary left behind


def test_family_flags_reach_the_engine(release, photo, tmp_path, capsys):
    """Grouping, schedule, seed and colour fix given as flags: the engine's image with those options
    (and not the defaults'); `-O name=value` is the same thing."""
    options = dict(gamma_simple=0.3, gamma_medium=0.1, tau_simple=300, steps_simple=3, seed=3, color_fix="adain",
                   patches_per_batch=1)
    as_flags = [part for k, v in options.items() for part in (f"--{k.replace('_', '-')}", str(v))]
    out, again = tmp_path / "flags.png", tmp_path / "O.png"
    assert main(["upscale", str(photo), str(out), *flags(release), *as_flags]) == 0, capsys.readouterr().err
    want = engine_codes(release, photo, **options)
    assert_same_image(codes_of(out), want)
    assert np.abs(want - engine_codes(release, photo)).max() > 2  # the options changed the image
    as_o = [part for k, v in options.items() for part in ("-O", f"{k}={v}")]
    assert main(["upscale", str(photo), str(again), *flags(release), *as_o]) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(codes_of(again), codes_of(out))


def test_help_lists_the_patchscaler_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["upscale", "--model", "patchscaler-x4", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "PatchScaler options:" in text and "options of patchscaler-x4 (--model patchscaler-x4)" in text
    section = text[text.index("PatchScaler options:"):]
    for opt in OPTIONS:  # every declared option, as a flag with its type
        flag = f"--{opt.name.replace('_', '-')} {CLI_METAVARS[opt.type]}".rstrip()
        assert flag in section, (flag, section[:2000])
    flat = " ".join(section.split())
    assert "in [0, 1]; default 0.95" in flat  # gamma_simple's range and the paper's default
    assert "one of wavelet, adain, none; default 'wavelet'" in flat


def test_missing_autoencoder_is_exit_2_naming_the_flag(release, photo, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "weights"
    empty.mkdir()
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "out.png"
    ckpt, _ = release
    code = main(["upscale", str(photo), str(out), "--model", "patchscaler-x4", "--checkpoint", str(ckpt),
                 "--device", "cpu", "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("superres: error: weight file 'sd-vae-ft-mse' was not found"), err
    assert str(empty / "sd-vae-ft-mse") in err and "stabilityai/sd-vae-ft-mse" in err, err
    assert "--autoencoder PATH" in err and "autoencoder=PATH" not in err, err  # the CLI's spelling
    assert "Traceback" not in err
    assert not out.exists()


def test_bad_values_are_exit_2_in_cli_spelling(release, photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    cases = [
        (["--gamma-simple", "2"], "--gamma-simple must be a number in [0, 1], got 2.0"),
        (["--color-fix", "lab"], "--color-fix must be one of wavelet, adain, none, got 'lab'"),
        (["--tau-simple", "900"], "tau_simple <= tau_medium <= tau_hard is required"),
        (["--tile", "64"], "--tile and --overlap do not apply to patchscaler-x4: it tiles by itself; set its own "
                            "tiling options instead (--patch-stride, --patches-per-batch, --decoder-tile, --decoder-overlap)"),
        (["--decoder-tile", "8"], "--decoder-tile must be 0 (one piece) or at least 16 latent pixels, got 8"),
        (["--dtype", "fp16"], "model 'patchscaler-x4' does not support fp16; it supports fp32, bf16"),
    ]
    for extra, expected in cases:
        code = main(["upscale", str(photo), str(out), *flags(release), *extra])
        err = capsys.readouterr().err
        assert code == 2 and expected in err, (extra, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()


def test_bad_files_name_the_flags_in_cli_spelling(release, photo, tmp_path, capsys):
    ckpt, vae = release
    out = tmp_path / "out.png"
    code = main(["upscale", str(photo), str(out), *flags(release), "--autoencoder", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "has no config.json" in err, err
    assert "--autoencoder DIR" in err, err
    code = main(["upscale", str(photo), str(out), *flags(release), "--checkpoint", str(vae)])
    err = capsys.readouterr().err
    assert code == 2 and "is not a PatchScaler checkpoint" in err, err
    assert "--checkpoint PATH" in err, err
