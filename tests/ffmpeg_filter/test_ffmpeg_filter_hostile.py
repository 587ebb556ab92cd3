"""``superres-filter`` and ``superres-ffmpeg`` under hostile input and faults (issue #21): y4m
headers and frame parameters, closed or full standard streams, outputs that are inputs, cut
Matroska pipes, and the wrapper's command line read with ffmpeg's rules."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
from bridge_helpers import decode, ffmpeg_bytes, ffprobe, make_clips, needs_ffmpeg, run_filter

pytestmark = needs_ffmpeg

MODEL = "temporal-mean-x2"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("hostile_clips"))


@pytest.fixture(scope="module")
def y4m(clips) -> bytes:
    return ffmpeg_bytes("-i", clips["420.mkv"], "-fps_mode", "passthrough", "-f", "yuv4mpegpipe", "-")


def with_header(y4m: bytes, header: str) -> bytes:
    return f"YUV4MPEG2 {header}\n".encode() + y4m[y4m.index(b"\n") + 1:]


# -- y4m: frame parameters and headers ------------------------------------------------------

def test_y4m_frame_parameters_are_not_a_cut(y4m):
    with_params = y4m.replace(b"FRAME\n", b"FRAME Xc=1\n")
    assert with_params.count(b"FRAME Xc=1\n") == 8
    run = run_filter("-m", MODEL, input=with_params)
    assert run.returncode == 0, run.stderr.decode()
    assert len(decode(run.stdout, "yuv4mpegpipe")) == 8
    # and a real cut of such a stream is still one
    cut = with_params[:-100]
    run = run_filter("-m", MODEL, input=cut)
    assert run.returncode == 4, run.stderr.decode()
    assert "7 complete frames" in run.stderr.decode()


@pytest.mark.parametrize("header, words", [
    ("W0 H24 F24:1", "width W0 is not a positive whole number"),
    ("W-32 H24 F24:1", "width W-32 is not a positive whole number"),
    ("W32 H0 F24:1", "height H0 is not a positive whole number"),
    ("H24 F24:1", "no W (width) tag"),
    ("W32 H24 F0:0", "F0:0 has a zero term; a frame rate must be positive"),
    ("W32 H24 F-24:1", "F-24:1 is not N:D with whole numbers"),
    ("W32 H24 F24:1 A-1:1", "A-1:1 is not N:D"),
    ("W32 H24 F24:1 Cfoo", "colour space Cfoo is not one ffmpeg reads"),
    ("W32 H24 F24:1 Iz", "interlacing Iz is not one of Ip"),
    ("W32 W32 H24 F24:1", "names W twice"),
    ("W100000 H100000 F24:1", "100000x100000 pixels"),
])
def test_bad_y4m_headers_are_named_before_ffmpeg_reads_them(y4m, header, words):
    run = run_filter("-m", MODEL, input=with_header(y4m, header + ("" if " C" in header else " C420jpeg")))
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert words in err and "streamable container" not in err and "busy" not in err, err
    assert run.stdout == b""


def test_a_header_line_without_end_is_refused_within_bounds():
    run = run_filter("-m", MODEL, input=b"YUV4MPEG2 W32 H24 " + b"X" * 100_000)
    assert run.returncode == 2
    assert "longer than 4096 bytes" in run.stderr.decode()


def test_y4m_size_over_the_pixel_limit_names_the_variable(y4m, monkeypatch):
    monkeypatch.setenv("SUPERRES_MAX_PIXELS", "500")
    run = run_filter("-m", MODEL, input=y4m)
    err = run.stderr.decode()
    assert run.returncode == 2 and "32x24" in err and "SUPERRES_MAX_PIXELS=768" in err, err


def test_interlaced_unknown_tags_and_missing_rate_are_said_once(y4m):
    run = run_filter("-m", MODEL, input=with_header(y4m, "W32 H24 It Q7 C420jpeg"))
    err = run.stderr.decode()
    assert run.returncode == 0, err
    assert err.count("interlaced (It)") == 1 and "bwdif" in err
    assert "no frame rate (F tag); reading it as 25 fps" in err
    assert "tags Q7 are unknown and ignored" in err
    assert len(decode(run.stdout, "yuv4mpegpipe")) == 8


def test_raw_size_over_the_pixel_limit_is_refused_before_reading():
    run = run_filter("-f", "rawvideo", "-s", "100000x100000", "-pix_fmt", "yuv420p", "-r", "24",
                     "-m", MODEL, input=b"\0" * 1000)
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert "(-s 100000x100000): its frames are 100000x100000 pixels" in err and "SUPERRES_MAX_PIXELS" in err


# -- closed or full standard streams (a daemon, a cron job) ---------------------------------

def shell(command: str, redirections: str, *, input: bytes | None = None, cwd=None,
          timeout: int = 180) -> subprocess.CompletedProcess:
    """``command`` (one of the hosts as a real process) under bash with ``redirections``."""
    return subprocess.run(["bash", "-c", f"{command} {redirections}"], input=input, capture_output=True,
                          timeout=timeout, cwd=cwd)


FILTER = f"{shlex.quote(sys.executable)} -m vs_superres.ffmpeg_filter.filter_cmd -m {MODEL}"
WRAPPER = f"{shlex.quote(sys.executable)} -m vs_superres.ffmpeg_filter.wrapper"


@pytest.mark.parametrize("redirections", ["2>&-", "2>/dev/full"])
def test_the_filter_runs_to_the_end_with_stderr_closed_or_full(y4m, redirections):
    run = shell(FILTER, redirections, input=y4m)
    assert run.returncode == 0
    assert len(decode(run.stdout, "yuv4mpegpipe")) == 8


@pytest.mark.parametrize("redirections, name", [("<&- >/dev/null", "stdin"), (">&-", "stdout")])
def test_the_filter_with_stdin_or_stdout_closed_says_so(y4m, redirections, name):
    run = shell(FILTER, redirections, input=y4m)
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert f"superres-filter's {name} is closed" in err and "Traceback" not in err


def test_the_filter_to_a_full_stdout_is_the_environments_fault(y4m):
    run = shell(FILTER, "> /dev/full", input=y4m)
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert "could not be written: No space left on device" in err and "bug" not in err


@pytest.mark.parametrize("redirections", ["2>&-", "2>/dev/full", "<&- >&- 2>&-"])
def test_the_wrapper_runs_to_the_end_with_closed_or_full_streams(clips, tmp_path, redirections):
    out = tmp_path / "out.mkv"
    run = shell(f"{WRAPPER} -y -i {clips['444.mkv']} -vf superres={MODEL} -c:v ffv1 {out}", redirections)
    assert run.returncode == 0
    stream = ffprobe(out)["streams"][0]
    assert (stream["width"], stream["height"]) == (64, 48)


@pytest.mark.parametrize("redirections", ["2>&-", "2>/dev/full"])
def test_the_cli_runs_to_the_end_with_stderr_closed_or_full(clips, tmp_path, redirections):
    out = tmp_path / "out.mkv"
    run = shell(f"{shlex.quote(sys.executable)} -m vs_superres.cli upscale --model {MODEL} "
                f"{clips['444.mkv']} {out}", redirections)
    assert run.returncode == 0
    assert ffprobe(out)["streams"][0]["width"] == 64
