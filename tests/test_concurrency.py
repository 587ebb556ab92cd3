"""The concurrency contract: a per-device ticket pool, per-call tile choice, locked caches."""

from __future__ import annotations

import threading
import time

import torch

from vs_superres import Upscaler


class CountingRunner:
    """Wraps a runner and records how many calls run at once (the maths is the model's own)."""

    def __init__(self, inner):
        self.inner = inner
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, x, **kw):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(0.01)  # long enough for other threads to pile up if nothing stops them
            return self.inner(x, **kw)
        finally:
            with self.lock:
                self.active -= 1


def test_threads_do_not_run_model_calls_at_once():
    up = Upscaler("temporal-mean-x2", device="cpu", window=4, window_overlap=1)
    counting = CountingRunner(up._runner)
    up._runner = counting
    x = torch.rand(20, 3, 8, 8)
    frames = {i: x[i] for i in range(20)}
    reference = up.upscale(x)
    results = {}

    def worker(ns):
        for n in ns:
            results[n] = up.render_frame(n, 20, {i: frames[i] for i in up.frames_needed(n, 20)})

    threads = [threading.Thread(target=worker, args=(range(t, 20, 4),)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counting.peak == 1
    for n in range(20):
        assert torch.equal(results[n], reference[n])


def test_out_of_memory_shrinks_the_tile_for_this_call_only():
    up = Upscaler("temporal-mean-x2", device="cpu", tile=64, overlap=4, window=2, window_overlap=0)
    inner = up._runner

    def small_tiles_only(x, **kw):
        if max(x.shape[-2:]) > 32:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated: tiles over 32 px)")
        return inner(x, **kw)

    up._runner = small_tiles_only
    x = torch.rand(2, 3, 64, 64)
    out = up.upscale(x)
    assert out.shape == (2, 3, 128, 128)
    assert up.tile == 64  # the shared setting is untouched; the next call starts from it again
