"""Which threads the engine computes on, and how many OpenMP teams its callers end up with.

Random access (``render_frame``, what VapourSynth's worker threads call) runs on the device's
engine thread, so any number of callers share one OpenMP team; the sequential calls run on
their caller's thread, so a host that calls from one thread of its own (ComfyUI runs nodes on
its prompt worker thread, a Ray actor runs tasks on the thread of its task loop) gets no
second team. Each case runs in a fresh process with torch on three threads; OpenMP's worker
threads are the threads Python does not know, and carry the name of the thread that started
them (``superres-cpu`` for the engine thread); threads that existed before any
computation (a BLAS library's own) are left out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
import torch

from vs_superres.runtime.engine_threads import engine_threads

TORCH_THREADS = 3

PROBE = textwrap.dedent(
    """
    import json, os, sys, threading
    import torch
    torch.set_num_threads(int(sys.argv[2]))
    from vs_superres import Upscaler
    from vs_superres.runtime.windows import TemporalWindowPlan

    def tasks():
        out = {}
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/comm") as f:
                out[int(tid)] = f.read().strip()
        return out

    up = Upscaler("temporal-mean-x2", device="cpu", window=4, window_overlap=1)
    T = 12
    baseline = set(tasks())  # e.g. the BLAS library's own threads, started at import
    done = threading.Event()

    def frames():
        g = torch.Generator().manual_seed(0)
        return torch.rand(T, 3, 96, 128, generator=g)

    def comfyui_node(ready):  # a node on ComfyUI's worker thread: the host's tensors and the engine
        x = frames() * 1.0
        up.upscale(x)
        list(up.stream(iter(x), total=T))
        ready.set()
        done.wait()

    def vapoursynth_thread(ns, ready):
        x = frames()
        for n in ns:
            up.render_frame(n, T, {i: x[i] for i in up.frames_needed(n, T)})
        ready.set()
        done.wait()  # alive (as VapourSynth's threads are) while the threads are counted

    pattern = sys.argv[1]
    if pattern == "ray-actor":  # tasks run on the thread of the actor's task loop: here, main
        x = frames()
        plan = TemporalWindowPlan.for_clip(T, up.window, up.window_overlap)
        for seg in plan.split(1):
            list(up.render_segment(seg, T, {i: x[i] for i in seg.inputs}))
        callers = []
    else:
        groups = [range(k, T, 4) for k in range(4)] if pattern == "vapoursynth" else [None]
        ready = [threading.Event() for _ in groups]
        target = vapoursynth_thread if pattern == "vapoursynth" else comfyui_node
        callers = [threading.Thread(target=target, args=((g, r) if g is not None else (r,)))
                   for g, r in zip(groups, ready)]
        for t in callers:
            t.start()
        for r in ready:
            r.wait()

    known = {t.native_id for t in threading.enumerate()}
    threads = tasks()
    openmp = [name for tid, name in threads.items() if tid not in known and tid not in baseline]
    print(json.dumps({"openmp_workers_of_engine": sum(n == "superres-cpu" for n in openmp),
                      "openmp_workers_of_callers": sum(n != "superres-cpu" for n in openmp),
                      "engine_threads": sum(n == "superres-cpu" for tid, n in threads.items() if tid in known),
                      "torch_threads": torch.get_num_threads()}))
    done.set()
    for t in callers:
        t.join()
    """
)


def probe(pattern: str, tmp_path) -> dict:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    r = subprocess.run([sys.executable, str(script), pattern, str(TORCH_THREADS)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["torch_threads"] == TORCH_THREADS
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads through /proc")
@pytest.mark.parametrize("pattern, expected", [
    # Four callers of render_frame: one team, the engine thread's; none of their own.
    ("vapoursynth", {"engine_threads": 1, "openmp_workers_of_engine": TORCH_THREADS - 1, "openmp_workers_of_callers": 0}),
    # One caller thread that computes (the engine's sequential calls and its own tensors): its
    # own team only, no engine thread.
    ("comfyui", {"engine_threads": 0, "openmp_workers_of_engine": 0, "openmp_workers_of_callers": TORCH_THREADS - 1}),
    ("ray-actor", {"engine_threads": 0, "openmp_workers_of_engine": 0, "openmp_workers_of_callers": TORCH_THREADS - 1}),
])
def test_each_caller_pattern_has_one_openmp_team(pattern, expected, tmp_path):
    out = probe(pattern, tmp_path)
    assert {k: out[k] for k in expected} == expected


def test_the_engine_thread_raises_the_callers_exception_and_runs_nested_calls_inline():
    pool = engine_threads(torch.device("cpu"))

    def fails():
        raise ValueError("the model's own message")

    with pytest.raises(ValueError, match="the model's own message"):
        pool.run(fails)
    caller = threading.get_ident()
    seen = pool.run(lambda: (threading.get_ident(), pool.run(threading.get_ident)))
    assert seen[0] != caller and seen[1] == seen[0]  # inline on the engine thread: no deadlock


def test_the_engine_thread_uses_the_callers_torch_thread_count(torch_threads):
    pool = engine_threads(torch.device("cpu"))
    for n in (1, 2, 1):
        with torch_threads(n):
            assert pool.run(torch.get_num_threads) == n
