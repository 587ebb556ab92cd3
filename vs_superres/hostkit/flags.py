"""Command-line flags derived from the declared options, for every host that has a command line.

The ``superres`` CLI (its Ray flags included) and the FFmpeg bridge's ``superres-filter`` both offer one
``--name-with-dashes`` flag per declared option (the engine's, then each family's, grouped by
family), parse each value with its declaration, and name options in messages the way their
users type them. This is the one place that does it, so the two can never disagree.
"""

from __future__ import annotations

import argparse
from typing import Any, Iterable

from vs_superres.contracts.errors import InvalidOption
from vs_superres.contracts.options import Option
from vs_superres.runtime import registry
from vs_superres.runtime.engine_options import ENGINE_OPTIONS


def family_options() -> dict[str, Option]:
    """Every host-facing option of every registered family, by name (first declaration wins;
    families that share a name declare the same type, which ``tests/test_options.py`` checks)."""
    out: dict[str, Option] = {}
    for family in registry.default_registry().families():
        for opt in family.options.for_hosts():
            out.setdefault(opt.name, opt)
    return out


def declared_options() -> dict[str, Option]:
    """The engine's options, then every family's, by name."""
    return {**{o.name: o for o in ENGINE_OPTIONS}, **family_options()}


def add_option_flag(parser, opt: Option, also: Iterable[str] = ()) -> None:
    """``--name-with-dashes``, explained from the declaration (``also``: what the same name
    means to other families). The value stays text until :func:`given` parses it."""
    flag = "--" + opt.name.replace("_", "-")
    rng = opt.range_text()
    text = f"{opt.help} ({rng + '; ' if rng else ''}default {opt.default!r})"
    others = list(also)
    if others:
        text += "; for " + "; for ".join(others)
    text = text.replace("%", "%%")
    if opt.type == "bool":
        # Both spellings, so that an option on by default can be switched off (--no-merge-lora).
        parser.add_argument(flag, dest=opt.name, action="store_const", const="true", default=None, help=text)
        parser.add_argument("--no-" + flag[2:], dest=opt.name, action="store_const", const="false",
                            default=None, help=f"switch {flag} off")
    else:
        parser.add_argument(flag, dest=opt.name, default=None, metavar=opt.type.upper(), help=text)


def add_engine_flags(parser) -> None:
    for opt in ENGINE_OPTIONS:
        add_option_flag(parser, opt)


def add_family_flags(parser: argparse.ArgumentParser, model_flag: str = "--model") -> None:
    """One flag per declared family option (``--frames-per-batch``), in a group per family."""
    added: set[str] = set()
    reg = registry.default_registry()
    for family in reg.families():
        opts = [o for o in family.options.for_hosts() if o.name not in added]
        if not opts:
            continue
        models = ", ".join(m.name for m in reg.models_of(family.name))
        group = parser.add_argument_group(family.title or family.name, f"options of {models} ({model_flag} {models})")
        for opt in opts:
            added.add(opt.name)
            # A name several families declare is one flag; its help says what it means to each.
            others = [f"{other.name}: {other.options.get(opt.name).help}" for other in reg.families()
                      if other is not family and opt.name in other.options.for_hosts()]
            add_option_flag(group, opt, also=others)


def given(args: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """The options of ``options`` given on the command line, parsed by their declarations."""
    return {o.name: o.parse(getattr(args, o.name)) for o in options if getattr(args, o.name, None) is not None}


def given_text(args: argparse.Namespace, names: Iterable[str]) -> dict[str, str]:
    """The flags of ``names`` given on the command line, as the raw text typed."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def flag_spelling(name: str, value: str | None) -> str:
    """How a command line writes option ``name`` in a message (``--strength D``), so errors
    raised deep in the engine name the flag the user typed, not a Python keyword."""
    declared = declared_options()
    if name not in declared:  # a Python-only option (a callable): only -O could name it
        return f"-O {name}={value}" if value is not None else name
    flag = "--" + name.replace("_", "-")
    if declared[name].type == "bool":
        if value in (None, "True", "true"):
            return flag
        return "--no-" + flag[2:] if value in ("False", "false") else f"-O {name}={value}"
    return flag if value is None else f"{flag} {value}"


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """Model options given on the command line (only those given), typed by their declaration:
    the per-option flags, then each ``-O KEY=VALUE`` (``args.model_option``)."""
    declared = family_options()
    options = given(args, declared.values())
    for item in getattr(args, "model_option", None) or ():
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InvalidOption(f"-O takes KEY=VALUE, got {item!r}", option="-O")
        # Unknown names go through as text; the model refuses them with its list of options.
        options[key] = declared[key].parse(value) if key in declared else value.strip()
    return options


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The engine options given on the command line, typed by their declaration."""
    return given(args, ENGINE_OPTIONS)
