"""The filter's options come from the declarations: every declared option is a flag and a
``key=value`` name, parsed and checked by its own :class:`Option`."""

from __future__ import annotations

import re

import pytest

from vs_superres.contracts.errors import InvalidOption
from vs_superres.ffmpeg_filter import options
from vs_superres.ffmpeg_filter.filter_cmd import build_parser
from vs_superres.runtime import registry
from vs_superres.runtime.registry import default_model
from vs_superres.runtime.engine_options import ENGINE_OPTIONS


def test_every_declared_option_is_a_flag_and_in_the_help():
    parser = build_parser()
    text = parser.format_help()
    reg = registry.default_registry()
    declared = list(ENGINE_OPTIONS) + [o for f in reg.families() for o in f.options.for_hosts()]
    assert len(declared) > len(ENGINE_OPTIONS)  # the families' options are there too
    flags = {s for action in parser._actions for s in action.option_strings}
    for opt in declared:
        assert "--" + opt.name.replace("_", "-") in flags, opt.name
    for opt in ENGINE_OPTIONS:
        assert "--" + opt.name.replace("_", "-") in text and f"  {opt.name}={opt.type.upper()}" in text, opt.name
    # each family's own list, with its own help: a shared name (checkpoint) explained by each
    epilog = text[text.index("filter syntax:"):]
    for family in reg.families():
        if not len(family.options.for_hosts()):
            continue
        section = epilog[epilog.index(f"{family.title} options (model="):]
        section = section.split("\n\n")[0]
        for opt in family.options.for_hosts():
            assert f"  {opt.name}={opt.type.upper()} " in section and opt.help in " ".join(section.split()), opt.name
    assert not re.search(r"\bNone\b", text) and "for ultravsr" not in text
    hidden = [o for f in reg.families() for o in f.options if not o.hosts]
    for opt in hidden:  # Python-only options (callables) are not offered
        assert "--" + opt.name.replace("_", "-") + " " not in text


def test_filter_syntax_parses_like_libavfilter():
    assert options.parse_filter("superres=model=ditn-real-x4:tile=256") == {"model": "ditn-real-x4", "tile": "256"}
    assert options.parse_filter("superres=ditn-real-x4:dtype=fp16") == {"model": "ditn-real-x4", "dtype": "fp16"}
    assert options.parse_filter(r"superres=weights=C\:/w/a.pth:prompt='a: b'") == {
        "weights": "C:/w/a.pth", "prompt": "a: b"}
    assert options.parse_filter("superres") == {}
    with pytest.raises(InvalidOption, match="unbalanced quote"):
        options.parse_filter("superres=prompt='open")


def test_values_are_parsed_by_their_declaration():
    model, kwargs = options.engine_arguments({"model": "ultravsr", "tile": "0", "window_overlap": "2",
                                              "strength": "0.25", "dtype": "bf16"})
    assert model == "ultravsr"
    assert kwargs == {"tile": 0, "window_overlap": 2, "strength": 0.25, "dtype": "bf16"}
    assert isinstance(kwargs["strength"], float) and isinstance(kwargs["tile"], int)
    with pytest.raises(InvalidOption, match="dtype must be one of fp32, fp16, bf16, got 'fp8'"):
        options.engine_arguments({"dtype": "fp8"})
    with pytest.raises(InvalidOption, match=r"unknown filter option tiel \(did you mean tile\?\)"):
        options.engine_arguments({"tiel": "3"})
    assert options.engine_arguments({})[0] == default_model()
