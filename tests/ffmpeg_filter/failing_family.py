"""A diagnostic image model that fails on its Nth call, for the wrapper's fault tests: the
engine's own error must reach the user at once, not after the input-side ffmpeg was made to
wait. ``failing-x2`` is a nearest-neighbour x2 upscale that raises ``RuntimeError`` on call
number ``$FAILING_MODEL_AT`` (default 3). Registered by the tests through ``$SUPERRES_FAMILIES``
(with this folder on ``PYTHONPATH``); never part of the package."""

from __future__ import annotations

import dataclasses
import os

from vs_superres.contracts.config import FrozenConfig
from vs_superres.contracts.descriptor import ModelDescriptor, ModelFamily


@dataclasses.dataclass(frozen=True)
class FailingConfig(FrozenConfig):
    scale: int = 2


def build(config: FailingConfig):
    import torch
    from torch import nn

    class Failing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls >= int(os.environ.get("FAILING_MODEL_AT", "3")):
                raise RuntimeError(f"failing-x2 fails on call {self.calls}, as asked")
            return torch.nn.functional.interpolate(x, scale_factor=config.scale, mode="nearest")

    return Failing()


FAMILY = ModelFamily(name="failing", config_type=FailingConfig, build=build)
MODELS = (ModelDescriptor(name="failing-x2", family="failing", config=FailingConfig(), kind="image",
                          alignment=1, weights=(), licence="Apache-2.0", tileable=True, default_overlap=0,
                          description="diagnostic x2 model that fails on a chosen call", diagnostic=True),)
