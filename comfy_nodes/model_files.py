"""Which files in a ComfyUI model folder can be picked as the loader's ``model``.

``models/superres`` also holds what a family's *options* name (the ``base``, ``autoencoder``
and ``checkpoint`` widgets): diffusers folders, and checkpoints in one of our family formats.
Picking one of those as the model fails ("does not match any known architecture"), so the
model list leaves them out; the option widgets still take them by path. No ComfyUI import.
"""

from __future__ import annotations

import os

#: A folder holding one of these is a diffusers model or pipeline (``save_pretrained``'s layout).
DIFFUSERS_MARKERS = ("config.json", "model_index.json")
#: Our family checkpoints say what they are in their safetensors metadata (``format``:
#: ``vs-superres/patchscaler``, ``vs-superres/ultravsr``): values for a family's ``checkpoint``
#: option, never a model by themselves (a model file is a plain state dict, read by its shapes).
FAMILY_FORMAT_PREFIX = "vs-superres/"


def safetensors_format(path: str) -> str | None:
    """The ``format`` in a safetensors file's metadata, read from its header only (no tensor is
    loaded), with the runtime's bounded reader; ``None`` when there is none. Raises
    :class:`~vs_superres.contracts.errors.WeightsError` when the file is not a readable
    safetensors file (too long, too deeply nested or malformed header)."""
    from vs_superres.numerics.checkpoints import safetensors_header  # imports torch: only when listing

    meta = safetensors_header(path).get("__metadata__")
    fmt = meta.get("format") if isinstance(meta, dict) else None
    return fmt if isinstance(fmt, str) else None


class ModelFileFilter:
    """Decides for ``name`` (relative to ``root``, ``/``-separated as ComfyUI lists them)
    whether it can be a model; remembers the folders it has looked at, so one listing checks
    each folder once."""

    def __init__(self) -> None:
        self._diffusers: dict[str, bool] = {}

    def _is_diffusers_folder(self, folder: str) -> bool:
        if folder not in self._diffusers:
            self._diffusers[folder] = any(os.path.isfile(os.path.join(folder, m)) for m in DIFFUSERS_MARKERS)
        return self._diffusers[folder]

    def in_diffusers_folder(self, root: str, name: str) -> bool:
        """Whether ``root`` or a folder between it and the file is a diffusers folder."""
        folder = root
        parts = name.replace("\\", "/").split("/")[:-1]
        for part in ["", *parts]:
            folder = os.path.join(folder, part) if part else folder
            if self._is_diffusers_folder(folder):
                return True
        return False

    def is_model(self, root: str, name: str) -> bool:
        if self.in_diffusers_folder(root, name):
            return False
        path = os.path.join(root, name)
        if name.lower().endswith(".safetensors"):
            fmt = safetensors_format(path)
            if fmt is not None and fmt.startswith(FAMILY_FORMAT_PREFIX):
                return False
        return True
