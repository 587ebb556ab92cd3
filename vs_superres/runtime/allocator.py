"""Keep freed memory in the process, so a model call does not fault its pages in again every frame.

Why: PyTorch's CPU tensors come from the C library's ``malloc``. GNU libc adapts its thresholds
as a program runs: a freed block larger than the current threshold raises it, and free memory
at the top of a heap above twice that threshold is handed back to the kernel. A model call frees
and allocates tens of feature maps of 10-30 MB per frame, so glibc keeps handing memory back
and the next frame's tensors arrive as fresh pages that the kernel zeroes and maps one 4 KiB
page at a time. Measured on the 2-core development machine (docs/benchmarks.md, VapourSynth
section): DITN x4 at 320x180 took 47,000-128,000 minor page faults per frame, varying between
processes and runs; with glibc told to keep freed memory, 3,500 (the engine) and 8,000
(vspipe), and 1.38x the frames per second, the same in every run.

:func:`keep_freed_memory` sets the two thresholds glibc documents for this
(``mallopt(M_MMAP_THRESHOLD)``, ``mallopt(M_TRIM_THRESHOLD)``: the same as the environment
variables ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``, set once the process is
running). The cost is that a process keeps up to :data:`TRIM_BYTES` of freed memory per heap
instead of returning it: a video job reaches its peak on every frame anyway, so its resident
memory is its peak, which the engine's memory budget bounds. It is process-wide, and the engine
runs inside other people's processes (VapourSynth, ComfyUI), so it is done once, only on glibc,
and never over a choice already made: not when either environment variable is set, and not
with ``SUPERRES_ALLOCATOR=system``. Another allocator preloaded (jemalloc, tcmalloc) serves
``malloc`` itself, and glibc's settings then change nothing.

What is kept is given back when the work ends: :func:`release_freed_memory` (called by
``Upscaler.close``, which hosts call when a filter, node or job is done) asks glibc to return
the free memory of every heap, so a long-lived host (a ComfyUI server that goes on to run
other models) does not hold the upscaler's peak after it.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

#: largest block served from the heaps; larger ones are mapped (and unmapped) on their own.
#: glibc's own upper bound for its adaptive threshold on 64-bit systems (32 MiB).
MMAP_BYTES = 32 * 1024 * 1024
#: free memory a heap keeps at its top before glibc returns it to the kernel
TRIM_BYTES = 1024 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
OPT_OUT = "SUPERRES_ALLOCATOR"

_lock = threading.Lock()
_state: dict[str, str] = {}


def keep_freed_memory() -> str:
    """Tell glibc to keep freed memory (see the module docstring), once per process. Returns
    what was done: ``"set"`` (now or by an earlier call), or why not (``"not glibc"``,
    ``"MALLOC_TRIM_THRESHOLD_ is set"``, ``"SUPERRES_ALLOCATOR=system"``, ...)."""
    with _lock:
        if "outcome" not in _state:
            _state["outcome"] = _apply()
        return _state["outcome"]


def _apply() -> str:
    choice = os.environ.get(OPT_OUT, "").strip().lower()
    if choice == "system":
        return f"{OPT_OUT}=system"
    for name in USER_SETTINGS:
        if name in os.environ:
            return f"{name} is set"
    if not sys.platform.startswith("linux"):
        return "not glibc"
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):  # musl, or no C library symbols exported
            return "not glibc"
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES) == 1
    except (OSError, AttributeError):
        return "not glibc"
    return "set" if ok else "mallopt refused"


def release_freed_memory() -> bool:
    """Return the free memory glibc kept to the kernel (``malloc_trim(0)``), where
    :func:`keep_freed_memory` set the thresholds; True when memory was returned."""
    with _lock:
        if _state.get("outcome") != "set":
            return False
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):
        return False
