"""The ``core.superres`` signatures come from the option declarations, and stay free of torch.

No VapourSynth needed: this file also runs outside the Debian root (tests/vapoursynth/conftest.py
collects it everywhere). The expected arguments are built here from the declarations
themselves (the engine's ``ENGINE_OPTIONS`` and each family's ``OptionSet``, through
``options_for``, the engine's own answer to "what may a user set for this model"), not from
``signatures.function_options``, so a divergence between the plugin and the engine fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

#: VapourSynth has no bool and no path: 0/1 ints and data.
VS_TYPES = {"int": "int", "bool": "int", "float": "float", "str": "data", "path": "data"}
#: Engine options withheld from VapourSynth: under random access a filter renders one frame at a time.
WITHHELD = {"batch"}


@pytest.fixture(scope="module")
def plugin_view() -> dict:
    """What the C plugin sees when it loads: signatures() in a fresh process, and what that imported."""
    code = textwrap.dedent(
        """
        import json, sys
        from vs_superres.vapoursynth.signatures import signatures
        sigs = signatures()
        print(json.dumps({
            "signatures": sigs,
            "torch": "torch" in sys.modules,
            "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy", "diffusers", "transformers", "safetensors", "vapoursynth")),
            "bridge": "vs_superres.vapoursynth.bridge" in sys.modules,
        }))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_signatures_import_no_torch(plugin_view):
    assert plugin_view["torch"] is False, plugin_view["heavy"]
    assert plugin_view["heavy"] == [] and not plugin_view["bridge"], plugin_view["heavy"]


def parse(argstring: str) -> list[tuple[str, str]]:
    assert argstring.endswith(";"), argstring
    parts = [p.split(":") for p in argstring[:-1].split(";")]
    assert parts[0] == ["clip", "vnode"], argstring  # the clip first, required
    assert parts[1] == ["model", "data", "opt"], argstring
    for p in parts[1:]:
        assert len(p) == 3 and p[2] == "opt", (argstring, p)  # every other argument is optional
    names = [p[0] for p in parts]
    assert len(names) == len(set(names)), argstring
    return [(p[0], p[1]) for p in parts[2:]]


def expected(options) -> dict[str, str]:
    return {o.name: VS_TYPES[o.type] for o in options if o.hosts and o.name not in WITHHELD}


def test_each_family_function_takes_what_the_engine_takes_for_its_models(plugin_view):
    from vs_superres.runtime import registry
    from vs_superres.runtime.engine_options import options_for

    sigs = dict(plugin_view["signatures"])
    reg = registry.default_registry()
    families = {fam.title or fam.name: fam for fam in reg.families() if reg.models_of(fam.name)}
    assert list(sigs) == [*families, "Upscale"]
    assert {"DITN", "UltraVSR"} <= set(families)
    for title, fam in families.items():
        for desc in reg.models_of(fam.name):
            assert dict(parse(sigs[title])) == expected(options_for(desc)), (title, desc.name)


def test_ultravsr_takes_its_family_options_and_the_video_engine_options(plugin_view):
    from vs_superres.runtime import registry
    from vs_superres.runtime.engine_options import ENGINE_OPTIONS

    args = dict(parse(dict(plugin_view["signatures"])["UltraVSR"]))
    family = registry.family("ultravsr").options
    assert {n for n in args if n in family} == set(expected(family))
    assert {n for n in args if n not in family} == {"device", "dtype", "window", "window_overlap", "weights"}
    assert set(args) <= set(family.names()) | set(ENGINE_OPTIONS.names())
    # Python-only options (a tagger callable) are not offered; booleans are 0/1 ints.
    assert all(o.name not in args for o in family if not o.hosts)
    assert args["merge_lora"] == args["sample_latent"] == "int" and args["strength"] == "float"


def test_ditn_takes_the_image_engine_options_and_its_family_options(plugin_view):
    from vs_superres.runtime import registry

    args = dict(parse(dict(plugin_view["signatures"])["DITN"]))
    family = registry.family("ditn").options
    assert args == {"device": "data", "dtype": "data", "tile": "int", "overlap": "int", "weights": "data",
                    **expected(family)}


def test_upscale_takes_every_option_of_the_engine_and_of_every_family(plugin_view):
    from vs_superres.runtime import registry
    from vs_superres.runtime.engine_options import ENGINE_OPTIONS

    args = dict(parse(dict(plugin_view["signatures"])["Upscale"]))
    want = expected(ENGINE_OPTIONS)
    for fam in registry.default_registry().families():
        want.update(expected(fam.options))
    assert args == want
