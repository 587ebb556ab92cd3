"""What the nodes need from ComfyUI at run time: progress bar, interruption, error display,
model folders. Every ComfyUI import is inside a function, so importing the pack never imports
ComfyUI (the engine keeps working without it).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from vs_superres.contracts.errors import Cancelled, SuperResError
from vs_superres.contracts.progress import Progress

from vs_superres.comfy_nodes.model_files import ModelFileFilter

log = logging.getLogger("vs_superres.comfy")
#: ComfyUI model folder kind for our checkpoints (``models/superres``), next to the stock
#: ``upscale_models`` (where DITN checkpoints may also live).
FOLDER = "superres"
UPSCALE_MODELS = "upscale_models"
EXTENSIONS = {".pth", ".pt", ".safetensors", ".pkl", ".ckpt", ".bin"}


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


def folder_files(kind: str, contains: str = "") -> list[str]:
    """Checkpoint files in ComfyUI's ``kind`` model folder that can be picked as a model: not
    the files of a diffusers folder nor our family-format checkpoints, which options take
    (:mod:`.model_files`). ``contains``: only names holding it (any case)."""
    import folder_paths

    register_folders()
    try:
        names = folder_paths.get_filename_list(kind)
        roots = folder_paths.get_folder_paths(kind)
    except KeyError:
        return []
    keep = ModelFileFilter()

    def is_model(name: str) -> bool:
        root = next((r for r in roots if os.path.isfile(os.path.join(r, name))), None)
        return root is None or keep.is_model(root, name)

    return [n for n in names if os.path.splitext(n)[1].lower() in EXTENSIONS and contains in n.lower() and is_model(n)]


def folder_file(kind: str, name: str) -> str:
    import folder_paths

    register_folders()
    path = folder_paths.get_full_path(kind, name)
    if path is None:
        raise SuperResError(f"{name!r} is not in ComfyUI's {kind} model folder any more; "
                            f"put the file back into models/{kind}/ or pick another model")
    return path


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
