"""``superres-ffmpeg``: ffmpeg's command line with our filter inside, against ffmpeg alone.

The comparison run replaces ``superres`` by ``scale=iw*2:ih*2``: everything but the pixels
(streams chosen, their packets, time stamps, tags, pixel format) must be what ffmpeg alone
gives; the pixels must be the engine's.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
from bridge_helpers import (assert_frames_equal, decode, engine_reference, ffmpeg, ffprobe,
                            make_clips, needs_ffmpeg, packets, run_wrapper, video_times)

from vs_superres.ffmpeg_filter import cmdline
from vs_superres.contracts.errors import InvalidOption

pytestmark = needs_ffmpeg
OURS = "superres=model=temporal-mean-x2"
STAND_IN = "scale=iw*2:ih*2"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("wrapper_clips"))


def streams(path) -> list[tuple]:
    return [(s["codec_type"], s["codec_name"], s.get("channels"), s.get("tags", {}).get("language"))
            for s in ffprobe(path)["streams"]]


def alone(tmp_path, *args) -> os.PathLike:
    """ffmpeg itself, with the stand-in where our filter was."""
    out = tmp_path / ("alone" + str(args[-1])[str(args[-1]).rfind("."):])
    ffmpeg(*[a.replace(OURS, STAND_IN) if isinstance(a, str) else a for a in args[:-1]], out)
    return out


def ffmpeg_children(pid: int, timeout: float = 90) -> list[psutil.Process]:
    """Both ffmpeg processes of a running wrapper, once frames flow through all three."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [c for c in psutil.Process(pid).children(recursive=True) if "ffmpeg" in c.name()]
        if len(found) == 2:
            time.sleep(1.0)
            return found
        time.sleep(0.2)
    raise AssertionError("the wrapper did not start its two ffmpeg processes")


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


@pytest.mark.parametrize("maps", [(), ("-map", "0")], ids=["ffmpeg-chooses", "map-all"])
def test_streams_packets_and_times_are_ffmpeg_alones(clips, tmp_path, maps, capfd):
    args = ["-i", clips["420.mkv"], *maps, "-vf", OURS, "-c:v", "ffv1", "-c:a", "copy", "-c:s", "copy"]
    out = tmp_path / "out.mkv"
    assert run_wrapper("-y", *args, out) == 0, capfd.readouterr().err
    ref = alone(tmp_path, *args, out)
    assert streams(out) == streams(ref)
    assert len(streams(out)) == (4 if maps else 3)  # alone picks 1 video, 1 audio, 1 subtitle
    for kind in ("audio", "subtitle"):
        assert packets(out, kind) == packets(ref, kind)
    assert video_times(out) == video_times(ref)
    got, want = ffprobe(out), ffprobe(ref)
    assert got["format"]["tags"].get("title") == want["format"]["tags"].get("title") == "bridge test"
    assert got["chapters"] == want["chapters"]
    for key in ("pix_fmt", "color_range", "color_space", "color_primaries", "color_transfer",
                "chroma_location", "sample_aspect_ratio", "width", "height"):
        assert got["streams"][0].get(key) == want["streams"][0].get(key), key
    reference, info = engine_reference(clips["420.mkv"], "temporal-mean-x2")
    assert_frames_equal(decode(out.read_bytes()), reference, info.colour)  # FFV1: bit for bit
    assert b"superres-ffmpeg: frame=" in capfd.readouterr().err.encode()  # the progress line
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("clip", ["420.mkv", "420p10.mkv"])
def test_ditn_through_the_wrapper(clips, tmp_path, clip, tiny_ditn_path, capfd):
    """An image model (the tiny DITN, x4) in the chain: its frames, the streams ffmpeg alone
    would keep (with a x4 scale standing in), bit depth and times."""
    ours = f"superres=model={tiny_ditn_path}:device=cpu"
    args = ["-i", clips[clip], "-vf", ours, "-c:v", "ffv1", "-c:a", "copy", "-c:s", "copy"]
    out = tmp_path / "out.mkv"
    assert run_wrapper("-y", *args, out) == 0, capfd.readouterr().err
    ref = tmp_path / "alone.mkv"
    ffmpeg(*[a.replace(ours, "scale=iw*4:ih*4") if isinstance(a, str) else a for a in args], ref)
    assert streams(out) == streams(ref)
    got, want = ffprobe(out)["streams"][0], ffprobe(ref)["streams"][0]
    for key in ("pix_fmt", "width", "height", "r_frame_rate"):
        assert got.get(key) == want.get(key), key
    assert video_times(out) == video_times(ref)
    reference, info = engine_reference(clips[clip], str(tiny_ditn_path))
    assert_frames_equal(decode(out.read_bytes()), reference, info.colour)


def test_streams_mapped_by_index_as_alone(clips, tmp_path, capfd):
    """``-map 0:N`` says nothing about the stream's type: the wrapper probes the input, so the
    video mapped by index comes from the pipe, in the place the user gave it."""
    args = ["-i", clips["420.mkv"], "-map", "0:2", "-map", "0:0", "-map", "0:3", "-vf", OURS,
            "-c:v", "ffv1", "-c:a", "copy", "-c:s", "copy"]
    out = tmp_path / "out.mkv"
    assert run_wrapper("-y", *args, out) == 0, capfd.readouterr().err
    ref = alone(tmp_path, *args, out)
    assert [s[0] for s in streams(out)] == ["audio", "video", "subtitle"]
    assert streams(out) == streams(ref)
    assert packets(out, "audio") == packets(ref, "audio")
    reference, info = engine_reference(clips["420.mkv"], "temporal-mean-x2")
    assert_frames_equal(decode(out.read_bytes()), reference, info.colour)


@pytest.mark.parametrize("maps, match", [
    (["-map", "0:9"], r"-map 0:9: .* has 4 stream\(s\) \(0 to 3\)"),
    (["-map", "3:0"], "-map 3:0 names input 3, but the command has 1 input"),
])
def test_maps_by_index_that_name_nothing(clips, tmp_path, capfd, maps, match):
    out = tmp_path / "out.mkv"
    assert run_wrapper("-y", "-i", clips["420.mkv"], *maps, "-vf", OURS, out) == 2
    assert re.search(match, capfd.readouterr().err)
    assert not out.exists() and leftovers(tmp_path) == []


def test_an_input_on_stdin_is_refused_even_with_maps(clips, tmp_path):
    """A pipe cannot be read twice (the front reads the video, the back the rest): an input on
    stdin is refused before anything else (the by-index map probe included) with the way that
    works, superres-filter."""
    out = tmp_path / "out.mkv"
    proc = subprocess.run([sys.executable, "-m", "vs_superres.ffmpeg_filter.wrapper", "-y", "-i", "-",
                           "-map", "0:0", "-vf", OURS, str(out)], input=clips["420.mkv"].read_bytes(),
                          capture_output=True, timeout=120, env=dict(os.environ, PYTHONPATH="tests"))
    assert proc.returncode == 2
    assert "cannot take its input from stdin (-i -)" in proc.stderr.decode()
    assert not out.exists()


@pytest.mark.parametrize("clip", ["420p10.mkv", "444.mkv", "rgb.mkv", "vfr.mkv"])
def test_bit_depth_tags_and_variable_rate_as_alone(clips, tmp_path, clip, capfd):
    args = ["-i", clips[clip], "-vf", OURS, "-c:v", "ffv1"]
    out = tmp_path / "out.mkv"
    assert run_wrapper("-y", *args, out) == 0, capfd.readouterr().err
    ref = alone(tmp_path, *args, out)
    got, want = ffprobe(out)["streams"][0], ffprobe(ref)["streams"][0]
    for key in ("pix_fmt", "width", "height", "r_frame_rate"):
        assert got.get(key) == want.get(key), key
    source = ffprobe(clips[clip])["streams"][0]
    # the colour tags are the source's (the stand-in scale filter may change the range)
    for key in ("color_range", "color_space", "color_primaries", "color_transfer", "chroma_location"):
        assert got.get(key) == source.get(key), key
    assert video_times(out) == video_times(ref)
    reference, info = engine_reference(clips[clip], "temporal-mean-x2")
    assert_frames_equal(decode(out.read_bytes()), reference, info.colour)


def test_filters_before_and_after_ours(clips, tmp_path, capfd):
    out = tmp_path / "out.mp4"
    args = ["-i", clips["420.mkv"], "-vf", f"crop=16:12:0:0,{OURS},pad=40:30", "-c:v", "libx264",
            "-c:a", "aac"]
    code = run_wrapper("-y", "-loglevel", "error", *args, out)
    assert code == 0, capfd.readouterr().err
    ref = alone(tmp_path, *args, out)
    video = ffprobe(out)["streams"][0]
    assert (video["width"], video["height"]) == (40, 30)
    assert [s["codec_type"] for s in ffprobe(out)["streams"]] == ["video", "audio"]
    assert video_times(out) == video_times(ref)  # MP4's constant rate, applied as alone


def test_tiny_ultravsr_through_the_wrapper(tmp_path_factory, tmp_path, capfd):
    from vs_superres.models.ultravsr.tiny import write_tiny_clip, write_tiny_release

    folder = tmp_path_factory.mktemp("ultravsr")
    base, ckpt = write_tiny_release(folder)
    clip_iqa = write_tiny_clip(folder / "clip.safetensors")
    src = tmp_path / "small.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=24x16:rate=12", "-f", "lavfi", "-i", "sine=duration=0.5",
           "-frames:v", "6", "-c:v", "ffv1", "-pix_fmt", "yuv444p", "-c:a", "flac", "-shortest", src)
    out = tmp_path / "out.mkv"
    chain = (f"superres=model=ultravsr:base={base}:checkpoint={ckpt}:clip_iqa={clip_iqa}:window=6:"
             "window_overlap=2:decoder_tile=64:prompt=a test card:device=cpu")
    code = run_wrapper("-y", "-nostats", "-i", src, "-vf", chain, "-c:v", "ffv1", "-c:a", "copy", out)
    assert code == 0, capfd.readouterr().err
    video, audio = ffprobe(out)["streams"]
    assert (video["width"], video["height"], video["pix_fmt"]) == (96, 64, "yuv444p")
    assert len(video_times(out)) == 6
    assert packets(out, "audio") == packets(src, "audio")


def test_filter_complex_with_ours_is_refused(clips, tmp_path, capfd):
    code = run_wrapper("-i", clips["420.mkv"], "-filter_complex", f"[0:v]{OURS}[v]", "-map", "[v]",
                       tmp_path / "out.mkv")
    err = capfd.readouterr().err
    assert code == 2
    assert "superres inside -filter_complex/-lavfi is not supported" in err and "-vf" in err
    assert list(tmp_path.iterdir()) == []


def test_ffmpeg_failures_pass_through(clips, tmp_path, capfd):
    out = tmp_path / "out.mkv"
    code = run_wrapper("-i", tmp_path / "missing.mkv", "-vf", OURS, out)
    err = capfd.readouterr().err
    assert code == 1 and "missing.mkv: No such file or directory" in err  # the front's own words
    code = run_wrapper("-i", clips["420.mkv"], "-vf", OURS, "-c:v", "no_such_encoder", out)
    err = capfd.readouterr().err
    assert code != 0 and "no_such_encoder" in err  # the back's status and message
    assert list(tmp_path.iterdir()) == []  # nothing under the final name, no temporary file


def test_existing_output_needs_y(clips, tmp_path, capfd):
    out = tmp_path / "out.mkv"
    out.write_bytes(b"keep me")
    assert run_wrapper("-i", clips["420.mkv"], "-vf", OURS, out) == 1
    assert "already exists" in capfd.readouterr().err
    assert out.read_bytes() == b"keep me"


def test_without_our_filter_it_is_ffmpeg(clips, tmp_path, capfd):
    out = tmp_path / "plain.mkv"
    assert run_wrapper("-y", "-loglevel", "error", "-i", clips["420.mkv"], "-c", "copy", out) == 0
    assert streams(out) == streams(alone(tmp_path, "-i", clips["420.mkv"], "-c", "copy", out))


def start_long_wrapper(tmp_path, **popen) -> tuple[subprocess.Popen, os.PathLike]:
    """``superres-ffmpeg`` on a 20 s clip read in real time (``-re``), as a real process."""
    src = tmp_path / "long.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24", "-frames:v", "480", "-c:v", "ffv1", src)
    out = tmp_path / "out.mkv"
    proc = subprocess.Popen([sys.executable, "-m", "vs_superres.ffmpeg_filter.wrapper", "-re", "-i", str(src),
                             "-vf", OURS, "-c:v", "ffv1", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)
    return proc, out


def test_ctrl_c_stops_both_sides_and_leaves_nothing(tmp_path):
    proc, out = start_long_wrapper(
        tmp_path, start_new_session=True,
        # as a terminal's Ctrl-C, whatever pytest inherited (see test_cli)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    children = ffmpeg_children(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted; no output file was written" in err and b"Traceback" not in err
    assert not out.exists() and leftovers(tmp_path) == []
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


def test_sigterm_stops_both_ffmpeg_processes(tmp_path):
    proc, out = start_long_wrapper(tmp_path)
    children = ffmpeg_children(proc.pid)
    proc.terminate()  # only the wrapper: it must stop its two ffmpeg processes itself
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not out.exists() and leftovers(tmp_path) == []
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


# ------------------------------------------------------------------ the command line itself

def test_command_line_is_read_as_ffmpeg_reads_it():
    cmd = cmdline.parse(["-y", "-ss", "1", "-i", "a.mkv", "-i", "b.wav", "-map", "0:v", "-map", "1:a",
                         "-vf", "scale=iw/2:-2,superres=model=x:tile=64,unsharp", "-c:v", "libx264",
                         "-an", "out.mp4"])
    assert cmd.global_options == ["-y"]
    assert [(i.options, i.url) for i in cmd.inputs] == [(["-ss", "1"], "a.mkv"), ([], "b.wav")]
    assert cmd.output == "out.mp4"
    split = cmdline.find_filter(cmd)
    assert split is not None
    assert (split.before, split.ours, split.after) == ("scale=iw/2:-2", "superres=model=x:tile=64", "unsharp")
    assert "-vf" not in split.output_options
    assert cmdline.back_maps(split.output_options, 2)[:4] == ["-map", "2:v:0", "-map", "1:a"]
    assert cmdline.back_maps(["-map", "0", "-c", "copy"], 1) == ["-map", "1:v:0", "-map", "0", "-c", "copy"]
    video_is_0 = lambda source, index: index == 0  # noqa: E731
    assert cmdline.back_maps(["-map", "0:1", "-map", "0:0?"], 1, video_is_0) == ["-map", "0:1", "-map", "1:v:0"]
    assert cmdline.back_maps(["-map", "0:1", "-map", "-0:0"], 1, video_is_0) == [
        "-map", "1:v:0", "-map", "0:1", "-map", "-0:0"]  # a negative map removes, it maps nothing
    assert cmdline.index_maps(["-map", "0:1", "-map", "-0:2", "-map", "1:0?", "-map", "0:v"]) == [(0, 1), (1, 0)]
    assert cmdline.find_filter(cmdline.parse(["-i", "a", "-filter:v", "superres", "o.mkv"])).ours == "superres"
    assert cmdline.find_filter(cmdline.parse(["-i", "a", "-vf", "scale=2:2", "o.mkv"])) is None


@pytest.mark.parametrize("argv, match", [
    (["-i", "a", "-vf", "superres,superres", "o"], "holds superres more than once"),
    (["-i", "a", "-vf", "[in]superres[x];[x]null", "o"], "takes a linear chain"),
    (["-i", "a", "o1", "o2"], "writes one output"),
    (["-vf", "superres", "o"], "no input"),
    (["-i", "a", "-vf", "superres", "o", "-c:v"], "needs a value"),
])
def test_command_line_errors(argv, match):
    with pytest.raises(InvalidOption, match=match):
        cmdline.find_filter(cmdline.parse(argv))
