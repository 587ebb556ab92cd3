"""What a model is: its family, its published weight files, and the descriptor of each model.

A :class:`ModelFamily` (one folder under ``models/``) says how to build its networks from its
config type, how to read a config back from a checkpoint, which options it takes (declared
once, :mod:`.options`) and how to turn a :class:`~.runners.LoadRequest` into a runner. A
:class:`ModelDescriptor` carries everything the runtime needs to run one registered model
without per-model branches. Both are frozen and hold no shared mutable state: a descriptor's
config is a frozen :class:`~.config.FrozenConfig`, changed only through
:func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from vs_superres.contracts.config import FrozenConfig
from vs_superres.contracts.errors import UnsupportedFormat
from vs_superres.contracts.options import OptionSet

PRECISIONS = ("fp32", "fp16", "bf16")
KINDS = ("image", "video")


@dataclasses.dataclass(frozen=True)
class HubSnapshot:
    """Where a folder weight (``WeightFile(folder=True)``) comes from when the search has none:
    a snapshot of a Hugging Face Hub repository, found by the runtime in the Hugging Face cache
    or, when the option named by ``download_option`` is true, downloaded.

    ``what`` names the folder in messages (``base model``); ``subfolders`` are what a usable
    folder holds and ``files`` the files it must hold inside them (``unet/config.json``),
    checked by the runtime before the family reads it; ``patterns`` are the repository's files
    a snapshot fetches (``allow_patterns``).
    """

    repo: str
    what: str = "folder"
    subfolders: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    download_option: str | None = None

    def download_hint(self, where: str) -> str:
        """How to get the folder by hand, into ``where``."""
        return (
            f"Download {self.repo} (subfolders {', '.join(self.subfolders)}), e.g. "
            f"`hf download {self.repo} --local-dir {where}`, and pass that folder."
        )


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One published checkpoint file (or folder) a model needs.

    ``relpath`` is where it lives below any weights root (``ditn/DITN_Real_x4.pth``); ``url``
    is a direct download location used only by ``superres models download``. ``option`` names
    the model option through which a user gives its path instead of the search (UltraVSR's
    ``checkpoint``, ``clip_iqa``, ``base``); ``required=False`` files are looked up but may be
    absent (the family decides what their absence means); ``folder`` marks a directory (a
    diffusers base model) and ``hub`` where such a folder comes from when the search has none
    (:class:`HubSnapshot`; its option then takes a folder or a hub id). ``pinned`` is a file the user named as the model itself
    (``--model my.safetensors``): it is used as given, not searched, and not held to
    ``sha256``.
    """

    relpath: str
    sha256: str | None
    size: int | None = None
    licence: str = "unknown"
    upstream: str = ""
    url: str | None = None
    option: str | None = None
    required: bool = True
    folder: bool = False
    pinned: str | None = None
    hub: HubSnapshot | None = None

    @property
    def filename(self) -> str:
        return self.relpath.rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """A network family, declared by its folder in ``models/`` and registered by the runtime.

    config_type
        The family's frozen config dataclass (:class:`~.config.FrozenConfig`), with ``scale``.
    build(config) -> nn.Module
        The network of a config, random weights.
    config_from_state_dict(state_dict) -> config
        Reads hyperparameters back from a checkpoint's tensor shapes and key counts (families
        whose checkpoints can be recognised from their tensors alone).
    options
        What users may set (declared once; hosts derive their arguments from it).
    load(request) -> runner
        Optional: families whose runtime is more than one ``nn.Module`` (diffusion
        pipelines). Without it the runtime builds the network and loads its one weight file.
    template
        The descriptor an unregistered checkpoint of this family inherits (kind, alignment,
        tiling defaults), with the config read from the checkpoint.
    checkpoint_format
        Optional: the ``format`` metadata of the family's own safetensors checkpoints
        (``vs-superres/patchscaler``). A file carrying it, given as the model
        (``--model file.safetensors``), runs as the family's default model with that file as
        its ``checkpoint`` weight; for checkpoints that shapes alone cannot describe.
    title, default_model
        How hosts name the family (``core.superres.DITN``, a ComfyUI menu entry) and the model
        they pick when the user names none.
    export(state_dict, config, *, fp16, static, metadata) -> bytes
        Optional: the network as an ONNX graph (``superres export``, and the runtimes behind a
        ``backend`` option); families without it are not exportable.
    """

    name: str
    config_type: type
    build: Callable[[Any], Any]
    config_from_state_dict: Callable[[Mapping[str, Any]], Any] | None = None
    options: OptionSet = OptionSet()
    load: Callable[..., Any] | None = None
    template: "ModelDescriptor | None" = None
    checkpoint_format: str | None = None
    description: str = ""
    title: str = ""
    default_model: str | None = None
    export: Callable[..., bytes] | None = None


@dataclasses.dataclass(frozen=True)
class ModelDescriptor:
    """Everything the runtime needs to know about one runnable model."""

    name: str
    family: str
    config: FrozenConfig
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
    #: Diagnostic models (test fixtures) are hidden from ``superres models list``.
    diagnostic: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be 'image' or 'video', got {self.kind!r}")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            raise ValueError(f"{self.name}: unknown precisions {bad}; allowed {PRECISIONS}")
        if self.kind == "video" and not 0 <= self.window_overlap < self.window:
            raise ValueError(f"{self.name}: window_overlap must be in [0, window)")
        if not isinstance(self.config, FrozenConfig):
            raise TypeError(f"{self.name}: config must be a FrozenConfig, got {type(self.config).__name__}")

    @property
    def scale(self) -> int:
        """Output size factor, as the config declares it."""
        return int(self.config.scale)

    def check_size(self, height: int, width: int) -> None:
        """Refuse frames smaller than the model accepts, naming the size and the way out."""
        if min(height, width) < self.min_size:
            m = self.min_size
            raise UnsupportedFormat(
                f"{self.name} needs frames of at least {m}x{m} pixels, got {width}x{height}; "
                "enlarge tiny clips with a classical resizer first",
                model=self.name,
            )
