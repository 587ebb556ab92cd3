"""``benchmarks/bench_gpu.py --reduced`` runs on the CPU, so the GPU script cannot rot unseen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


def test_reduced_run_prints_every_table():
    # bf16 only: fp16 convolutions on the CPU are reference kernels, too slow for a fast test
    # (the GPU run does both precisions through the same code).
    out = subprocess.run([sys.executable, str(SCRIPT), "--reduced", "--dtypes", "bf16"],
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "## bf16" in text
    assert "\nofficial " in text and "\nours " in text  # UltraVSR, both tile grids
    assert "\neager " in text and "\ncompile " in text  # DITN, eager and torch.compile
    assert "CPU (reduced run" in text
