"""The `superres` command line, run as a real process on real photos and real video files."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from vs_superres import Upscaler
from vs_superres.media import read_image, write_image

needs_ffmpeg = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
    reason="the ffmpeg/ffprobe CLI is needed to make and inspect test videos (apt-get install ffmpeg; scripts/setup_env.sh does it)",
)


def superres(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "vs_superres.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=cwd,
    )


def ffprobe(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-count_frames", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)["streams"]


@pytest.fixture
def photo(tmp_path, astronaut):
    path = tmp_path / "photo.png"
    write_image(path, astronaut[120:168, 200:264], bit_depth=8)  # 64 x 48
    return path


def test_upscale_png_writes_a_correct_4x_image(photo, tmp_path, ditn_x4_path):
    out = tmp_path / "out.png"
    run = superres("upscale", photo, out, "--device", "cpu")
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""  # nothing on stdout: pipelines stay clean
    img, info = read_image(out)
    assert (info.width, info.height, info.bit_depth) == (256, 192, 8)
    src, _ = read_image(photo)
    expected = Upscaler("ditn-real-x4", device="cpu").upscale(src)[0].permute(1, 2, 0).numpy()
    assert np.abs(img - expected).max() <= 0.5 / 255 + 1e-6  # only 8-bit rounding differs
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_sixteen_bit_tiff_stays_sixteen_bit(tmp_path, astronaut, ditn_x4_path):
    src = tmp_path / "in.tif"
    write_image(src, astronaut[:32, :40], bit_depth=16)
    out = tmp_path / "out.tif"
    run = superres("upscale", src, out, "--device", "cpu", "--tile", "0")
    assert run.returncode == 0, run.stderr
    img, info = read_image(out)
    assert (info.width, info.height, info.bit_depth) == (160, 128, 16)


def test_jpeg_in_png_out_and_explicit_checkpoint(tmp_path, astronaut, ditn_gan_x4_path):
    src = tmp_path / "in.jpg"
    write_image(src, astronaut[300:340, 300:356])
    out = tmp_path / "out.png"
    run = superres("upscale", src, out, "--model", ditn_gan_x4_path, "--device", "cpu")
    assert run.returncode == 0, run.stderr
    assert read_image(out)[1].width == 224


def test_demo_upscales_the_embedded_sample(tmp_path, ditn_x4_path):
    run = superres("demo", tmp_path / "demo.png", "--device", "cpu")
    assert run.returncode == 0, run.stderr
    _, info = read_image(tmp_path / "demo.png")
    assert (info.width, info.height) == (512, 512)


@pytest.fixture
def clip(tmp_path):
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        pytest.skip("the ffmpeg CLI is needed to make test videos (apt-get install ffmpeg)")
    path = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=12:duration=1",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
         "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    return path


@needs_ffmpeg
def test_upscale_video_keeps_audio_frames_and_colour_tags(clip, tmp_path, ditn_x4_path):
    out = tmp_path / "out.mp4"
    run = superres("upscale", clip, out, "--device", "cpu")
    assert run.returncode == 0, run.stderr
    src = {s["codec_type"]: s for s in ffprobe(clip)}
    dst = {s["codec_type"]: s for s in ffprobe(out)}
    assert dst["video"]["nb_read_frames"] == src["video"]["nb_read_frames"] == "12"
    assert (dst["video"]["width"], dst["video"]["height"]) == (256, 192)
    assert dst["video"]["r_frame_rate"] == src["video"]["r_frame_rate"]
    for key in ("color_range", "color_space", "color_primaries", "color_transfer"):
        assert dst["video"].get(key) == src["video"].get(key), key
    assert dst["audio"]["codec_name"] == src["audio"]["codec_name"] == "aac"
    assert abs(float(dst["audio"]["duration"]) - float(src["audio"]["duration"])) < 0.1


@pytest.fixture(scope="module")
def tiny_ultravsr(tmp_path_factory):
    """A tiny UltraVSR release (random weights, real file formats) and tiny CLIP-IQA weights."""
    from vs_superres.models.ultravsr.tiny import write_tiny_clip, write_tiny_release

    folder = tmp_path_factory.mktemp("ultravsr")
    base, ckpt = write_tiny_release(folder)
    return base, ckpt, write_tiny_clip(folder / "clip.safetensors")


@needs_ffmpeg
def test_ultravsr_video_with_clip_iqa(tmp_path, tiny_ultravsr):
    base, ckpt, clip_weights = tiny_ultravsr
    src = tmp_path / "small.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=24x16:rate=12:duration=1",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:v", "ffv1", "-pix_fmt", "yuv444p",
         "-c:a", "flac", "-shortest", str(src)],
        check=True,
    )
    out = tmp_path / "out.mkv"
    # CLIP-IQA picks its frames from the clip length, so this also proves the CLI streams with it.
    run = superres("upscale", src, out, "--model", "ultravsr", "--base", base, "--checkpoint", ckpt,
                   "--clip-iqa", clip_weights, "--window", "6", "--window-overlap", "2", "--device", "cpu",
                   "-O", "decoder_tile=64", "--prompt", "a test card", "-q")
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    dst = {s["codec_type"]: s for s in ffprobe(out)}
    assert dst["video"]["nb_read_frames"] == "12"
    assert (dst["video"]["width"], dst["video"]["height"]) == (96, 64)
    assert dst["audio"]["codec_name"] == "flac"


@pytest.mark.parametrize(
    "extra,match",
    [
        (("--tile", "64"), "--tile and --overlap do not apply to ultravsr: it tiles by itself; set its own tiling options instead (--unet-tile"),
        (("--strength", "1.5"), "--strength must be a number in (0, 1]"),
        (("-O", "unet_tile"), "-O takes KEY=VALUE"),
        (("-O", "unet_tile=abc"), "--unet-tile must be an integer >= 8"),
        (("--color-fix", "none", "-O", "tile_grid=square"), "--tile-grid must be one of balanced, official"),
    ],
)
def test_ultravsr_user_errors(extra, match, tmp_path, tiny_ultravsr):
    base, ckpt, _ = tiny_ultravsr
    write_image(tmp_path / "in.png", np.zeros((8, 8, 3), np.float32), bit_depth=8)
    run = superres("upscale", tmp_path / "in.png", tmp_path / "out.png", "--model", "ultravsr", "--base", base,
                   "--checkpoint", ckpt, "--device", "cpu", *(extra if "--strength" in extra else ("--strength", "0.3", *extra)))
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and match in run.stderr, run.stderr
    assert not (tmp_path / "out.png").exists()


def test_model_options_are_refused_by_models_without_them(photo, tmp_path, tiny_ditn_path):
    run = superres("upscale", photo, tmp_path / "out.png", "--model", tiny_ditn_path, "--strength", "0.3", "--device", "cpu")
    # DITN's one option is its backend (issue 26): another family's option is refused by name.
    assert run.returncode == 2 and "unknown option(s) --strength for tiny_ditn; its options are: --backend" in run.stderr


@needs_ffmpeg
def test_ctrl_c_leaves_no_output(tmp_path, tiny_ditn_path):
    src = tmp_path / "long.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=20",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)],
        check=True,
    )
    out = tmp_path / "out.avi"  # written in one pass (a journaled job keeps its segments: tests/test_jobs_resume.py)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vs_superres.cli", "upscale", str(src), str(out), "--device", "cpu",
         "--model", str(tiny_ditn_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C as a terminal delivers it, whatever pytest inherited (a shell's background job
        # starts with SIGINT ignored, and an ignored signal stays ignored across exec).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir()):
        time.sleep(0.1)
    time.sleep(1.0)  # a few frames into the encode
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; no output file was written" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]  # nothing half-written left


@pytest.mark.parametrize(
    "args,match",
    [
        (("upscale", "missing.png", "out.png"), "input 'missing.png' does not exist"),
        (("upscale", "{photo}", "out.mp4"), "input is an image, so the output must be"),
        (("upscale", "{photo}", "nofolder/out.png"), "output folder 'nofolder' does not exist"),
        (("upscale", "{photo}", "out.png", "--model", "ditn-x9"), "unknown model 'ditn-x9'"),
        (("upscale", "{photo}", "out.png", "--device", "tpu"), "unknown device 'tpu'"),
        (("upscale", "{photo}", "out.png", "--device", "cpu", "--dtype", "fp16"), "fp16 is not supported on device cpu"),
    ],
)
def test_user_errors_are_one_clear_line(args, match, photo, tmp_path):
    args = [a.replace("{photo}", str(photo)) for a in args]
    run = superres(*args, cwd=tmp_path)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert match in run.stderr
    assert not (tmp_path / "out.png").exists()


def test_models_list_and_verify(ditn_x4_path, tmp_path):
    run = superres("models", "list")
    assert run.returncode == 0
    assert "ditn-real-x4" in run.stdout and "Apache-2.0" in run.stdout
    assert str(ditn_x4_path) in run.stdout
    run = superres("models", "verify", "ditn-real-x4", "ditn-real-gan-x4")
    assert run.returncode == 0, run.stdout
    assert run.stdout.count("OK") == 2


def test_models_verify_reports_missing_weights(tmp_path):
    env = dict(os.environ, SUPERRES_WEIGHTS=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "c"))
    run = subprocess.run([sys.executable, "-m", "vs_superres.cli", "models", "verify", "ditn-real-x4"], capture_output=True, text=True, env=env)
    assert run.returncode == 1
    assert "MISSING" in run.stdout and "DITN_Real_x4.pth" in run.stdout


def test_internal_errors_are_called_bugs_with_a_debug_traceback(tmp_path, monkeypatch):
    """A bug (here: a model family whose loader is broken) is not shown as the user's mistake."""
    family = tmp_path / "broken_family.py"
    family.write_text(
        "import dataclasses\n"
        "from vs_superres.contracts.config import FrozenConfig\n"
        "from vs_superres.contracts.descriptor import ModelDescriptor, ModelFamily\n"
        "@dataclasses.dataclass(frozen=True)\nclass C(FrozenConfig):\n    scale: int = 2\n"
        "def load(request):\n    return {}['missing']\n"
        "FAMILY = ModelFamily(name='broken', config_type=C, build=lambda c: None, load=load)\n"
        "MODELS = (ModelDescriptor(name='broken-x2', family='broken', config=C(), diagnostic=True),)\n")
    import os
    env = {**os.environ, "SUPERRES_FAMILIES": "broken_family", "PYTHONPATH": str(tmp_path)}
    src = tmp_path / "in.png"
    from PIL import Image
    Image.new("RGB", (8, 8)).save(src)
    for debug in ([], ["--debug"]):
        run = subprocess.run([sys.executable, "-m", "vs_superres.cli", *debug, "upscale", str(src), str(tmp_path / "o.png"),
                              "--model", "broken-x2"], capture_output=True, text=True, timeout=120, env=env)
        assert run.returncode == 3, run.stderr
        assert "superres: internal error: KeyError: 'missing'; this is a bug" in run.stderr
        assert ("Traceback" in run.stderr) == bool(debug)
        assert not (tmp_path / "o.png").exists()
