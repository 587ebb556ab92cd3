"""PatchScaler through ``superres-filter``: the tiny release (random weights, the real checkpoint
format and a real diffusers autoencoder folder) with its options in filter syntax, fed y4m and
NUT made by the real ffmpeg. The frames are the engine's on the same input, bit for bit (both
carriers are lossless), and in packed RGB the CLI's PNG of the same frame."""

from __future__ import annotations

import numpy as np
import pytest
from bridge_helpers import (TAGS, assert_frames_equal, decode, engine_reference, ffmpeg, ffmpeg_bytes, needs_ffmpeg,
                            run_filter)

pytestmark = [needs_ffmpeg, pytest.mark.torch_threads(1)]  # the filter runs in this process: one summation order on both sides

#: few sampling steps: the tiny model's output is not the point, the bridge is
FAST = {"steps_simple": 2, "steps_medium": 3, "steps_hard": 4}



@pytest.fixture(scope="module")
def release(patchscaler_release):
    return patchscaler_release


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Three 20x16 frames of ffmpeg's testsrc2, FFV1 4:2:0 (exact samples), BT.709 tags."""
    path = tmp_path_factory.mktemp("clip") / "clip.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=20x16:rate=24:duration=1", "-frames:v", "3", "-c:v", "ffv1",
           "-pix_fmt", "yuv420p", *TAGS, path)
    return path


def filter_string(release, **extra) -> str:
    ckpt, vae = release
    options = {"model": "patchscaler-x4", "checkpoint": ckpt, "autoencoder": vae, "device": "cpu", **FAST, **extra}
    return "superres=" + ":".join(f"{k}={v}" for k, v in options.items())


def engine_options(release) -> dict:
    ckpt, vae = release
    return {"checkpoint": str(ckpt), "autoencoder": str(vae), **FAST}


def test_y4m_through_the_filter_is_the_engines_output(release, clip):
    y4m = ffmpeg_bytes("-i", clip, "-fps_mode", "passthrough", "-f", "yuv4mpegpipe", "-")
    run = run_filter(filter_string(release), "--matrix", "bt709", input=y4m)
    assert run.returncode == 0, run.stderr.decode()
    frames = decode(run.stdout, "yuv4mpegpipe")
    assert [(f.width, f.height, f.format.name) for f in frames] == [(80, 64, "yuv420p")] * 3
    _, info = engine_reference(clip, "temporal-mean-x2")  # the colour of the file the y4m came from
    reference, _ = engine_reference(y4m, "patchscaler-x4", colour=info.colour, **engine_options(release))
    assert_frames_equal(frames, reference, info.colour)
    # the family's options reach the model: other steps, other pixels
    other = run_filter(filter_string(release, steps_hard=5), "--matrix", "bt709", input=y4m)
    assert other.returncode == 0 and other.stdout != run.stdout


def test_nut_rgb_through_the_filter_is_the_engines_and_the_clis(release, clip, tmp_path):
    from vs_superres.cli import main
    from vs_superres.media import read_image

    nut = ffmpeg_bytes("-i", clip, "-map", "0:v", "-pix_fmt", "rgb24", "-c:v", "rawvideo", "-f", "nut", "-")
    run = run_filter(filter_string(release), input=nut)
    assert run.returncode == 0, run.stderr.decode()
    frames = decode(run.stdout, "nut")
    assert [(f.width, f.height, f.format.name) for f in frames] == [(80, 64, "rgb24")] * 3
    reference, info = engine_reference(nut, "patchscaler-x4", **engine_options(release))
    assert_frames_equal(frames, reference, info.colour)
    # the CLI on the first frame as a PNG writes the same 8-bit pixels
    src, png, out = tmp_path / "in.nut", tmp_path / "f0.png", tmp_path / "up.png"
    src.write_bytes(nut)
    ffmpeg("-i", src, "-frames:v", "1", png)
    ckpt, vae = release
    args = ["upscale", str(png), str(out), "--model", "patchscaler-x4", "--checkpoint", str(ckpt),
            "--autoencoder", str(vae), "--device", "cpu", "-q"]
    for k, v in FAST.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    assert main(args) == 0
    cli, _ = read_image(out)
    cli_codes = np.round(np.asarray(cli, dtype=np.float64) * 255).astype(np.uint8)
    assert np.array_equal(frames[0].to_ndarray(), cli_codes)


def test_bad_family_option_in_filter_syntax_is_one_clear_line(release, clip):
    y4m = ffmpeg_bytes("-i", clip, "-frames:v", "1", "-f", "yuv4mpegpipe", "-")
    run = run_filter(filter_string(release, decoder_tile=8), "--matrix", "bt709", input=y4m)
    err = run.stderr.decode()
    assert run.returncode == 2 and run.stdout == b""
    assert "decoder_tile must be 0 (one piece) or at least 16 latent pixels, got 8" in err
    assert "Traceback" not in err
