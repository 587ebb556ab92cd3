"""``superres comfyui install PATH/TO/ComfyUI``: link a pip-installed vs-superres into ComfyUI.

ComfyUI 0.3.x discovers nodes only as folders (or ``.py`` files) in ``custom_nodes/``, not
through package entry points, so this writes ``custom_nodes/<name>/__init__.py``, a two-line
module that imports the installed package. Run it with the Python that ComfyUI runs (the
package must be importable there). No ComfyUI import.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from vs_superres.contracts.errors import SuperResError

MARKER = "# written by `superres comfyui install`"
SOURCES = {
    "v1": "from vs_superres.comfy_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: F401\n",
    "v3": "from vs_superres.comfy_nodes import comfy_entrypoint  # noqa: F401\n",
}


class InstallError(Exception):
    pass


def link_source(api: str) -> str:
    return f'{MARKER} (ComfyUI node API {api.upper()}; see docs/comfyui.md)\n{SOURCES[api]}'


def install(comfyui: Path, *, name: str = "vs-superres", api: str = "v1", force: bool = False) -> Path:
    """Write the link module; returns its ``__init__.py``."""
    comfyui = Path(comfyui).expanduser()
    if not (comfyui / "main.py").is_file() and not (comfyui / "custom_nodes").is_dir():
        raise InstallError(f"{comfyui} does not look like a ComfyUI folder (no main.py, no custom_nodes/); "
                           "give the folder that holds ComfyUI's main.py")
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        raise InstallError(f"--name must be a plain folder name, got {name!r}")
    target = comfyui / "custom_nodes" / name
    init = target / "__init__.py"
    if target.is_symlink() or (target.exists() and not init.is_file()):
        raise InstallError(f"{target} exists and is not a link written by this command; remove it or choose --name")
    if init.is_file() and MARKER not in init.read_text(errors="replace") and not force:
        raise InstallError(f"{target} holds another node pack (its __init__.py was not written by this command); "
                           "choose another --name, or --force to replace its __init__.py")
    target.mkdir(parents=True, exist_ok=True)
    init.write_text(link_source(api))
    return init


def add_parser(sub) -> argparse.ArgumentParser:
    """``superres comfyui install PATH [--name N] [--api v1|v3] [--force]`` (``sub``: the
    subparsers it goes under); returns the ``install`` parser."""
    comfy = sub.add_parser("comfyui", help="link this installation into a ComfyUI (see docs/comfyui.md)",
                           description="Link this installation of vs-superres into a ComfyUI.")
    actions = comfy.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("install", help="write custom_nodes/NAME/__init__.py, which imports this installation",
                           description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_install_arguments(p)
    return p


def _add_install_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("comfyui", type=Path, help="the ComfyUI folder (the one holding main.py and custom_nodes/)")
    p.add_argument("--name", default="vs-superres", help="folder name under custom_nodes/ (default: vs-superres)")
    p.add_argument("--api", choices=sorted(SOURCES), default="v1",
                   help="node API: v1 (NODE_CLASS_MAPPINGS, every ComfyUI) or v3 (comfy_entrypoint, ComfyUI releases with comfy_api.latest)")
    p.add_argument("--force", action="store_true", help="replace an __init__.py this command did not write")


def cmd_comfyui(args) -> int:
    """Run ``superres comfyui install``; a refusal is the user's error (exit status 2)."""
    try:
        init = install(args.comfyui, name=args.name, api=args.api, force=args.force)
    except InstallError as e:
        raise SuperResError(str(e)) from None
    print(f"linked vs-superres into ComfyUI: {init}")
    if importlib.util.find_spec("torch") is None:
        print("note: torch is not importable from this Python; run this command with ComfyUI's Python, "
              "which must have vs-superres installed (pip install vs-superres)", file=sys.stderr)
    print("restart ComfyUI; the nodes are in the 'superres' category")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m vs_superres.cli.comfyui PATH [--name N] [--api v1|v3] [--force]``."""
    p = argparse.ArgumentParser(prog="python -m vs_superres.cli.comfyui", description=__doc__.splitlines()[0])
    _add_install_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_comfyui(args)
    except SuperResError as e:
        print(f"superres: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
