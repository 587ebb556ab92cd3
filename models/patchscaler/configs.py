"""PatchScaler's network config (no torch): the paper's numbers, our choices, and a tiny config.

The paper gives V = 16, the thresholds, tau and N (see :mod:`.options`), the RTM sizes and the
training hyperparameters; it does not give any network size. The defaults here are the choices
in ``docs/patchscaler.md`` (DiT-B trunk, patchify 2, K = 4 texture priors).
"""

from __future__ import annotations

import dataclasses

from vs_superres.contracts.config import FrozenConfig

#: Latent scaling of Stable Diffusion's KL-f8 autoencoder (``sd-vae-ft-mse``).
SD_LATENT_SCALE = 0.18215
#: The autoencoder's spatial factor (KL-f8) and latent channels; Sec. 3.1 writes x_HR in R^{4 x H/d x W/d}.
LATENT_FACTOR = 8
LATENT_CHANNELS = 4


@dataclasses.dataclass(frozen=True)
class PatchScalerConfig(FrozenConfig):
    """Every hyperparameter that shapes PatchScaler's trained tensors (GRM, Patch-DiT, texture parts).

    ``patch_size`` is V (latent pixels per patch side, paper: 16). The DiT sees ``[y_t, y_0]``
    (``2 * latent_channels`` channels) patchified by ``dit_patch``; the texture prompt is K = ``top_k``
    priors, each patch-embedded by ``prompt_patch``. ``num_timesteps`` and the linear beta range
    define the DDPM schedule of Eq. 3/4.
    """

    latent_channels: int = LATENT_CHANNELS
    latent_scale: float = SD_LATENT_SCALE
    upscale: int = 4
    patch_size: int = 16
    # GRM: a latent-space restorer with global (channel) attention, y_HR = y_LR + g, C = sigmoid(h)
    grm_dim: int = 96
    grm_blocks: int = 8
    grm_heads: int = 4
    # Patch-DiT (DiT-B/2 sized)
    dit_dim: int = 768
    dit_depth: int = 12
    dit_heads: int = 12
    dit_patch: int = 2
    dit_mlp_ratio: float = 4.0
    # texture classifier T and the similarity-aware texture encoder
    texture_width: int = 64
    texture_dim: int = 256
    texture_classes: int = 47
    top_k: int = 4
    prompt_patch: int = 2
    prompt_layers: int = 1
    rtm_size: int = 2000
    # DDPM schedule (DiT's linear schedule)
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    @property
    def scale(self) -> int:
        return self.upscale

    def __post_init__(self) -> None:
        if self.patch_size % self.dit_patch or self.patch_size % self.prompt_patch:
            raise ValueError("patch_size must be a multiple of dit_patch and prompt_patch")
        if self.dit_dim % self.dit_heads or self.grm_dim % self.grm_heads:
            raise ValueError("dit_dim and grm_dim must be multiples of their head counts")


#: Small enough for CPU tests and smoke training (Patch-DiT 0.22 M parameters; the paper config's is 165 M).
TINY_CONFIG = PatchScalerConfig(
    grm_dim=16, grm_blocks=2, grm_heads=2, dit_dim=64, dit_depth=2, dit_heads=2, texture_width=16,
    texture_dim=32, texture_classes=8, top_k=2, prompt_patch=4, rtm_size=64,
)

#: What a tiny autoencoder in SD's KL-f8 layout looks like (4 blocks: 3 downsamplings, 4 latent channels).
TINY_AUTOENCODER_CONFIG = {
    "in_channels": 3, "out_channels": 3, "latent_channels": LATENT_CHANNELS,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [8, 8, 16, 16], "layers_per_block": 1, "norm_num_groups": 4,
    "sample_size": 64, "scaling_factor": SD_LATENT_SCALE,
}
