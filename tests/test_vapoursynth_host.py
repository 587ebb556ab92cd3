"""The VapourSynth host's tests, run inside the Debian root that tools/vs_env.sh builds.

VapourSynth's wheels need Python >= 3.12; this suite may run on an older Python, so the
tests in tests/vapoursynth run in a chroot with trixie's Python (and Debian's CPU PyTorch).
The first run builds the root (about 3 minutes, cached outside the checkout); later runs
install the checkout into it and run the tests (about a minute).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VS_ENV = REPO / "tools" / "vs_env.sh"
EXIT_NO_ROOT = 3  # tools/vs_env.sh: the root cannot be built here


def test_vapoursynth_suite_in_trixie_root():
    if importlib.util.find_spec("vapoursynth") is not None and sys.version_info >= (3, 12):
        pytest.skip("VapourSynth is importable here: tests/vapoursynth run natively in this suite")
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("the VapourSynth root needs Linux and root (debootstrap, mount, chroot)")
    if shutil.which("debootstrap") is None and shutil.which("apt-get") is None:
        pytest.skip("neither debootstrap nor apt-get is available to build the VapourSynth root")
    r = subprocess.run(
        ["bash", str(VS_ENV), "pytest", "-q", "tests/vapoursynth"],
        capture_output=True, text=True, timeout=3600,
    )
    if r.returncode == EXIT_NO_ROOT and "cannot build the VapourSynth root" in r.stderr:
        pytest.skip(r.stderr.strip().splitlines()[-1])
    tail = (r.stdout[-6000:] + "\n" + r.stderr[-3000:]).strip()
    assert r.returncode == 0, tail
    assert " passed" in r.stdout and " failed" not in r.stdout, tail
