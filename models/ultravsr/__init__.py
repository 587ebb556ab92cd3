"""UltraVSR: RTS networks, the official checkpoint, DRS and the one-step pipeline.

``family`` declares the family and the ``ultravsr`` video model (x4) and ``options`` its
options, without torch. ``rts`` and ``tiles`` need only torch; ``unet``, ``vae``,
``checkpoint`` (the checkpoint files), ``adapters`` (LoRA), ``base`` (the SD-2.1-base
folder's parts), ``loader`` (the networks of both), ``pipeline`` and ``tiny`` need diffusers,
peft and transformers (the ``ultravsr`` extra). Every name below is imported on first use, so this package imports
without any of them.
Design and differences from the released code: ``docs/ultravsr.md``.
"""

from __future__ import annotations

import importlib

from vs_superres.models.ultravsr.configs import (
    SD21_BASE_SCHEDULER_CONFIG,
    SD21_BASE_UNET_CONFIG,
    SD21_BASE_VAE_CONFIG,
    TINY_UNET_CONFIG,
    TINY_VAE_CONFIG,
    unet_rts_channels,
    vae_decoder_rts_channels,
)

_LAZY = {
    "RTSAttenBlock": "rts",
    "RTSConvBlock": "rts",
    "RTSModule": "rts",
    "attention_width": "rts",
    "conv_width": "rts",
    "UltraVSRUNet": "unet",
    "frame_chunk_sizes": "unet",
    "UltraVSRAutoencoder": "vae",
    "RTSDecoder": "vae",
    "UltraVSRCheckpoint": "checkpoint",
    "read_checkpoint": "checkpoint",
    "save_official_checkpoint": "checkpoint",
    "save_safetensors_checkpoint": "checkpoint",
    "checkpoint_from_models": "adapters",
    "official_unet_targets": "adapters",
    "official_vae_targets": "adapters",
    "add_unet_adapters": "adapters",
    "add_vae_adapter": "adapters",
    "apply_checkpoint": "adapters",
    "merge_adapters": "adapters",
    "load_base_unet": "base",
    "load_base_vae": "base",
    "load_text_encoder": "base",
    "load_alphas_cumprod": "base",
    "load_ultravsr": "loader",
    "UltraVSRPipeline": "pipeline",
    "UltraVSRSettings": "options",
    "UltraVSRLoadOptions": "options",
    "ClipState": "pipeline",
    "write_tiny_release": "tiny",
}

__all__ = [
    "SD21_BASE_SCHEDULER_CONFIG",
    "SD21_BASE_UNET_CONFIG",
    "SD21_BASE_VAE_CONFIG",
    "TINY_UNET_CONFIG",
    "TINY_VAE_CONFIG",
    "unet_rts_channels",
    "vae_decoder_rts_channels",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
