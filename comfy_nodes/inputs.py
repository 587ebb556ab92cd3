"""Widgets derived from the declared options, and widget values turned back into option values.

ComfyUI widgets cannot hold ``None``; an option whose default is ``None`` ("the model's",
"fit free memory", "estimate it") gets a sentinel instead: :data:`AUTO` (-1) for numbers, the
empty string for text. Every other value is checked by the option's own declaration
(:meth:`Option.check`), so a value the widget range lets through but the declaration refuses
(``strength=-0.5``) fails with the engine's message.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from vs_superres.contracts.options import Option, OptionSet
from vs_superres.runtime.engine_options import ENGINE_OPTIONS
from vs_superres.runtime.registry import Registry, default_registry

from vs_superres.comfy_nodes.spec import FRONTEND_SEED_NAMES, Port

AUTO = -1
INT_MAX = 2**31 - 1
FLOAT_MAX = 1e6
#: Engine options set on the loader (they choose how the model is loaded).
LOADER_ENGINE_OPTIONS = ("device", "dtype")
#: Engine options set on the upscale nodes (they change how frames are run, not the weights).
RUN_ENGINE_OPTIONS = ("tile", "overlap", "batch", "window", "window_overlap")


def _auto(opt: Option) -> bool:
    return opt.default is None or opt.nullable


def port_for(opt: Option, *, family: str = "", also: Iterable[tuple[str, Option]] = ()) -> Port:
    """The widget for ``opt``; the tooltip is the declared help (and its family).

    ``also``: ``(family title, its option)`` for the other families that declare the same name
    (one widget serves them all), so the tooltip says what the widget means to each, as the
    command line's help does ("...; for UltraVSR: ...").
    """
    who = f"{family}: " if family else ""
    tip = who + opt.help
    rng = opt.range_text()
    if rng:
        tip += f" ({rng})"
    for other_family, other in also:
        tip += f"; for {other_family}: {other.help}"
        if other.range_text() and other.range_text() != rng:
            tip += f" ({other.range_text()})"
    if opt.type == "bool":
        return Port(opt.name, "BOOLEAN", default=bool(opt.default), tooltip=tip)
    if opt.choices:
        return Port(opt.name, "COMBO", default=opt.default, choices=tuple(opt.choices), tooltip=tip)
    if opt.type in ("int", "float"):
        auto = _auto(opt)
        if auto:
            tip += f"; {AUTO} = default"
        lo = AUTO if auto else opt.minimum
        if opt.type == "int":
            # A seed is a setting like any other: the frontend must not randomise it after each run.
            control = False if opt.name in FRONTEND_SEED_NAMES else None
            return Port(opt.name, "INT", default=AUTO if opt.default is None else opt.default,
                        minimum=int(lo) if lo is not None else -INT_MAX,
                        maximum=int(opt.maximum) if opt.maximum is not None else INT_MAX,
                        step=opt.multiple, tooltip=tip, control_after_generate=control)
        return Port(opt.name, "FLOAT", default=float(AUTO if opt.default is None else opt.default),
                    minimum=float(lo) if lo is not None else -FLOAT_MAX,
                    maximum=float(opt.maximum) if opt.maximum is not None else FLOAT_MAX,
                    step=0.01, tooltip=tip)
    if _auto(opt):
        tip += "; empty = default"
    return Port(opt.name, "STRING", default="" if opt.default is None else str(opt.default), tooltip=tip)


def value_of(opt: Option, widget: Any, *, model: str | None = None) -> Any:
    """The option value a widget holds (sentinels back to ``None``), checked by the declaration."""
    if _auto(opt):
        if opt.type in ("int", "float") and widget == AUTO:
            return None
        if opt.type in ("str", "path") and isinstance(widget, str) and not widget.strip():
            return None
    if opt.type == "int" and isinstance(widget, float) and widget.is_integer():
        widget = int(widget)
    return opt.check(widget, model=model)


def engine_ports(names: Iterable[str]) -> tuple[Port, ...]:
    return tuple(port_for(ENGINE_OPTIONS.get(n)) for n in names)


def family_options(registry: Registry | None = None) -> list[tuple[str, Option]]:
    """``(family title, option)`` for every host-facing family option; the first family that
    declares a name owns its widget (as on the command line)."""
    registry = registry or default_registry()
    seen: set[str] = set()
    out = []
    for fam in registry.families():
        for opt in fam.options.for_hosts():
            if opt.name not in seen and opt.name not in ENGINE_OPTIONS:
                seen.add(opt.name)
                out.append((fam.title or fam.name, opt))
    return out


def family_ports(registry: Registry | None = None) -> tuple[Port, ...]:
    """The loader's family widgets, in :func:`family_options`' order; a widget that several
    families share explains itself for each of them."""
    registry = registry or default_registry()
    ports = []
    for family, opt in family_options(registry):
        also = [(fam.title or fam.name, o) for fam in registry.families()
                for o in fam.options.for_hosts() if o.name == opt.name and (fam.title or fam.name) != family]
        ports.append(port_for(opt, family=family, also=also))
    return tuple(ports)


def one_family_ports(family) -> tuple[Port, ...]:
    """The widgets of one family's loader: that family's host-facing options, nothing else."""
    title = family.title or family.name
    return tuple(port_for(opt, family=title) for opt in family.options.for_hosts() if opt.name not in ENGINE_OPTIONS)


def family_values(options: OptionSet, widgets: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """The values of ``options`` (one family's) that differ from their defaults.

    Only changed values are passed on, so the model's own defaults apply otherwise; widgets of
    other families are ignored (their tooltips name the family they belong to).
    """
    values = {}
    for opt in options.for_hosts():
        if opt.name in widgets:
            value = value_of(opt, widgets[opt.name], model=model)
            if value != opt.default:
                values[opt.name] = value
    return values
