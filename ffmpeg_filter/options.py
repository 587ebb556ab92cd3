"""The filter's options, derived from the declarations: ffmpeg's ``superres=key=value:...``
syntax and ``--flag VALUE`` flags are two spellings of the same declared options.

Nothing here lists a model's options: the engine's come from
:data:`vs_superres.runtime.engine_options.ENGINE_OPTIONS`, the models' from every registered
family's ``options.for_hosts()``, and each value is parsed and checked by its
:meth:`Option.parse`, exactly as the ``superres`` CLI does.
"""

from __future__ import annotations

import argparse
import difflib
from typing import Any

from vs_superres.contracts.errors import InvalidOption
from vs_superres.contracts.options import Option
from vs_superres.hostkit.flags import add_engine_flags, add_family_flags, declared_options, flag_help, given_text
from vs_superres.runtime import registry
from vs_superres.runtime.engine_options import ENGINE_OPTIONS
from vs_superres.runtime.registry import default_model

FILTER_NAME = "superres"


def split_filter_args(text: str) -> list[str]:
    """Split ``a=1:b='x:y':c=p\\:q`` at unescaped, unquoted colons, the way libavfilter
    reads a filter's arguments (``\\`` escapes one character, ``'...'`` quotes)."""
    parts, current, quoted, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i + 1])
            i += 2
            continue
        if ch == "'":
            quoted = not quoted
        elif ch == ":" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if quoted:
        raise InvalidOption(f"unbalanced quote in the filter arguments {text!r}; close every '...'")
    parts.append("".join(current))
    return parts


def parse_filter(text: str) -> dict[str, str]:
    """``superres=model=X:tile=256`` (the ``superres=`` prefix is optional) -> raw values.

    A first argument without ``=`` is the model, as ffmpeg filters take their first option
    positionally (``superres=ditn-real-x4:tile=256``).
    """
    text = text.strip()
    name, sep, args = text.partition("=")
    # ffmpeg's instance syntax, superres@name, names the same filter
    if sep and name.split("@", 1)[0] == FILTER_NAME:
        text = args
    elif text.split("@", 1)[0] == FILTER_NAME:
        return {}
    values: dict[str, str] = {}
    for index, item in enumerate(split_filter_args(text)):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            if index == 0:
                values["model"] = key
                continue
            raise InvalidOption(f"filter argument {item!r} has no value; write key=value "
                                f"(e.g. tile=256)", option=item)
        values[key.strip().replace("-", "_")] = value
    return values


def engine_arguments(values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(model, keyword arguments for Upscaler)`` from raw text values, each parsed by its
    declaration; unknown names are refused with the list of known ones."""
    declared = declared_options()
    raw = dict(values)
    given = raw.pop("model", None)
    if given is not None and not str(given).strip():
        raise InvalidOption("model= is empty; name a model (e.g. model=" + default_model() + ", see "
                            "`superres models list`) or a checkpoint path, or leave model out for the default",
                            option="model")
    model = str(given or default_model())
    unknown = sorted(k for k in raw if k not in declared)
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(declared), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise InvalidOption(
            f"unknown filter option {unknown[0]}{hint}; the options are: model, "
            + ", ".join(declared) + "; see superres-filter --help", option=unknown[0])
    return model, {k: declared[k].parse(str(v)) if isinstance(v, str) else v for k, v in raw.items()}


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """``--model`` and one ``--name-with-dashes`` flag per declared option: the engine's are
    listed in ``--help``; every family's are accepted and explained in the epilog, family by
    family (:func:`filter_syntax_help`), so a name two families share is never one help text
    filed under the wrong family."""
    parser.add_argument("-m", "--model", default=None,
                        help=f"registered model name or checkpoint path (default {default_model()})")
    add_engine_flags(parser.add_argument_group("engine options"))
    add_family_flags(parser, model_flag="-m")


def given_flags(args: argparse.Namespace) -> dict[str, str]:
    """The option flags given on the command line, as raw text (``model`` included)."""
    return given_text(args, ["model", *declared_options()])


def option_line(opt: Option, width: int = 24) -> str:
    """``  name=TYPE   help (range; default D)``: an option in the filter's own syntax."""
    usage = f"{opt.name}={opt.type.upper()}"
    pad = " " * (width - len(usage)) if len(usage) < width else "\n" + " " * (width + 2)
    return f"  {usage}{pad}{flag_help(opt)}"


def filter_syntax_help(*, families: bool = True) -> str:
    """The ``key=value`` names, for ``--help``'s epilog: the engine's, then each family's own
    (``families=False``: a pointer to ``superres models show NAME`` instead)."""
    lines = ["filter syntax: superres=model=NAME:key=value:... (the same names as the flags, "
             "with underscores), e.g.", "  superres=model=ditn-real-x4:tile=256:dtype=fp16", "",
             "engine options:", f"  {'model=NAME':<24}registered model name or checkpoint path (default {default_model()})"]
    lines += [option_line(o) for o in ENGINE_OPTIONS]
    reg = registry.default_registry()
    if not families:
        lines += ["", "model options: each model's own, listed by `superres models show NAME` (as flags: "
                  "write them here with underscores, e.g. unet_tile=64)"]
        return "\n".join(lines)
    for family in reg.families():
        own = family.options.for_hosts()
        if not len(own):
            continue
        models = [m.name for m in reg.models(include_diagnostic=True) if m.family == family.name]
        lines += ["", f"{family.title or family.name} options (model={'|'.join(models) or family.name}; "
                  "also as flags, --name-with-dashes VALUE):"]
        lines += [option_line(o) for o in own]
    return "\n".join(lines)
