"""The one definition of a node, from which both ComfyUI APIs are generated.

A :class:`NodeSpec` says what a node shows (its :class:`Port` inputs, outputs, name, category)
and what it runs (``run``, called with the inputs by name). :mod:`.v1` turns a spec into a V1
class (``INPUT_TYPES``/``RETURN_TYPES``/``FUNCTION``) and :mod:`.v3` into a ``comfy_api``
``io.ComfyNode``; neither adds behaviour, so the two APIs cannot drift apart. Nothing here
imports ComfyUI or torch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

CATEGORY = "superres"
#: Our model handle's socket type (a :class:`~.handle.ModelHandle` travels on it).
MODEL_TYPE = "SUPERRES_MODEL"
#: Scene cuts: a tuple of bools, True where a frame starts a scene.
SCENES_TYPE = "SUPERRES_SCENE_CUTS"
WIDGETS = ("INT", "FLOAT", "BOOLEAN", "STRING", "COMBO")
#: INT inputs that ComfyUI's frontend gives a "control after generate" widget (randomize after
#: every run, an extra ``widgets_values`` entry) unless the input says ``control_after_generate``.
FRONTEND_SEED_NAMES = ("seed", "noise_seed")


@dataclasses.dataclass(frozen=True)
class Port:
    """One input: a widget (``INT``, ``FLOAT``, ``BOOLEAN``, ``STRING``, ``COMBO``) or a socket
    (``IMAGE``, ``VIDEO``, ``MASK``, :data:`MODEL_TYPE`, ...)."""

    name: str
    kind: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    tooltip: str = ""
    optional: bool = False
    multiline: bool = False
    #: ``None``: the frontend's rule (:data:`FRONTEND_SEED_NAMES`); ``False``: never changed after a run.
    control_after_generate: bool | None = None

    @property
    def is_widget(self) -> bool:
        return self.kind in WIDGETS


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """A node: ``inputs()`` is called whenever ComfyUI asks (so model lists stay current);
    ``run(unique_id=..., **inputs)`` returns one value per output.

    ``validate(model=...)``: checks the ``model`` input instead of ComfyUI's "value not in
    list" (True, or the message to show), so a saved workflow naming a model that is not
    installed is told where to put its files. ``deprecated``: kept so saved workflows load;
    the frontend hides it from search and the node library."""

    node_id: str
    display_name: str
    description: str
    inputs: Callable[[], tuple[Port, ...]]
    outputs: tuple[tuple[str, str], ...]  # (type, name)
    run: Callable[..., tuple]
    output_node: bool = False
    category: str = CATEGORY
    validate: Callable[..., bool | str] | None = None
    deprecated: bool = False
