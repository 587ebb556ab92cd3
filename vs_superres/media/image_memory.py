"""Will an image upscale fit in memory? Answered before decoding, from the header alone.

The frames of an image job are held whole: the decoded input, the engine's copies of it, the
blended output and its normalisation, and the integer codes the writer makes. Tiling bounds
only the model's working memory, never these; so a job whose frames alone exceed the memory
available cannot be saved by ``--tile`` and is refused before any work, with its size.

The copy counts below were measured: peak RSS of ``superres upscale`` with a DITN at x4,
``--tile 512``, on a 2000x2000 input was 2.6 GB, 2.35 GB over the interpreter and torch, i.e.
3.05 output frames (768 MB each) with the input frames and the model's tiles included.
"""

from __future__ import annotations

import os
from pathlib import Path

from vs_superres.contracts.errors import UnsupportedFormat

#: float32 RGB frames of the input size held at once at the peak (decode, the engine's
#: validated, batched and per-call copies)
INPUT_FRAME_COPIES = 4.0
#: float32 RGB frames of the output size held at once at the peak: the blended output, its
#: weight sum (a third of a frame, twice), the normalised result, and the tiles in flight
OUTPUT_FRAME_COPIES = 3.0
_FRAME_BYTES_PER_PIXEL = 3 * 4
GB = 1e9


def upscale_frame_bytes(width: int, height: int, scale: int | float) -> int:
    """Bytes of frames an image job of ``width`` x ``height`` at ``scale`` holds at its peak."""
    pixels_in = width * height
    pixels_out = pixels_in * scale * scale
    return int(_FRAME_BYTES_PER_PIXEL * (INPUT_FRAME_COPIES * pixels_in + OUTPUT_FRAME_COPIES * pixels_out))


def available_memory_bytes() -> int | None:
    """Memory this process can still take: the system's available memory (psutil, else
    ``MemAvailable`` in /proc/meminfo), lowered to what a cgroup memory limit leaves; None
    when neither can be read."""
    available: int | None = None
    try:
        import psutil

        available = int(psutil.virtual_memory().available)
    except ImportError:
        available = _meminfo_available()
    cgroup = _cgroup_headroom()
    if cgroup is not None:
        available = cgroup if available is None else min(available, cgroup)
    return available


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """``memory.max - memory.current`` of this process's cgroup (v2), None when unlimited."""
    try:
        rel = Path("/proc/self/cgroup").read_text().strip().splitlines()[0].split(":", 2)[2]
        base = Path("/sys/fs/cgroup") / rel.lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((base / "memory.current").read_text().strip()))
    except (OSError, ValueError, IndexError):
        return None


def check_upscale_memory(width: int, height: int, scale: int, *, model: str, source: str | os.PathLike,
                         model_bytes: int = 0, available: int | None = None) -> None:
    """Refuse an image upscale whose frames (plus ``model_bytes``, the model's working memory
    at a small tile) need more memory than is available (``available``: measured when None;
    nothing is refused when it cannot be measured)."""
    if available is None:
        available = available_memory_bytes()
    if available is None:
        return
    frames = upscale_frame_bytes(width, height, scale)
    needed = frames + model_bytes
    if needed <= available:
        return
    raise UnsupportedFormat(
        f"cannot upscale '{source}': {width}x{height} -> {width * scale}x{height * scale} with {model} "
        f"needs about {needed / GB:.1f} GB of memory ({frames / GB:.1f} GB for the whole input and "
        f"output frames), but only {available / GB:.1f} GB is available; --tile does not help, it "
        "lowers only the model's working memory, not the frames; use a smaller input (crop it, or "
        "cut it into parts and upscale each), a model with a smaller scale, or free memory "
        "(close other programs, or use a machine with more)")
