"""The model handle the loader node outputs, and its lifetime.

ComfyUI keeps a node's outputs while its inputs do not change, so a handle (and the
:class:`~vs_superres.Upscaler` it holds) is reused across runs. It is released when

- the loader that made it runs again with other inputs (the new handle replaces it),
- ComfyUI unloads its models (``POST /free``, the "Unload models" button, low memory): the
  handle keeps its recipe and loads again on its next use,
- an upscale node asks for other run settings (tile, window, ...): the old ``Upscaler`` is
  closed before the new one is built, so two copies of the weights never coexist,
- ComfyUI drops the loader's cached output (the handle is then garbage).
"""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any, Mapping

_LIVE: "weakref.WeakSet[ModelHandle]" = weakref.WeakSet()
_BY_LOADER: dict[str, "ModelHandle"] = {}
_LOCK = threading.Lock()


class ModelHandle:
    """A model recipe (model, device, dtype, family options, weight files found in ComfyUI's
    folders) and its loaded engine."""

    def __init__(self, model: str, label: str, *, device: str, dtype: str, options: Mapping[str, Any],
                 weights: tuple[str, ...] = ()):
        self.model = model
        self.label = label
        self.weights = tuple(weights)
        self.device = device
        self.dtype = dtype
        self.options = dict(options)
        self._upscaler: Any = None
        self._settings: tuple | None = None
        self._lock = threading.Lock()
        _LIVE.add(self)

    def upscaler(self, settings: Mapping[str, Any] | None = None):
        """The engine for these run settings (``tile``, ``window``, ...), loaded once and kept."""
        from vs_superres.runtime.upscaler import Upscaler

        key = tuple(sorted((settings or {}).items()))
        with self._lock:
            if self._upscaler is None or self._settings != key:
                self._release()
                self._upscaler = Upscaler(self.model, device=self.device, dtype=self.dtype,
                                          weights=list(self.weights) or None, **dict(key), **self.options)
                self._settings = key
            return self._upscaler

    @property
    def loaded(self) -> bool:
        return self._upscaler is not None

    def release(self) -> None:
        with self._lock:
            self._release()

    def _release(self) -> None:
        if self._upscaler is None:
            return
        device = self._upscaler.device
        self._upscaler.close()
        self._upscaler = None
        self._settings = None
        gc.collect()
        if device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    def __repr__(self) -> str:
        return f"SuperResModel({self.label}, {self.device}, {self.dtype})"


def replace_for_loader(loader_id: str | None, handle: ModelHandle) -> ModelHandle:
    """Record ``handle`` as ``loader_id``'s output, releasing the one it replaces."""
    if loader_id is None:
        return handle
    with _LOCK:
        old = _BY_LOADER.get(str(loader_id))
        _BY_LOADER[str(loader_id)] = handle
    if old is not None and old is not handle:
        old.release()
    return handle


def release_all() -> None:
    for handle in list(_LIVE):
        handle.release()


def live_handles() -> list[ModelHandle]:
    return list(_LIVE)


def follow_comfy_unloads() -> None:
    """Release our engines whenever ComfyUI unloads its models.

    ComfyUI 0.3.x offers no hook for this, so its ``unload_all_models`` is wrapped once (the
    original still runs, first our release, then ComfyUI's own).
    """
    import comfy.model_management as mm

    original = mm.unload_all_models
    if getattr(original, "_superres_wrapped", False):
        return

    def unload_all_models(*args, **kwargs):
        release_all()
        return original(*args, **kwargs)

    unload_all_models._superres_wrapped = True  # type: ignore[attr-defined]
    mm.unload_all_models = unload_all_models
