"""How the pack gets into ComfyUI: the V3 API through a second server, a clone of the
repository in custom_nodes/ loaded by ComfyUI's own loader, and `superres comfyui install`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import HERE, REPO, TESTS, ComfyServer, make_base
from graphs import image_prompt

from vs_superres.comfy_nodes import NODE_CLASS_MAPPINGS
from vs_superres.comfy_nodes.checkout import ROOT_INIT
from vs_superres.cli.comfyui import install, main as install_main
from vs_superres.comfy_nodes.loaders import loader_id
from vs_superres.runtime.families import BUILTIN, register_module
from vs_superres.runtime.registry import Registry


def registry_of(modules) -> Registry:
    registry = Registry()
    for module in modules:
        register_module(registry, module)
    return registry


@pytest.fixture(scope="module")
def comfy_v1_v3(comfy_env, installed_layout, tiny_ditn_path, tmp_path_factory):
    """A V1 and a V3 server of their own, with the same models: the session server's model
    folder is shared with other test files, which add models to it (their lists would differ
    by the order the files ran in)."""
    servers = []
    try:
        for api, name in (("v1", "vs-superres"), ("v3", "vs-superres-v3")):
            base = make_base(tmp_path_factory.mktemp(f"layouts_{api}"), {"superres_probe": HERE / "probe_pack"})
            init = install(base, name=name, api=api)
            assert ("comfy_entrypoint" in init.read_text()) == (api == "v3")
            assert ("NODE_CLASS_MAPPINGS" in init.read_text()) == (api == "v1")
            shutil.copy(tiny_ditn_path, base / "models" / "superres" / "tiny_ditn.pth")
            servers.append(ComfyServer(comfy_env, base, [installed_layout, TESTS], wait=False))
        for server in servers:
            server.wait_ready()
        yield tuple(servers)
    finally:
        for server in servers:
            server.stop()


def _widgets(info: dict) -> dict:
    """Inputs with the parts both APIs must agree on: type or choices, default, range, tooltip,
    and whether the frontend may change the value after a run."""
    out = {}
    for section in ("required", "optional"):
        for name, spec in info["input"].get(section, {}).items():
            opts = spec[1] if len(spec) > 1 else {}
            kind = opts.get("options") if spec[0] == "COMBO" else spec[0]  # V3 writes combos as ("COMBO", {"options"})
            out[name] = (section, kind, {k: opts.get(k) for k in ("default", "min", "max", "step", "tooltip", "control_after_generate")})
    return out


def test_v3_nodes_match_v1_and_run(comfy_v1_v3, astronaut, tiny_ditn_path, torch_threads):
    comfy, comfy_v3 = comfy_v1_v3
    for node_id in NODE_CLASS_MAPPINGS:
        v1, v3 = comfy.object_info(node_id), comfy_v3.object_info(node_id)
        assert v3["category"] == v1["category"] == "superres"
        assert v3["display_name"] == v1["display_name"] and v3["output"] == v1["output"]
        assert _widgets(v3) == _widgets(v1), node_id
    crop = (astronaut[:24, :32] * 255).astype(np.uint8)
    Image.fromarray(crop).save(comfy_v3.base / "input" / "v3.png")
    h = comfy_v3.run(image_prompt(comfy_v3, "v3.png", "superres/tiny_ditn.pth", out="v3", tile=16, overlap=8))
    assert h["status"]["status_str"] == "success", h["status"]
    from test_nodes import engine

    want = engine(tiny_ditn_path, torch_threads, (crop.astype(np.float32) / 255)[None], tile=16, overlap=8)
    assert np.array_equal(np.load(comfy_v3.output("v3.npy")), want)


def test_clone_in_custom_nodes_loads_through_comfyui_loader(comfy_env, tmp_path):
    """What `git clone` into custom_nodes/ gives: ComfyUI imports the root __init__.py, with no
    vs_superres installed in ComfyUI's Python."""
    root_init = REPO / "__init__.py"
    if root_init.exists():
        assert root_init.read_text() == ROOT_INIT, "the repository root __init__.py must be comfy_nodes.checkout.ROOT_INIT"
    clone = tmp_path / "custom_nodes" / "vs-superres"
    clone.mkdir(parents=True)
    for entry in REPO.iterdir():
        if entry.name not in (".git", ".venv", "__init__.py", "build") and not entry.name.endswith(".egg-info"):
            (clone / entry.name).symlink_to(entry)
    (clone / "__init__.py").write_text(ROOT_INIT)
    script = f"""
import asyncio, importlib.util, json, sys
import comfy.options
comfy.options.enable_args_parsing(False)
from comfy.cli_args import args
args.cpu = True
import utils.extra_config  # before nodes: comfy/utils.py must not shadow it
import nodes
assert importlib.util.find_spec("vs_superres") is None, "vs_superres must not be installed here"
ok = asyncio.run(nodes.load_custom_node({str(clone)!r}))
import vs_superres
print(json.dumps({{"ok": ok, "nodes": sorted(k for k in nodes.NODE_CLASS_MAPPINGS if k.startswith("SuperRes")),
    "package": vs_superres.__file__, "models": list(getattr(importlib.util.find_spec("models"), "submodule_search_locations", None) or [])}}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SUPERRES_FAMILIES")}
    env["PYTHONPATH"] = str(comfy_env / "standins")  # ComfyUI's start-up imports torchvision (see tools/comfy_env.sh)
    r = subprocess.run([str(comfy_env / "venv" / "bin" / "python"), "-c", script], cwd=comfy_env / "ComfyUI",
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    # no $SUPERRES_FAMILIES there: the built-in families' loaders and the other nodes
    builtin = {loader_id(f) for f in registry_of(BUILTIN).families()}
    assert result["ok"] and result["nodes"] == sorted(k for k in NODE_CLASS_MAPPINGS
                                                      if not k.startswith("SuperResLoad") or k in builtin)
    assert {"SuperResLoadDITN", "SuperResLoadUltraVSR", "SuperResLoadPatchScaler"} <= builtin
    assert result["package"].startswith(str(clone))
    assert not any(p.startswith(str(clone)) for p in result["models"]), "the clone must not be on sys.path"


def test_install_command_refuses_what_it_did_not_write(tmp_path, capsys):
    assert install_main([str(tmp_path / "nowhere")]) == 2
    assert "does not look like a ComfyUI folder" in capsys.readouterr().err
    comfyui = tmp_path / "ComfyUI"
    (comfyui / "custom_nodes" / "other").mkdir(parents=True)
    (comfyui / "custom_nodes" / "other" / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    assert install_main([str(comfyui), "--name", "other"]) == 2
    assert "holds another node pack" in capsys.readouterr().err
    assert install_main([str(comfyui)]) == 0
    written = (comfyui / "custom_nodes" / "vs-superres" / "__init__.py").read_text()
    assert "from vs_superres.comfy_nodes import NODE_CLASS_MAPPINGS" in written
    assert install_main([str(comfyui), "--api", "v3"]) == 0  # its own link may be rewritten
    assert "comfy_entrypoint" in (comfyui / "custom_nodes" / "vs-superres" / "__init__.py").read_text()


def test_importing_the_package_imports_no_comfyui():
    code = ("import sys, vs_superres, vs_superres.comfy_nodes; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths', 'nodes', 'torch')]; "
            "print(json.dumps(bad))")
    r = subprocess.run([os.sys.executable, "-c", "import json; " + code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
