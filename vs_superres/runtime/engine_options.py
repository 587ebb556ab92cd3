"""The engine's own options (device, precision, tiling, windows), declared once like a family's.

Which of them apply depends on the model: ``tile``/``overlap`` only to models the runtime
tiles, ``window``/``window_overlap`` only to video models, ``batch`` only to image models.
:func:`options_for` gives a host everything a model takes: these plus its family's options.
:func:`settle` is where ``Upscaler`` checks its values against these declarations.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vs_superres.contracts.descriptor import ModelDescriptor
from vs_superres.contracts.errors import InvalidOption, option_ref
from vs_superres.contracts.options import OptionSet, declare, option
from vs_superres.runtime.registry import Registry, default_registry


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    device: str = option("auto", "auto, cpu, cuda, cuda:<i> or mps")
    dtype: str = option("fp32", "compute precision", choices=("fp32", "fp16", "bf16"))
    tile: int | None = option(None, "tile side in input pixels; 0 disables tiling; unset: the largest that fits free memory", minimum=0)
    overlap: int | None = option(None, "tile overlap in input pixels; unset: the model's", minimum=0)
    window: int | None = option(None, "temporal window in frames; unset: the model's", minimum=1)
    window_overlap: int | None = option(None, "frames shared by neighbouring windows; unset: the model's", minimum=0)
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


def _check(name: str, value: Any, model: str, maximum: int | None = None) -> Any:
    """``value`` checked by option ``name``'s declaration (``maximum``: a bound another value
    sets). An integer out of range is told the range alone (``tile must be >= 0, got -1``):
    the wording hosts have always shown for the engine's options."""
    opt = ENGINE_OPTIONS.get(name)
    if maximum is not None:
        opt = dataclasses.replace(opt, maximum=maximum)
    try:
        return opt.check(value, model=model)
    except InvalidOption:
        if opt.type != "int" or isinstance(value, bool) or not isinstance(value, int):
            raise
        raise InvalidOption(f"{option_ref(name)} must be {opt.range_text()}, got {value}", option=name, model=model) from None


@dataclasses.dataclass(frozen=True)
class Settled:
    """The tiling, window and batch values a model runs with (:func:`settle`)."""

    tile: int | None
    overlap: int
    window: int
    window_overlap: int
    batch: int


def settle(desc: ModelDescriptor, *, tile: Any = None, overlap: Any = None, window: Any = None,
           window_overlap: Any = None, batch: Any = 1) -> Settled:
    """The values ``desc`` runs with, each checked by its declaration.

    Options that apply only to other models are refused (``tile``/``overlap`` for a model that
    tiles by itself, a window for an image model); ``overlap``, ``window`` and
    ``window_overlap`` left at None become the model's (the overlap capped to fit the window),
    and ``window_overlap`` must be below ``window``. An image model runs one-frame windows.
    (``device``, ``dtype`` and ``weights`` are checked against the device and the model by
    :mod:`.devices` and :mod:`.loading`.)
    """
    name = desc.name
    if not desc.tileable and (tile not in (None, 0) or overlap is not None):
        own = f"; set its own tiling options instead ({', '.join(option_ref(o) for o in desc.tiling_options)})" if desc.tiling_options else ""
        raise InvalidOption(f"{option_ref('tile')} and {option_ref('overlap')} do not apply to {name}: it tiles by itself{own}", option="tile", model=name)
    tile = _check("tile", tile, name)
    overlap = _check("overlap", desc.default_overlap if overlap is None else overlap, name)
    batch = _check("batch", batch, name)
    if desc.kind == "video":
        window = _check("window", desc.window if window is None else window, name)
        ov = min(desc.window_overlap, window - 1) if window_overlap is None else window_overlap
        window_overlap = _check("window_overlap", ov, name, maximum=window - 1)
    else:
        for opt, val in (("window", window), ("window_overlap", window_overlap)):
            if val not in (None, 0, 1) or (opt == "window_overlap" and val not in (None, 0)):
                raise InvalidOption(f"{option_ref(opt)} applies to video models only; {name} is an image model", option=opt, model=name)
        window, window_overlap = 1, 0
    return Settled(tile, overlap, window, window_overlap, batch)


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
