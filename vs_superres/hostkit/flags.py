"""Command-line flags derived from the declared options, for every host that has a command line.

The ``superres`` CLI (its Ray flags included) and the FFmpeg bridge's ``superres-filter`` both offer one
``--name-with-dashes`` flag per declared option (the engine's, then every family's), parse each
value with its declaration, and name options in messages the way their users type them.
``--help`` lists the engine's flags and one family's (the model's); every family's list is
:func:`option_lines` (``superres models show NAME``). This is the one place that does it, so
the hosts can never disagree.
"""

from __future__ import annotations

import argparse
from typing import Any, Iterable

from vs_superres.contracts.errors import InvalidOption
from vs_superres.contracts.descriptor import ModelFamily
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


def default_text(opt: Option) -> str:
    """The declared default as a command line shows it: ``on``/``off`` for a bool, the value
    otherwise (quoted when text), ``""`` when the default is "unset" (the help says what then)."""
    if opt.default is None:
        return ""
    if opt.type == "bool":
        return "on" if opt.default else "off"
    return repr(opt.default)


def flag_help(opt: Option) -> str:
    """An option's help as a flag shows it: ``help (range; default D)``, never a Python ``None``."""
    details = [part for part in (opt.range_text(), f"default {default_text(opt)}" if default_text(opt) else "") if part]
    return f"{opt.help} ({'; '.join(details)})" if details else opt.help


def flag_usage(opt: Option) -> str:
    """``--name-with-dashes TYPE`` (a bool: ``--name``/``--no-name``)."""
    flag = "--" + opt.name.replace("_", "-")
    if opt.type == "bool":
        return f"{flag}, --no-{flag[2:]}"
    return f"{flag} {opt.type.upper()}"


def add_option_flag(parser, opt: Option, *, listed: bool = True) -> None:
    """``--name-with-dashes``, explained from the declaration; ``listed=False`` accepts the flag
    without listing it in ``--help`` (another family's option: its own help lists it). The
    value stays text until :func:`given` parses it."""
    flag = "--" + opt.name.replace("_", "-")
    text = flag_help(opt).replace("%", "%%") if listed else argparse.SUPPRESS
    if opt.type == "bool":
        # Both spellings, so that an option on by default can be switched off (--no-merge-lora).
        parser.add_argument(flag, dest=opt.name, action="store_const", const="true", default=None, help=text)
        parser.add_argument("--no-" + flag[2:], dest=opt.name, action="store_const", const="false",
                            default=None, help=f"switch {flag} off" if listed else argparse.SUPPRESS)
    else:
        parser.add_argument(flag, dest=opt.name, default=None, metavar=opt.type.upper(), help=text)


def add_engine_flags(parser) -> None:
    for opt in ENGINE_OPTIONS:
        add_option_flag(parser, opt)


def family_of(model: str | None) -> ModelFamily | None:
    """The family of a registered model name (None for a checkpoint path or an unknown name:
    only reading the file would tell)."""
    reg = registry.default_registry()
    if model is None or model not in reg:
        return None
    return reg.family(reg.get(model).family)


def family_heading(family: ModelFamily, model_flag: str = "--model") -> tuple[str, str]:
    """The title and description of a family's group of flags."""
    models = [m.name for m in registry.default_registry().models(include_diagnostic=True) if m.family == family.name]
    title = f"{family.title or family.name} options"
    if not models:
        return title, f"options of the {family.name} family"
    return title, f"options of {', '.join(models)} ({model_flag} {models[0] if len(models) == 1 else 'NAME'})"


def add_family_flags(parser: argparse.ArgumentParser, model_flag: str = "--model", *,
                     listed: ModelFamily | None = None) -> None:
    """One flag per declared family option (``--frames-per-batch``). Every family's flags are
    accepted (the model refuses those that are not its own, naming its options); ``--help``
    lists only ``listed``'s, in a group of their own, so the help stays short and every option
    is explained by the family it belongs to (a name two families declare is one flag, shown
    with the help of the family listed)."""
    added: set[str] = set()
    if listed is not None and len(listed.options.for_hosts()):
        group = parser.add_argument_group(*family_heading(listed, model_flag))
        for opt in listed.options.for_hosts():
            added.add(opt.name)
            add_option_flag(group, opt)
    for family in registry.default_registry().families():
        for opt in family.options.for_hosts():
            if opt.name not in added:
                added.add(opt.name)
                add_option_flag(parser, opt, listed=False)


def option_lines(options: Iterable[Option], indent: str = "  ", width: int = 26) -> list[str]:
    """``--flag TYPE   help (range; default D)``, one line per option (``superres models show``,
    the filters' epilogs)."""
    lines = []
    for opt in options:
        usage = flag_usage(opt)
        pad = " " * max(1, width - len(usage)) if len(usage) < width else "\n" + indent + " " * width
        lines.append(f"{indent}{usage}{pad}{flag_help(opt)}")
    return lines


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
