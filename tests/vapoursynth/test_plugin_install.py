"""``superres vapoursynth install`` compiles the plugin for the Python and VapourSynth that run
it (a wheel built elsewhere holds none, #23 item 6), and ``status`` finds the installed one."""

from __future__ import annotations

import ctypes
import subprocess
import sys


def superres(*args):
    return subprocess.run([sys.executable, "-m", "vs_superres.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_install_compiles_a_loadable_plugin(tmp_path):
    run = superres("vapoursynth", "install", "--plugins", tmp_path)
    assert run.returncode == 0, run.stderr
    plugin = tmp_path / "vs_superres.so"
    assert f"built the VapourSynth plugin for Python {sys.version_info[0]}.{sys.version_info[1]}: {plugin}" in run.stdout
    library = ctypes.PyDLL(str(plugin))  # Python's symbols resolve against this process, as in VapourSynth
    assert hasattr(library, "VapourSynthPluginInit2")
    assert [p.name for p in tmp_path.iterdir()] == ["vs_superres.so"]  # no temporary files left


def test_status_finds_the_plugin_pip_installed():
    run = superres("vapoursynth", "status")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("the VapourSynth plugin is installed: ") and "vapoursynth/plugins/vs_superres" in run.stdout
