"""The media and CLI tests on the oldest dependencies the package declares.

pyproject.toml's lower bounds for torch, numpy, PyAV and Pillow are Debian 13's packages, which
the VapourSynth root of tools/vs_env.sh is made of (Python 3.13, FFmpeg 7.1). This test first
checks that the root holds exactly those versions (so a declared bound is always the one
tested), then runs the media, CLI and y4m bridge tests there. docs/dependencies.md says why
these bounds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VS_ENV = REPO / "tools" / "vs_env.sh"
EXIT_NO_ROOT = 3  # tools/vs_env.sh: the root cannot be built here
#: distribution names as pyproject.toml spells them -> import names
BOUNDED = {"torch": "torch", "numpy": "numpy", "av": "av", "pillow": "PIL"}
#: what runs on the oldest set: everything that reads, converts or writes media, the CLI, and
#: the Ray driver's frame transport (packed input planes, output codes; Ray itself is not there)
OLDEST_SET_TESTS = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_media_*.py")) + [
    "tests/test_cli.py", "tests/test_reliability_video.py", "tests/ffmpeg_filter/test_y4m_colour.py",
    "tests/test_distributed_plan.py"]


def declared_lower_bounds() -> dict[str, str]:
    """``{"torch": "2.6", ...}`` from pyproject.toml's ``dependencies``."""
    text = (REPO / "pyproject.toml").read_text()
    block = text.split("\ndependencies = [", 1)[1].split("]", 1)[0]
    bounds = dict(re.findall(r'"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)"', block))
    return {name: bounds[name] for name in BOUNDED}


def _root_or_skip() -> None:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("the oldest-dependency root needs Linux and root (debootstrap, mount, chroot)")
    if shutil.which("debootstrap") is None and shutil.which("apt-get") is None:
        pytest.skip("neither debootstrap nor apt-get is available to build the root")


def _in_root(*command: str, timeout: int) -> subprocess.CompletedProcess:
    run = subprocess.run(["bash", str(VS_ENV), *command], capture_output=True, text=True, timeout=timeout)
    if run.returncode == EXIT_NO_ROOT and "cannot build the VapourSynth root" in run.stderr:
        pytest.skip(run.stderr.strip().splitlines()[-1])
    return run


def test_declared_bounds_are_debian_13s():
    assert declared_lower_bounds() == {"torch": "2.6", "numpy": "2.2", "av": "14.2", "pillow": "11.1"}


def test_media_and_cli_tests_pass_on_the_oldest_declared_versions():
    _root_or_skip()
    probe = ("import importlib, sys; "
             + "; ".join(f"print({name!r}, importlib.import_module({module!r}).__version__)"
                         for name, module in BOUNDED.items()))
    found = _in_root("python", "-c", probe, timeout=3600)
    assert found.returncode == 0, found.stderr[-3000:]
    versions = dict(line.split() for line in found.stdout.splitlines() if line.strip())
    for name, bound in declared_lower_bounds().items():
        # the root's version is the bound itself (a patch release of it), never a newer one
        assert versions[name].split("+")[0].startswith(bound + "."), (name, versions[name], bound)
    run = _in_root("pytest", "-q", "-p", "no:randomly", *OLDEST_SET_TESTS, timeout=3600)
    tail = (run.stdout[-6000:] + "\n" + run.stderr[-3000:]).strip()
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and " failed" not in run.stdout, tail
