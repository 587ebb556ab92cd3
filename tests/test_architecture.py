"""The layering, checked on the source: one dependency direction, found by parsing imports.

    contracts  <-  numerics  <-  models (families)  <-  runtime, media  <-  hosts

A module may import its own layer and the layers to its left, never one to its right. The
runtime reaches the families only through the composition root (by module name, not an
import statement), so adding a family or a host touches one folder plus one line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: folder (relative to the repository) -> (import prefix, layer rank)
LAYERS = [
    ("vs_superres/contracts", "vs_superres.contracts", 0),
    ("vs_superres/numerics", "vs_superres.numerics", 1),
    ("models", "vs_superres.models", 2),
    ("vs_superres/runtime", "vs_superres.runtime", 3),
    ("vs_superres/media", "vs_superres.media", 3),
    ("vs_superres/hostkit", "vs_superres.hostkit", 4),
    ("vs_superres/distributed", "vs_superres.distributed", 4),
    ("vs_superres/jobs", "vs_superres.jobs", 4),
    ("vs_superres/compare", "vs_superres.compare", 4),
    ("vs_superres/vapoursynth", "vs_superres.vapoursynth", 5),
    ("comfy_nodes", "vs_superres.comfy_nodes", 5),
    ("ffmpeg_filter", "vs_superres.ffmpeg_filter", 5),
    ("vs_superres/cli", "vs_superres.cli", 5),
]
LAYER_NAMES = {0: "contracts", 1: "numerics", 2: "families", 3: "runtime/media", 4: "host kit/distributed",
               5: "hosts"}
#: each host: its own import prefix; a host never imports another (what they share is the kit)
HOSTS = [prefix for _folder, prefix, rank in LAYERS if rank == 5]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if parts[0] in ("models", "comfy_nodes", "ffmpeg_filter"):
        parts = ["vs_superres", *parts]
    return ".".join(parts)


def rank_of_module(name: str) -> int | None:
    best = None
    for _folder, prefix, rank in LAYERS:
        if name == prefix or name.startswith(prefix + "."):
            best = rank
    return best


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every vs_superres import in a file (relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("vs_superres")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("vs_superres"):
                continue
            if node.module is None or mod in ("vs_superres",):
                # `from . import x` / `from vs_superres import x`: x is a module or a name
                out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
            else:
                # `from vs_superres.media import budget`: a name that is a module is that module
                out += [(node.lineno, f"{mod}.{a.name}" if is_module(f"{mod}.{a.name}") else mod) for a in node.names]
    return out


def is_module(name: str) -> bool:
    """Whether the import name ``name`` is one of the package's modules or packages on disk."""
    parts = name.split(".")[1:]
    if not parts:
        return True
    top = parts[0] if parts[0] in ("models", "comfy_nodes", "ffmpeg_filter") else None
    folder = ROOT / top if top else ROOT / "vs_superres" / parts[0]
    rest = parts[1:]
    target = folder.joinpath(*rest) if rest else folder
    return target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()


def source_files() -> list[Path]:
    files = []
    for folder, _prefix, _rank in LAYERS:
        p = ROOT / folder
        files += [p] if p.suffix == ".py" else sorted(p.rglob("*.py"))
    return files


def test_every_package_module_has_a_layer():
    # the package's own __init__ is the public facade (errors, and Upscaler on first use)
    unplaced = [str(p.relative_to(ROOT)) for p in (ROOT / "vs_superres").rglob("*.py")
                if p != ROOT / "vs_superres" / "__init__.py" and rank_of_module(module_name(p)) is None]
    assert unplaced == [], f"modules outside every layer (add them to LAYERS): {unplaced}"


def test_imports_only_point_to_lower_layers():
    wrong = []
    for path in source_files():
        mine = rank_of_module(module_name(path))
        for line, target in imports_of(path):
            theirs = rank_of_module(target)
            if theirs is None:  # the package root (`from vs_superres import Upscaler`): the runtime's facade
                theirs = 3 if target.endswith(".Upscaler") else 0
            if theirs > mine:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({LAYER_NAMES[mine]}) imports {target} ({LAYER_NAMES[theirs]})")
    assert wrong == [], "imports against the layer direction:\n" + "\n".join(wrong)


def host_of(module: str) -> str | None:
    return next((h for h in HOSTS if module == h or module.startswith(h + ".")), None)


def test_hosts_do_not_import_each_other():
    """What two hosts share lives in the host kit (signals, exit statuses, flags, progress) or
    below it; one host importing another is how duplicated policies start to diverge."""
    wrong = []
    for path in source_files():
        mine = host_of(module_name(path))
        if mine is None:
            continue
        for line, target in imports_of(path):
            theirs = host_of(target)
            if theirs is not None and theirs != mine:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target}")
    assert wrong == [], "host -> host imports:\n" + "\n".join(wrong)


def test_families_do_not_import_each_other():
    wrong = []
    for path in (ROOT / "models").rglob("*.py"):
        rel = path.relative_to(ROOT / "models").parts
        if len(rel) < 2:
            continue
        for line, target in imports_of(path):
            if target.startswith("vs_superres.models.") and target.split(".")[2] != rel[0]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert wrong == []


def test_runtime_finds_families_only_through_the_composition_root():
    for path in (ROOT / "vs_superres" / "runtime").rglob("*.py"):
        for line, target in imports_of(path):
            assert not target.startswith("vs_superres.models"), f"{path.name}:{line} imports {target}"


@pytest.mark.parametrize("module", [
    "vs_superres", "vs_superres.runtime.registry", "vs_superres.runtime.engine_options",
    "vs_superres.vapoursynth.signatures",
])
def test_declarations_load_without_torch(module):
    """Listing models and building host signatures must not import torch (VapourSynth loads the
    plugin's signatures for every script)."""
    code = (f"import sys, {module}\n"
            "from vs_superres.runtime.registry import list_models\n"
            "assert [m.name for m in list_models()], 'no models'\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not bad, bad[:3]\nprint('ok')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
