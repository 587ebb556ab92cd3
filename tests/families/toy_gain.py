"""A toy model family, added the way a new family is added (see docs/design.md, "Adding a
model family"): this file plus one registration line. The tests register it with
``SUPERRES_FAMILIES=families.toy_gain`` instead of the line in ``runtime/families.py``, and
check that every host offers its option without knowing it.

``toy-gain-x2``: nearest-neighbour x2, times ``gain``.
"""

from __future__ import annotations

import dataclasses

from vs_superres.contracts.config import FrozenConfig
from vs_superres.contracts.descriptor import ModelDescriptor, ModelFamily
from vs_superres.contracts.options import declare, option


@dataclasses.dataclass(frozen=True)
class ToyGainConfig(FrozenConfig):
    scale: int = 2


@dataclasses.dataclass(frozen=True)
class ToyGainOptions:
    gain: float = option(1.0, "brightness factor applied after the upscale", minimum=0.0, maximum=2.0)


def load(request):
    import torch

    gain = request.options.get("gain", 1.0)
    scale = request.descriptor.config.scale

    def runner(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest") * gain

    return runner


FAMILY = ModelFamily(name="toy-gain", config_type=ToyGainConfig, build=lambda config: None,
                     options=declare(ToyGainOptions), load=load, title="ToyGain", default_model="toy-gain-x2")
MODELS = (ModelDescriptor(name="toy-gain-x2", family="toy-gain", config=ToyGainConfig(), kind="image",
                          default_overlap=0, description="toy: nearest x2 times gain", diagnostic=True),)
