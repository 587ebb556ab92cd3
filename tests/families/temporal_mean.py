"""A tiny deterministic video model for exercising hosts and the window machinery.

``temporal-mean-x2`` has no weights: each output frame is the nearest-neighbour x2 upscale of
``(frame + mean of its window) / 2``. The tests register it (``$SUPERRES_FAMILIES`` names this
module, see ``tests/conftest.py``) so that host tests (VapourSynth, the CLI) can check window
planning, scene cuts and request-order independence in seconds, without diffusion weights. It
is not a super-resolution model and is never part of the package.
"""

from __future__ import annotations

import dataclasses

from vs_superres.contracts.config import FrozenConfig
from vs_superres.contracts.descriptor import ModelDescriptor, ModelFamily


@dataclasses.dataclass(frozen=True)
class TemporalMeanConfig(FrozenConfig):
    scale: int = 2


def build(config: TemporalMeanConfig):
    import torch
    from torch import nn

    class TemporalMeanUpscaler(nn.Module):
        """``[T,3,H,W] -> [T,3,2H,2W]``: blends each frame with its window mean, then x2 nearest."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mixed = 0.5 * x + 0.5 * x.mean(dim=0, keepdim=True)
            return torch.nn.functional.interpolate(mixed, scale_factor=config.scale, mode="nearest")

    return TemporalMeanUpscaler()


FAMILY = ModelFamily(name="temporal-mean", config_type=TemporalMeanConfig, build=build)
MODELS = (
    ModelDescriptor(
        name="temporal-mean-x2",
        family="temporal-mean",
        config=TemporalMeanConfig(),
        kind="video",
        alignment=1,
        precisions=("fp32", "fp16", "bf16"),
        weights=(),
        licence="Apache-2.0",
        description="diagnostic video model (window mean blend + nearest x2) for host tests",
        default_overlap=0,
        bytes_per_pixel=200,
        window=5,
        window_overlap=2,
        diagnostic=True,
    ),
)
