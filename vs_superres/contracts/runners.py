"""What the runtime calls: runner protocols and the request a family's loader receives.

- image models: ``runner(x: [N,C,h,w]) -> [N,C,s*h,s*w]``, frames independent;
- video models: ``runner(x: [T,C,h,w]) -> [T,C,s*h,s*w]`` for one temporal window;
- *clip runners* (:class:`ClipRunner`, e.g. UltraVSR) also have per-clip state and report
  their own steps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

from vs_superres.contracts.descriptor import ModelDescriptor
from vs_superres.contracts.progress import ProgressFn

if TYPE_CHECKING:  # torch is not needed to read the contracts
    import torch


@dataclasses.dataclass(frozen=True)
class LoadRequest:
    """What a family's ``load`` gets from the runtime: everything resolved, nothing to search.

    ``weights`` maps each of the descriptor's :class:`~.descriptor.WeightFile` ``relpath`` to
    the file found by the weight search, or ``None`` for a file that is not required and was
    not found, or whose option the user gave (the option is then its path). A folder with a
    hub snapshot (``WeightFile.hub``) is always a local folder here, whatever its option said
    (a folder or a hub id). ``options`` are the family's declared options, already checked
    (only those the user gave).
    """

    descriptor: ModelDescriptor
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    weights: Mapping[str, Path | None]
    options: Mapping[str, Any]
    #: Folders searched for weights, in order (for messages that tell where to put a file).
    search_roots: tuple[Path, ...] = ()


@runtime_checkable
class SteppingRunner(Protocol):
    """An image runner that tiles or steps by itself (a diffusion sampler) and reports it:
    ``reports_steps`` is true and it is called as ``runner(x, on_step=fn)``; it calls ``on_step``
    with a :class:`~.progress.Progress` between its steps, and whatever ``on_step`` raises
    (the runtime's cancellation check raises :class:`~.errors.Cancelled`) stops the call with
    no output. ``on_step`` may be called from the runner's own threads (one per device)."""

    reports_steps: bool

    def __call__(self, x: "torch.Tensor", *, on_step: ProgressFn | None) -> "torch.Tensor": ...


@runtime_checkable
class ClipRunner(Protocol):
    """A video runner with per-clip state (see ``docs/design.md``).

    ``clip_frames(num_frames)`` lists the source frames the state is computed from (``[]`` when
    none are needed; ``num_frames`` may be ``None`` when the length is unknown, and a runner
    that then cannot choose raises a :class:`~.errors.SuperResError` saying what to pass).
    ``clip_state(frames, num_frames)`` computes the state from ``{index: [3, H, W]}``.
    The runner is then called as ``runner(x, clip_state=state, frame_indices=indices,
    on_step=fn)``, with the source index of every frame of the window; it calls ``on_step``
    with a :class:`~.progress.Progress` between its own tiles (cancellation and progress).
    A clip runner must be safe to call from several threads at once (the runtime limits how
    many calls run together, see ``docs/design.md``).
    """

    def clip_frames(self, num_frames: int | None) -> list[int]: ...

    def clip_state(self, frames: Mapping[int, "torch.Tensor"], num_frames: int) -> Any: ...

    def __call__(
        self, x: "torch.Tensor", *, clip_state: Any, frame_indices: Sequence[int], on_step: ProgressFn | None
    ) -> "torch.Tensor": ...
