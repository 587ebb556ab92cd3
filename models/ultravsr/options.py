"""UltraVSR's options, declared once: loader options and inference settings.

Both dataclasses are plain data (no torch): the composition root, ``superres upscale --help``,
the VapourSynth signatures and every other host read them without loading a network.
``UltraVSRSettings`` goes to :class:`~.pipeline.UltraVSRPipeline`; ``UltraVSRLoadOptions``
are consumed while loading (which files, how to estimate ``d``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from vs_superres.contracts.errors import InvalidOption
from vs_superres.contracts.options import check_fields, declare, option

#: Colour corrections against the pre-upscaled input (``vs_superres.numerics.colorfix``).
COLOR_FIX_CHOICES = ("wavelet", "adain", "none")
TILE_GRIDS = ("balanced", "official")


@dataclasses.dataclass(frozen=True)
class UltraVSRLoadOptions:
    """How UltraVSR is loaded: its files and how the clip's degradation factor ``d`` is found."""

    checkpoint: str | None = option(
        None, "UltraVSR checkpoint, official .pkl or our .safetensors (default: ultravsr/UltraVSR.pkl in the weight path)",
        type="path")
    base: str | None = option(
        None, "Stable Diffusion 2.1-base diffusers folder or hub id (default: stable-diffusion-2-1-base in the "
        "weight path, else the Hugging Face cache)", type="path")
    strength: float | None = option(
        None, "fixed degradation factor d (1 = clean input, smaller = stronger restoration) instead of the "
        "CLIP-IQA estimate", minimum=0.0, maximum=1.0, exclusive_minimum=True)
    clip_iqa: str | None = option(
        None, "CLIP RN50 weights for the released d estimate (default: clip/RN50.safetensors in the weight path)",
        type="path")
    tagger: Any = option(
        None, "callable frames -> 'tag, tag' whose tags are appended to the prompt (Python API only)",
        type="callable", hosts=False)
    # Merged by default: folding W + (8/r) B A into one weight changes the output by float rounding
    # only (max 3.9e-6 on [0, 1] for the tiny release, tests/test_ultravsr_merge.py), removes every
    # peft wrapper with its two extra convs/matmuls and two full-size element-wise passes per
    # adapted layer, and runs the tiny release 1.3x faster on the CPU (docs/benchmarks.md, issue 14
    # goal 3). The released script does not merge by default; merge_lora=False keeps its unmerged
    # layers (comparisons with it, inspecting or training the adapters).
    merge_lora: bool = option(
        True, "fold the LoRA adapters into the base weights (faster, same output within float rounding); "
        "false keeps the released script's separate peft layers")
    allow_download: bool = option(False, "allow downloading the base model from the Hugging Face hub")


@dataclasses.dataclass(frozen=True)
class UltraVSRSettings:
    """Inference settings of :class:`~.pipeline.UltraVSRPipeline` (none of them changes the weights).

    Released values, where they differ: UNet tiles 96 / 32 (the same), decoder 96 / 10 (the
    same; the balanced grid spreads any slack into the overlaps), encoder 3000 / 32 (only
    frames above 9 MP are tiled; here 4096 / 64: tiling the encoder costs FLOPs and saves little,
    it has no RTS, so its memory scales with ``frames_per_batch`` only; out of memory halves it).
    ``sample_latent``: the noise of frame ``i`` is seeded by ``(seed, i)``, so it does not depend
    on windows or request order.
    """

    frames_per_batch: int | None = option(
        1, "TAI mini-batch b: frames per pass of the spatial layers (none: the whole window); memory, not output",
        minimum=1)
    unet_tile: int = option(96, "UNet tile side in latent pixels (1/8 of the output)", minimum=8)
    unet_overlap: int = option(32, "minimum UNet tile overlap in latent pixels (less than unet_tile)", minimum=0)
    decoder_tile: int = option(96, "VAE-decoder tile side in latent pixels", minimum=8)
    decoder_overlap: int = option(10, "minimum VAE-decoder tile overlap in latent pixels (less than decoder_tile)", minimum=0)
    encoder_tile: int = option(4096, "VAE-encoder tile side in output pixels", minimum=64, multiple=8)
    encoder_overlap: int = option(64, "VAE-encoder tile overlap in output pixels (less than encoder_tile)", minimum=0, multiple=8)
    tile_grid: str = option("balanced", "tile layout: fewest evenly spread tiles, or the released grids", choices=TILE_GRIDS)
    color_fix: str = option("wavelet", "colour correction against the input (released: wavelet)", choices=COLOR_FIX_CHOICES)
    sample_latent: bool = option(False, "draw the VAE latent instead of taking its mean (seeded per frame)")
    seed: int = option(0, "seed of the sampled latents", minimum=0)
    prompt: str = option("", "text prompt for every frame; a tagger's tags are appended")

    def __post_init__(self) -> None:
        check_fields(self, model="ultravsr")
        for name, tile, multiple in (("unet_overlap", "unet_tile", 1), ("decoder_overlap", "decoder_tile", 1),
                                     ("encoder_overlap", "encoder_tile", 8)):
            if getattr(self, name) > getattr(self, tile) - multiple:
                raise InvalidOption(
                    f"{name} must be less than {tile} ({getattr(self, tile)}), got {getattr(self, name)}",
                    option=name, model="ultravsr")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "UltraVSRSettings":
        OPTIONS.validate({k: v for k, v in options.items() if k not in UltraVSRSettings.names()}, model="ultravsr")
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise InvalidOption(f"{', '.join(unknown)} are loader options, not UltraVSR settings", option=unknown[0], model="ultravsr")
        return cls(**options)


OPTIONS = declare(UltraVSRLoadOptions, UltraVSRSettings)
"""Every option of the ``ultravsr`` family, in the order hosts show them."""
LOADER_OPTIONS = declare(UltraVSRLoadOptions).names()
