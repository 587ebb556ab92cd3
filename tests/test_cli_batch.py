"""`superres upscale` on folders, globs and image sequences: one model load, one summary, one bad
file never stops the rest (#23 item 3). Real CLI processes on crops of a real photograph."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vs_superres import Upscaler
from vs_superres.media import VideoReader, read_image, write_image

FAST = ("--model", "temporal-mean-x2", "--device", "cpu", "-q")
needs_ffmpeg = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                  reason="the ffmpeg/ffprobe CLI makes the test video (apt-get install ffmpeg)")


def superres(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "vs_superres.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def crops(astronaut, n: int) -> list[np.ndarray]:
    """``n`` 64x48 crops of a real photograph, moving across it."""
    return [astronaut[100 + 3 * k:148 + 3 * k, 200 + 5 * k:264 + 5 * k] for k in range(n)]


@pytest.fixture
def photos(tmp_path, astronaut) -> Path:
    """A folder with two photographs, a corrupt PNG and a text file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    a, b = crops(astronaut, 2)
    write_image(folder / "a.png", a)
    write_image(folder / "b.jpg", b)
    (folder / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a PNG signature, then nothing readable
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_a_folder_with_a_corrupt_image_upscales_the_others_with_one_model_load(photos, tmp_path):
    out = tmp_path / "up"
    run = superres("--debug", "upscale", f"{photos}/", f"{out}/", *FAST)
    assert run.returncode == 2, run.stderr  # a user error (the corrupt file) among the inputs
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]  # nothing for c.png, no partial file
    for name in ("a.png", "b.jpg"):
        expected = Upscaler("temporal-mean-x2", device="cpu").upscale(read_image(photos / name)[0])[0]
        got, info = read_image(out / name)
        assert (info.width, info.height) == (128, 96)
        tolerance = 0.5 / 255 + 1e-6 if name.endswith(".png") else 0.08  # JPEG: lossy
        assert np.abs(got - expected.permute(1, 2, 0).numpy()).max() <= tolerance
    log = run.stderr
    assert log.count("loading the model temporal-mean-x2") == 1  # one model load for the batch
    assert "1 files of the folder" in log and "notes.txt" in log  # the text file is left out, and said
    summary = log[log.index("superres: summary of 3 inputs"):].splitlines()
    assert "(model temporal-mean-x2, loaded 1 time)" in summary[0]
    assert [line.split()[:2] for line in summary[1:4]] == [
        ["done", str(photos / "a.png")], ["done", str(photos / "b.jpg")], ["failed", str(photos / "c.png")]]
    assert f"cannot read '{photos / 'c.png'}'" in summary[3]
    assert summary[4] == "superres: 2 done, 0 skipped, 1 failed"


def test_no_overwrite_skips_existing_outputs_and_a_clean_batch_exits_zero(photos, tmp_path):
    (photos / "c.png").unlink()
    out = tmp_path / "up"
    first = superres("upscale", photos, out, *FAST, "-c:v", "libx264")  # encoder flags do not stop images
    assert first.returncode == 0, first.stderr
    before = (out / "a.png").stat().st_mtime_ns
    (out / "b.jpg").unlink()
    second = superres("upscale", photos, out, *FAST, "-n")
    assert second.returncode == 0, second.stderr
    assert (out / "a.png").stat().st_mtime_ns == before
    lines = second.stderr.splitlines()
    assert any(line.split()[:2] == ["skipped", str(photos / "a.png")] and "(-n)" in line for line in lines)
    assert any(line.split()[:2] == ["done", str(photos / "b.jpg")] for line in lines)
    assert lines[-1] == "superres: 1 done, 1 skipped, 0 failed"


def test_a_quoted_glob_takes_the_files_it_matches(photos, tmp_path):
    out = tmp_path / "up"
    run = superres("upscale", str(photos / "[ab].*"), out, *FAST)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]
    assert "superres: 2 done, 0 skipped, 0 failed" in run.stderr


def test_batches_refuse_a_file_as_output_and_the_input_folder(photos, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    as_file = superres("upscale", photos, tmp_path / "file.txt", *FAST)
    assert as_file.returncode == 2 and "the output must be a folder" in as_file.stderr
    same = superres("upscale", photos, photos, *FAST)
    assert same.returncode == 2 and "the output folder is the input folder" in same.stderr
    nothing = superres("upscale", str(tmp_path / "*.mov"), tmp_path / "up", *FAST)
    assert nothing.returncode == 2 and "no file matches" in nothing.stderr


@pytest.fixture
def sequence(tmp_path, astronaut) -> Path:
    folder = tmp_path / "scan"
    folder.mkdir()
    for k, crop in enumerate(crops(astronaut, 7)):
        write_image(folder / f"frame_{k + 1:05d}.png", crop)
    (folder / "frame_7.png").write_bytes(b"not of the sequence: %05d means five digits")
    return folder


def _engine_frames(folder: Path) -> np.ndarray:
    frames = [read_image(folder / f"frame_{k:05d}.png")[0] for k in range(1, 8)]
    clip = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    return Upscaler("temporal-mean-x2", device="cpu").upscale(clip).permute(0, 2, 3, 1).numpy()


def test_an_image_sequence_through_a_window_model_is_one_clip(sequence, tmp_path):
    out = tmp_path / "up"
    run = superres("upscale", sequence / "frame_%05d.png", out, *FAST)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{k:05d}.png" for k in range(1, 8)]
    expected = _engine_frames(sequence)  # the window model over the whole clip: frames mix with their neighbours
    for k in range(7):
        got, info = read_image(out / f"frame_{k + 1:05d}.png")
        assert (info.width, info.height, info.bit_depth) == (128, 96, 8)
        assert np.abs(got - expected[k]).max() <= 0.5 / 255 + 1e-6
    single = Upscaler("temporal-mean-x2", device="cpu").upscale(read_image(sequence / "frame_00004.png")[0])[0]
    assert np.abs(read_image(out / "frame_00004.png")[0] - single.permute(1, 2, 0).numpy()).max() > 0.01


@needs_ffmpeg
def test_an_image_sequence_into_a_video_equals_the_same_frames(sequence, tmp_path):
    as_images = tmp_path / "up"
    assert superres("upscale", sequence / "frame_%05d.png", as_images / "f_%03d.png", *FAST).returncode == 0
    video = tmp_path / "up.mkv"
    run = superres("upscale", sequence / "frame_%05d.png", video, *FAST, "-pix_fmt", "gbrp10le")
    assert run.returncode == 0, run.stderr
    with VideoReader(video) as reader:
        assert reader.info.codec_name == "ffv1"  # a PNG sequence stays lossless
        decoded = [f.rgb.transpose(1, 2, 0) for f in reader]
    assert len(decoded) == 7
    for k, frame in enumerate(decoded):
        image = read_image(as_images / f"f_{k + 1:03d}.png")[0]
        assert np.abs(frame - image).max() <= 0.5 / 255 + 0.5 / 1023 + 1e-6  # 8-bit images, 10-bit video


def test_an_image_model_takes_a_sequence_one_image_at_a_time(sequence, tmp_path, tiny_ditn_path):
    out = tmp_path / "up"
    run = superres("upscale", sequence / "frame_%05d.png", out, "--model", tiny_ditn_path, "--device", "cpu", "-q")
    assert run.returncode == 0, run.stderr
    engine = Upscaler(str(tiny_ditn_path), device="cpu")
    for k in (1, 7):
        expected = engine.upscale(read_image(sequence / f"frame_{k:05d}.png")[0])[0].permute(1, 2, 0).numpy()
        assert np.abs(read_image(out / f"frame_{k:05d}.png")[0] - expected).max() <= 0.5 / 255 + 1e-6


def test_a_sequence_with_a_frame_of_another_size_fails_and_leaves_no_partial_sequence(sequence, tmp_path, astronaut):
    write_image(sequence / "frame_00005.png", astronaut[:40, :40])
    out = tmp_path / "up"
    run = superres("upscale", sequence / "frame_%05d.png", out, *FAST)
    assert run.returncode == 2
    assert "frame_00005.png' is 40x40 but the sequence's first image is 64x48" in run.stderr
    assert list(out.iterdir()) == []
    missing = superres("upscale", sequence / "shot_%04d.png", out, *FAST)
    assert missing.returncode == 2 and "no file matches the sequence" in missing.stderr
