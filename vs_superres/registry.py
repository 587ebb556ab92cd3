"""The model registry: models describe themselves, the engine asks the descriptor.

A :class:`ModelDescriptor` names a registered :class:`Architecture` and carries everything
the engine needs to run the model without per-model branches: its config, scale, whether it
is an image or a video model, its input size alignment, the precisions it supports, its
weight files (with sha256, licence and upstream location) and its tiling/window defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable, Mapping

from .errors import SuperResError

PRECISIONS = ("fp32", "fp16", "bf16")


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One published checkpoint file.

    ``relpath`` is where the file lives below any weights root (``ditn/DITN_Real_x4.pth``);
    ``url`` is a direct download location used only by ``superres models download``.
    """

    relpath: str
    sha256: str | None
    size: int | None = None
    licence: str = "unknown"
    upstream: str = ""
    url: str | None = None

    @property
    def filename(self) -> str:
        return self.relpath.rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A network family, registered by its module in ``vs_superres.models``.

    build(config) -> nn.Module
        Rebuilds the network from a plain config dict.
    config_from_state_dict(state_dict) -> dict
        Reads hyperparameters back from a checkpoint's tensor shapes and key counts.
    load(descriptor, device, dtype, weights_paths) -> runner
        Optional: families whose runtime is more than one ``nn.Module`` (diffusion
        pipelines) provide their own loader; the returned runner follows the contract in
        ``docs/design.md``.
    """

    name: str
    build: Callable[[Mapping[str, Any]], Any]
    config_from_state_dict: Callable[[Mapping[str, Any]], dict] | None = None
    load: Callable[..., Any] | None = None


@dataclasses.dataclass(frozen=True)
class ModelDescriptor:
    """Everything the engine needs to know about one runnable model."""

    name: str
    architecture: str
    config: Mapping[str, Any]
    scale: int
    kind: str = "image"  # "image" or "video"
    alignment: int = 1
    precisions: tuple[str, ...] = ("fp32", "bf16", "fp16")
    weights: tuple[WeightFile, ...] = ()
    licence: str = "unknown"
    description: str = ""
    tileable: bool = True
    default_overlap: int = 16
    #: Rough peak working memory per input pixel per frame in bytes at fp32; used to pick a
    #: tile that fits the memory budget.
    bytes_per_pixel: int = 20_000
    window: int = 1
    window_overlap: int = 0
    #: Names of the model's own tiling options, for models that tile by themselves
    #: (``tileable=False``); the engine's tile/overlap error points at them.
    tiling_options: tuple[str, ...] = ()
    #: Smallest input side (pixels) the model accepts; hosts check it when a clip is opened.
    min_size: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("image", "video"):
            raise ValueError(f"{self.name}: kind must be 'image' or 'video', got {self.kind!r}")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            raise ValueError(f"{self.name}: unknown precisions {bad}; allowed {PRECISIONS}")
        if self.kind == "video" and not 0 <= self.window_overlap < self.window:
            raise ValueError(f"{self.name}: window_overlap must be in [0, window)")

    def check_size(self, height: int, width: int) -> None:
        """Refuse frames smaller than the model accepts, naming the size and the way out."""
        if min(height, width) < self.min_size:
            m = self.min_size
            raise SuperResError(
                f"{self.name} needs frames of at least {m}x{m} pixels, got {width}x{height}; "
                "enlarge tiny clips with a classical resizer first"
            )


_ARCHITECTURES: dict[str, Architecture] = {}
_MODELS: dict[str, ModelDescriptor] = {}


def register_architecture(arch: Architecture) -> Architecture:
    _ARCHITECTURES[arch.name] = arch
    return arch


def register_model(desc: ModelDescriptor) -> ModelDescriptor:
    _MODELS[desc.name] = desc
    return desc


def _ensure_builtin() -> None:
    # Importing the model families registers them; done lazily so that importing the
    # registry stays cheap and free of cycles.
    from . import models  # noqa: F401


def architecture(name: str) -> Architecture:
    _ensure_builtin()
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise SuperResError(
            f"unknown architecture {name!r}; known: {', '.join(sorted(_ARCHITECTURES))}"
        ) from None


def get_model(name: str) -> ModelDescriptor:
    """Return the descriptor of a registered model, or a clear error with suggestions."""
    _ensure_builtin()
    try:
        return _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _MODELS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise SuperResError(
            f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_MODELS))} "
            "(see `superres models list`), or pass the path of a checkpoint file."
        ) from None


def list_models() -> list[ModelDescriptor]:
    _ensure_builtin()
    return [_MODELS[k] for k in sorted(_MODELS)]
