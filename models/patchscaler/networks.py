"""Every trained part of PatchScaler in one module: GRM, Patch-DiT, texture classifier T, the
similarity-aware texture encoder and the RTM (as buffers), built from a :class:`PatchScalerConfig`."""

from __future__ import annotations

import torch
from torch import nn

from vs_superres.models.patchscaler.configs import PatchScalerConfig
from vs_superres.models.patchscaler.grm import GlobalRestorationModule
from vs_superres.models.patchscaler.patch_dit import PatchDiT
from vs_superres.models.patchscaler.rtm import ReferenceTextureMemory, retrieve
from vs_superres.models.patchscaler.texture import SimilarityAwareTextureEncoder, TextureClassifier


class PatchScalerNetworks(nn.Module):
    """``grm``, ``dit``, ``classifier``, ``texture_encoder`` and the RTM buffers ``rtm_keys``/``rtm_values``."""

    rtm_keys: torch.Tensor
    rtm_values: torch.Tensor

    def __init__(self, config: PatchScalerConfig):
        super().__init__()
        self.config = config
        c, v = config.latent_channels, config.patch_size
        self.grm = GlobalRestorationModule(c, config.grm_dim, config.grm_blocks, config.grm_heads)
        self.dit = PatchDiT(c, v, config.dit_dim, config.dit_depth, config.dit_heads, config.dit_patch, config.dit_mlp_ratio)
        self.classifier = TextureClassifier(c, config.texture_width, config.texture_dim, config.texture_classes)
        self.texture_encoder = SimilarityAwareTextureEncoder(
            c, v, config.dit_dim, config.dit_heads, config.top_k, config.prompt_patch, config.prompt_layers)
        # an empty-but-valid memory until one is built: unit keys, zero values
        keys = torch.zeros(config.rtm_size, config.texture_dim)
        keys[:, 0] = 1.0
        self.register_buffer("rtm_keys", keys)
        self.register_buffer("rtm_values", torch.zeros(config.rtm_size, c, v, v))

    @property
    def rtm(self) -> ReferenceTextureMemory:
        return ReferenceTextureMemory(self.rtm_keys, self.rtm_values)

    def set_rtm(self, rtm: ReferenceTextureMemory) -> None:
        if rtm.keys.shape != self.rtm_keys.shape or rtm.values.shape != self.rtm_values.shape:
            raise ValueError(f"RTM of shape {tuple(rtm.keys.shape)}/{tuple(rtm.values.shape)} does not fit the config "
                             f"({tuple(self.rtm_keys.shape)}/{tuple(self.rtm_values.shape)})")
        with torch.no_grad():
            self.rtm_keys.copy_(rtm.keys)
            self.rtm_values.copy_(rtm.values)

    def texture_prompt(self, y0: torch.Tensor) -> torch.Tensor:
        """Algorithm 1 then the encoder: coarse patches ``[B, c, V, V]`` -> prompt tokens ``[B, L_p, D]``."""
        priors, sims = retrieve(self.classifier.features(y0), self.rtm, self.config.top_k)
        return self.texture_encoder(priors, sims)
