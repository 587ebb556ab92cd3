"""VapourSynth's worker threads share one OpenMP team: the model runs on the engine thread.

The cause of issue 25 (vspipe at 0.6 of the engine with default threading): every VapourSynth
thread that called the model became an OpenMP master with its own team of torch threads, and
libgomp, managing more threads than cores, stopped spinning between parallel regions for the
whole process. These tests count the threads of a process that rendered frames from four
VapourSynth threads at once, with torch on four threads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

TORCH_THREADS = 4
VS_THREADS = 4

# Run by Python (not vspipe) after the conftest's clip_from_frames; prints one JSON line.
PROBE = """
    import json, os, sys, threading
    import torch
    from vs_superres.vapoursynth import bridge

    def threads():
        out = {}
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/comm") as f:
                out[int(tid)] = f.read().strip()
        return out

    renderers = set()  # VapourSynth threads that called the bridge
    render = bridge.VSFilter.render

    def recording(self, *args):
        renderers.add(threading.get_native_id())
        return render(self, *args)

    bridge.VSFilter.render = recording
    core.num_threads = int(sys.argv[2])
    clip = clip_from_frames(np.load(sys.argv[1]))
    up = core.superres.Upscale(clip, model="temporal-mean-x2", device="cpu")
    for f in [up.get_frame_async(n) for n in range(up.num_frames)]:
        f.result()
    print(json.dumps({"threads": threads(), "main": threading.get_native_id(), "renderers": sorted(renderers),
                      "torch_threads": torch.get_num_threads()}))
"""


def run_probe(tmp_path, write_script, frames) -> dict:
    np.save(tmp_path / "frames.npy", frames)
    script = write_script(PROBE, name="probe.py")
    env = dict(os.environ, OMP_NUM_THREADS=str(TORCH_THREADS))
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "frames.npy"), str(VS_THREADS)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_frames_from_four_vapoursynth_threads_use_one_openmp_team(tmp_path, write_script, photo):
    # 128x96 frames: the crossfade and the model's operations are large enough for torch to
    # run them on all its threads.
    probe = run_probe(tmp_path, write_script, photo(24, 96, 128))
    threads = {int(t): name for t, name in probe["threads"].items()}
    assert probe["torch_threads"] == TORCH_THREADS
    engine = [t for t, name in threads.items() if name == "superres-cpu"]
    # The engine thread and the OpenMP workers it started (they inherit its name).
    assert 1 < len(engine) <= TORCH_THREADS, threads
    assert len(probe["renderers"]) > 1  # the frames really were asked for from several threads
    # Everything else: the main thread and VapourSynth's own threads, none with a team (a
    # team of its own would add TORCH_THREADS - 1 threads per VapourSynth thread that rendered).
    others = [t for t in threads if t not in engine]
    assert len(others) <= 1 + VS_THREADS, threads
