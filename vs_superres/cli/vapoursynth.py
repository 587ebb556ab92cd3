"""``superres vapoursynth install | status``: the native ``core.superres`` plugin for this Python.

``pip install`` compiles the plugin when VapourSynth's headers are visible to the build (an
sdist build, or a platform wheel); a wheel built elsewhere (``py3-none-any``) holds none. This
command compiles ``vs_superres/vapoursynth/superres.c`` (shipped in every wheel) against the
VapourSynth and the Python that run it, and writes it where VapourSynth autoloads plugins
(``<site-packages>/vapoursynth/plugins/``), or says exactly what is missing: VapourSynth itself
(its wheels need Python >= 3.12), its C headers, Python's headers, a C compiler. No import of
VapourSynth (and no import of our VapourSynth host) here: everything is found on disk.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import vs_superres
from vs_superres.contracts.errors import SuperResError

PLUGIN_STEM = "vs_superres"
SUFFIX = {"win32": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")


def add_parser(sub) -> argparse.ArgumentParser:
    """``superres vapoursynth install|status``; returns the ``vapoursynth`` parser."""
    p = sub.add_parser("vapoursynth", help="build the VapourSynth plugin (core.superres) for this Python, or show where it is",
                       description="Compile the native VapourSynth plugin (core.superres) against the VapourSynth and the "
                       "Python that run this command, into VapourSynth's autoload folder. pip install builds it only when "
                       "VapourSynth's headers are visible to the build; a wheel built elsewhere holds none.")
    p.add_argument("action", choices=["install", "status"],
                   help="install: compile the plugin into VapourSynth's autoload folder; status: say whether it is there")
    p.add_argument("--plugins", type=Path, default=None, metavar="DIR",
                   help="the folder to write the plugin to (default: VapourSynth's autoload folder, <site-packages>/vapoursynth/plugins)")
    return p


def _vapoursynth_spec():
    """VapourSynth's module spec, or None (a folder named vapoursynth on sys.path, a namespace
    package without code, is not VapourSynth)."""
    spec = importlib.util.find_spec("vapoursynth")
    return spec if spec is not None and spec.origin not in (None, "namespace") else None


def _vapoursynth_folder() -> Path:
    spec = _vapoursynth_spec()
    if spec is None:
        version = ".".join(map(str, sys.version_info[:3]))
        why = ("; VapourSynth's wheels need Python >= 3.12, install it into a Python 3.12 or newer environment"
               if sys.version_info < (3, 12) else "")
        raise SuperResError(
            f"VapourSynth is not installed for this Python ({sys.executable}, {version}): `pip install vapoursynth`{why}, "
            "then run `superres vapoursynth install` with that Python (python -m vs_superres.cli vapoursynth install)")
    return Path(spec.origin).parent


def _vapoursynth_include(folder: Path) -> Path:
    candidates = [Path(os.environ["VAPOURSYNTH_INCLUDE"])] if os.environ.get("VAPOURSYNTH_INCLUDE") else []
    candidates += [folder / "include", folder.parent / "include" / "vapoursynth", Path("/usr/include/vapoursynth"),
                   Path("/usr/local/include/vapoursynth")]
    found = next((c for c in candidates if (c / "VapourSynth4.h").is_file()), None)
    if found is None:
        raise SuperResError(
            "VapourSynth's C headers (VapourSynth4.h) were not found in " + ", ".join(map(str, candidates))
            + "; the vapoursynth wheel (R74 or newer) ships them in vapoursynth/include: `pip install -U vapoursynth`, "
            "or set VAPOURSYNTH_INCLUDE to the folder holding VapourSynth4.h")
    return found


def _python_include() -> Path:
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").is_file():
        hint = (f"install python{sys.version_info[0]}.{sys.version_info[1]}-dev (Debian, Ubuntu) or "
                f"python{sys.version_info[0]}-devel (Fedora)") if sys.platform.startswith("linux") else "install Python's development headers"
        raise SuperResError(f"Python's C headers (Python.h) are not in {include}; {hint}")
    return include


def _compiler() -> list[str]:
    configured = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    for command in (configured, ["cc"], ["gcc"], ["clang"]):
        if command and shutil.which(command[0]):
            return command
    raise SuperResError("no C compiler was found (looked for $CC, " + (configured[0] if configured else "cc")
                        + ", cc, gcc, clang); install one (Debian, Ubuntu: apt-get install gcc; macOS: xcode-select --install)")


def plugin_source() -> Path:
    """The plugin's C source, installed with the package (package data)."""
    return Path(vs_superres.__file__).resolve().parent / "vapoursynth" / "superres.c"


def build_plugin(target_folder: Path | None = None) -> Path:
    """Compile the plugin for this Python and this VapourSynth into ``target_folder`` (default:
    VapourSynth's autoload folder); returns its path. Raises :class:`SuperResError` naming
    what is missing."""
    if sys.platform == "win32":
        raise SuperResError("building the plugin here is not supported on Windows; install vs-superres from its "
                            "source distribution (pip install --no-binary vs-superres vs-superres) with VapourSynth installed")
    folder = _vapoursynth_folder()
    vs_include = _vapoursynth_include(folder)
    py_include = _python_include()
    source = plugin_source()
    if not source.is_file():
        raise SuperResError(f"the plugin source {source} is missing from this installation; reinstall vs-superres")
    target_folder = Path(target_folder) if target_folder is not None else folder / "plugins"
    target_folder.mkdir(parents=True, exist_ok=True)
    target = target_folder / (PLUGIN_STEM + SUFFIX)
    flags = ["-shared", "-fPIC", "-O2", "-fvisibility=default"]
    if sys.platform == "darwin":
        flags += ["-undefined", "dynamic_lookup"]  # Python's symbols come from the process that loads it
    with tempfile.TemporaryDirectory(dir=target_folder) as tmp:
        built = Path(tmp) / target.name
        command = [*_compiler(), *flags, f"-I{vs_include}", f"-I{py_include}", str(source), "-o", str(built)]
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            raise SuperResError("compiling the VapourSynth plugin failed (" + shlex.join(command) + "): "
                                + " ".join(run.stderr.strip().splitlines()[-3:]))
        os.replace(built, target)  # atomic: VapourSynth never autoloads half a file
    return target


def installed_plugin() -> Path | None:
    spec = _vapoursynth_spec()
    if spec is None:
        return None
    found = Path(spec.origin).parent / "plugins" / (PLUGIN_STEM + SUFFIX)
    return found if found.is_file() else None


def cmd_vapoursynth(args) -> int:
    if args.action == "status":
        found = installed_plugin()
        if found is None:
            _vapoursynth_folder()  # says what to install when VapourSynth itself is missing
            print("the VapourSynth plugin is not installed for this Python; run `superres vapoursynth install`")
            return 1
        print(f"the VapourSynth plugin is installed: {found}")
        return 0
    target = build_plugin(args.plugins)
    print(f"built the VapourSynth plugin for Python {sys.version_info[0]}.{sys.version_info[1]}: {target}")
    print("VapourSynth loads it at start: core.superres.DITN, core.superres.UltraVSR, core.superres.Upscale, ...")
    return 0
