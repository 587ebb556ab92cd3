"""UltraVSR: RTS networks, the official checkpoint, DRS and the one-step pipeline.

``family`` declares the family and the ``ultravsr`` video model (x4) and ``options`` its
options, without torch. ``rts`` and ``tiles`` need only torch; ``unet``, ``vae``,
``checkpoint``, ``pipeline`` and ``tiny`` need diffusers, peft and transformers (the
``ultravsr`` extra). Every name below is imported on first use, so this package imports
without any of them.
Design and differences from the released code: ``docs/ultravsr.md``.
"""

from __future__ import annotations

import importlib

from .configs import (
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
    "checkpoint_from_models": "checkpoint",
    "official_unet_targets": "checkpoint",
    "official_vae_targets": "checkpoint",
    "add_unet_adapters": "checkpoint",
    "add_vae_adapter": "checkpoint",
    "apply_checkpoint": "checkpoint",
    "merge_adapters": "checkpoint",
    "resolve_base_model": "checkpoint",
    "load_base_unet": "checkpoint",
    "load_base_vae": "checkpoint",
    "load_ultravsr": "checkpoint",
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
