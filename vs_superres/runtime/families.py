"""The composition root: the one place that knows which model families exist.

Each entry is a module that defines ``FAMILY`` (a :class:`ModelFamily`) and ``MODELS`` (its
registered descriptors). Declaration modules import no torch, so listing models and building
host signatures stays cheap; networks are imported when a model loads.

Adding a family: create ``models/<name>/`` with those two names and add its module here (one
line). Out-of-tree families (a plugin package, or a test's diagnostic model) are found from
the ``vs_superres.families`` entry-point group and from ``$SUPERRES_FAMILIES`` (module names
separated by ``os.pathsep``), with the same two names.
"""

from __future__ import annotations

import importlib
import logging
import os
from importlib import metadata

from vs_superres.runtime.registry import Registry

log = logging.getLogger("vs_superres")

#: the model every host runs when none is named (a registered name; real weights, small, fast)
DEFAULT_MODEL = "ditn-real-x4"

BUILTIN = (
    "vs_superres.models.ditn.family",
    "vs_superres.models.ultravsr.family",
    "vs_superres.models.patchscaler.family",
)
ENV_VAR = "SUPERRES_FAMILIES"
ENTRY_POINT_GROUP = "vs_superres.families"


def family_modules() -> list[str]:
    """Module names of every family: built-in, entry points, then ``$SUPERRES_FAMILIES``."""
    names = list(BUILTIN)
    try:
        names += [ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    except Exception:  # noqa: BLE001 - broken distribution metadata must not stop the built-ins
        pass
    names += [n for n in os.environ.get(ENV_VAR, "").split(os.pathsep) if n.strip()]
    return list(dict.fromkeys(names))


def register_module(registry: Registry, module_name: str) -> None:
    module = importlib.import_module(module_name)
    registry.add_family(module.FAMILY)
    for desc in module.MODELS:
        registry.add_model(desc)


def populate(registry: Registry) -> None:
    """Register every family. A broken built-in is a bug and raises; a broken out-of-tree family
    (a typo in ``$SUPERRES_FAMILIES``, a plugin that no longer imports) is skipped with a
    warning, so it cannot take every other model (and every ``core.superres`` function) down."""
    for name in family_modules():
        if name in BUILTIN:
            register_module(registry, name)
            continue
        try:
            register_module(registry, name)
        except Exception as exc:  # noqa: BLE001 - any failure of foreign code
            log.warning("model family %s was not registered: %s: %s", name, type(exc).__name__, exc)
