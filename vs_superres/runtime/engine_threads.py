"""One engine thread per device, to which callers on any thread hand their random-access work.

Why: PyTorch's CPU kernels run on OpenMP, and GNU libgomp (the OpenMP runtime of PyTorch's
Linux builds) gives every thread that starts a parallel region its own team of worker threads,
kept until that thread exits. When VapourSynth's worker threads each called the model, a
process held one team per VapourSynth thread, and libgomp, once it manages more threads than
there are cores, shortens the spin of every idle worker from about 300,000 iterations to
1,000 (its "throttled" spin count) for the whole process: every one of the thousands of
parallel regions of a model call then pays for waking sleeping threads. Measured on the 2-core
development machine (docs/benchmarks.md, VapourSynth section): DITN from one thread changed
speed by a factor of five when one idle second thread had once run a parallel region, the same
factor as setting ``GOMP_SPINCOUNT=1000``.

Handing the work of every calling thread to one long-lived thread per device keeps one team,
of the size ``torch.get_num_threads()`` gives, whatever the number of callers; the callers only
wait. :class:`~vs_superres.runtime.upscaler.Upscaler` does this for
:meth:`~vs_superres.runtime.upscaler.Upscaler.render_frame`, the random-access call that
multi-threaded hosts (VapourSynth's ``fmParallel`` filter) make from many threads. The
sequential calls (``upscale``, ``stream``, ``render_segment``) stay on their caller's thread:
their hosts (the command line, ComfyUI's worker thread, a Ray actor) call from one thread,
which also does their own tensor work, so a second thread would be a second team.

The pool of a device has ``$SUPERRES_MAX_INFLIGHT`` threads (the size of its ticket pool,
:func:`~vs_superres.runtime.devices.device_slots`), so frames in flight per device stay what
that setting says. Each thread is named ``superres-<device>`` for the operating system (the
OpenMP workers it starts inherit the name), which makes it visible in ``top -H``.
"""

from __future__ import annotations

import ctypes
import os
import queue
import sys
import threading
from typing import Any, Callable

import torch

from vs_superres.runtime.devices import max_inflight

_pools: dict[str, "EngineThreads"] = {}
_pools_lock = threading.Lock()


class _Job:
    """One call handed to the pool: the function, then its result or its exception."""

    __slots__ = ("fn", "args", "kwargs", "threads", "result", "error", "done", "abandoned")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, threads: int):
        self.fn, self.args, self.kwargs, self.threads = fn, args, kwargs, threads
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.abandoned = False

    def wait(self) -> Any:
        try:
            self.done.wait()  # interruptible: Ctrl-C in the main thread stops the wait
        except BaseException:
            self.abandoned = True  # not started yet: it never will be
            raise
        error, self.error = self.error, None
        if error is not None:
            # Raised from a local that is deleted at once: no reference cycle through this
            # frame keeps the exception (and the caller's frames, e.g. views of VapourSynth's
            # memory in its traceback) alive after the caller drops it.
            try:
                raise error
            finally:
                del error
        result, self.result = self.result, None
        return result


def _name_this_thread(name: str) -> None:
    """Name the calling thread for the operating system (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # 15: PR_SET_NAME
    except (OSError, AttributeError):
        pass


class EngineThreads:
    """A device's engine threads: :meth:`run` calls a function on one of them and waits."""

    def __init__(self, device: torch.device, count: int):
        self.device = device
        self.name = f"superres-{device.type}{device.index if device.index is not None else ''}"
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._idents: set[int] = set()
        self.threads = [threading.Thread(target=self._serve, name=self.name, daemon=True) for _ in range(count)]
        for t in self.threads:
            t.start()
            assert t.ident is not None
            self._idents.add(t.ident)

    def on_engine_thread(self) -> bool:
        return threading.get_ident() in self._idents

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on an engine thread; its result, or its exception raised
        here. Called on an engine thread, it runs inline (nested calls never wait on
        themselves). torch's thread count is the caller's."""
        if self.on_engine_thread():
            return fn(*args, **kwargs)
        job = _Job(fn, args, kwargs, torch.get_num_threads())
        self._queue.put(job)
        return job.wait()

    def _serve(self) -> None:
        _name_this_thread(self.name)
        while True:
            job: _Job | None = self._queue.get()
            assert job is not None
            if not job.abandoned:
                try:
                    if torch.get_num_threads() != job.threads:
                        # The caller's setting: one team size for every call, so results do
                        # not depend on which thread set torch's thread count last.
                        torch.set_num_threads(job.threads)
                    job.result = job.fn(*job.args, **job.kwargs)
                except BaseException as e:  # noqa: BLE001 (handed to the caller, who raises it)
                    job.error = e
            job.fn, job.args, job.kwargs = None, (), {}  # type: ignore[assignment]
            job.done.set()
            job = None  # nothing of the last call stays alive while this thread waits


def engine_threads(device: torch.device) -> EngineThreads:
    """The process-wide engine threads of ``device`` (as many as its ticket pool holds)."""
    key = str(device)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = EngineThreads(device, max_inflight())
        return pool


def _forget_after_fork() -> None:
    # A forked child has none of its parent's threads: it starts its own pools on first use
    # (and its lock may have been held by a thread that does not exist there).
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
