"""UltraVSR networks: RTS modules, the RTS UNet and VAE, and the official checkpoint loader.

``rts`` and ``configs`` need only torch. ``unet``, ``vae`` and ``checkpoint`` need diffusers
(and peft for the adapters); they are imported on first use, so this package imports without
them.
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
from .rts import RTSAttenBlock, RTSConvBlock, RTSModule, attention_width, conv_width

_LAZY = {
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
}

__all__ = [
    "RTSAttenBlock",
    "RTSConvBlock",
    "RTSModule",
    "SD21_BASE_SCHEDULER_CONFIG",
    "SD21_BASE_UNET_CONFIG",
    "SD21_BASE_VAE_CONFIG",
    "TINY_UNET_CONFIG",
    "TINY_VAE_CONFIG",
    "attention_width",
    "conv_width",
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
