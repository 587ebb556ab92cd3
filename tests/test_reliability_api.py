"""Bad input through the Python API: each kind refused with a message that names the problem
and a fix the API can actually take; and option names spelled as each host's user types them."""

from __future__ import annotations

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
