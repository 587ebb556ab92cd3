"""The README's y4m one-liner keeps the colour tags: y4m carries none, so the bridge states the
``setparams`` that restores them and the one-liner passes it to the encoding ffmpeg. The
command is taken from README.md as written and run in a shell between real ffmpeg processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bridge_helpers import ffmpeg, needs_ffmpeg
from media_helpers import colour_tags

from vs_superres.ffmpeg_filter.carriers import y4m_colour_note
from vs_superres.media.colour import ColourInfo

README = Path(__file__).resolve().parents[2] / "README.md"
SETPARAMS = "-vf setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709"


def readme_y4m_one_liner() -> str:
    """The first command of the README's FFmpeg section, its continuation lines joined."""
    section = README.read_text().split("\n## FFmpeg\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", "", block)
    commands = [line for line in joined.splitlines() if line and not line.startswith("#")]
    assert commands[0].startswith("ffmpeg -i in.mkv -f yuv4mpegpipe"), commands[0]
    return commands[0]


def run_in(folder: Path, command: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


def video_tags(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    streams = json.loads(out)["streams"]
    (video,) = [s for s in streams if s["codec_type"] == "video"]
    tags = {k: video.get(k, "unknown") for k in ("color_space", "color_primaries", "color_transfer", "color_range")}
    return {"size": (video["width"], video["height"]), "audio": any(s["codec_type"] == "audio" for s in streams), **tags}


@needs_ffmpeg
def test_readme_y4m_one_liner_keeps_the_colour_tags(tmp_path, ditn_x4_path):
    command = readme_y4m_one_liner()
    assert SETPARAMS in command  # what the bridge says below is what the README passes
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x24:rate=24:duration=0.125", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=0.125", "-pix_fmt", "yuv420p", "-c:v", "libx264",
           *colour_tags("tv", "bt709", "bt709", "bt709"), "-c:a", "aac", "-shortest", tmp_path / "in.mkv")
    assert video_tags(tmp_path / "in.mkv")["color_primaries"] == "bt709"
    run = run_in(tmp_path, command)
    assert run.returncode == 0, run.stderr[-3000:]
    assert video_tags(tmp_path / "out.mkv") == {
        "size": (128, 96), "audio": True, "color_space": "bt709", "color_primaries": "bt709",
        "color_transfer": "bt709", "color_range": "tv"}
    statement = [line for line in run.stderr.splitlines() if "y4m carries no colour" in line]
    assert len(statement) == 1, run.stderr
    assert SETPARAMS in statement[0] and "primaries and transfer inferred from the matrix" in statement[0]
    # without the README's setparams the tags are lost: y4m has no field for them
    (tmp_path / "out.mkv").unlink()
    bare = run_in(tmp_path, command.replace(SETPARAMS + " ", ""))
    assert bare.returncode == 0, bare.stderr[-3000:]
    lost = video_tags(tmp_path / "out.mkv")
    assert (lost["color_primaries"], lost["color_transfer"]) == ("unknown", "unknown")


@pytest.mark.parametrize("colour, has, lacks", [
    # a tagged HDR source: its own tags, nothing inferred
    (ColourInfo(matrix=9, primaries=9, transfer=16), "setparams=colorspace=bt2020nc:color_primaries=bt2020:color_trc=smpte2084",
     "inferred"),
    # BT.2020 without tags: the primaries follow the matrix, the transfer cannot (SDR, PQ, HLG)
    (ColourInfo(matrix=9), "setparams=colorspace=bt2020nc:color_primaries=bt2020 (primaries inferred from the matrix",
     "transfer inferred"),
    # SD with a guessed matrix: said to be the size's default
    (ColourInfo(matrix=6, matrix_guessed=True),
     "setparams=colorspace=smpte170m:color_primaries=smpte170m:color_trc=smpte170m (the matrix is the default", "cannot"),
])
def test_y4m_colour_note_states_what_it_infers(colour, has, lacks):
    note = y4m_colour_note(colour)
    assert has in note and lacks not in note
    assert note.endswith("or use the Matroska carrier (-f matroska), which keeps every tag")
    if colour.transfer == 2 and colour.matrix == 9:
        assert "the transfer cannot be inferred: add it, e.g. color_trc=smpte2084 for PQ" in note
