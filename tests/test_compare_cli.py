"""``superres compare`` on real files: the report is self-contained, the JSON holds the figures
(and no invented score without a reference), the split-screen video keeps frame count, rate and
audio, and inputs that are not the same frames are refused in one line before anything is written."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from compare_helpers import FPS, HR_SIZE, LR_SIZE, pan, resized, write_clip
from media_helpers import decoded, probe, streams_of
from vs_superres.cli.app import main
from vs_superres.compare import compare
from vs_superres.compare.metrics import psnr_y, ssim_y
from vs_superres.compare.scaling import resize
from vs_superres.media import read_image

pytest.importorskip("cv2", reason="the compare extra (opencv-python-headless) is not installed")
FRAMES = 8


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    hr = pan(FRAMES)
    lr = resized(hr, LR_SIZE, Image.Resampling.BOX)
    # an "output" that is visibly its own: the truth, warmer (so the split line is easy to find)
    warm = [np.clip(f.astype(np.int16) + np.array([40, 0, -40]), 0, 255).astype(np.uint8) for f in hr]
    photo = skimage.data.astronaut()
    small = np.asarray(Image.fromarray(photo).resize((128, 128), Image.Resampling.BOX))
    paths = {
        "lr": write_clip(folder / "lr.mkv", lr, audio=True),
        "hr": write_clip(folder / "hr.mkv", hr),
        "warm": write_clip(folder / "warm.mkv", warm),
        "short": write_clip(folder / "short.mkv", hr[:-2]),
        "rate25": write_clip(folder / "rate25.mkv", hr, fps=25),
        "odd": write_clip(folder / "odd.mkv", [f[:, :250] for f in hr]),
        "tiny": write_clip(folder / "tiny.mkv", resized(hr, (64, 48))),
        "photo_lr": folder / "photo_lr.png",
        "photo_up": folder / "photo_up.png",
        "photo_hr": folder / "photo_hr.png",
    }
    Image.fromarray(small).save(paths["photo_lr"])
    Image.fromarray(np.asarray(Image.fromarray(small).resize((512, 512), Image.Resampling.BICUBIC))).save(paths["photo_up"])
    Image.fromarray(photo).save(paths["photo_hr"])
    return paths


def frame_times(path) -> list[float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=pts_time", "-of", "csv=p=0",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return [float(line.split(",")[0]) for line in out.split() if line.strip(",")]


def run(capsys, *args) -> tuple[int, str, str]:
    status = main(["compare", *map(str, args), "-q"])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_image_report_is_self_contained_and_scores_only_against_the_reference(files, tmp_path, capsys):
    report = tmp_path / "images.html"
    status, out, err = run(capsys, files["photo_lr"], files["photo_up"], "-o", report, "--json")
    assert status == 0, err
    data = json.loads(out)
    assert data["reference"] is None and data["summary"] == {"A": {}, "B": {}}  # no invented score
    assert any("no reference given" in n for n in data["notes"])
    text = report.read_text()
    assert "id='scores'" not in text and "pass --reference HR for PSNR/SSIM" in text
    sources = re.findall(r"""\ssrc=['"]([^'"]*)""", text)
    assert sources and all(s.startswith(("data:image/jpeg;base64,", "data:image/png;base64,")) for s in sources)
    assert not re.search(r"""(href|src)=['"]?(https?:|//)""", text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert "upscaled x4 with Lanczos-3" in text  # A is shown lined up, and says how
    # with the reference: the figures are the metrics of the clips as shown (A upscaled with Lanczos)
    status, out, err = run(capsys, files["photo_lr"], files["photo_up"], "--reference", files["photo_hr"], "--json")
    assert status == 0, err
    data = json.loads(out)
    truth, up, lr = (read_image(files[k])[0] for k in ("photo_hr", "photo_up", "photo_lr"))
    assert data["summary"]["B"]["psnr_y"] == pytest.approx(psnr_y(up, truth), abs=1e-9)
    assert data["summary"]["B"]["ssim_y"] == pytest.approx(ssim_y(up, truth), abs=1e-9)
    assert data["summary"]["A"]["psnr_y"] == pytest.approx(psnr_y(resize(lr, 512, 512, "lanczos"), truth), abs=1e-9)
    assert set(data["captions"]) == {"psnr_y", "ssim_y"}
    assert any("LPIPS and DISTS are not computed" in n for n in data["notes"])


def test_video_json_progress_and_sampling(files):
    reports = []
    result = compare([files["lr"], files["hr"], files["warm"]], reference=files["hr"], frames=2, measure=3,
                     on_progress=reports.append)
    data = result.to_dict()
    assert [f["index"] for f in data["sampled_frames"]] == [2, 6]
    flicker = result.figure("flicker")
    assert flicker.frames == (2, 4, 6) and set(flicker.values) == {"A", "B", "C", "ref"}
    psnr = result.figure("psnr_y")
    assert psnr.frames == (2, 4, 6)
    assert all(v == float("inf") for v in psnr.values["B"])  # B is the reference itself
    assert data["identical"] == {"B": True} and data["summary"]["B"]["psnr_y"] is None  # JSON has no Infinity
    assert data["frames_read"] == FRAMES
    assert [(p.done, p.total, p.phase) for p in reports] == [(1, 3, "sampled frames"), (2, 3, "sampled frames"),
                                                             (3, 3, "sampled frames")]
    assert len(result.frames[0].views) == 4 and len(result.frames[0].crops) == 2
    assert result.frames[0].crops[0][0].width == result.frames[0].regions[0].size  # full resolution


def test_split_screen_video_keeps_count_rate_and_audio_and_shows_both_sides(files, tmp_path, capsys):
    side = tmp_path / "side.mp4"
    status, _, err = run(capsys, files["lr"], files["warm"], "--video", side)
    assert status == 0, err
    info = probe(side)
    video, audio = streams_of(info, "video")[0], streams_of(info, "audio")
    assert (int(video["width"]), int(video["height"])) == HR_SIZE
    assert int(video["nb_read_frames"]) == FRAMES
    # the rate: every frame at its source frame's time (Matroska's stamps are whole ms)
    assert frame_times(side) == pytest.approx(frame_times(files["lr"]), abs=0.0011)
    assert np.diff(frame_times(side)) == pytest.approx(np.full(FRAMES - 1, 1 / FPS), abs=0.0011)
    source_audio = streams_of(probe(files["lr"]), "audio")[0]
    assert len(audio) == 1 and audio[0]["codec_name"] == "aac"
    assert int(audio[0]["nb_read_frames"]) == int(source_audio["nb_read_frames"])  # every audio packet kept
    frame = decoded(side)[3].transpose(1, 2, 0)  # [H, W, 3] float
    lr = decoded(files["lr"])[3].transpose(1, 2, 0)
    warm = decoded(files["warm"])[3].transpose(1, 2, 0)
    w = HR_SIZE[0]
    left, right = frame[60:, 8:w // 2 - 8], frame[60:, w // 2 + 8:-8]  # below the labels, away from the line
    assert np.abs(left - resize(lr, *HR_SIZE)[60:, 8:w // 2 - 8]).mean() < 0.03
    assert np.abs(right - warm[60:, w // 2 + 8:-8]).mean() < 0.03
    assert np.abs(right - resize(lr, *HR_SIZE)[60:, w // 2 + 8:-8]).mean() > 0.06  # the sides really differ


def test_wipe_moves_the_line(files, tmp_path, capsys):
    side = tmp_path / "wipe.mkv"
    status, _, err = run(capsys, files["hr"], files["warm"], "--video", side, "--video-mode", "wipe", "--wipe-period", "0.5")
    assert status == 0, err
    frames = decoded(side)
    warmth = [(f[0] - f[2]).mean(axis=0) for f in frames]  # per column: the warm clip is redder
    edges = [int(np.argmax(np.abs(np.diff(w))) ) for w in warmth]
    assert len(set(edges)) > 3  # the line is somewhere else in most frames


@pytest.mark.parametrize("case, expected", [
    (["short"], "B: short.mkv ended after 6 frames but A: lr.mkv goes on: the clips must hold the same frames"),
    (["rate25"], "A: lr.mkv runs at 24 fps and B: rate25.mkv at 25 fps: frames would not line up"),
    (["odd"], "A: lr.mkv is 128x96 and B: odd.mkv is 250x192: not one picture at two scales (x1.953 wide, x2 high)"),
    (["photo_up"], "compare takes images or videos, not both: photo_up.png (images) and lr.mkv (videos)"),
    (["hr", "--reference", "tiny"], "the reference tiny.mkv is 64x48, smaller than B: hr.mkv (256x192)"),
    (["hr", "--video", "side.mp4", "--video-clips", "A,Z"], "--video-clips must name two of A, B as I,J (e.g. A,B), got 'A,Z'"),
    (["hr", "--json", "-o", "report.pdf"], "the report is HTML: give -o a name ending in .html"),
])
def test_inputs_that_are_not_the_same_frames_are_refused_in_one_line(files, tmp_path, capsys, case, expected):
    args = [files.get(a, tmp_path / a if a.endswith((".mp4", ".pdf")) else a) for a in case]
    if "--json" not in case and "--video" not in case:
        args += ["-o", tmp_path / "report.html"]
    status, out, err = run(capsys, files["lr"], *args)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a partial file


def test_lengths_the_containers_announce_are_compared_before_the_clips_are_read(files, tmp_path, capsys):
    whole = write_clip(tmp_path / "whole.mov", pan(FRAMES))  # MOV announces its frame count
    cut = write_clip(tmp_path / "cut.mov", pan(FRAMES - 3))
    status, _, err = run(capsys, whole, cut, "--json")
    assert status == 2
    assert err.strip() == ("superres: error: A: whole.mov has 8 frames and B: cut.mov has 5: the clips must hold the same "
                           "frames; compare outputs of the whole input, or cut them to the same range first")


def test_nothing_to_write_and_an_existing_output_under_n(files, tmp_path, capsys):
    status, _, err = run(capsys, files["lr"], files["hr"])
    assert status == 2 and "compare needs something to write: -o REPORT.html, --json, and/or --video SIDE.mp4" in err
    report = tmp_path / "r.html"
    report.write_text("keep me")
    status, _, err = run(capsys, files["lr"], files["hr"], "-o", report, "-n")
    assert status == 2 and "already exists and -n/--no-overwrite was given" in err
    assert report.read_text() == "keep me"


def test_the_command_runs_as_a_process(files, tmp_path):
    report = tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-m", "vs_superres.cli", "compare", str(files["lr"]), str(files["hr"]),
                           "-o", str(report), "--frames", "1", "--measure", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"superres: wrote {report}" in done.stderr
    assert report.stat().st_size > 10_000 and report.read_text().endswith("</html>")
