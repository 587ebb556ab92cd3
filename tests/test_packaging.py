"""The installed layout: every import name under vs_superres, immune to a user's `models`."""

import email.parser
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest


def test_foreign_models_package_in_cwd_does_not_shadow_ours(tmp_path):
    foreign = tmp_path / "models"
    foreign.mkdir()
    (foreign / "__init__.py").write_text("MARK = 'user models package'\n")
    (foreign / "ditn.py").write_text("raise ImportError('this is the user\\'s module, not ours')\n")
    code = textwrap.dedent(
        """
        import models
        assert models.MARK == 'user models package'
        import vs_superres.models.ditn as ours
        from vs_superres.runtime.registry import list_models
        names = [m.name for m in list_models()]
        assert 'ditn-real-x4' in names, names
        import os
        assert not ours.__file__.startswith(os.getcwd()), ours.__file__  # not the user's folder
        assert ours.__file__.endswith(os.path.join('models', 'ditn', '__init__.py')), ours.__file__
        assert ours.__name__ == 'vs_superres.models.ditn'
        print('ok')
        """
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_console_script_is_installed():
    run = subprocess.run([sys.executable, "-m", "vs_superres.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    assert "upscale" in run.stdout and "models" in run.stdout


def test_host_adapter_packages_import():
    import vs_superres.comfy_nodes as comfy
    import vs_superres.ffmpeg_filter  # noqa: F401

    assert isinstance(comfy.NODE_CLASS_MAPPINGS, dict)


def test_pyproject_has_what_the_comfy_registry_reads():
    """`comfy node publish` reads [project] (name, version, description, licence, dependencies)
    and [tool.comfy]; pip reads the same [project], so the two can never disagree."""
    import tomllib
    from pathlib import Path

    data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    project = data["project"]
    assert project["name"] == "vs-superres" and project["version"] and project["description"]
    assert project["license"] == "Apache-2.0" and any(d.startswith("torch") for d in project["dependencies"])
    assert set(project["scripts"]) == {"superres", "superres-filter", "superres-ffmpeg"}
    comfy = data["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"]


# ---------------------------------------------------------------- the built distributions (#23 items 5, 6)

def _source_tree(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked, and new files not ignored), copied."""
    repo = Path(__file__).resolve().parents[1]
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            capture_output=True, timeout=60)
    if listed.returncode != 0:
        pytest.skip("the checkout is not a git work tree: " + listed.stderr.decode(errors="replace").strip())
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = repo / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The sdist and the wheel, built by the project's build backend (setuptools, as pip runs it)
    from a copy of the checkout, without VapourSynth's plugin (no VapourSynth here), and what
    the backend printed."""
    import setuptools

    if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (77, 0):
        pytest.skip(f"pyproject.toml's build-system needs setuptools >= 77, this environment has {setuptools.__version__}")
    tree = _source_tree(tmp_path_factory.mktemp("tree"))
    out = tmp_path_factory.mktemp("dist")
    code = ("import sys, setuptools.build_meta as backend\n"
            "out = sys.argv[1]  # the backend rewrites sys.argv\n"
            "sdist = backend.build_sdist(out)\n"
            "wheel = backend.build_wheel(out)\n"
            "print('BUILT', sdist, wheel)\n")
    env = {**os.environ, "SUPERRES_NO_VS_PLUGIN": "1"}
    run = subprocess.run([sys.executable, "-c", code, str(out)], cwd=tree, capture_output=True, text=True,
                         timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    sdist_name, wheel_name = run.stdout.strip().splitlines()[-1].split()[1:]
    return out / sdist_name, out / wheel_name, run.stdout + run.stderr


def _metadata(text: str) -> email.message.Message:
    return email.parser.Parser().parsestr(text, headersonly=True)


def _check_metadata(meta: email.message.Message, where: str) -> None:
    assert meta["Name"] == "vs-superres" and meta["Version"], where
    assert meta["License-Expression"] == "Apache-2.0", where
    assert "LICENSE" in meta.get_all("License-File", []), where
    assert meta["Author"] and meta["Summary"], where
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL", []))
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(urls), (where, urls)
    assert all(u.startswith("https://") for u in urls.values()), urls
    classifiers = meta.get_all("Classifier", [])
    for wanted in ("Development Status", "Intended Audience", "Programming Language :: Python :: 3.12",
                   "Topic :: Multimedia :: Video", "Operating System"):
        assert any(c.startswith(wanted) for c in classifiers), (where, wanted)
    assert meta["Description-Content-Type"] == "text/markdown", where
    assert meta["Requires-Python"], where


def test_the_wheel_carries_the_full_metadata_and_its_data(built):
    _, wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = _metadata(archive.read(info).decode())
        readme = archive.read(info).decode().split("\n\n", 1)[1]
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
        for data in ("vs_superres/data/astronaut_128.png", "vs_superres/models/weights/README.md",
                     "vs_superres/comfy_nodes/workflows/upscale_image.json", "vs_superres/vapoursynth/superres.c"):
            assert data in names, data
    _check_metadata(meta, "wheel")
    assert readme.lstrip().startswith("# vs-superres")  # the README is the long description


def test_the_sdist_carries_the_full_metadata_and_the_plugin_source(built):
    sdist, _, _ = built
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        root = names[0].split("/")[0]
        meta = _metadata(archive.extractfile(f"{root}/PKG-INFO").read().decode())  # type: ignore[union-attr]
    _check_metadata(meta, "sdist")
    for needed in ("LICENSE", "README.md", "setup.py", "pyproject.toml", "vs_superres/vapoursynth/superres.c"):
        assert f"{root}/{needed}" in names, needed


def test_building_prints_no_setuptools_warning_boxes(built):
    """Data folders are declared packages: setuptools' 'Package would be ignored' boxes (three
    of them, ~120 lines, on every pip install) are gone, and so is any other deprecation box."""
    _, _, output = built
    assert "would be ignored" not in output and "!!" not in output and "Deprecat" not in output, output[-3000:]


def test_vapoursynth_plugin_without_vapoursynth_says_what_is_missing():
    """Here (Python 3.11) VapourSynth cannot be installed: the command says so and how to get it;
    the compilation itself is tested in the VapourSynth root (tests/vapoursynth/test_plugin_install.py)."""
    from vs_superres.cli.vapoursynth import installed_plugin, _vapoursynth_spec

    if _vapoursynth_spec() is not None:
        pytest.skip(f"VapourSynth is installed here (plugin: {installed_plugin()})")
    for action in ("install", "status"):
        run = subprocess.run([sys.executable, "-m", "vs_superres.cli", "vapoursynth", action], capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 2, run.stderr
        assert run.stderr.startswith("superres: error: VapourSynth is not installed for this Python (") and len(
            run.stderr.splitlines()) == 1
        assert "pip install vapoursynth" in run.stderr and "superres vapoursynth install" in run.stderr
        if sys.version_info < (3, 12):
            assert "need Python >= 3.12" in run.stderr
