"""Bad input through the Python API: each kind refused with a message that names the problem
and a fix the API can actually take; and option names spelled as each host's user types them."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from vs_superres import Upscaler
from vs_superres.cli import main
from vs_superres.contracts.errors import InvalidOption, SuperResError, UnsupportedFormat, option_ref, render_refs

VIDEO = "temporal-mean-x2"


def frames(n=3, h=8, w=12, seed=0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=["image", "video"])
def upscaler(request, tiny_ditn_path):
    model = tiny_ditn_path if request.param == "image" else VIDEO
    with Upscaler(model, device="cpu", tile=0) as up:
        yield up


# ------------------------------------------------------------------ integer frames
def test_integer_frames_take_their_bit_depth(upscaler):
    x = frames()
    codes = torch.round(x * 1023).to(torch.int16)
    want = upscaler.upscale(codes.float() / 1023)
    torch.testing.assert_close(upscaler.upscale(codes, bit_depth=10), want, rtol=0, atol=0)
    streamed = torch.stack(list(upscaler.stream(iter(codes), bit_depth=10, total=3)))
    torch.testing.assert_close(streamed, want, rtol=0, atol=0)


def test_integer_frames_without_bit_depth_name_the_argument_upscale_takes(upscaler):
    codes = torch.zeros(2, 3, 8, 8, dtype=torch.int16)
    with pytest.raises(SuperResError, match=r"pass bit_depth=10 .* to Upscaler.upscale\(\)/stream\(\)"):
        upscaler.upscale(codes)
    with pytest.raises(SuperResError, match="pass bit_depth=10"):
        next(upscaler.stream(iter(codes)))


# ------------------------------------------------------------------ clip shape
def test_a_frame_of_another_size_in_stream_is_named(upscaler):
    clip = [*frames(3, 8, 12), frames(1, 16, 12)[0]]
    with pytest.raises(UnsupportedFormat) as err:
        list(upscaler.stream(iter(clip), total=4))
    assert str(err.value).startswith("frame 3 is 12x16, but the clip started with 12x8 frames")
    assert "resize them to one size first" in str(err.value)


def test_a_batch_given_as_one_stream_item_is_refused_not_truncated(upscaler):
    with pytest.raises(UnsupportedFormat, match=r"stream\(\) takes one frame per item, but item 0 holds 3 frames"):
        list(upscaler.stream([frames(3)]))


# ------------------------------------------------------------------ lifetime
def test_calls_after_close_say_so(tiny_ditn_path):
    up = Upscaler(tiny_ditn_path, device="cpu", tile=0)
    up.close()
    up.close()  # twice is fine
    for call in (lambda: up.upscale(frames(1)), lambda: next(up.stream(iter(frames(1)))),
                 lambda: up.frames_needed(0, 1), lambda: up.render_frame(0, 1, {0: frames(1)[0]})):
        with pytest.raises(SuperResError, match=r"this Upscaler \(tiny_ditn\) was closed.*create a new Upscaler"):
            call()


def test_the_with_block_releases_the_model(tiny_ditn_path):
    with Upscaler(tiny_ditn_path, device="cpu", tile=0) as up:
        assert up.upscale(frames(1)).shape == (1, 3, 32, 48)
    with pytest.raises(SuperResError, match="was closed"):
        up.upscale(frames(1))


# ------------------------------------------------------------------ option spelling
def test_option_references_render_in_each_hosts_spelling():
    from vs_superres.hostkit.flags import flag_spelling as cli_spelling

    text = f"pass {option_ref('strength', 'D')} or {option_ref('clip_iqa', 'PATH')}; {option_ref('allow_download', 'True')}"
    assert render_refs(text) == "pass strength=D or clip_iqa=PATH; allow_download=True"
    assert render_refs(text, cli_spelling) == "pass --strength D or --clip-iqa PATH; --allow-download"
    err = InvalidOption(f"{option_ref('unet_tile')} must be an integer", option="unet_tile")
    assert str(err) == "unet_tile must be an integer"
    assert err.render(cli_spelling) == "--unet-tile must be an integer"


def test_api_errors_use_keyword_spelling(tiny_ditn_path):
    with pytest.raises(InvalidOption) as err:
        Upscaler(tiny_ditn_path, device="cpu", tile=-1)
    assert str(err.value) == "tile must be >= 0, got -1"
    with pytest.raises(InvalidOption, match=r"window applies to video models only"):
        Upscaler(tiny_ditn_path, device="cpu", window=5)


@pytest.fixture(scope="module")
def tiny_release(ultravsr_release):
    return ultravsr_release


def test_ultravsr_errors_name_the_flags_on_the_command_line(tmp_path, tiny_release, capsys, monkeypatch):
    from vs_superres.media import write_image

    base, ckpt = tiny_release
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(tmp_path))  # no CLIP weights anywhere: d must be given
    write_image(tmp_path / "in.png", np.zeros((8, 8, 3), np.float32))
    code = main(["upscale", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--model", "ultravsr",
                 "--base", str(base), "--checkpoint", str(ckpt), "--device", "cpu", "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "pass --strength D with 0 < D <= 1" in err and "--clip-iqa PATH" in err, err
    assert "strength=D" not in err and "clip_iqa=" not in err
    assert not (tmp_path / "out.png").exists()
    # The same error from Python names the keywords.
    with pytest.raises(SuperResError, match=r"pass strength=D with 0 < D <= 1.*clip_iqa=PATH"):
        Upscaler("ultravsr", base=str(base), checkpoint=str(ckpt), device="cpu")


# ------------------------------------------------------------------ frames that come in (issue #21)
@pytest.mark.parametrize("bad", [0, 99, -8, "10", 10.0, True])
def test_a_bad_bit_depth_is_refused_naming_the_accepted_values(upscaler, bad):
    """``bit_depth`` 0 used to give a NaN message, 99 a black picture, '10' a TypeError."""
    codes = torch.zeros(1, 3, 8, 12, dtype=torch.int16)
    with pytest.raises(InvalidOption, match=r"bit_depth must be a whole number of bits per sample from 1 to 16") as err:
        upscaler.upscale(codes, bit_depth=bad)
    assert err.value.option == "bit_depth"
    with pytest.raises(InvalidOption, match="from 1 to 16"):
        next(upscaler.stream(iter(codes), bit_depth=bad))
    with pytest.raises(InvalidOption, match="from 1 to 16"):  # float frames too: a wrong call is wrong
        upscaler.upscale(frames(1), bit_depth=bad)


def test_codes_beyond_the_bit_depth_are_refused_not_clipped(upscaler):
    codes = torch.full((1, 3, 8, 12), 1023, dtype=torch.int16)
    with pytest.raises(UnsupportedFormat, match=r"bit_depth=8 hold codes 0\.\.255, but these hold 1023\.\.1023") as err:
        upscaler.upscale(codes, bit_depth=8)
    assert "bit_depth=10" in str(err.value)
    with pytest.raises(UnsupportedFormat, match=r"but these hold -1\.\.1023"):
        upscaler.upscale(torch.cat([codes, -torch.ones_like(codes)]), bit_depth=10)
    assert upscaler.upscale(codes, bit_depth=10).shape[0] == 1


def test_meta_sparse_and_quantized_tensors_are_refused_clearly(upscaler):
    meta = torch.empty(1, 3, 8, 12, device="meta")
    with pytest.raises(SuperResError, match="on the 'meta' device, which has a shape but no values"):
        upscaler.upscale(meta)
    with pytest.raises(SuperResError, match=r"sparse tensor \(torch.sparse_coo\); pass a dense one: x.to_dense\(\)"):
        upscaler.upscale(frames(1).to_sparse())
    with pytest.raises(SuperResError, match="sparse tensor"):
        next(upscaler.stream(iter([frames(1)[0].to_sparse()])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated, but still made
        quantized = torch.quantize_per_tensor(frames(1), 1 / 255, 0, torch.quint8)
    with pytest.raises(SuperResError, match=r"quantized tensor; pass x.dequantize\(\)"):
        upscaler.upscale(quantized)


# ------------------------------------------------------------------ bounded loading (issue #21)
def deflate_bomb(src: Path, dst: Path, inflated: int = 64 << 20) -> Path:
    """``src`` (a torch.save zip) re-zipped with deflate plus one entry of ``inflated`` zero
    bytes: a few tens of KB that declare ``inflated`` bytes (about 1000:1)."""
    import zipfile

    with zipfile.ZipFile(src) as original, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as out:
        prefix = original.namelist()[0].split("/")[0]
        for name in original.namelist():
            out.writestr(name, original.read(name))
        with out.open(f"{prefix}/data/999", "w", force_zip64=True) as entry:
            block = bytes(1 << 20)
            for _ in range(inflated >> 20):
                entry.write(block)
    return dst


def test_a_deflate_bomb_checkpoint_is_refused_before_inflating(tiny_ditn_path, tmp_path):
    import resource
    import subprocess
    import sys
    import time

    from vs_superres.contracts.errors import WeightsError
    from vs_superres.numerics.checkpoints import load_state_dict

    bomb = deflate_bomb(tiny_ditn_path, tmp_path / "bomb.pth")
    assert bomb.stat().st_size < 200_000
    with pytest.raises(WeightsError, match=r"declare 0\.\d+ GB once inflated, \d+ times the file's") as err:
        load_state_dict(bomb)
    assert "decompression bombs" in str(err.value) and ".safetensors" in str(err.value)
    with pytest.raises(WeightsError, match="once inflated"):
        Upscaler(str(bomb), device="cpu")
    # the real CLI: exit 2, one line, in seconds
    from vs_superres.media import write_image

    write_image(tmp_path / "in.png", np.zeros((8, 8, 3), np.float32))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "vs_superres.cli", "upscale", str(tmp_path / "in.png"),
                          str(tmp_path / "out.png"), "--model", str(bomb), "-q"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2, run.stderr
    assert "once inflated" in run.stderr and "Traceback" not in run.stderr
    assert time.monotonic() - started < 60
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak <= before or peak < 1_000_000  # KB: the child never inflated the 64 MB, nor more
    assert not (tmp_path / "out.png").exists()
    # the same file as torch.save wrote it loads
    assert load_state_dict(tiny_ditn_path)


@pytest.mark.parametrize("config, field, value", [
    ("scheduler/scheduler_config.json", "num_train_timesteps", 100_000_000),
    ("unet/config.json", "block_out_channels", [320, 640, 1_000_000, 1280]),
    ("vae/config.json", "latent_channels", 4096),
    ("text_encoder/config.json", "vocab_size", 10**12),
    ("unet/config.json", "layers_per_block", "2"),
])
def test_base_folder_configs_that_size_allocations_are_bounded(tiny_release, tmp_path, config, field, value):
    """A base folder's config is untrusted (a download, an upload): a field that sizes an
    allocation beyond what an SD-2.1-base model has is refused when the config is read, naming
    the field and the file, before anything is built."""
    import json
    import shutil

    from vs_superres.contracts.errors import WeightsError

    base, ckpt = tiny_release
    copy = tmp_path / base.name
    shutil.copytree(base, copy)
    data = json.loads((copy / config).read_text())
    data[field] = value
    (copy / config).write_text(json.dumps(data))
    with pytest.raises(WeightsError) as err:
        Upscaler("ultravsr", base=str(copy), checkpoint=str(ckpt), device="cpu", strength=0.3)
    text = str(err.value)
    assert f'{copy / config}: "{field}" is' in text and "the range an SD-2.1-base model" in text, text


def test_a_malformed_base_config_is_a_user_error(tiny_release, tmp_path, capsys):
    import shutil

    from vs_superres.media import write_image

    base, ckpt = tiny_release
    copy = tmp_path / base.name
    shutil.copytree(base, copy)
    (copy / "unet" / "config.json").write_text('{"in_channels": 4,')
    write_image(tmp_path / "in.png", np.zeros((8, 8, 3), np.float32))
    code = main(["upscale", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--model", "ultravsr",
                 "--base", str(copy), "--checkpoint", str(ckpt), "--strength", "0.3", "--device", "cpu", "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{copy / 'unet' / 'config.json'} is not a readable JSON config" in err


def test_superres_weights_naming_a_file_is_called_out(tmp_path, monkeypatch, capsys):
    from vs_superres.media import write_image

    weights = tmp_path / "w" / "ditn" / "DITN_Real_x4.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not the real file")
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(weights))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_image(tmp_path / "in.png", np.zeros((8, 8, 3), np.float32))
    code = main(["upscale", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--model", "ditn-real-x4",
                 "--device", "cpu", "-q"])
    err = capsys.readouterr().err
    if "not found" not in err:
        pytest.skip("ditn-real-x4 is installed with the package; the search never reaches $SUPERRES_WEIGHTS")
    assert code == 2
    assert f"$SUPERRES_WEIGHTS names the file '{weights}', not a folder" in err
    assert f"SUPERRES_WEIGHTS={tmp_path / 'w'} for" in err and "--weights PATH" in err
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(tmp_path / "no_such_folder"))
    assert main(["upscale", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--model", "ditn-real-x4",
                 "--device", "cpu", "-q"]) == 2
    assert f"$SUPERRES_WEIGHTS names '{tmp_path / 'no_such_folder'}', which does not exist" in capsys.readouterr().err
