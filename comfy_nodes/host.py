"""What the nodes need from ComfyUI at run time: progress bar, interruption, error display,
model folders. Every ComfyUI import is inside a function, so importing the pack never imports
ComfyUI (the engine keeps working without it).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from vs_superres.contracts.errors import Cancelled, InvalidOption, SuperResError, option_ref
from vs_superres.contracts.progress import Progress

from vs_superres.comfy_nodes.model_files import ModelFileFilter

log = logging.getLogger("vs_superres.comfy")
#: ComfyUI model folder kind for our checkpoints (``models/superres``), next to the stock
#: ``upscale_models`` (where DITN checkpoints may also live).
FOLDER = "superres"
UPSCALE_MODELS = "upscale_models"
EXTENSIONS = {".pth", ".pt", ".safetensors", ".pkl", ".ckpt", ".bin"}
#: The model folder kinds our nodes open files in: a path option or a listed model must lie
#: inside one of their folders (``models/superres/``, ``models/upscale_models/`` and what
#: ``extra_model_paths.yaml`` adds to them). Never ``input/``, ``output/`` or ``temp/``, which a
#: prompt can fill through ComfyUI's upload and save nodes.
MODEL_KINDS = (FOLDER, UPSCALE_MODELS)


class SuperResNodeError(Exception):
    """A user's mistake, shown in ComfyUI's error panel with the engine's message only."""


def comfy_spelling(name: str, value: str | None) -> str:
    """How a message names an option in ComfyUI: the widget of that name."""
    return f"widget '{name}'" if value is None else f"widget '{name}' = {value}"


def register_folders() -> None:
    """Add ``models/superres`` to ComfyUI's model folders (once; ComfyUI may already know it
    from ``extra_model_paths.yaml``)."""
    import folder_paths

    if FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER))


def model_roots() -> list[str]:
    """The folders of :data:`MODEL_KINDS`, resolved (symbolic links followed)."""
    import folder_paths

    register_folders()
    roots: list[str] = []
    for kind in MODEL_KINDS:
        try:
            paths = folder_paths.get_folder_paths(kind)
        except KeyError:
            continue
        roots += [os.path.realpath(p) for p in paths if os.path.realpath(p) not in roots]
    return roots


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def confined_path(value: str, option: str) -> str:
    """The file or folder a path option names, resolved, if it lies inside ComfyUI's model
    folders (:func:`model_roots`); a relative path is taken under ``models/superres/``.

    A prompt is untrusted (ComfyUI answers on the network), so the value is resolved first
    (``..`` and symbolic links followed), then checked; the refusal is one message whether or
    not the path exists, and never shows where it leads."""
    import folder_paths

    register_folders()
    roots = model_roots()
    value = os.path.expanduser(value) if value.startswith("~" + os.sep) else value
    if os.path.isabs(value):
        candidates = [value]
    else:
        candidates = [os.path.join(r, value) for r in folder_paths.get_folder_paths(FOLDER)]
        candidates = [c for c in candidates if os.path.lexists(c)][:1] or candidates[:1]
    resolved = [os.path.realpath(c) for c in candidates]
    if not resolved or not _inside(resolved[0], roots):
        raise InvalidOption(
            f"{option_ref(option)} = {value!r} is not inside ComfyUI's model folders: the SuperRes nodes open "
            f"files in models/{FOLDER}/ and models/{UPSCALE_MODELS}/ only (and the folders extra_model_paths.yaml "
            f"adds to them); put the file or folder in models/{FOLDER}/ and write its path relative to it "
            f"(e.g. ultravsr/UltraVSR.pkl), or add the folder holding it to extra_model_paths.yaml under "
            f"'{FOLDER}:'", option=option)
    return resolved[0]


_warned: set[tuple[str, str]] = set()


def skip_warning(path: str, err: BaseException) -> None:
    """One logged warning per file and problem (the list is rebuilt at every page load)."""
    key = (path, str(err))
    if key not in _warned:
        _warned.add(key)
        log.warning("SuperRes: %s is left out of the model list: %s", path, err)


def folder_files(kind: str, contains: str = "") -> list[str]:
    """Checkpoint files in ComfyUI's ``kind`` model folder that can be picked as a model: not
    the files of a diffusers folder nor our family-format checkpoints, which options take
    (:mod:`.model_files`), nor a file whose link leads out of the model folders. A file that
    cannot be read is left out with a logged warning: one bad file never hides the others.
    ``contains``: only names holding it (any case)."""
    import folder_paths

    register_folders()
    try:
        names = folder_paths.get_filename_list(kind)
        roots = folder_paths.get_folder_paths(kind)
    except KeyError:
        return []
    allowed = model_roots()
    keep = ModelFileFilter()

    def is_model(name: str) -> bool:
        root = next((r for r in roots if os.path.lexists(os.path.join(r, name))), None)
        if root is None:
            return True
        path = os.path.join(root, name)
        try:
            if not _inside(os.path.realpath(path), allowed):
                raise InvalidOption("it is a link that leads out of ComfyUI's model folders")
            return keep.is_model(root, name)
        except Exception as e:  # noqa: BLE001 - any failure on one file must not hide the others
            skip_warning(path, e)
            return False

    return [n for n in names if os.path.splitext(n)[1].lower() in EXTENSIONS and contains in n.lower() and is_model(n)]


def folder_file(kind: str, name: str) -> str:
    """The full path of a listed model file, checked as a path option is (:func:`confined_path`)."""
    import folder_paths

    register_folders()
    path = folder_paths.get_full_path(kind, name)
    if path is None:
        raise SuperResError(f"{name!r} is not in ComfyUI's {kind} model folder any more; "
                            f"put the file back into models/{kind}/ or pick another model")
    return confined_path(path, "model")


def interrupted() -> bool:
    import comfy.model_management as mm

    return mm.processing_interrupted()


def raise_interrupt() -> None:
    """ComfyUI's own exception, so ComfyUI reports the run as interrupted, not failed."""
    import comfy.model_management as mm

    mm.throw_exception_if_processing_interrupted()  # clears the flag for the next run
    raise mm.InterruptProcessingException()


class ProgressAdapter:
    """The engine's :class:`Progress` on one ``comfy.utils.ProgressBar`` spanning the node.

    The engine reports frames done (``unit == "frames"``) and, inside a batch or window, tiles
    or steps done; the bar shows frames done plus the share of the current unit's tiles, in
    thousandths, and never moves backwards. Each update lets ComfyUI raise its interrupt.
    """

    RESOLUTION = 1000

    def __init__(self, total_frames: int, frames_per_unit: int):
        import comfy.utils

        self.total = max(1, total_frames)
        self.per_unit = max(1, frames_per_unit)
        self.frames = 0
        self.shown = 0
        self.bar = comfy.utils.ProgressBar(self.RESOLUTION)

    def __call__(self, p: Progress) -> None:
        if p.unit == "frames":
            self.frames = p.done
            done = float(p.done)
        else:
            share = p.done / p.total if p.total else 0.0
            done = min(self.frames + share * self.per_unit, self.total)
        value = int(self.RESOLUTION * done / self.total)
        if value >= self.shown:
            self.shown = value
            self.bar.update_absolute(value, self.RESOLUTION)


@contextlib.contextmanager
def engine_errors(node: str) -> Iterator[None]:
    """Engine errors as ComfyUI shows them: a user error with the engine's message only, a
    cancellation as ComfyUI's interrupt, anything else as an internal error (traceback kept)."""
    try:
        yield
    except SuperResError as e:
        raise SuperResNodeError(f"{node}: {e.render(comfy_spelling)}") from None
    except Cancelled:
        raise_interrupt()
