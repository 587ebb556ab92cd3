"""The engine's own options (device, precision, tiling, windows), declared once like a family's.

Which of them apply depends on the model: ``tile``/``overlap`` only to models the runtime
tiles, ``window``/``window_overlap`` only to video models, ``batch`` only to image models.
:func:`options_for` gives a host everything a model takes: these plus its family's options.
"""

from __future__ import annotations

import dataclasses

from ..contracts.descriptor import ModelDescriptor
from ..contracts.options import OptionSet, declare, option
from .registry import Registry, default_registry


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    device: str = option("auto", "auto, cpu, cuda, cuda:<i> or mps")
    dtype: str = option("fp32", "compute precision", choices=("fp32", "fp16", "bf16"))
    tile: int | None = option(None, "tile side in input pixels; 0 disables tiling; None fits free memory", minimum=0)
    overlap: int | None = option(None, "tile overlap in input pixels (None: the model's)", minimum=0)
    window: int | None = option(None, "temporal window in frames (None: the model's)", minimum=1)
    window_overlap: int | None = option(None, "frames shared by neighbouring windows (None: the model's)", minimum=0)
    batch: int = option(1, "frames per forward pass", minimum=1)
    weights: str | None = option(None, "explicit weight file, bypassing the search path", type="path")


ENGINE_OPTIONS = declare(EngineSettings)
TILING = ("tile", "overlap")
WINDOWS = ("window", "window_overlap")


def engine_options(desc: ModelDescriptor) -> OptionSet:
    """The engine options that apply to ``desc``."""
    skip: set[str] = set()
    if not desc.tileable:
        skip.update(TILING)
    if desc.kind != "video":
        skip.update(WINDOWS)
    else:
        skip.add("batch")
    return OptionSet(tuple(o for o in ENGINE_OPTIONS if o.name not in skip))


def options_for(desc: ModelDescriptor, registry: Registry | None = None) -> OptionSet:
    """Everything a user may set for ``desc``: the applicable engine options, then its family's."""
    family = (registry or default_registry()).family(desc.family)
    return engine_options(desc) + family.options


def options_help(registry: Registry | None = None, indent: str = "    ") -> str:
    """Every family's options with ranges (for ``help(Upscaler)`` and ``superres upscale --help``)."""
    registry = registry or default_registry()
    lines = []
    for family in registry.families():
        models = ", ".join(m.name for m in registry.models_of(family.name)) or "(no registered models)"
        lines.append(f"{family.name} ({models}):")
        lines += family.options.help_lines(indent) if len(family.options) else [indent + "no model options"]
    return "\n".join(lines)
