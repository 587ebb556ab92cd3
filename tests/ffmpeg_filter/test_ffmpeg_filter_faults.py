"""``superres-filter`` when things go wrong: each case asserts the exit status, the message and
what was written to stdout."""

from __future__ import annotations

import subprocess
import sys

import pytest
from bridge_helpers import (assert_frames_equal, decode, engine_reference, ffmpeg_bytes,
                            filter_cmd, needs_ffmpeg, run_filter)

pytestmark = needs_ffmpeg

FRAME_420 = 32 * 24 * 3 // 2


def test_cut_y4m_writes_every_complete_frame_and_fails(y4m, clips):
    header = y4m.index(b"\n") + 1
    cut = y4m[: header + 4 * (6 + FRAME_420) + 6 + FRAME_420 // 2]  # inside frame 4
    run = run_filter("-m", "temporal-mean-x2", "--matrix", "bt709", input=cut)
    err = run.stderr.decode()
    assert run.returncode == 4, err
    assert "the input stream was cut" in err and "4 complete frames" in err
    assert "the last complete one is frame 3 (counting from 0)" in err
    frames = decode(run.stdout, "yuv4mpegpipe")
    assert len(frames) == 4  # everything complete was upscaled and written, in a valid stream
    _, info = engine_reference(clips["420.mkv"], "temporal-mean-x2")
    reference, _ = engine_reference(cut, "temporal-mean-x2", colour=info.colour)
    assert_frames_equal(frames, reference, info.colour)


def test_cut_raw_frames(clips):
    raw = ffmpeg_bytes("-i", clips["420.mkv"], "-fps_mode", "passthrough", "-f", "rawvideo", "-")
    run = run_filter("-f", "rawvideo", "-s", "32x24", "-pix_fmt", "yuv420p", "-r", "24", "-m",
                     "temporal-mean-x2", input=raw[: 6 * FRAME_420 + 100])
    err = run.stderr.decode()
    assert run.returncode == 4, err
    assert f"100 bytes of a last frame of {FRAME_420} were received" in err
    assert "6 complete frames" in err and "frame 5 (counting from 0)" in err
    assert len(run.stdout) == 6 * 64 * 48 * 3 // 2


def complete_video_frames(path, cut: int) -> int:
    """Video packets of the whole file that lie entirely within its first ``cut`` bytes."""
    import av

    with av.open(str(path)) as container:
        return sum(1 for p in container.demux(video=0) if p.size and p.pos + p.size <= cut)


@pytest.mark.parametrize("through", ["pipe", "file"])
@pytest.mark.parametrize("fraction", [1 / 3, 1 / 2, 2 / 3, 0.9])
def test_cut_matroska_is_not_a_success(clips, tmp_path, fraction, through):
    """Wherever the bytes stop, the cut is found (the video track's own end, not the end of
    the audio and subtitles demuxed past it) and every complete frame is written."""
    data = clips["420.mkv"].read_bytes()
    cut = data[: int(len(data) * fraction)]
    if through == "pipe":
        run = filter_cmd("-m", "temporal-mean-x2", "-nostats", input=cut)
    else:
        path = tmp_path / "cut.mkv"
        path.write_bytes(cut)
        with path.open("rb") as stdin:
            run = subprocess.run([sys.executable, "-m", "vs_superres.ffmpeg_filter.filter_cmd",
                                  "-m", "temporal-mean-x2", "-nostats"], stdin=stdin,
                                 capture_output=True, timeout=120)
    err = run.stderr.decode()
    assert run.returncode == 4, err
    complete = complete_video_frames(clips["420.mkv"], len(cut))
    assert 1 <= complete < 8
    assert "the input stream was cut" in err and "its video track announces 0.357 s" in err
    assert f"{complete} complete frames were processed and written" in err
    assert f"the last complete one is frame {complete - 1} (counting from 0)" in err
    frames = decode(run.stdout)
    reference, info = engine_reference(cut, "temporal-mean-x2")
    assert len(reference) == complete
    assert_frames_equal(frames, reference, info.colour)


def test_whole_matroska_is_not_taken_for_a_cut(clips):
    run = run_filter("-m", "temporal-mean-x2", "-nostats", input=clips["420.mkv"].read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    assert len(decode(run.stdout)) == 8


def test_garbage_names_the_carriers(capfd):
    run = run_filter(input=b"this is not a video stream at all, just text\n" * 10)
    err = run.stderr.decode()
    assert run.returncode == 2
    for name in ("y4m", "NUT", "Matroska", "-f rawvideo -s WxH -pix_fmt F -r RATE"):
        assert name in err
    assert "Traceback" not in err and run.stdout == b""


def test_empty_input():
    run = run_filter(input=b"")
    assert run.returncode == 2 and b"nothing arrived on stdin" in run.stderr and run.stdout == b""


def test_forced_carrier_must_match(y4m):
    run = run_filter("-f", "nut", input=y4m)
    assert run.returncode == 2
    assert b"-f nut was given but the input is YUV4MPEG2" in run.stderr


def test_unsupported_pixel_format_lists_the_supported_ones(clips):
    nut = ffmpeg_bytes("-i", clips["444.mkv"], "-pix_fmt", "xyz12le", "-c:v", "rawvideo", "-f", "nut", "-")
    run = run_filter("-m", "temporal-mean-x2", input=nut)
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert "pixel format xyz12le is not supported; supported: Y'CbCr" in err and "gbrp16le" in err
    assert run.stdout == b""
    raw = run_filter("-f", "rawvideo", "-s", "32x24", "-pix_fmt", "grayf32le", "-r", "24", input=b"\0" * 3072)
    assert raw.returncode == 2 and b"pixel format grayf32le is not supported; supported:" in raw.stderr


def test_raw_needs_its_geometry(y4m):
    run = run_filter("-f", "rawvideo", "-pix_fmt", "yuv420p", input=y4m)
    assert run.returncode == 2
    assert b"raw video has no header: give -s WxH, -r RATE" in run.stderr


def test_unknown_option_lists_the_declared_ones(y4m):
    run = run_filter("superres=model=temporal-mean-x2:windw=3", input=y4m)
    err = run.stderr.decode()
    assert run.returncode == 2
    assert "unknown filter option windw (did you mean window?)" in err and "window_overlap" in err


def _filter_process(*args, stdin=subprocess.PIPE):
    return subprocess.Popen([sys.executable, "-m", "vs_superres.ffmpeg_filter.filter_cmd", *args],
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_closed_downstream_pipe_ends_quietly(tmp_path):
    """``superres-filter | head -c 1000``: a short read, then the reader goes away."""
    long = tmp_path / "long.y4m"
    long.write_bytes(ffmpeg_bytes("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24", "-frames:v", "200",
                                  "-f", "yuv4mpegpipe", "-"))
    with open(long, "rb") as source:
        proc = _filter_process("-m", "temporal-mean-x2", "--matrix", "bt709", stdin=source)
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.read(1000)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.wait(timeout=120)
    assert first.startswith(b"YUV4MPEG2 W64 H48")
    assert proc.returncode == 141, err
    assert "Traceback" not in err and "rror" not in err


def test_sigterm_stops_the_filter():
    frames = ffmpeg_bytes("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24", "-frames:v", "100",
                          "-f", "yuv4mpegpipe", "-")
    proc = subprocess.Popen([sys.executable, "-m", "vs_superres.ffmpeg_filter.filter_cmd", "-m",
                             "temporal-mean-x2", "--matrix", "bt709"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(frames)  # and no end: the source stalls with the bridge running
    proc.stdin.flush()
    started = [proc.stderr.readline() for _ in range(2)]  # the y4m colour note, then the "32x24 ... -> x2" line
    assert any(b"-> x2 with temporal-mean-x2" in line for line in started), started
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert b"superres-filter: interrupted by SIGTERM; the output stream ends here, incomplete" in err and b"Traceback" not in err
