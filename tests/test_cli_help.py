"""The ``superres`` command line as a new user meets it (#23 item 4): a short ``--help`` that
lists the engine's options and the chosen model's, every model's full list on request, every
subcommand's ``--help``, no Python ``None`` in what users read, ``--debug`` anywhere (ours
alone), and a reader that goes away (``| head -1``) as a quiet exit."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vs_superres.cli import build_parser
from vs_superres.hostkit.exits import ExitStatus
from vs_superres.runtime import registry

FAMILIES = {f.name: f for f in registry.default_registry().families()}


def superres(*args, stdout=subprocess.PIPE, timeout=120):
    return subprocess.run([sys.executable, "-m", "vs_superres.cli", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def listed_flags(help_text: str) -> list[str]:
    """The flags ``--help`` explains (one per option line), in order."""
    return [m.group(1) for m in re.finditer(r"^  (-{1,2}[\w-]+)", help_text, re.M)]


def flags_of(family) -> list[str]:
    return ["--" + o.name.replace("_", "-") for o in family.options.for_hosts()]


def test_upscale_help_is_short_engine_and_default_model_options_only():
    run = superres("upscale", "--help")
    assert run.returncode == 0, run.stderr
    text = run.stdout
    flags = listed_flags(text)
    assert len(flags) == len(set(flags)), [f for f in flags if flags.count(f) > 1]
    for engine in ("--device", "--dtype", "--tile", "--overlap", "--batch", "--weights", "--model", "-O"):
        assert engine in flags, engine
    default = FAMILIES[registry.get_model(registry.default_model()).family]
    own = set(flags_of(default))
    assert own <= set(flags)
    other_families = {f for name, fam in FAMILIES.items() if name != default.name for f in flags_of(fam)} - own
    assert not other_families & set(flags)
    assert not other_families & set(re.findall(r"--[\w-]+", text.split("input output")[0]))  # nor in the usage line
    assert "superres models show NAME" in text and "superres upscale --model NAME --help" in text
    # what makes it long is the other families' options: none of them, and no "for ultravsr:" texts
    assert "for ultravsr" not in text and "for patchscaler" not in text


@pytest.mark.parametrize("model", ["ultravsr", "patchscaler-x4"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_named_model_s_help_lists_its_family_s_options_once_each(model, where):
    args = ["upscale", "--model", model, "--help"] if where == "before" else ["upscale", "--help", "--model", model]
    run = superres(*args)
    assert run.returncode == 0, run.stderr
    family = FAMILIES[registry.get_model(model).family]
    text = run.stdout
    section = text[text.index(f"{family.title} options:"):]
    flags = listed_flags(text)
    assert len(flags) == len(set(flags)), [f for f in flags if flags.count(f) > 1]
    for flag in flags_of(family):
        assert flag in listed_flags(section), flag
    flat = " ".join(text.split())
    # a name two families declare is explained by this family only
    other = "PatchScaler checkpoint" if family.name == "ultravsr" else "UltraVSR checkpoint"
    assert other not in flat and "for ultravsr" not in flat and "for patchscaler" not in flat
    assert f"{family.title} checkpoint" in flat


def test_models_show_gives_a_model_s_every_option_and_its_weights():
    run = superres("models", "show", "ultravsr")
    assert run.returncode == 0, run.stderr
    for flag in flags_of(FAMILIES["ultravsr"]):
        assert re.search(rf"^  {re.escape(flag)}[ ,]", run.stdout, re.M), flag
    assert "--window INT" in run.stdout and "--tile INT" not in run.stdout  # the engine options that apply
    assert "ultravsr/UltraVSR.pkl" in run.stdout and "or give --base PATH" in run.stdout
    family = superres("models", "show", "patchscaler")  # a family's name
    assert family.returncode == 0 and "patchscaler-x4" in family.stdout and "--gamma-simple FLOAT" in family.stdout
    unknown = superres("models", "show", "nope")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.startswith("superres: error: no model or family named 'nope'; models: ")
    assert len(unknown.stderr.splitlines()) == 1


def test_no_python_none_in_what_users_read():
    texts = {"superres --help": superres("--help").stdout, "models list": superres("models", "list").stdout}
    for model in [m.name for m in registry.list_models()]:
        texts[f"upscale --model {model} --help"] = superres("upscale", "--model", model, "--help").stdout
        texts[f"models show {model}"] = superres("models", "show", model).stdout
    for what, text in texts.items():
        assert text, what
        assert not re.search(r"\bNone\b", text), (what, [line for line in text.splitlines() if "None" in line])
    assert "sha256 None" not in texts["models list"] and "not hashed" in texts["models list"]


def _subcommand_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommand_paths(sub, (*prefix, name))


def test_every_subcommand_s_help_works(capsys):
    paths = list(_subcommand_paths(build_parser()))
    assert ("comfyui",) in paths and ("comfyui", "install") in paths and ("models", "show") in paths
    for path in [(), *paths]:
        with pytest.raises(SystemExit) as exit_info:
            build_parser([*path, "--help"]).parse_args([*path, "--help"])
        out = capsys.readouterr().out
        assert exit_info.value.code == 0, path
        assert out.startswith("usage: superres"), path
    # as a user types it (superres comfyui --help failed: "arguments are required: action, rest")
    run = superres("comfyui", "--help")
    assert run.returncode == 0 and "install" in run.stdout and run.stderr == ""


def test_positional_arguments_are_explained():
    text = superres("upscale", "--help").stdout
    section = text[text.index("positional arguments:"):text.index("options:")]
    assert re.search(r"^  input\s+\S", section, re.M) and re.search(r"^  output\s+\S", section, re.M)


@pytest.mark.parametrize("where", ["before", "after", "end"])
def test_debug_is_accepted_anywhere_and_only_our_logger_debugs(where, tmp_path):
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(src)
    job = ["upscale", src, dst, "--model", "temporal-mean-x2", "--device", "cpu", "-q"]
    args = {"before": ["--debug", *job], "after": [job[0], "--debug", *job[1:]], "end": [*job, "--debug"]}[where]
    run = superres(*args)
    assert run.returncode == 0, run.stderr
    assert dst.is_file()
    assert "STREAM b'IHDR'" not in run.stderr and "PIL" not in run.stderr  # Pillow's debug lines stay out
    listing = superres("models", "list", "--debug")
    assert listing.returncode == 0 and "ditn-real-x4" in listing.stdout


def test_a_reader_that_went_away_is_a_quiet_exit_141():
    """``superres models list | head -1``: the pipe's reader closes; nothing on stderr, status 141
    (the exit table's "output pipe closed")."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write meets a broken pipe
    try:
        run = subprocess.run([sys.executable, "-m", "vs_superres.cli", "models", "list"], stdout=write,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert run.returncode == ExitStatus.BROKEN_PIPE, run.stderr
    assert run.stderr == ""


def test_a_reader_that_takes_one_line_then_leaves(tmp_path):
    """The shell's own pipeline, as the issue ran it; the status of superres is the pipe's first."""
    script = f"{sys.executable} -m vs_superres.cli models list | head -1; echo \"status ${{PIPESTATUS[0]}}\" >&2"
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert len(run.stdout.splitlines()) == 1
    status = int(run.stderr.strip().splitlines()[-1].split()[-1])
    assert status in (0, ExitStatus.BROKEN_PIPE), run.stderr  # 0 when head read everything first
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr and "Exception ignored" not in run.stderr


def test_help_leaves_the_advanced_flags_to_help_all():
    short = superres("upscale", "--help")
    assert short.returncode == 0, short.stderr
    assert len(short.stdout.splitlines()) < 100
    assert "`superres upscale --help-all`" in short.stdout
    full = superres("upscale", "--help-all", "--model", "ultravsr")
    assert full.returncode == 0, full.stderr
    def mentions(text: str, flag: str) -> bool:
        return re.search(rf"[\s\[,]{re.escape(flag)}[\s\],]", text) is not None

    for flag in ("--ray", "--workers", "--bitrate", "-x264-params", "--no-resume", "--segment-seconds", "--scene-cuts",
                 "--strength"):
        assert not mentions(short.stdout, flag) and mentions(full.stdout, flag), flag
    # hidden from the short help, still accepted
    parsed = build_parser(["upscale"]).parse_args(["upscale", "a.mp4", "b.mkv", "--scene-cuts", "3", "-b:v", "4M"])
    assert parsed.scene_cuts == "3" and parsed.bitrate == "4M"
