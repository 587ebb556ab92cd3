"""Build hook for the native VapourSynth plugin; all other metadata is in setup.cfg.

When VapourSynth's C headers are available at build time (the ``vapoursynth`` wheel ships them
in ``vapoursynth/include/``; ``$VAPOURSYNTH_INCLUDE`` overrides), ``vs_superres/vapoursynth/
superres.c`` is compiled and installed as ``<site-packages>/vapoursynth/plugins/vs_superres``
(``.so``/``.dylib``/``.dll``), where VapourSynth autoloads it: ``core.superres`` then exists
without importing anything. Without the headers the package installs without the plugin.
A failed compilation is a warning unless ``$SUPERRES_REQUIRE_VS_PLUGIN=1``;
``$SUPERRES_NO_VS_PLUGIN=1`` skips the plugin.

pip builds in an isolated environment by default, where an installed ``vapoursynth`` is not
visible: use ``pip install --no-build-isolation`` (with setuptools and wheel installed) or set
``$VAPOURSYNTH_INCLUDE``.
"""

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PLUGIN = "vapoursynth.plugins.vs_superres"
PLUGIN_SOURCE = "vs_superres/vapoursynth/superres.c"


def vapoursynth_include():
    candidates = []
    if os.environ.get("VAPOURSYNTH_INCLUDE"):
        candidates.append(Path(os.environ["VAPOURSYNTH_INCLUDE"]))
    try:
        spec = importlib.util.find_spec("vapoursynth")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        for location in spec.submodule_search_locations or []:
            candidates.append(Path(location) / "include")
        if spec.origin:
            candidates.append(Path(spec.origin).parent / "include")
    return next((str(c) for c in candidates if (c / "VapourSynth4.h").is_file()), None)


class BuildExt(build_ext):
    """Names the plugin as VapourSynth expects (no Python ABI tag) and keeps it optional."""

    def get_ext_filename(self, fullname):
        # Called with the dotted name and, by get_ext_fullpath, with its last part.
        if fullname in (PLUGIN, PLUGIN.rsplit(".", 1)[1]):
            suffix = {"win32": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")
            return os.path.join(*fullname.split(".")) + suffix
        return super().get_ext_filename(fullname)

    def get_export_symbols(self, ext):
        if ext.name == PLUGIN:
            return ["VapourSynthPluginInit2"]
        return super().get_export_symbols(ext)

    def build_extension(self, ext):
        if ext.name != PLUGIN:
            return super().build_extension(ext)
        try:
            super().build_extension(ext)
        except Exception as e:  # a missing compiler must not block a pure-Python install
            if os.environ.get("SUPERRES_REQUIRE_VS_PLUGIN") == "1":
                raise
            print(f"warning: the VapourSynth plugin was not built ({e}); core.superres will "
                  "be missing", file=sys.stderr)


ext_modules = []
include = None if os.environ.get("SUPERRES_NO_VS_PLUGIN") == "1" else vapoursynth_include()
if include:
    ext_modules.append(Extension(PLUGIN, sources=[PLUGIN_SOURCE], include_dirs=[include]))
elif os.environ.get("SUPERRES_REQUIRE_VS_PLUGIN") == "1":
    sys.exit("SUPERRES_REQUIRE_VS_PLUGIN=1 but VapourSynth's headers (VapourSynth4.h) were not "
             "found; install vapoursynth in the build environment or set VAPOURSYNTH_INCLUDE")

def layout():
    """Every package, found on disk: import names all live under ``vs_superres`` (the top-level
    folders ``models/``, ``comfy_nodes/`` and ``ffmpeg_filter/`` are mapped into it), so a new
    model family folder is packaged without a line here or in setup.cfg. A folder of data files
    inside a package (``vs_superres/data``, ``models/weights``, ``comfy_nodes/workflows``) is
    listed too, as a package of data only: setuptools treats every such folder as importable
    and warns about one it was not given ("Package would be ignored"); its files are chosen by
    ``[tool.setuptools.package-data]`` in pyproject.toml."""
    here = Path(__file__).resolve().parent
    roots = {"vs_superres": "vs_superres", "vs_superres.models": "models",
             "vs_superres.comfy_nodes": "comfy_nodes", "vs_superres.ffmpeg_filter": "ffmpeg_filter"}
    packages, package_dir = [], {}
    for name, folder in roots.items():
        for init in sorted((here / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(here)
            sub = rel.relative_to(folder).parts
            if "__pycache__" in sub:
                continue
            dotted = ".".join((name, *sub))
            packages.append(dotted)
            package_dir[dotted] = rel.as_posix()
    for dotted, rel in list(package_dir.items()):
        for child in sorted((here / rel).iterdir()):
            if (child.is_dir() and child.name.isidentifier() and not child.name.startswith(("_", "."))
                    and not (child / "__init__.py").exists() and any(f.is_file() for f in child.iterdir())):
                data = f"{dotted}.{child.name}"
                if data not in package_dir:
                    packages.append(data)
                    package_dir[data] = f"{rel}/{child.name}"
    return packages, package_dir


packages, package_dir = layout()
setup(packages=packages, package_dir=package_dir, ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
