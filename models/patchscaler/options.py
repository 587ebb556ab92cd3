"""PatchScaler's options, declared once: loader options and the PGS / sampling settings.

Plain data (no torch), read by the composition root and every host. The defaults are the
paper's numbers: V = 16 (in the config), gamma1 = 0.95, gamma2 = 0.75 (Eq. 2), tau = 400 / 700
/ 1000 and N = 8 / 14 / 20 for the simple / medium / hard groups (Sec. 3.2, Fig. 6).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from vs_superres.contracts.errors import InvalidOption, option_ref
from vs_superres.contracts.options import check_fields, declare, option

COLOR_FIX_CHOICES = ("wavelet", "adain", "none")
GROUPS = ("simple", "medium", "hard")
#: Smallest VAE-decoder tile (latent pixels): below it the decoder's GroupNorm statistics and
#: mid-block attention see too little of the image.
MIN_DECODER_TILE = 16


@dataclasses.dataclass(frozen=True)
class PatchScalerLoadOptions:
    """Which files PatchScaler loads and where its Patch-DiT groups run."""

    checkpoint: str | None = option(
        None, "PatchScaler checkpoint (.safetensors written by `python -m vs_superres.models.patchscaler.train`; "
        "default: patchscaler/patchscaler-x4.safetensors in the weight path)", type="path")
    autoencoder: str | None = option(
        None, "diffusers AutoencoderKL folder in SD's KL-f8 layout, e.g. stabilityai/sd-vae-ft-mse "
        "(default: sd-vae-ft-mse in the weight path)", type="path")
    ignore_ema: bool = option(
        False, "load the raw trained weights instead of the checkpoint's EMA of them (GRM, Patch-DiT, texture "
        "encoder; by default the EMA is used when the checkpoint has one)")
    devices: str | None = option(
        None, "comma-separated devices for the Patch-DiT groups, e.g. 'cuda:0,cuda:1' (the paper's dual-GPU "
        "mode: the hard group on one, simple and medium on the other); default: the engine's device")


@dataclasses.dataclass(frozen=True)
class PatchScalerSettings:
    """Inference settings of :class:`~.pipeline.PatchScalerPipeline` (none of them changes the weights)."""

    patch_stride: int = option(12, "stride of the overlapping V x V latent patches (V = 16 in the paper)", minimum=1)
    gamma_simple: float = option(0.95, "gamma1 of Eq. 2: patches with Avg(C) above it are 'simple'", minimum=0.0, maximum=1.0)
    gamma_medium: float = option(0.75, "gamma2 of Eq. 2: patches with Avg(C) above it (and <= gamma1) are 'medium'",
                                 minimum=0.0, maximum=1.0)
    tau_simple: int = option(400, "intermediate start step T1 of the simple group (Eq. 6/7)", minimum=1, maximum=1000)
    tau_medium: int = option(700, "intermediate start step T2 of the medium group", minimum=1, maximum=1000)
    tau_hard: int = option(1000, "intermediate start step T3 of the hard group", minimum=1, maximum=1000)
    steps_simple: int = option(8, "sampling steps N1 of the simple group", minimum=1, maximum=1000)
    steps_medium: int = option(14, "sampling steps N2 of the medium group", minimum=1, maximum=1000)
    steps_hard: int = option(20, "sampling steps N3 of the hard group", minimum=1, maximum=1000)
    patches_per_batch: int = option(64, "patches of one group denoised together (memory, not output)", minimum=1)
    decoder_tile: int = option(
        128, "VAE-decoder tile side in latent pixels (x8 output pixels); a latent no larger decodes in one piece; "
        "0: one piece unless out of memory", minimum=0)
    decoder_overlap: int = option(16, "VAE-decoder tile overlap in latent pixels (less than decoder_tile)", minimum=0)
    seed: int = option(0, "seed of the per-patch start noise (patch i uses (seed, i))", minimum=0)
    color_fix: str = option("wavelet", "colour normalisation against the bicubic-upscaled input (paper: wavelet)",
                            choices=COLOR_FIX_CHOICES)

    def __post_init__(self) -> None:
        check_fields(self, model="patchscaler")
        if not self.gamma_medium < self.gamma_simple:
            raise InvalidOption(
                f"gamma_medium ({self.gamma_medium}) must be less than gamma_simple ({self.gamma_simple})",
                option="gamma_medium", model="patchscaler")
        if 0 < self.decoder_tile < MIN_DECODER_TILE:
            raise InvalidOption(
                f"{option_ref('decoder_tile')} must be 0 (one piece) or at least {MIN_DECODER_TILE} latent pixels, got "
                f"{self.decoder_tile}", option="decoder_tile", model="patchscaler")
        if self.decoder_tile and self.decoder_overlap >= self.decoder_tile:
            raise InvalidOption(
                f"{option_ref('decoder_overlap')} ({self.decoder_overlap}) must be less than "
                f"{option_ref('decoder_tile')} ({self.decoder_tile}); lower the one or raise the other", option="decoder_overlap", model="patchscaler")
        for kind in ("tau", "steps"):
            values = [getattr(self, f"{kind}_{g}") for g in GROUPS]
            if values != sorted(values):
                raise InvalidOption(
                    f"{kind}_simple <= {kind}_medium <= {kind}_hard is required (harder patches start "
                    f"earlier and take more steps), got {values}", option=f"{kind}_simple", model="patchscaler")
        for g in GROUPS:
            if getattr(self, f"steps_{g}") > getattr(self, f"tau_{g}"):
                raise InvalidOption(
                    f"steps_{g} ({getattr(self, f'steps_{g}')}) cannot exceed tau_{g} ({getattr(self, f'tau_{g}')}): "
                    "each step must move at least one diffusion step", option=f"steps_{g}", model="patchscaler")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "PatchScalerSettings":
        """Settings from a mapping of option values; loader options are refused here."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise InvalidOption(f"{', '.join(unknown)} are not PatchScaler settings", option=unknown[0], model="patchscaler")
        return cls(**options)

    def group_schedule(self) -> dict[str, tuple[int, int]]:
        """``{group: (tau, steps)}`` in the order simple, medium, hard."""
        return {g: (getattr(self, f"tau_{g}"), getattr(self, f"steps_{g}")) for g in GROUPS}


OPTIONS = declare(PatchScalerLoadOptions, PatchScalerSettings)
"""Every option of the ``patchscaler`` family, in the order hosts show them."""
LOADER_OPTIONS = declare(PatchScalerLoadOptions).names()
