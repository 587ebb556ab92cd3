"""The frozen autoencoder: a diffusers ``AutoencoderKL`` in Stable Diffusion's KL-f8 layout.

The user supplies it (``sd-vae-ft-mse``, MIT: ``hf download stabilityai/sd-vae-ft-mse --local-dir
DIR``). The folder's ``config.json`` builds the network; its weights are read by the project's
one safe loader (safetensors, or a weights-only ``.bin``), never by unpickling.
Latents are ``scaling_factor * mean(E(2x - 1))``: the posterior mean, so encoding is deterministic.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import torch

from vs_superres.contracts.errors import WeightsError, option_ref
from vs_superres.numerics.checkpoints import load_tensors

from vs_superres.models.patchscaler.configs import LATENT_CHANNELS, LATENT_FACTOR, SD_LATENT_SCALE

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_GET_IT = ("PatchScaler needs Stable Diffusion's KL-f8 autoencoder in diffusers format, e.g. "
           "`hf download stabilityai/sd-vae-ft-mse --local-dir sd-vae-ft-mse` (MIT), passed as " + option_ref("autoencoder", "DIR") + ".")


def load_autoencoder(folder: str | os.PathLike):
    """``AutoencoderKL`` from a diffusers folder (fp32, CPU, eval, frozen); checks the KL-f8 layout."""
    from diffusers import AutoencoderKL

    folder = Path(folder)
    if folder.is_file() and folder.name == "config.json":
        folder = folder.parent
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise WeightsError(f"autoencoder folder {folder} has no config.json. {_GET_IT}", option="autoencoder")
    try:
        config = json.loads(config_file.read_text())
    except ValueError as exc:
        raise WeightsError(f"{config_file} is not JSON ({exc}). {_GET_IT}", option="autoencoder") from None
    if config.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
        raise WeightsError(f"{folder} holds a {config['_class_name']}, not an AutoencoderKL. {_GET_IT}", option="autoencoder")
    blocks = len(config.get("block_out_channels", ()))
    if config.get("latent_channels") != LATENT_CHANNELS or blocks != 4:
        raise WeightsError(
            f"{folder} is not in SD's KL-f8 layout (latent_channels {config.get('latent_channels')}, {blocks} blocks; "
            f"expected {LATENT_CHANNELS} and 4, i.e. a factor of {LATENT_FACTOR}). {_GET_IT}", option="autoencoder")
    accepted = set(inspect.signature(AutoencoderKL.__init__).parameters) - {"self"}
    files = [folder / n for n in WEIGHT_NAMES if (folder / n).is_file()]
    if not files:
        raise WeightsError(f"autoencoder folder {folder} holds none of {list(WEIGHT_NAMES)}. {_GET_IT}", option="autoencoder")
    state = load_tensors(files[0], hint=_GET_IT)
    vae = AutoencoderKL(**{k: v for k, v in config.items() if k in accepted})
    missing, unexpected = vae.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsError(f"{files[0]} does not match {config_file}: missing {missing[:5]}, unexpected {unexpected[:5]}. "
                           f"{_GET_IT}", option="autoencoder")
    return vae.eval().requires_grad_(False)


def latent_scale(vae) -> float:
    return float(getattr(vae.config, "scaling_factor", SD_LATENT_SCALE) or SD_LATENT_SCALE)


def encode(vae, images: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` in [0, 1] (H, W multiples of 8) -> scaled latent ``[B, 4, H/8, W/8]`` (posterior mean)."""
    return vae.encode(images * 2 - 1).latent_dist.mean * latent_scale(vae)


def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latent -> ``[B, 3, 8h, 8w]`` in [0, 1] (not clamped)."""
    return (vae.decode(latents / latent_scale(vae)).sample + 1) / 2
