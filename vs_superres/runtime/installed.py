"""What is installed: registered models whose files are found, and what a checkpoint file is.

Hosts that offer a list of models to pick from (ComfyUI's loaders) show what can run, not
everything registered. Two questions, answered here once so that no host searches, hashes or
reads checkpoints by itself:

- :func:`missing_files`: the required weight files of a registered model that the weight search
  (:mod:`.weights`) does not find. Hub folders (UltraVSR's base) are left out: they are resolved
  when the model loads, from their option, the search or the Hugging Face cache, each failure
  with its own message.
- :func:`identify`: which registered weight file a checkpoint is (its sha256, computed only for
  files of a declared size) and which family reads it (our own safetensors formats by their
  metadata, any other file by the family whose ``config_from_state_dict`` reads its shapes).
  Answers are kept per file path, size and modification time, so a host may ask at every
  listing.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

from vs_superres.contracts.descriptor import ModelDescriptor, WeightFile
from vs_superres.contracts.errors import SuperResError, WeightsError
from vs_superres.runtime import weights as weights_mod
from vs_superres.runtime.registry import Registry, default_registry


def missing_files(desc: ModelDescriptor) -> list[WeightFile]:
    """The required weight files of ``desc`` (hub folders aside) the search does not find."""
    missing = []
    for wf in desc.weights:
        if not wf.required or wf.hub is not None or wf.pinned:
            continue
        try:
            weights_mod.resolve(wf, verify=False)
        except WeightsError:
            missing.append(wf)
    return missing


@dataclasses.dataclass(frozen=True)
class CheckpointFile:
    """What :func:`identify` found: ``registered`` (``(model name, weight file)`` of every
    registered model this file is a weight of, by sha256) and ``family`` (the family that reads
    it; None when none does)."""

    registered: tuple[tuple[str, WeightFile], ...]
    family: str | None


_cache: dict[tuple[str, int, int], CheckpointFile] = {}
_lock = threading.Lock()


def identify(path: str | os.PathLike, registry: Registry | None = None) -> CheckpointFile:
    """What the checkpoint at ``path`` is (module docstring); never raises for a file no
    family reads (``family`` None). Raises ``OSError`` when the file cannot be stat'ed."""
    registry = registry or default_registry()
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    with _lock:
        if key in _cache:
            return _cache[key]
    found = _identify(Path(real), st.st_size, registry)
    with _lock:
        _cache[key] = found
    return found


def _identify(path: Path, size: int, registry: Registry) -> CheckpointFile:
    candidates = [(d, wf) for d in registry.models(include_diagnostic=True) for wf in d.weights
                  if wf.sha256 and not wf.folder and wf.size == size]
    registered: tuple[tuple[str, WeightFile], ...] = ()
    if candidates:
        digest = weights_mod.sha256_of(path)
        registered = tuple((d.name, wf) for d, wf in candidates if wf.sha256 == digest)
    if registered:
        return CheckpointFile(registered, registry.get(registered[0][0]).family)
    from vs_superres.runtime.loading import descriptor_from_checkpoint  # reads the file: torch

    try:
        desc, _ = descriptor_from_checkpoint(path, registry)
    except SuperResError:
        return CheckpointFile((), None)
    return CheckpointFile((), desc.family)
