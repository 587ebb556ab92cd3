"""Options declared once, as data: what a model family (or the engine) takes from users.

A family writes its options as a frozen settings dataclass whose fields carry their help,
range and choices (:func:`option`); :func:`declare` turns the dataclass into an
:class:`OptionSet`. Everything a host shows or checks is derived from that set: the CLI's
flags, the VapourSynth signatures, ComfyUI inputs, the FFmpeg filter's ``key=value`` syntax,
``help(Upscaler)``. No host lists a model's options by hand.

Types are the small set every host can carry: ``int``, ``float``, ``bool``, ``str`` and
``path`` (a file or folder, a string on the wire). ``callable`` options (a Python tagger) are
for the Python API only (``hosts=False``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, Iterator, Mapping

from vs_superres.contracts.errors import InvalidOption, option_ref

TYPES = ("int", "float", "bool", "str", "path", "callable")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class Option:
    """One user-facing option: name, type, default, range or choices, one-line help."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    #: The minimum itself is not allowed (``strength`` is in (0, 1]).
    exclusive_minimum: bool = False
    #: Integers must be multiples of this.
    multiple: int = 1
    #: ``None`` is a legal value (it then means what ``help`` says, e.g. "the whole window").
    nullable: bool = False
    #: Offered by the hosts (False: Python API only).
    hosts: bool = True

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"option {self.name}: type must be one of {TYPES}, got {self.type!r}")

    # ------------------------------------------------------------------ text
    def range_text(self) -> str:
        """``in (0, 1]``, ``>= 8, a multiple of 8``, ``one of wavelet, adain, none``, or ``""``."""
        parts = []
        if self.choices:
            parts.append("one of " + ", ".join(self.choices))
        lo, hi = self.minimum, self.maximum

        def fmt(v: float) -> str:
            return str(int(v)) if float(v).is_integer() else str(v)

        if lo is not None and hi is not None:
            parts.append(f"in {'(' if self.exclusive_minimum else '['}{fmt(lo)}, {fmt(hi)}]")
        elif lo is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {fmt(lo)}")
        elif hi is not None:
            parts.append(f"<= {fmt(hi)}")
        if self.multiple > 1:
            parts.append(f"a multiple of {self.multiple}")
        return ", ".join(parts)

    def describe(self) -> str:
        """One line: ``name (type, range; default D): help``."""
        kind = self.type + (" or None" if self.nullable else "")
        rng = self.range_text()
        return f"{self.name} ({kind}{', ' + rng if rng else ''}; default {self.default!r}): {self.help}"

    # ------------------------------------------------------------------ values
    def check(self, value: Any, *, model: str | None = None) -> Any:
        """Return ``value`` if it is legal (ints accepted for floats), else raise :class:`InvalidOption`."""

        def bad(expected: str) -> InvalidOption:
            return InvalidOption(f"{option_ref(self.name)} must be {expected}, got {value!r}", option=self.name, model=model)

        if value is None:
            if self.nullable or self.default is None:
                return None
            raise bad(self._expected())
        if self.type == "bool":
            if not isinstance(value, bool):
                raise bad("True or False")
            return value
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad(self._expected())
        elif self.type == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise bad(self._expected())
            value = float(value)
        elif self.type == "str":
            if not isinstance(value, str):
                raise bad("a string")
        elif self.type == "path":
            # From Python a path option may also carry what the path would load (a state dict,
            # a module); hosts only ever pass text.
            if isinstance(value, (bool, int, float)):
                raise bad("a path")
            return value
        elif self.type == "callable":
            if not callable(value):
                raise bad("a callable")
            return value
        if self.choices and value not in self.choices:
            raise bad(self._expected())
        if self.type in ("int", "float"):
            lo, hi = self.minimum, self.maximum
            if (lo is not None and (value < lo or (self.exclusive_minimum and value == lo))) or (hi is not None and value > hi):
                raise bad(self._expected())
            if self.type == "int" and value % self.multiple:
                raise bad(self._expected())
        return value

    def _expected(self) -> str:
        if self.choices:
            return self.range_text()
        kind = {"int": "an integer", "float": "a number", "str": "a string", "path": "a path"}.get(self.type, self.type)
        rng = self.range_text()
        return f"{kind} {rng}".strip()

    def parse(self, text: str, *, model: str | None = None) -> Any:
        """A value from its text form (command lines, ``key=value`` filter strings), checked."""
        raw = text.strip()
        if self.nullable and raw.lower() == "none":
            return None
        try:
            if self.type == "int":
                value: Any = int(raw)
            elif self.type == "float":
                value = float(raw)
            elif self.type == "bool":
                low = raw.lower()
                if low not in _TRUE + _FALSE:
                    raise ValueError
                value = low in _TRUE
            elif self.type == "callable":
                raise InvalidOption(f"{option_ref(self.name)} is a Python callable; it cannot be given as text", option=self.name, model=model)
            else:
                value = text
        except ValueError:
            raise InvalidOption(f"{option_ref(self.name)} must be {self._expected()}, got {text!r}", option=self.name, model=model) from None
        return self.check(value, model=model)


def option(default: Any, help: str, *, type: str | None = None, **spec: Any) -> Any:
    """A dataclass field that declares an :class:`Option` (the field's name is the option's).

    ``type`` defaults to the field's annotation (``int``, ``float | None``, ``str``, ...).
    """
    meta = {"help": help, "type": type, **spec}
    return dataclasses.field(default=default, metadata={"option": meta})


def _type_from_annotation(annotation: Any) -> tuple[str, bool]:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = [p.strip() for p in text.split("|")]
    nullable = "None" in parts
    parts = [p for p in parts if p != "None"]
    kind = parts[0] if len(parts) == 1 else "str"
    kind = {"Path": "path", "os.PathLike": "path"}.get(kind, kind)
    return kind, nullable


@dataclasses.dataclass(frozen=True)
class OptionSet:
    """The declared options of a family (or of the engine), in declaration order."""

    options: tuple[Option, ...] = ()

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.options)

    def __contains__(self, name: object) -> bool:
        return any(o.name == name for o in self.options)

    def __add__(self, other: "OptionSet") -> "OptionSet":
        clash = set(self.names()) & set(other.names())
        if clash:
            raise ValueError(f"options declared twice: {sorted(clash)}")
        return OptionSet(self.options + other.options)

    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    def get(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(name)

    def for_hosts(self) -> "OptionSet":
        return OptionSet(tuple(o for o in self.options if o.hosts))

    def validate(self, values: Mapping[str, Any], *, model: str | None = None) -> dict[str, Any]:
        """Check every value; unknown names are refused with the list of known ones."""
        unknown = sorted(set(values) - set(self.names()))
        if unknown:
            who = model or "this model"
            close = difflib.get_close_matches(unknown[0], self.names(), n=1)
            hint = f" (did you mean {option_ref(close[0])}?)" if close else ""
            known = ", ".join(option_ref(n) for n in self.names()) or "none"
            raise InvalidOption(
                f"unknown option(s) {', '.join(option_ref(u) for u in unknown)} for {who}{hint}; its options are: {known}",
                option=unknown[0], model=model,
            )
        return {k: self.get(k).check(v, model=model) for k, v in values.items()}

    def help_lines(self, indent: str = "  ") -> list[str]:
        return [indent + o.describe() for o in self.options]


def declare(*settings_classes: type) -> OptionSet:
    """The :class:`OptionSet` of one or more settings dataclasses built with :func:`option`."""
    out: list[Option] = []
    for cls in settings_classes:
        for f in dataclasses.fields(cls):
            meta = dict(f.metadata.get("option") or {})
            if not meta:
                continue
            kind, nullable = _type_from_annotation(f.type)
            out.append(Option(
                name=f.name, type=meta.pop("type") or kind, default=f.default, help=meta.pop("help"),
                nullable=meta.pop("nullable", nullable), **meta,
            ))
    names = [o.name for o in out]
    if len(set(names)) != len(names):
        raise ValueError(f"options declared twice: {sorted(n for n in names if names.count(n) > 1)}")
    return OptionSet(tuple(out))


_DECLARED: dict[type, OptionSet] = {}


def _declared(cls: type) -> OptionSet:
    if cls not in _DECLARED:
        _DECLARED[cls] = declare(cls)
    return _DECLARED[cls]


def check_fields(instance: Any, *, model: str | None = None) -> None:
    """Check every declared field of a settings dataclass instance (call from ``__post_init__``)."""
    for opt in _declared(type(instance)):
        opt.check(getattr(instance, opt.name), model=model)
