"""The engine keeps freed memory in the process (``vs_superres.runtime.allocator``): once an
``Upscaler`` is made, its model calls after the first two take no page faults (a tiny DITN on
128x128 frames), where glibc's adaptive thresholds made every frame fault its memory in again
(DITN x4 at 320x180: 47,000-128,000 faults per frame, docs/benchmarks.md). Each case is a fresh process: the setting is process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc thresholds: Linux only")

PROBE = """
import json, resource, sys
import torch
from vs_superres import Upscaler
from vs_superres.runtime.allocator import keep_freed_memory

upscaler = Upscaler(sys.argv[1], device="cpu")
frame = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    upscaler.process(frame)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"outcome": keep_freed_memory(), "faults": faults}))
"""


def _probe(tiny_ditn_path, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "SUPERRES_ALLOCATOR"}
    run = subprocess.run([sys.executable, "-c", PROBE, str(tiny_ditn_path)], capture_output=True, text=True,
                         env={**clean, **env}, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_an_upscaler_makes_freed_frames_come_back_without_page_faults(tiny_ditn_path):
    got = _probe(tiny_ditn_path)
    assert got["outcome"] == "set"
    assert got["faults"][0] > 1000  # the first frame maps its memory once
    assert max(got["faults"][2:]) < 100, got  # and keeps it (about 1,900 per frame without)


def test_system_thresholds_when_asked_fault_every_frame(tiny_ditn_path):
    """The contrast that makes the test above mean something, and the opt-out working."""
    got = _probe(tiny_ditn_path, SUPERRES_ALLOCATOR="system")
    assert got["outcome"] == "SUPERRES_ALLOCATOR=system"
    assert min(got["faults"][2:]) > 500, got


def test_a_users_malloc_setting_is_left_alone(tiny_ditn_path):
    got = _probe(tiny_ditn_path, MALLOC_TRIM_THRESHOLD_="1")
    assert got["outcome"] == "MALLOC_TRIM_THRESHOLD_ is set"
    assert min(got["faults"][2:]) > 500, got


CLOSE_PROBE = """
import json, sys, psutil, torch
from vs_superres import Upscaler

upscaler = Upscaler(sys.argv[1], device="cpu")
frame = torch.rand(1, 3, 384, 384, generator=torch.Generator().manual_seed(0))
for _ in range(3):
    out = upscaler.process(frame)
del out
working = psutil.Process().memory_info().rss
upscaler.close()
print(json.dumps({"working": working, "closed": psutil.Process().memory_info().rss}))
"""


def test_closing_the_upscaler_gives_the_kept_memory_back(tiny_ditn_path):
    """A long-lived host (ComfyUI after /free, a script after its job) does not keep the
    upscaler's peak: here about 180 MiB of the frames' memory is returned on close."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "SUPERRES_ALLOCATOR"}
    run = subprocess.run([sys.executable, "-c", CLOSE_PROBE, str(tiny_ditn_path)], capture_output=True, text=True,
                         env=clean, timeout=300)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["working"] - got["closed"] > 64 * 2**20, {k: v >> 20 for k, v in got.items()}
