"""A diagnostic image model that runs out of memory on large tiles, for the back-off tests.

``oom-probe-x2`` has no weights: it is a bicubic x2 upscale, but any input tile with a side
longer than :data:`TILE_LIMIT` pixels makes it ask the device's allocator for an impossible
amount of memory first, so the error hosts see is the one torch itself raises there (on the
CPU a ``RuntimeError`` "DefaultCPUAllocator: can't allocate memory", on CUDA
``torch.OutOfMemoryError``). The engine must then halve its tiles until they fit; bicubic
(unlike nearest) gives different pixels near tile edges, so the output shows which tile size
the back-off ended at. The tests register it through ``$SUPERRES_FAMILIES`` (see
``tests/conftest.py``); it is never part of the package.
"""

from __future__ import annotations

import dataclasses

from vs_superres.contracts.config import FrozenConfig
from vs_superres.contracts.descriptor import ModelDescriptor, ModelFamily

#: Longest tile side that "fits". Not below the engine's floor (runtime/spatial.MIN_TILE, 32):
#: the engine never tries tiles under it, so a lower limit could never be met.
TILE_LIMIT = 32

#: More bytes than any address space holds (2**62): every allocator refuses it at once,
#: without touching memory.
_IMPOSSIBLE_BYTES = 1 << 62


@dataclasses.dataclass(frozen=True)
class OomProbeConfig(FrozenConfig):
    scale: int = 2


def _run_out_of_memory(device) -> None:
    import torch

    torch.empty((_IMPOSSIBLE_BYTES,), dtype=torch.uint8, device=device)
    # Only reached on an allocator that grants address space lazily beyond any real one; the
    # message is the CPU allocator's, which the engine recognises as out-of-memory.
    raise RuntimeError(
        f"DefaultCPUAllocator: can't allocate memory: you tried to allocate {_IMPOSSIBLE_BYTES} bytes.")


def build(config: OomProbeConfig):
    import torch
    from torch import nn

    class OomProbeUpscaler(nn.Module):
        """``[T,3,H,W] -> [T,3,2H,2W]`` bicubic; out of memory when ``max(H, W) > TILE_LIMIT``."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if max(x.shape[-2:]) > TILE_LIMIT:
                _run_out_of_memory(x.device)
            return torch.nn.functional.interpolate(x, scale_factor=config.scale, mode="bicubic", align_corners=False)

    return OomProbeUpscaler()


FAMILY = ModelFamily(name="oom-probe", config_type=OomProbeConfig, build=build)
MODELS = (
    ModelDescriptor(
        name="oom-probe-x2",
        family="oom-probe",
        config=OomProbeConfig(),
        kind="image",
        alignment=1,
        precisions=("fp32", "fp16", "bf16"),
        weights=(),
        licence="Apache-2.0",
        description=f"diagnostic image model (bicubic x2) out of memory on tiles over {TILE_LIMIT} px",
        tileable=True,
        default_overlap=0,
        bytes_per_pixel=200,
        diagnostic=True,
    ),
)
