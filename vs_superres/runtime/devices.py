"""Device and precision selection, with errors that name the allowed values."""

from __future__ import annotations

import os
import re
import threading

import torch

from vs_superres.contracts.errors import InvalidOption, option_ref

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; ``cpu``, ``cuda``, ``cuda:i`` and ``mps``
    are checked against what this machine has."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if m:
        if not torch.cuda.is_available():
            raise InvalidOption(
                f"device {spec!r} was asked for but this PyTorch build sees no CUDA GPU; "
                f"use {option_ref('device', 'cpu')} (or {option_ref('device', 'auto')})", option="device"
            )
        index = int(m.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise InvalidOption(
                f"device {spec!r} does not exist: this machine has {torch.cuda.device_count()} "
                f"CUDA device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})", option="device"
            )
        return torch.device("cuda", index)
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InvalidOption(f"device 'mps' was asked for but MPS is not available here; use {option_ref('device', 'cpu')}",
                                option="device")
        return torch.device("mps")
    raise InvalidOption(f"unknown device {spec!r}; allowed: auto, cpu, cuda, cuda:<index>, mps", option="device")


def device_precisions(device: torch.device) -> tuple[str, ...]:
    """Precisions this device computes natively and correctly."""
    if device.type == "cuda":
        out = ["fp32", "fp16"]
        if torch.cuda.is_bf16_supported():
            out.append("bf16")
        return tuple(out)
    if device.type == "mps":
        return ("fp32", "fp16")
    # CPU: bf16 convolutions and matmuls are implemented; fp16 convolutions are not reliable.
    return ("fp32", "bf16")


def resolve_dtype(spec: str | None, device: torch.device, model_precisions: tuple[str, ...], model_name: str) -> torch.dtype:
    name = (spec or "fp32").strip().lower()
    aliases = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}
    name = aliases.get(name, name)
    if name not in DTYPES:
        raise InvalidOption(f"unknown dtype {spec!r}; allowed: fp32, fp16, bf16", option="dtype")
    if name not in model_precisions:
        raise InvalidOption(
            f"model {model_name!r} does not support {name}; it supports {', '.join(model_precisions)}",
            option="dtype", model=model_name
        )
    if name not in device_precisions(device):
        raise InvalidOption(
            f"dtype {name} is not supported on device {device}; this device supports "
            f"{', '.join(device_precisions(device))} (use {option_ref('dtype', 'fp32')}, or a GPU for fp16)",
            option="dtype", model=model_name
        )
    return DTYPES[name]


def free_memory_bytes(device: torch.device) -> int:
    """Memory the engine may plan to use on ``device`` right now."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


#: Model calls (tiles, windows) that may run at once on one device, across every engine of
#: the process. One by default: a GPU (or the CPU's thread pool) is already saturated by one
#: call, and VapourSynth's worker threads must not multiply peak memory.
INFLIGHT_ENV = "SUPERRES_MAX_INFLIGHT"
_slots: dict[str, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def max_inflight() -> int:
    """``$SUPERRES_MAX_INFLIGHT``: model calls at once per device (at least 1, default 1)."""
    try:
        return max(1, int(os.environ.get(INFLIGHT_ENV, "1")))
    except ValueError:
        return 1


def device_slots(device: torch.device) -> threading.BoundedSemaphore:
    """The process-wide ticket pool of ``device`` (size :func:`max_inflight`)."""
    key = str(device)
    with _slots_lock:
        if key not in _slots:
            _slots[key] = threading.BoundedSemaphore(max_inflight())
        return _slots[key]
