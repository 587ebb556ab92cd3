"""A tiny, structurally complete PatchScaler release, written to disk from a seed.

There are no released PatchScaler weights. For tests, benchmarks and host smoke tests this
writes the same *kind* of files as a real release, small enough for a CPU:

* a diffusers ``AutoencoderKL`` folder in SD's KL-f8 layout at tiny widths
  (:data:`~.configs.TINY_AUTOENCODER_CONFIG`);
* a PatchScaler checkpoint (our safetensors format, config in the metadata) of
  :data:`~.configs.TINY_CONFIG`, every zero-initialised tensor (GRM residual, adaLN-Zero gates,
  gamma(t), the x0 head) set from the seed so every path is live, and an RTM built by the real
  builder (farthest-point sampling over seeded candidate patches).

Both load through the same code as a trained release (:meth:`~.pipeline.PatchScalerPipeline.from_files`,
or ``Upscaler("patchscaler-x4", checkpoint=..., autoencoder=...)``). The weights are random: the
output is not super-resolution, only the machinery is real.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vs_superres.models.patchscaler.configs import TINY_AUTOENCODER_CONFIG, TINY_CONFIG, PatchScalerConfig

__all__ = ["tiny_networks", "write_tiny_autoencoder", "write_tiny_checkpoint", "write_tiny_release"]


def write_tiny_autoencoder(folder: str | os.PathLike, seed: int = 0) -> Path:
    from diffusers import AutoencoderKL

    folder = Path(folder)
    torch.manual_seed(seed)
    AutoencoderKL(**TINY_AUTOENCODER_CONFIG).save_pretrained(folder, safe_serialization=True)
    return folder


def tiny_networks(config: PatchScalerConfig = TINY_CONFIG, seed: int = 0, scale: float = 0.05, live: bool = True):
    """Networks of ``config`` from ``seed``; ``live`` also randomises the zero-initialised tensors."""
    from vs_superres.models.patchscaler.networks import PatchScalerNetworks
    from vs_superres.models.patchscaler.rtm import build_rtm

    torch.manual_seed(seed)
    nets = PatchScalerNetworks(config)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        if live:
            for name, p in nets.named_parameters():
                if not p.any():
                    p.copy_(torch.randn(p.shape, generator=g) * scale)
        c, v = config.latent_channels, config.patch_size
        candidates = torch.randn(4 * config.rtm_size, c, v, v, generator=g)
        nets.set_rtm(build_rtm(candidates, nets.classifier, config.rtm_size))
    return nets.eval()


def write_tiny_checkpoint(path: str | os.PathLike, seed: int = 0, config: PatchScalerConfig = TINY_CONFIG,
                          live: bool = True) -> Path:
    from vs_superres.models.patchscaler.checkpoint import save_checkpoint

    return save_checkpoint(path, tiny_networks(config, seed, live=live))


def write_tiny_release(folder: str | os.PathLike, seed: int = 0, live: bool = True) -> tuple[Path, Path]:
    """``(checkpoint, autoencoder_folder)`` of a tiny release under ``folder``."""
    folder = Path(folder)
    vae = write_tiny_autoencoder(folder / "autoencoder", seed)
    return write_tiny_checkpoint(folder / "patchscaler-tiny.safetensors", seed, live=live), vae
