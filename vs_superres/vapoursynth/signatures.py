"""The ``core.superres`` functions and their typed signatures, derived from the declarations.

One function per model family (named by its ``title``: ``DITN``, ``UltraVSR``), taking the
engine options that apply to that family's models and the family's own options, plus
``Upscale``, which takes any model and therefore every option. The C plugin asks
:func:`signatures` for them when VapourSynth loads it, so no option list is written in C.
This module and what it imports are free of torch: loading the plugin stays cheap for every
VapourSynth script, including those that never call it.
"""

from __future__ import annotations

from vs_superres.contracts.options import Option, OptionSet
from vs_superres.runtime.engine_options import ENGINE_OPTIONS, engine_options
from vs_superres.runtime.registry import Registry, default_registry

ANY_MODEL = "Upscale"
#: Engine options that mean nothing under random access (a frame at a time).
NOT_OFFERED = ("batch",)
_VS_TYPES = {"int": "int", "bool": "int", "float": "float", "str": "data", "path": "data"}


def vs_type(opt: Option) -> str:
    """VapourSynth's type for an option (it has no bool: 0/1 ints)."""
    return _VS_TYPES[opt.type]


def function_options(function: str, registry: Registry | None = None) -> OptionSet:
    """Every option ``core.superres.<function>`` takes, in signature order."""
    registry = registry or default_registry()
    if function == ANY_MODEL:
        engine, family_opts = ENGINE_OPTIONS, OptionSet()
        for fam in registry.families():
            family_opts = family_opts + OptionSet(tuple(o for o in fam.options if o.name not in family_opts))
    else:
        fam = family_of(function, registry)
        desc = registry.get(fam.default_model) if fam.default_model else registry.models_of(fam.name)[0]
        engine, family_opts = engine_options(desc), fam.options
    engine = OptionSet(tuple(o for o in engine if o.name not in NOT_OFFERED))
    return (engine + family_opts).for_hosts()


def family_of(function: str, registry: Registry | None = None):
    registry = registry or default_registry()
    for fam in registry.families():
        if (fam.title or fam.name) == function:
            return fam
    raise KeyError(function)


def functions(registry: Registry | None = None) -> list[str]:
    """Function names: one per family that has a registered model, then ``Upscale``."""
    registry = registry or default_registry()
    return [fam.title or fam.name for fam in registry.families() if registry.models_of(fam.name)] + [ANY_MODEL]


def signature(function: str, registry: Registry | None = None) -> str:
    """VapourSynth's argument string, e.g. ``clip:vnode;model:data:opt;tile:int:opt;...``."""
    parts = ["clip:vnode", "model:data:opt"]
    parts += [f"{o.name}:{vs_type(o)}:opt" for o in function_options(function, registry)]
    return ";".join(parts) + ";"


def signatures() -> list[tuple[str, str]]:
    """``[(function, argument string)]`` for the C plugin's ``registerFunction``."""
    return [(f, signature(f)) for f in functions()]
