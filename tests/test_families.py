"""Families, descriptors, configs and the registry: declared once, frozen, serialisable."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vs_superres import InvalidOption, SuperResError, UnsupportedFormat, WeightsError
from vs_superres.contracts.config import FrozenDict
from vs_superres.contracts.descriptor import ModelDescriptor
from vs_superres.runtime import registry
from vs_superres.runtime.families import register_module
from vs_superres.runtime.registry import Registry, get_model, list_models

TOY_ENV = {**os.environ, "SUPERRES_FAMILIES": os.pathsep.join(["families.temporal_mean", "families.toy_gain"])}


@pytest.mark.parametrize("name", [m.name for m in list_models(include_diagnostic=True)])
def test_every_config_survives_a_json_round_trip(name):
    desc = get_model(name)
    family = registry.family(desc.family)
    data = json.loads(json.dumps(desc.config.to_dict()))
    again = family.config_type.from_dict(data)
    assert again == desc.config and again.scale == desc.scale
    with pytest.raises(InvalidOption, match="has no field"):
        family.config_type.from_dict({**data, "nonsense": 1})


def test_sub_network_configs_round_trip_too():
    from vs_superres.models.ultravsr.clip import RN50_CONFIG, TINY_CONFIG, ClipConfig

    for config in (RN50_CONFIG, TINY_CONFIG):
        assert ClipConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_descriptors_hold_no_shared_mutable_state():
    desc = get_model("ultravsr")
    assert isinstance(desc.config.unet, FrozenDict)
    with pytest.raises(TypeError):
        desc.config.unet["sample_size"] = 8  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_model("ditn-real-x4").config.dim = 8  # type: ignore[misc]
    changed = dataclasses.replace(get_model("ditn-real-x4"), config=get_model("ditn-real-x4").config.replace(dim=8))
    assert changed.config.dim == 8 and get_model("ditn-real-x4").config.dim == 60
    # what the diffusers constructors get is a fresh mutable copy, every time
    unet = desc.config.unet.thaw()
    unet["sample_size"] = 1
    assert desc.config.unet["sample_size"] != 1


def test_registry_refuses_duplicates_and_unknown_families():
    reg = Registry()
    register_module(reg, "families.toy_gain")
    with pytest.raises(ValueError, match="registered twice"):
        register_module(reg, "families.toy_gain")
    with pytest.raises(ValueError, match="family 'nope' is not registered"):
        reg.add_model(ModelDescriptor(name="x", family="nope", config=get_model("ditn-real-x4").config))
    with pytest.raises(TypeError, match="config is not a ToyGainConfig"):
        reg.add_model(dataclasses.replace(reg.get("toy-gain-x2"), name="y", config=get_model("ditn-real-x4").config))


def test_errors_have_types_and_fields():
    from vs_superres import Upscaler

    with pytest.raises(InvalidOption) as e:
        Upscaler("ultravsr", device="cpu", unet_tiles=3)
    assert e.value.option == "unet_tiles" and e.value.model == "ultravsr"
    with pytest.raises(InvalidOption) as e:
        Upscaler("ditn-real-x4", device="cpu", window=4)
    assert e.value.option == "window"
    with pytest.raises(WeightsError):
        Upscaler("ditn-real-x4", device="cpu", weights="/nonexistent/DITN.pth")
    assert issubclass(UnsupportedFormat, SuperResError) and issubclass(WeightsError, SuperResError)
    prefixed = InvalidOption("bad", option="tile", model="m").with_prefix("superres.DITN")
    assert isinstance(prefixed, InvalidOption) and str(prefixed) == "superres.DITN: bad" and prefixed.option == "tile"


def test_a_toy_family_reaches_every_host_through_its_declaration(tmp_path):
    """One file and one registration line: the CLI flag, -O, its range check, the Python API and
    the VapourSynth signature all come from the toy's declared option."""
    help_text = subprocess.run([sys.executable, "-m", "vs_superres.cli", "upscale", "--model", "toy-gain-x2", "--help"], env=TOY_ENV,
                               capture_output=True, text=True, timeout=120).stdout
    assert "--gain FLOAT" in help_text and "in [0, 2]" in " ".join(help_text.split())

    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    pixels = (np.arange(4 * 6 * 3).reshape(4, 6, 3) * 3).astype(np.uint8)
    Image.fromarray(pixels).save(src)
    run = subprocess.run([sys.executable, "-m", "vs_superres.cli", "upscale", str(src), str(dst), "--model",
                          "toy-gain-x2", "--gain", "0.5", "-q"], env=TOY_ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = np.asarray(Image.open(dst))
    expected = np.round(pixels.repeat(2, 0).repeat(2, 1) / 255 * 0.5 * 255)
    assert out.shape == (8, 12, 3) and np.abs(out - expected).max() <= 1

    bad = subprocess.run([sys.executable, "-m", "vs_superres.cli", "upscale", str(src), str(dst), "--model",
                          "toy-gain-x2", "-O", "gain=3"], env=TOY_ENV, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "gain must be a number in [0, 2], got 3" in bad.stderr

    code = ("from vs_superres.vapoursynth.signatures import signature\n"
            "print(signature('ToyGain'))\nprint(signature('Upscale'))")
    sig = subprocess.run([sys.executable, "-c", code], env=TOY_ENV, capture_output=True, text=True, timeout=120)
    toy, anything = sig.stdout.splitlines()
    assert "gain:float:opt;" in toy and "strength" not in toy and "window" not in toy
    assert "gain:float:opt;" in anything and "strength:float:opt;" in anything


def test_help_of_the_python_api_lists_every_family_option():
    from vs_superres import Upscaler

    doc = Upscaler.__doc__
    for fam in registry.default_registry().families():
        for opt in fam.options:
            assert opt.describe() in doc, opt.name
    assert "strength (float or None, in (0, 1]; default None)" in doc
