"""Merged LoRA is UltraVSR's default: same output as the released unmerged layers within float rounding.

The tiny release (``models/ultravsr/tiny.py``) has LoRA on every official target with random,
non-zero ``B`` matrices, so every adapter changes the output; merging must remove every peft
layer and leave the output where the unmerged networks put it.
"""

from __future__ import annotations

import pytest
import torch

from vs_superres import Upscaler
from vs_superres.models.ultravsr.options import UltraVSRLoadOptions
from vs_superres.models.ultravsr.pipeline import UltraVSRPipeline

pytest.importorskip("peft")

from peft.tuners.tuners_utils import BaseTunerLayer  # noqa: E402

pytestmark = pytest.mark.torch_threads(2)

#: Measured 4e-6 (max) on [0, 1] outputs; 1e-4 leaves room for other CPUs' kernels, and is still
#: far below what one adapter changes (checked below: > 1e-2).
MERGE_TOL = 1e-4



@pytest.fixture(scope="module")
def release(ultravsr_release):
    base, ckpt = ultravsr_release
    return {"base": str(base), "checkpoint": str(ckpt)}


def peft_layers(*models) -> int:
    return sum(isinstance(m, BaseTunerLayer) for model in models for m in model.modules())


def frames() -> torch.Tensor:
    return torch.rand(3, 3, 12, 16, generator=torch.Generator().manual_seed(5))


def test_merging_is_the_default_of_every_loader_path():
    assert UltraVSRLoadOptions().merge_lora is True
    import inspect

    assert inspect.signature(UltraVSRPipeline.from_pretrained).parameters["merge_lora"].default is True


def test_merged_equals_unmerged_within_rounding_and_has_no_peft_layers(release):
    x = frames()
    merged = UltraVSRPipeline.from_pretrained(release["checkpoint"], release["base"], strength=0.3)
    unmerged = UltraVSRPipeline.from_pretrained(release["checkpoint"], release["base"], strength=0.3, merge_lora=False)
    assert peft_layers(merged.unet, merged.vae) == 0
    assert not any("lora" in k or "base_layer" in k for m in (merged.unet, merged.vae) for k in m.state_dict())
    assert not hasattr(merged.unet, "peft_config") and not hasattr(merged.vae, "peft_config")
    assert peft_layers(unmerged.unet) > 0 and peft_layers(unmerged.vae) > 0  # the released layout, kept on request

    a, b = merged(x), unmerged(x)
    assert a.shape == b.shape == (3, 3, 48, 64)
    diff = (a - b).abs().max().item()
    assert diff <= MERGE_TOL, diff

    # The adapters matter: switching them off moves the output far more than merging does.
    for module in unmerged.unet.modules():
        if isinstance(module, BaseTunerLayer):
            module.enable_adapters(False)
    assert (unmerged(x) - b).abs().max().item() > 1e-2


def test_engine_merges_by_default_and_unmerged_is_still_available(release):
    x = frames()
    default = Upscaler("ultravsr", device="cpu", strength=0.3, **release)
    kept = Upscaler("ultravsr", device="cpu", strength=0.3, merge_lora=False, **release)
    assert peft_layers(default._runner.unet, default._runner.vae) == 0
    assert peft_layers(kept._runner.unet, kept._runner.vae) > 0
    torch.testing.assert_close(default.upscale(x), kept.upscale(x), rtol=0, atol=MERGE_TOL)
