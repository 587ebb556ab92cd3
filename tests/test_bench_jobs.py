"""``benchmarks/bench_jobs.py`` in its smallest configuration, so the resumable-jobs benchmark
cannot rot unseen (it broke once when the CLI's one-pass run gained its encoder settings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from weights_helpers import weights_file

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_jobs.py"


def test_smallest_run_prints_the_ratio_and_an_exact_resume():
    weights_file("ditn/DITN_Real_x4.pth")
    out = subprocess.run([sys.executable, str(SCRIPT), "--frames", "48", "--rounds", "1", "--kills", "1",
                          "--segment-seconds", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "journaled speed / one pass: median" in out.stdout
    assert "file equal to the uninterrupted one: True" in out.stdout, out.stdout
