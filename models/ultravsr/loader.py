"""UltraVSR's networks: the SD-2.1-base UNet and VAE with a checkpoint applied.

One job: assembling the two networks from a base folder (:mod:`.base`) and a checkpoint
(:mod:`.checkpoint`, applied by :mod:`.adapters`).
"""

from __future__ import annotations

import os

from vs_superres.models.ultravsr.adapters import apply_checkpoint
from vs_superres.models.ultravsr.base import load_base_unet, load_base_vae
from vs_superres.models.ultravsr.checkpoint import UltraVSRCheckpoint, read_checkpoint
from vs_superres.models.ultravsr.unet import UltraVSRUNet
from vs_superres.models.ultravsr.vae import UltraVSRAutoencoder

__all__ = ["load_ultravsr"]


def load_ultravsr(
    checkpoint: str | os.PathLike | UltraVSRCheckpoint,
    base: str | os.PathLike,
    *,
    merge_lora: bool = False,
    strict: bool = True,
) -> tuple[UltraVSRUNet, UltraVSRAutoencoder]:
    """Build the UltraVSR UNet and VAE: SD-2.1-base weights from the diffusers folder ``base``
    plus the checkpoint (fp32, CPU, eval).

    The caller moves them to a device and dtype; gradients are off. ``merge_lora`` defaults to
    False here, so the networks keep the checkpoint's layout (``checkpoint_from_models`` can
    read it back); :meth:`~.pipeline.UltraVSRPipeline.from_pretrained` and the ``ultravsr``
    model merge by default.
    """
    ckpt = checkpoint if isinstance(checkpoint, UltraVSRCheckpoint) else read_checkpoint(checkpoint)
    unet, vae = load_base_unet(base), load_base_vae(base)
    apply_checkpoint(unet, vae, ckpt, merge_lora=merge_lora, strict=strict)
    for model in (unet, vae):
        model.eval().requires_grad_(False)
    return unet, vae
