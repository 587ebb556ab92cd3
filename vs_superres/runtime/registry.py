"""The model registry: a container of families and descriptors that refuses duplicates.

The runtime asks the registry, never a model family directly. The default registry is filled
by the composition root (:mod:`.families`) on first use; tests and plugins may build their
own :class:`Registry` or add to the default one.
"""

from __future__ import annotations

import difflib
import threading

from vs_superres.contracts.descriptor import ModelDescriptor, ModelFamily
from vs_superres.contracts.errors import InvalidOption


class Registry:
    """Families and models by name; a second registration of a name is an error."""

    def __init__(self) -> None:
        self._families: dict[str, ModelFamily] = {}
        self._models: dict[str, ModelDescriptor] = {}
        self._lock = threading.Lock()

    def add_family(self, family: ModelFamily) -> ModelFamily:
        with self._lock:
            if family.name in self._families:
                raise ValueError(f"model family {family.name!r} is registered twice")
            self._families[family.name] = family
        return family

    def add_model(self, desc: ModelDescriptor) -> ModelDescriptor:
        with self._lock:
            if desc.family not in self._families:
                raise ValueError(f"model {desc.name!r}: its family {desc.family!r} is not registered")
            if desc.name in self._models:
                raise ValueError(f"model {desc.name!r} is registered twice")
            if not isinstance(desc.config, self._families[desc.family].config_type):
                raise TypeError(f"model {desc.name!r}: config is not a {self._families[desc.family].config_type.__name__}")
            self._models[desc.name] = desc
        return desc

    def family(self, name: str) -> ModelFamily:
        try:
            return self._families[name]
        except KeyError:
            raise InvalidOption(f"unknown model family {name!r}; known: {', '.join(sorted(self._families))}", option="model") from None

    def families(self) -> list[ModelFamily]:
        return [self._families[k] for k in sorted(self._families)]

    def get(self, name: str) -> ModelDescriptor:
        """The descriptor of a registered model, or a clear error with suggestions."""
        try:
            return self._models[name]
        except KeyError:
            visible = [m.name for m in self.models()]
            close = difflib.get_close_matches(name, visible, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise InvalidOption(
                f"unknown model {name!r}.{hint} Known models: {', '.join(visible)} "
                "(see `superres models list`), or pass the path of a checkpoint file.",
                option="model",
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def models(self, *, include_diagnostic: bool = False) -> list[ModelDescriptor]:
        """Registered models by name; diagnostic (test) models only when asked for."""
        return [self._models[k] for k in sorted(self._models) if include_diagnostic or not self._models[k].diagnostic]

    def models_of(self, family: str) -> list[ModelDescriptor]:
        return [m for m in self.models() if m.family == family]


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry, filled by the composition root on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                from vs_superres.runtime.families import populate

                reg = Registry()
                populate(reg)
                _default = reg
    return _default


def default_model() -> str:
    """The name of the model hosts run when none is named (the composition root's choice)."""
    from vs_superres.runtime.families import DEFAULT_MODEL

    return DEFAULT_MODEL


def get_model(name: str) -> ModelDescriptor:
    return default_registry().get(name)


def list_models(*, include_diagnostic: bool = False) -> list[ModelDescriptor]:
    return default_registry().models(include_diagnostic=include_diagnostic)


def family(name: str) -> ModelFamily:
    return default_registry().family(name)
