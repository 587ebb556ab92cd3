"""The installed layout: every import name under vs_superres, immune to a user's `models`."""

import subprocess
import sys
import textwrap


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
