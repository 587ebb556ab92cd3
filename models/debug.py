"""A tiny deterministic video model for exercising hosts and the window machinery.

``temporal-mean-x2`` has no weights: each output frame is the nearest-neighbour x2 upscale of
``(frame + mean of its window) / 2``. It is registered so that host tests (VapourSynth,
FFmpeg bridge, ComfyUI) can check window planning, scene cuts and request-order independence
in seconds, without diffusion weights. It is not a super-resolution model.
"""

from __future__ import annotations

import torch
from torch import nn

from vs_superres.registry import Architecture, ModelDescriptor, register_architecture, register_model


class TemporalMeanUpscaler(nn.Module):
    """``[T,3,H,W] -> [T,3,2H,2W]``: blends each frame with its window mean, then x2 nearest."""

    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = 0.5 * x + 0.5 * x.mean(dim=0, keepdim=True)
        return torch.nn.functional.interpolate(mixed, scale_factor=self.scale, mode="nearest")


def build(config) -> TemporalMeanUpscaler:
    return TemporalMeanUpscaler(int(config.get("scale", 2)))


register_architecture(Architecture(name="temporal-mean", build=build))
register_model(
    ModelDescriptor(
        name="temporal-mean-x2",
        architecture="temporal-mean",
        config={"scale": 2},
        scale=2,
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
    )
)
