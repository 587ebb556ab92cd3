"""What ``superres-ffmpeg`` says (#23 items 4 and 5): its own ``--help`` (pointing at ffmpeg's),
ffmpeg's informational commands passed on, and by default only ffmpeg's warnings and errors
(each once) beside its own progress line: no banner, no stream dump, no plumbing notices, no
temporary file name and no statistics line of the back ffmpeg's with a speed that is not the
pipeline's. ``-v info`` gives ffmpeg's full output."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from bridge_helpers import ffmpeg, needs_ffmpeg

from vs_superres.ffmpeg_filter.messages import Messages
from vs_superres.hostkit.exits import EXIT_STATUSES

pytestmark = needs_ffmpeg
OURS = "superres=model=temporal-mean-x2:device=cpu"


def wrapper(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vs_superres.ffmpeg_filter.wrapper", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Two seconds of 32x24 video at 24 fps with audio."""
    path = tmp_path_factory.mktemp("messages") / "clip.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24:duration=2", "-f", "lavfi", "-i", "sine=duration=2",
           "-c:v", "ffv1", "-c:a", "flac", path)
    return path


@pytest.mark.parametrize("flag", ["-h", "--help", "-help"])
def test_help_is_ours_and_names_ffmpeg_s(flag):
    run = wrapper(flag)
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert text.startswith("usage: superres-ffmpeg ") and run.stderr == ""
    assert "superres=model=NAME:key=value" in text and "tile=INT" in text and "superres models show NAME" in text
    assert "ffmpeg -h" in text and "-v info" in text
    for code, meaning in EXIT_STATUSES:
        assert re.search(rf"^\s+{code}\s+{re.escape(meaning)}$", text, re.M), code
    assert not re.search(r"\bNone\b", text)


def test_ffmpeg_s_informational_commands_are_ffmpeg_s():
    version = wrapper("-version")
    assert version.returncode == 0 and version.stdout.startswith("ffmpeg version")
    topic = wrapper("-h", "encoder=ffv1")
    assert topic.returncode == 0 and "Encoder ffv1" in topic.stdout


def test_default_output_is_warnings_once_and_our_progress_line(clip, tmp_path):
    out = tmp_path / "out.mkv"
    # tile=8 with overlap=8 warns for every frame; -vsync 0 makes the back ffmpeg warn
    start = time.monotonic()
    run = wrapper("-i", clip, "-vf", OURS + ":tile=8:overlap=8", "-vsync", "0", "-c:v", "ffv1", "-c:a", "copy", out)
    wall = time.monotonic() - start
    err = run.stderr
    assert run.returncode == 0, err
    assert out.is_file()
    for noise in ("ffmpeg version", "Input #", "Output #", "Stream mapping", "Stream #", "Metadata:", "Duration:",
                  "Thread message queue", ".partial-", "Lsize=", "bitrate=", "muxing overhead"):
        assert noise not in err, (noise, err)
    assert err.count("tile 8 is small for an overlap of 8") == 1, err  # once per run, not per frame
    assert err.count("-vsync is deprecated. Use -fps_mode") == 1, err  # ffmpeg's warnings pass, once
    progress = re.findall(r"^superres-ffmpeg: frame=\s*(\d+) fps=\s*[\d.]+ time=(\S+) speed=([\d.e+-]+)x$", err, re.M)
    assert progress and progress[-1][0] == "48" and progress[-1][1] == "00:00:02.00", err
    # the only speed said is ours, the pipeline's: it cannot be faster than two seconds of video
    # over the time the whole command took; a statistics line of the back alone could be
    assert len(re.findall(r"speed=", err)) == len(progress)
    assert float(progress[-1][2]) >= 2.0 / wall


def test_verbose_level_shows_ffmpeg_s_own_output(clip, tmp_path):
    run = wrapper("-v", "info", "-i", clip, "-vf", OURS, "-c:v", "ffv1", "-c:a", "copy", tmp_path / "out.mkv")
    assert run.returncode == 0, run.stderr
    assert "Stream mapping" in run.stderr and "Output #0" in run.stderr


def test_errors_name_the_output_not_the_temporary_file(clip, tmp_path):
    run = wrapper("-i", clip, "-vf", OURS, "-c:v", "no_such_encoder", tmp_path / "out.mkv")
    assert run.returncode != 0
    assert "no_such_encoder" in run.stderr and ".partial-" not in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_message_filter_lines():
    shown: list[str] = []
    messages = Messages([("/w/.out.partial-1a.mkv", "/w/out.mkv")], say=shown.append)
    assert messages.line("[nut @ 0x55d0] Thread message queue blocking; consider raising the thread_queue_size option") is None
    assert messages.line("[h264 @ 0x5500aa] error while decoding MB 3 4\n") == "[h264 @ 0x5500aa] error while decoding MB 3 4"
    assert messages.line("[h264 @ 0x77ff00] error while decoding MB 3 4") is None  # the other process, the same words
    assert messages.line("Error opening output /w/.out.partial-1a.mkv: Permission denied") == (
        "Error opening output /w/out.mkv: Permission denied")
    assert messages.line("   \n") is None
