"""``superres upscale --scene-cuts``: frame numbers given inline or in a file, and the errors."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from vs_superres.cli.scenes import scene_cuts
from vs_superres.contracts.errors import InvalidOption


def cuts(value):
    return scene_cuts(argparse.Namespace(scene_cuts=value))


def test_inline_and_file_lists(tmp_path):
    assert cuts(None) is None
    assert cuts("120,480 960;5") == {5, 120, 480, 960}
    listed = tmp_path / "cuts.txt"
    listed.write_text("# scenes\n12\n\n40, 41  # a flash\n")
    assert cuts(f"@{listed}") == {12, 40, 41}


def test_bad_lists_name_the_word_and_the_fix(tmp_path):
    with pytest.raises(InvalidOption, match=r"--scene-cuts: '1\.5' is not a frame number; give 0-based frame numbers"):
        cuts("3,1.5")
    with pytest.raises(InvalidOption, match=r"--scene-cuts @.*missing.txt: cannot read .*No such file or directory.*"
                                            r"give a readable file of frame numbers"):
        cuts(f"@{tmp_path / 'missing.txt'}")


def test_the_cli_refuses_a_bad_list_before_any_work(tmp_path):
    src = tmp_path / "in.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=12:duration=1", "-c:v",
                    "libx264", str(src)], check=True)
    run = subprocess.run([sys.executable, "-m", "vs_superres.cli", "upscale", str(src), str(tmp_path / "out.mkv"),
                          "--model", "temporal-mean-x2", "--device", "cpu", "--scene-cuts", "ten"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "--scene-cuts: 'ten' is not a frame number" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
