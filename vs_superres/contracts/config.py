"""Frozen, serialisable configs: the one config style every model family uses.

A family's network config is a frozen dataclass deriving from :class:`FrozenConfig`: it can be
rebuilt from its JSON form alone (``from_dict(json.loads(json.dumps(c.to_dict())))`` equals
``c``), so a model can be shipped to a worker process or saved beside its weights. Nested
configs (UltraVSR's UNet and VAE) are plain mappings frozen into :class:`FrozenDict`, never
shared mutable dicts.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

C = TypeVar("C", bound="FrozenConfig")


class FrozenDict(Mapping):
    """A read-only, hashable mapping (values frozen recursively: dicts, lists become tuples)."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None, **kw: Any):
        self._data = {k: freeze(v) for k, v in {**dict(data or {}), **kw}.items()}
        self._hash: int | None = None

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(sorted(self._data.items(), key=lambda kv: kv[0])))
        return self._hash

    def __eq__(self, other) -> bool:
        return isinstance(other, Mapping) and dict(self._data) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def thaw(self) -> dict[str, Any]:
        """A fresh, mutable deep copy (what ``diffusers`` constructors expect)."""
        return {k: thaw(v) for k, v in self._data.items()}


def freeze(value: Any) -> Any:
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping):
        return FrozenDict(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, FrozenDict):
        return value.thaw()
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


class FrozenConfig:
    """Mixin for frozen config dataclasses: ``to_dict``/``from_dict`` with a JSON round trip.

    Subclasses are ``@dataclasses.dataclass(frozen=True)``. A model family's config declares
    ``scale`` (the output size factor) as a field or a property, so the runtime never guesses it
    from key names; configs of sub-networks (UltraVSR's CLIP) have none.
    """

    @property
    def scale(self) -> int:
        """Output size factor. A model family's config overrides this with a field or a
        property; a sub-network's config (UltraVSR's CLIP) has no scale, and asking for one is
        a bug in the caller."""
        raise AttributeError(f"{type(self).__name__} is not a model family's config: it declares no scale")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (nested mappings as dicts, tuples as lists)."""
        return {f.name: thaw(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Rebuild from :meth:`to_dict`'s output; unknown keys are refused by name."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            from vs_superres.contracts.errors import InvalidOption

            raise InvalidOption(
                f"{cls.__name__} has no field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        return cls(**{k: freeze(v) for k, v in data.items()})

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
