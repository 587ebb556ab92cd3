"""UltraVSR: RTS networks, the official checkpoint, DRS and the one-step pipeline.

Importing this package registers the ``ultravsr`` architecture and the ``ultravsr`` video
model (x4) with the engine. ``rts``, ``configs`` and ``tiles`` need only torch; ``unet``,
``vae``, ``checkpoint``, ``pipeline`` and ``tiny`` need diffusers, peft and transformers (the
``ultravsr`` extra) and are imported on first use, so this package imports without them.
Design and differences from the released code: ``docs/ultravsr.md``.
"""

from __future__ import annotations

import importlib
import os

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
    "UltraVSRPipeline": "pipeline",
    "UltraVSRSettings": "pipeline",
    "ClipState": "pipeline",
    "write_tiny_release": "tiny",
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


# --------------------------------------------------------------------------- engine registration
from vs_superres.registry import (  # noqa: E402
    Architecture,
    ModelDescriptor,
    WeightFile,
    register_architecture,
    register_model,
)

UPSTREAM = "https://github.com/yongliuy/UltraVSR"
TILING_OPTIONS = ("unet_tile", "unet_overlap", "decoder_tile", "decoder_overlap", "encoder_tile", "encoder_overlap", "tile_grid")


def _build(config):
    """Random-weight UNet and VAE of a config (``{"unet": ..., "vae": ...}``) in a ModuleDict."""
    from torch import nn

    from .unet import UltraVSRUNet
    from .vae import UltraVSRAutoencoder

    return nn.ModuleDict({"unet": UltraVSRUNet(**config["unet"]), "vae": UltraVSRAutoencoder(**config["vae"])})


def _load(desc, device, dtype, weights, **options):
    """The engine's loader: base folder + checkpoint -> :class:`~.pipeline.UltraVSRPipeline`."""
    from vs_superres import weights as weights_mod
    from vs_superres.errors import SuperResError

    from .pipeline import UltraVSRPipeline

    checkpoint = options.pop("checkpoint", None)
    explicit = [weights] if isinstance(weights, (str, os.PathLike)) else list(weights or [])
    if checkpoint is not None and explicit:
        raise SuperResError("give the UltraVSR checkpoint once: checkpoint= or weights=, not both")
    if len(explicit) > 1:
        raise SuperResError(f"UltraVSR takes one checkpoint file, got {len(explicit)} weight paths")
    if checkpoint is None:
        checkpoint = weights_mod.resolve(desc.weights[0], explicit[0] if explicit else None, model_name=desc.name)
    try:
        return UltraVSRPipeline.from_pretrained(checkpoint, device=device, dtype=dtype, **options)
    except ImportError as exc:  # the optional dependencies: one line, not a traceback
        raise SuperResError(f"{exc} (pip install 'vs-superres[ultravsr]')") from None


register_architecture(Architecture(name="ultravsr", build=_build, load=_load))
register_model(
    ModelDescriptor(
        name="ultravsr",
        architecture="ultravsr",
        config={"unet": SD21_BASE_UNET_CONFIG, "vae": SD21_BASE_VAE_CONFIG},
        scale=4,
        kind="video",
        alignment=1,
        precisions=("fp32", "bf16", "fp16"),
        weights=(
            WeightFile(
                relpath="ultravsr/UltraVSR.pkl",
                sha256=None,
                licence="Apache-2.0",
                upstream=UPSTREAM,
            ),
        ),
        licence="Apache-2.0 (UltraVSR); the SD-2.1-base weights it needs: CreativeML Open RAIL++-M",
        description="UltraVSR: one-step diffusion video SR on SD-2.1-base (needs base= and the checkpoint)",
        tileable=False,
        default_overlap=0,
        window=30,
        window_overlap=4,
        tiling_options=TILING_OPTIONS,
        min_size=4,  # pipeline.MIN_INPUT_SIDE: 16 pre-upscaled pixels, a 2x2 latent
    )
)
