"""`superres upscale`'s encoder flags (ffmpeg's spelling), lossless defaults, containers and
metadata, through the real CLI on clips made by the ffmpeg CLI from a real photograph (#23 item 2)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vs_superres import Upscaler
from vs_superres.media import VideoReader, write_image

pytestmark = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
    reason="the ffmpeg/ffprobe CLI makes and inspects the test videos (apt-get install ffmpeg; scripts/setup_env.sh does it)")

FAST = ("--model", "temporal-mean-x2", "--device", "cpu", "-q")


def superres(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "vs_superres.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True)


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-show_chapters", "-count_frames",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def video_stream(info: dict) -> dict:
    return next(s for s in info["streams"] if s["codec_type"] == "video")


def encoder_settings_text(path: Path, marker: bytes) -> dict[str, str]:
    """The options x264/x265 write into their SEI (``... options: crf=20.0 rd=2 ...``)."""
    data = path.read_bytes()
    start = data.index(marker)
    text = data[start:data.index(b"\0", start)].decode("ascii", "replace")
    options = text.split("options:", 1)[1]
    return dict(item.split("=", 1) for item in options.split() if "=" in item)


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory, astronaut) -> Path:
    """Six 64x48 crops of a real photograph, moving across it (so a window model's mean differs per frame)."""
    folder = tmp_path_factory.mktemp("photo_frames")
    for n in range(6):
        write_image(folder / f"frame_{n + 1:03d}.png", astronaut[100 + 3 * n:148 + 3 * n, 200 + 5 * n:264 + 5 * n], bit_depth=8)
    return folder


@pytest.fixture(scope="module")
def ffv1_clip(frames_dir, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ffv1") / "clip.mkv"
    ffmpeg("-framerate", "24", "-i", frames_dir / "frame_%03d.png", "-c:v", "ffv1", "-pix_fmt", "yuv444p", path)
    return path


@pytest.fixture(scope="module")
def tagged_clip(ffv1_clip, tmp_path_factory) -> Path:
    """The FFV1 clip with a title, a video language, an audio stream with language and handler
    name, and two chapters."""
    folder = tmp_path_factory.mktemp("tagged")
    chapters = folder / "chapters.txt"
    chapters.write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=125\ntitle=Opening\n"
                        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=125\nEND=250\ntitle=Ending\n")
    path = folder / "tagged.mkv"
    ffmpeg("-i", ffv1_clip, "-f", "lavfi", "-i", "sine=frequency=440:duration=0.25", "-i", chapters,
           "-map", "0:v", "-map", "1:a", "-map_chapters", "2", "-c:v", "copy", "-c:a", "aac", "-shortest",
           "-metadata", "title=A Film", "-metadata:s:v:0", "language=fra",
           "-metadata:s:a:0", "language=deu", "-metadata:s:a:0", "handler_name=Narration", path)
    return path


def test_lossless_input_gives_lossless_output_equal_to_the_engine(ffv1_clip, tmp_path):
    out = tmp_path / "up.mkv"
    run = superres("upscale", ffv1_clip, out, *FAST)
    assert run.returncode == 0, run.stderr
    stream = video_stream(probe(out))
    assert stream["codec_name"] == "ffv1"  # the input's lossless codec, not lossy H.264
    assert stream["pix_fmt"] == "yuv444p"  # the source's own layout
    with VideoReader(ffv1_clip) as reader:
        source = np.stack([f.rgb for f in reader])
    import torch

    expected = Upscaler("temporal-mean-x2", device="cpu").upscale(torch.from_numpy(source)).numpy()
    # The engine's frames, converted to yuv444p exactly as the writer does, then decoded back.
    from vs_superres.media.convert import frame_to_rgb, rgb_to_frame
    with VideoReader(out) as reader:
        colour = reader.info.colour
        got = [f.frame for f in reader]
    assert len(got) == len(expected) == 6
    for frame, want in zip(got, expected):
        coded = rgb_to_frame(want, "yuv444p", colour)
        for plane_got, plane_want in zip(frame.planes, coded.planes):
            assert bytes(plane_got) == bytes(plane_want)  # every sample as the writer coded it: lossless
        assert np.allclose(frame_to_rgb(frame, colour), frame_to_rgb(coded, colour))


def test_a_quality_flag_turns_a_lossless_input_lossy(ffv1_clip, tmp_path):
    out = tmp_path / "up.mkv"
    run = superres("upscale", ffv1_clip, out, *FAST, "-crf", "30")
    assert run.returncode == 0, run.stderr
    assert video_stream(probe(out))["codec_name"] == "h264"
    assert encoder_settings_text(out, b"x264 - core")["crf"] == "30.0"


def test_libx265_crf_and_preset_land_in_the_file(ffv1_clip, tmp_path):
    outs = {}
    for preset in ("fast", "slow"):
        outs[preset] = tmp_path / f"{preset}.mp4"
        run = superres("upscale", ffv1_clip, outs[preset], *FAST, "-c:v", "libx265", "-crf", "20", "-preset", preset)
        assert run.returncode == 0, run.stderr
        info = probe(outs[preset])
        assert video_stream(info)["codec_name"] == "hevc"
        assert int(video_stream(info)["nb_read_frames"]) == 6
    fast = encoder_settings_text(outs["fast"], b"x265 (build")
    slow = encoder_settings_text(outs["slow"], b"x265 (build")
    assert fast["crf"] == slow["crf"] == "20.0"
    # x265's presets: fast searches with rd=2 and 3 references, slow with rd=4 and 4
    assert (fast["rd"], fast["ref"]) == ("2", "3")
    assert (slow["rd"], slow["ref"]) == ("4", "4")


def test_x264_params_and_pix_fmt_reach_the_encoder(ffv1_clip, tmp_path):
    out = tmp_path / "up.mp4"
    run = superres("upscale", ffv1_clip, out, *FAST, "-c:v", "libx264", "-pix_fmt", "yuv420p10le",
                   "-x264-params", "keyint=5:bframes=0")
    assert run.returncode == 0, run.stderr
    assert video_stream(probe(out))["pix_fmt"] == "yuv420p10le"
    options = encoder_settings_text(out, b"x264 - core")
    assert (options["keyint"], options["bframes"]) == ("5", "0")


def test_bitrate_replaces_the_constant_quality(ffv1_clip, tmp_path):
    out = tmp_path / "up.mp4"
    run = superres("upscale", ffv1_clip, out, *FAST, "-c:v", "libx264", "-b:v", "300k")
    assert run.returncode == 0, run.stderr
    options = encoder_settings_text(out, b"x264 - core")
    assert options["rc"] == "abr" and options["bitrate"] == "300"


def test_title_language_handler_and_chapters_are_kept_as_ffmpeg_keeps_them(tagged_clip, tmp_path):
    out = tmp_path / "up.mkv"
    run = superres("upscale", tagged_clip, out, *FAST, "-c:v", "libx264")
    assert run.returncode == 0, run.stderr
    ours = probe(out)
    reference = tmp_path / "ffmpeg.mkv"
    ffmpeg("-i", tagged_clip, "-map", "0", "-map_metadata", "0", "-map_chapters", "0", "-c:v", "libx264",
           "-c:a", "copy", reference)
    theirs = probe(reference)

    def kept(info):
        streams = [(s["codec_type"], s.get("tags", {}).get("language"), s.get("tags", {}).get("HANDLER_NAME"))
                   for s in info["streams"]]
        return (info["format"]["tags"].get("title"), streams,
                [(c["start_time"], c["end_time"], c["tags"]["title"]) for c in info["chapters"]])

    assert kept(ours) == kept(theirs)
    assert kept(ours)[0] == "A Film"
    assert kept(ours)[1] == [("video", "fra", None), ("audio", "deu", "Narration")]
    assert [c[2] for c in kept(ours)[2]] == ["Opening", "Ending"]


@pytest.mark.parametrize("suffix,codec", [(".mpg", "mpeg1video"), (".mxf", "mpeg2video"), (".ogv", "vp8")])
def test_containers_none_of_the_usual_encoders_fit_get_their_own(ffv1_clip, tmp_path, suffix, codec):
    out = tmp_path / f"up{suffix}"
    run = superres("upscale", ffv1_clip, out, *FAST)
    assert run.returncode == 0, run.stderr
    stream = video_stream(probe(out))
    assert (stream["codec_name"], stream["width"], stream["height"]) == (codec, 128, 96)
    assert int(stream["nb_read_frames"]) == 6


BAD = [
    (("-c:v", "nope"), "-c:v nope: this FFmpeg build has no video encoder of that name; available here: libx264"),
    (("-c:v", "copy"), "-c:v copy cannot be used"),
    (("-c:v", "libx264"), "a '.webm' file (webm) cannot hold h264 video from libx264; write a .mkv"),
    (("-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p12le"), "libvpx-vp9 cannot write -pix_fmt yuv420p12le; it takes"),
    (("-pix_fmt", "pal8"), "-pix_fmt pal8: not a pixel format vs-superres can write"),
    (("-crf", "70"), "-crf 70 is outside libvpx-vp9's scale 0..63"),
    (("-crf", "abc"), "-crf takes a number (e.g. -crf 18), got 'abc'"),
    (("-b:v", "fast"), "-b:v takes a bit rate such as 4M, 2500k or 800000 (bit/s), got 'fast'"),
    (("-x264-params", "keyint=5"), "-x264-params is an option of libx264, but the video is encoded with libvpx-vp9"),
    (("-c:v", "libsvtav1", "-svtav1-params", "keyint"), "-svtav1-params takes KEY=VALUE items"),
    (("-preset", "fast"), "libvpx-vp9 has no -preset"),
]


@pytest.mark.parametrize("flags,message", BAD, ids=[" ".join(f) for f, _ in BAD])
def test_bad_encoder_settings_fail_before_any_work(ffv1_clip, tmp_path, flags, message):
    out = tmp_path / "up.webm"
    # A model that cannot load: the settings are refused before the model is even looked at.
    run = superres("upscale", ffv1_clip, out, "--model", tmp_path / "missing.pth", "--device", "cpu", *flags)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("superres: error: "), run.stderr
    assert message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_a_container_that_holds_no_video_is_refused_naming_one_that_does(ffv1_clip, tmp_path):
    run = superres("upscale", ffv1_clip, tmp_path / "up.wav", *FAST)
    assert run.returncode == 2
    assert "a '.wav' file (wav) holds no video; name the output .mkv, .mp4, .mov or .webm" in run.stderr


def test_encoder_flags_on_an_image_output_are_refused(frames_dir, tmp_path):
    run = superres("upscale", frames_dir / "frame_001.png", tmp_path / "up.png", *FAST, "-crf", "20")
    assert run.returncode == 2
    assert "the encoder flags (-c:v, -crf, ...) apply to video outputs" in run.stderr


def _kill_after_two_segments(command: list[str], journal: Path) -> None:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if len(json.loads((journal / "journal.json").read_text())["segments"]) >= 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def test_the_encoder_settings_are_part_of_a_resumable_jobs_identity(tmp_path, tiny_ditn_path):
    src = tmp_path / "in.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24", "-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p", src)
    out = tmp_path / "out.mkv"
    base = ["upscale", src, out, "-q", "-y", "--model", tiny_ditn_path, "--device", "cpu", "--segment-seconds", "0.5"]
    journal = tmp_path / ".out.mkv.superres-job"
    command = [sys.executable, "-m", "vs_superres.cli", *map(str, base)]
    _kill_after_two_segments([*command, "-c:v", "libx264", "-crf", "20"], journal)
    assert journal.is_dir()
    resumed = superres(*base, "-c:v", "libx264", "-crf", "20")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming 'out.mkv'" in resumed.stderr
    _kill_after_two_segments([*command, "-c:v", "libx264", "-crf", "20"], journal)
    changed = superres(*base, "-c:v", "libx264", "-crf", "21")
    assert changed.returncode == 0, changed.stderr
    assert "starting 'out.mkv' afresh: options changed: encoder" in changed.stderr
    assert encoder_settings_text(out, b"x264 - core")["crf"] == "21.0"  # every segment in the new settings
