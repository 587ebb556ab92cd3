"""Options declared as data: checks, text parsing and messages come from the declaration."""

from __future__ import annotations

import dataclasses

import pytest

from vs_superres import InvalidOption
from vs_superres.contracts.options import Option, OptionSet, check_fields, declare, option
from vs_superres.models.ultravsr.options import OPTIONS, UltraVSRSettings
from vs_superres.runtime.engine_options import engine_options, options_for
from vs_superres.runtime.registry import get_model


@dataclasses.dataclass(frozen=True)
class Example:
    size: int = option(8, "a size", minimum=8, multiple=8)
    mix: float | None = option(None, "a mix", minimum=0.0, maximum=1.0, exclusive_minimum=True)
    mode: str = option("a", "a mode", choices=("a", "b"))
    fast: bool = option(False, "go fast")

    def __post_init__(self):
        check_fields(self, model="example")


def test_declare_reads_types_defaults_and_ranges_from_the_dataclass():
    opts = declare(Example)
    assert opts.names() == ("size", "mix", "mode", "fast")
    size, mix, mode, fast = opts
    assert (size.type, size.default, size.range_text()) == ("int", 8, ">= 8, a multiple of 8")
    assert (mix.type, mix.nullable, mix.range_text()) == ("float", True, "in (0, 1]")
    assert mode.range_text() == "one of a, b" and fast.type == "bool"


@pytest.mark.parametrize("name,value,message", [
    ("size", 12, "size must be an integer >= 8, a multiple of 8, got 12"),
    ("size", True, "size must be an integer >= 8, a multiple of 8, got True"),
    ("mix", 0.0, "mix must be a number in (0, 1], got 0.0"),
    ("mix", float("nan"), "mix must be a number in (0, 1], got nan"),
    ("mode", "c", "mode must be one of a, b, got 'c'"),
    ("fast", 1, "fast must be True or False, got 1"),
])
def test_bad_values_are_refused_by_name_with_the_declared_range(name, value, message):
    with pytest.raises(InvalidOption) as e:
        Example(**{name: value})
    assert str(e.value) == message and e.value.option == name and e.value.model == "example"


def test_text_forms_parse_to_typed_values():
    opts = declare(Example)
    assert opts.get("size").parse("16") == 16
    assert opts.get("mix").parse("none") is None and opts.get("mix").parse("0.5") == 0.5
    assert opts.get("fast").parse("yes") is True and opts.get("fast").parse("0") is False
    with pytest.raises(InvalidOption, match="size must be an integer"):
        opts.get("size").parse("sixteen")


def test_unknown_names_get_a_suggestion_and_the_list():
    with pytest.raises(InvalidOption, match=r"unknown option\(s\) sise for m \(did you mean size\?\); its options are: size, mix, mode, fast"):
        declare(Example).validate({"sise": 8}, model="m")


def test_option_sets_refuse_a_name_twice():
    a = OptionSet((Option("x", "int", 1, "x"),))
    with pytest.raises(ValueError, match="declared twice"):
        a + a


def test_ultravsr_settings_are_its_declared_options():
    assert set(UltraVSRSettings.names()) <= set(OPTIONS.names())
    assert OPTIONS.get("strength").range_text() == "in (0, 1]"
    from vs_superres.numerics.colorfix import COLOR_FIX_MODES

    assert OPTIONS.get("color_fix").choices == COLOR_FIX_MODES  # declared without torch, must agree


def test_engine_options_follow_the_model_kind():
    assert "tile" in engine_options(get_model("ditn-real-x4")).names()
    assert "window" not in engine_options(get_model("ditn-real-x4")).names()
    video = engine_options(get_model("ultravsr")).names()
    assert "window" in video and "tile" not in video and "batch" not in video
    assert "strength" in options_for(get_model("ultravsr")).names()


def test_an_option_several_families_declare_is_one_flag_explained_by_the_model_s_family(capsys):
    """``--checkpoint`` means PatchScaler's or UltraVSR's checkpoint, by --model: one flag, whose
    help is the chosen model's family's alone (never another family's with "for ultravsr:")."""
    from vs_superres.cli import build_parser

    def upscale_help(model: str) -> str:
        argv = ["upscale", "--model", model]
        parser = build_parser(argv)
        return parser._subparsers._group_actions[0].choices["upscale"].format_help()  # type: ignore[union-attr]

    for model, own, other in (("ultravsr", "UltraVSR checkpoint", "PatchScaler checkpoint"),
                              ("patchscaler-x4", "PatchScaler checkpoint", "UltraVSR checkpoint")):
        text = upscale_help(model)
        flat = " ".join(text.split())
        assert [line.split()[0] for line in text.splitlines() if line.strip().startswith("--checkpoint")] == ["--checkpoint"]
        assert own in flat and other not in flat and "for ultravsr" not in flat and "for patchscaler" not in flat
    # every model's flag is accepted whichever help was shown
    parsed = build_parser().parse_args(["upscale", "a.png", "b.png", "--checkpoint", "c.safetensors"])
    assert parsed.checkpoint == "c.safetensors"


def test_bool_options_have_both_spellings():
    """A bool option on by default (UltraVSR's merge_lora) must be switchable off from the
    command line, and messages name the spelling that was typed."""
    from vs_superres.cli import build_parser
    from vs_superres.hostkit.flags import flag_spelling

    parser = build_parser()
    base = ["upscale", "in.png", "out.png", "--model", "ultravsr"]
    assert parser.parse_args(base + ["--no-merge-lora"]).merge_lora == "false"
    assert parser.parse_args(base + ["--merge-lora"]).merge_lora == "true"
    assert parser.parse_args(base).merge_lora is None  # not given: the declared default applies
    assert flag_spelling("merge_lora", "false") == "--no-merge-lora"
    assert flag_spelling("merge_lora", "true") == "--merge-lora"
