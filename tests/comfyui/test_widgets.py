"""Widgets several families share, seeds the frontend must not randomise, the model list, and
the example workflows generated from the nodes' definitions."""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import REPO

from vs_superres.comfy_nodes.model_files import ModelFileFilter, safetensors_format
from vs_superres.contracts.errors import WeightsError
from vs_superres.numerics.checkpoints import MAX_SAFETENSORS_DEPTH, safetensors_header, safetensors_metadata
from vs_superres.runtime.registry import default_registry


def _generator():
    spec = importlib.util.spec_from_file_location("comfy_workflows", REPO / "tools" / "comfy_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _declarers(name: str) -> list[tuple[str, str]]:
    """``(family title, help)`` of every family that declares option ``name``."""
    return [(f.title or f.name, o.help) for f in default_registry().families() for o in f.options.for_hosts() if o.name == name]


@pytest.mark.parametrize("name", ["checkpoint", "seed", "color_fix"])
def test_a_shared_widget_says_what_it_means_to_each_family(comfy, name):
    tooltip = comfy.object_info("SuperResModelLoader")["input"]["required"][name][1]["tooltip"]
    (first, first_help), *others = _declarers(name)
    assert others, f"{name} is declared by one family only: this test needs a shared option"
    assert tooltip.startswith(f"{first}: {first_help}"), tooltip
    for family, help_text in others:
        assert f"; for {family}: {help_text}" in tooltip, (family, tooltip)


def test_seed_is_never_randomised_by_the_frontend(comfy):
    required = comfy.object_info("SuperResModelLoader")["input"]["required"]
    assert required["seed"][0] == "INT" and required["seed"][1]["control_after_generate"] is False
    # Only seeds get the flag: other INT widgets have no control widget to turn off.
    assert "control_after_generate" not in required["tau_hard"][1]


def test_shipped_workflows_are_what_the_generator_writes(tmp_path):
    """Regenerate with `python tools/comfy_workflows.py` when a family changes its options."""
    gen = _generator()
    built = gen.build()
    assert sorted(built) == sorted(p.name for p in (REPO / "comfy_nodes" / "workflows").glob("*.json"))
    for name, text in built.items():
        assert (REPO / "comfy_nodes" / "workflows" / name).read_text() == text, f"{name} is stale"
    assert gen.main(["--check"]) == 0
    (tmp_path / "upscale_image.json").write_text("{}\n")
    assert gen.main(["--check", "--out", str(tmp_path)]) == 1
    assert (tmp_path / "upscale_image.json").read_text() == "{}\n"  # --check writes nothing
    assert gen.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(built)


def test_generated_loader_values_follow_the_widgets():
    gen = _generator()
    registry = gen.builtin_registry()
    assert gen.example_loader(registry) == "SuperResLoadDITN"
    ports = [p for p in gen.our_ports("SuperResLoadDITN", registry) if p.is_widget]
    loader = next(n for n in json.loads(gen.build()["upscale_image.json"])["nodes"] if n["type"] == "SuperResLoadDITN")
    values = loader["widgets_values"]
    assert len(values) == len(ports)
    by_name = dict(zip((p.name for p in ports), values))
    assert by_name == {p.name: gen.EXAMPLE_LOADER.get(p.name, p.default) for p in ports}
    assert by_name == {"model": "ditn-real-x4", "device": "auto", "dtype": "fp32", "backend": "torch"}
    with pytest.raises(SystemExit, match="no widget"):
        gen.widget_values(ports, {"no_such_widget": 1})
    with pytest.raises(SystemExit, match="not one of"):
        gen.widget_values(ports, {"backend": "sepia"})
    # the legacy loader (every family's widgets) still generates, its seed with no "control after generate" value
    legacy = [p for p in gen.our_ports("SuperResModelLoader", registry) if p.is_widget]
    saved = json.loads((REPO / "tests" / "comfyui" / "data" / "saved_before_issue24_upscale_image.json").read_text())
    saved_values = next(n for n in saved["nodes"] if n["type"] == "SuperResModelLoader")["widgets_values"]
    assert gen.widget_values(legacy, gen.EXAMPLE_LOADER) == saved_values  # today's layout, value for value


def _safetensors(path, metadata=None):
    from safetensors.torch import save_file
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.zeros(2)}, str(path), metadata=metadata)
    return path


def test_model_file_filter(tmp_path):
    root = tmp_path / "superres"
    _safetensors(root / "ditn_x4.safetensors")
    _safetensors(root / "mine" / "ps.safetensors", {"format": "vs-superres/patchscaler", "config": "{}"})
    _safetensors(root / "mine" / "uvsr.safetensors", {"format": "vs-superres/ultravsr"})
    _safetensors(root / "mine" / "other.safetensors", {"format": "pt"})
    _safetensors(root / "vae" / "diffusion_pytorch_model.safetensors")
    (root / "vae" / "config.json").write_text("{}")
    _safetensors(root / "sd" / "unet" / "deep" / "diffusion_pytorch_model.safetensors")
    (root / "sd" / "model_index.json").write_text("{}")
    (root / "old.pth").write_bytes(b"\x80\x02}q\x00.")  # not safetensors: never read as one
    assert safetensors_format(str(root / "mine" / "ps.safetensors")) == "vs-superres/patchscaler"
    assert safetensors_format(str(root / "ditn_x4.safetensors")) is None
    for bad in ("old.pth", "missing.safetensors"):  # not safetensors: said, never guessed
        with pytest.raises(WeightsError, match="is not a readable safetensors file"):
            safetensors_format(str(root / bad))
    keep = ModelFileFilter()
    names = ["ditn_x4.safetensors", "mine/ps.safetensors", "mine/uvsr.safetensors", "mine/other.safetensors",
             "vae/diffusion_pytorch_model.safetensors", "sd/unet/deep/diffusion_pytorch_model.safetensors", "old.pth"]
    assert [n for n in names if keep.is_model(str(root), n)] == ["ditn_x4.safetensors", "mine/other.safetensors", "old.pth"]


@pytest.mark.parametrize("depth", [MAX_SAFETENSORS_DEPTH + 1, 100, 200_000])
def test_the_safetensors_header_reader_bounds_nesting(tmp_path, depth):
    """One bounded reader for the runtime and the model list: deep JSON is refused before it
    is parsed (json.loads would exhaust its recursion), with the file named."""
    text = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    path = tmp_path / "deep.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text)
    with pytest.raises(WeightsError, match=f"deep.safetensors.*nested at most {MAX_SAFETENSORS_DEPTH} levels"):
        safetensors_header(path)
    assert safetensors_metadata(path) == {}
    ok = b'{"__metadata__": {"format": "[[[[[[[[[[[[[[[[[[[[[[[[[[[["}, "w": {"shape": [[[[[[[[[]]]]]]]]]}}'
    path.write_bytes(len(ok).to_bytes(8, "little") + ok)
    assert safetensors_metadata(path) == {"format": "[" * 28}  # brackets in strings are text


def test_the_safetensors_header_reader_bounds_length(tmp_path):
    path = tmp_path / "long.safetensors"
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(WeightsError, match="header length .* is outside"):
        safetensors_header(path)
    path.write_bytes((100).to_bytes(8, "little") + b"{}")
    with pytest.raises(WeightsError, match="ends inside its 100-byte header"):
        safetensors_header(path)
