"""``superres-filter`` and ``superres-ffmpeg`` under hostile input and faults (issue #21): y4m
headers and frame parameters, closed or full standard streams, outputs that are inputs, cut
Matroska pipes, and the wrapper's command line read with ffmpeg's rules."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

import pytest
from bridge_helpers import (decode, ffmpeg, ffmpeg_bytes, ffprobe, needs_ffmpeg, run_filter,
                            run_wrapper)

pytestmark = needs_ffmpeg

MODEL = "temporal-mean-x2"


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


# -- the wrapper's command line, read with ffmpeg's rules ------------------------------------

def test_the_wrapper_refuses_to_write_over_its_input(clips, tmp_path, capfd):
    source = tmp_path / "same.mkv"
    source.write_bytes(clips["444.mkv"].read_bytes())
    (tmp_path / "link.mkv").symlink_to(source)
    before = source.read_bytes()
    for output in (source, tmp_path / "link.mkv", f"file:{source}"):
        assert run_wrapper("-y", "-i", source, "-vf", f"superres={MODEL}", output) == 1
        assert "same as Input #0" in capfd.readouterr().err
    assert source.read_bytes() == before


def test_the_wrapper_refuses_y_with_n_as_ffmpeg_does(clips, tmp_path, capfd):
    out = tmp_path / "out.mkv"
    assert run_wrapper("-y", "-n", "-i", clips["444.mkv"], "-vf", f"superres={MODEL}", out) == 1
    assert "both -y and -n" in capfd.readouterr().err and not out.exists()


def test_an_input_on_stdin_is_refused_before_the_model_loads(tmp_path, capfd):
    assert run_wrapper("-y", "-i", "-", "-vf", "superres=no-such-model", tmp_path / "o.mkv") == 2
    err = capfd.readouterr().err
    assert "cannot take its input from stdin" in err and "superres-filter" in err
    assert "no-such-model" not in err  # refused before the model was looked at


def test_a_file_url_output_is_written_at_its_path(clips, tmp_path):
    out = tmp_path / "out.mkv"
    assert run_wrapper("-y", "-loglevel", "error", "-i", clips["444.mkv"], "-vf", f"superres={MODEL}",
                       "-c:v", "ffv1", f"file:{out}") == 0
    assert ffprobe(out)["streams"][0]["width"] == 64
    assert [p.name for p in tmp_path.iterdir()] == ["out.mkv"]


def test_of_several_vf_the_last_one_counts(clips, tmp_path):
    out = tmp_path / "out.mkv"
    assert run_wrapper("-y", "-loglevel", "error", "-i", clips["444.mkv"], "-vf", "scale=16:12", "-vf",
                       f"superres={MODEL}", "-c:v", "ffv1", out) == 0
    assert ffprobe(out)["streams"][0]["width"] == 64  # not 32: the first -vf is ffmpeg's to ignore
    assert run_wrapper("-y", "-loglevel", "error", "-i", clips["444.mkv"], "-vf", f"superres={MODEL}",
                       "-vf", "scale=16:12", "-c:v", "ffv1", out) == 0
    assert ffprobe(out)["streams"][0]["width"] == 16  # ffmpeg alone: superres was not in the last


@pytest.mark.parametrize("graph", ["[0:v]superres[v]", "[0:v] superres=model=x [v]", "superres@a[v]"])
def test_superres_in_a_filter_graph_is_refused_with_labels(clips, tmp_path, capfd, graph):
    assert run_wrapper("-y", "-i", clips["444.mkv"], "-filter_complex", graph, "-map", "[v]",
                       tmp_path / "o.mkv") == 2
    assert "superres inside -filter_complex" in capfd.readouterr().err


def test_an_empty_model_is_refused_and_the_instance_syntax_is_taken(clips, tmp_path, capfd):
    assert run_wrapper("-y", "-i", clips["444.mkv"], "-vf", "superres=model=", tmp_path / "o.mkv") == 2
    assert "model= is empty" in capfd.readouterr().err
    run = run_filter("superres=model=:tile=64", input=b"")
    assert run.returncode == 2 and b"model= is empty" in run.stderr
    out = tmp_path / "at.mkv"
    assert run_wrapper("-y", "-loglevel", "error", "-i", clips["444.mkv"], "-vf",
                       f"superres@up=model={MODEL}", "-c:v", "ffv1", out) == 0
    assert ffprobe(out)["streams"][0]["width"] == 64


@pytest.mark.parametrize("value, words", [("/nonexistent/ffmpeg", "is not an executable file"),
                                          ("/bin/false", "is not ffmpeg")])
@pytest.mark.parametrize("with_filter", [True, False])
def test_a_bad_superres_ffmpeg_is_named(clips, tmp_path, capfd, monkeypatch, value, words, with_filter):
    monkeypatch.setenv("SUPERRES_FFMPEG", value)
    chain = ["-vf", f"superres={MODEL}"] if with_filter else []
    assert run_wrapper("-y", "-i", clips["444.mkv"], *chain, tmp_path / "o.mkv") == 2
    err = capfd.readouterr().err
    assert f"SUPERRES_FFMPEG={value} {words}" in err and "bug" not in err


def _failing_env() -> dict:
    from pathlib import Path

    env = dict(os.environ)
    env["SUPERRES_FAMILIES"] = env["SUPERRES_FAMILIES"] + os.pathsep + "failing_family"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24", "-frames:v", "1200", "-c:v", "ffv1", path)
    return path


def test_the_engines_own_error_is_reported_at_once(long_clip, tmp_path):
    """The front ffmpeg is blocked writing to us when the engine fails: our end of its pipe is
    closed first, so it ends at once and the engine's error is what is reported (not 137 after
    a 10 s wait for a front that cannot stop)."""
    out = tmp_path / "out.mkv"
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "vs_superres.ffmpeg_filter.wrapper", "-y", "-i", long_clip,
                          "-vf", "superres=failing-x2", "-c:v", "ffv1", out], capture_output=True,
                         timeout=120, env=_failing_env())
    err = run.stderr.decode(errors="replace")
    assert run.returncode == 3, err
    assert "failing-x2 fails on call 3, as asked" in err
    assert time.monotonic() - started < 60
    assert list(tmp_path.iterdir()) == []


def test_a_killed_front_stops_the_engine_at_once(long_clip, tmp_path):
    import psutil

    out = tmp_path / "out.mkv"
    proc = subprocess.Popen([sys.executable, "-m", "vs_superres.ffmpeg_filter.wrapper", "-y", "-i", long_clip,
                             "-vf", f"superres={MODEL}", "-c:v", "ffv1", out], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    front = None
    while front is None and time.monotonic() < deadline:
        children = psutil.Process(proc.pid).children()
        lines = {" ".join(child.cmdline()): child for child in children}
        if any("-f nut" in line for line in lines):  # the back is up: frames are flowing
            front = next(child for line, child in lines.items() if "-f matroska -" in line)
        time.sleep(0.1)
    assert front is not None
    time.sleep(0.5)
    front.kill()
    killed = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 137, err.decode(errors="replace")
    assert time.monotonic() - killed < 10
    assert list(tmp_path.iterdir()) == []


# -- a cut Matroska from a pipe (ffmpeg writes no DURATION there) ----------------------------

@pytest.fixture(scope="module")
def piped_mkv() -> bytes:
    """Matroska as ffmpeg writes it to a pipe: no DURATION, no Segment size, no index."""
    return ffmpeg_bytes("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24:duration=6", "-c:v", "ffv1",
                        "-f", "matroska", "-")


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.85])
def test_a_cut_piped_matroska_exits_4(piped_mkv, fraction):
    cut = piped_mkv[: int(len(piped_mkv) * fraction)]  # `head -c`
    run = run_filter("-m", MODEL, "-nostats", input=cut)
    err = run.stderr.decode()
    assert run.returncode == 4, err
    assert "the input stream was cut (the stream ends" in err and "into a Cluster that announces" in err
    written = len(decode(run.stdout))
    assert 0 < written < 144 and f"{written} complete frames were processed and written" in err


def test_a_whole_piped_matroska_exits_0(piped_mkv):
    run = run_filter("-m", MODEL, "-nostats", input=piped_mkv)
    assert run.returncode == 0, run.stderr.decode()
    assert len(decode(run.stdout)) == 144
