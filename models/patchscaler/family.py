"""The PatchScaler family's declaration (no torch): config type, options, the registered model.

No weights were ever released (the authors' repository holds no code and no weights). The
runtime resolves two files, both required: the PatchScaler checkpoint (GRM, Patch-DiT, texture
classifier, texture encoder and RTM, trained with ``python -m vs_superres.models.patchscaler.train``)
and a diffusers ``AutoencoderKL`` folder in Stable Diffusion's KL-f8 layout (``sd-vae-ft-mse``,
MIT). It hands them to :func:`_load`; this family never searches for weights itself.
"""

from __future__ import annotations

from typing import Any

from vs_superres.contracts.descriptor import ModelDescriptor, ModelFamily, WeightFile

from vs_superres.models.patchscaler.configs import PatchScalerConfig
from vs_superres.models.patchscaler.options import OPTIONS

UPSTREAM = "https://github.com/yongliuy/PatchScaler (paper only: no code or weights released)"
TILING_OPTIONS = ("patch_stride", "patches_per_batch", "decoder_tile", "decoder_overlap")
CHECKPOINT = WeightFile(
    relpath="patchscaler/patchscaler-x4.safetensors", sha256=None, option="checkpoint",
    licence="yours (no released weights: train it with python -m vs_superres.models.patchscaler.train)",
    upstream=UPSTREAM,
)
AUTOENCODER = WeightFile(
    relpath="sd-vae-ft-mse", sha256=None, option="autoencoder", folder=True, licence="MIT",
    upstream="https://huggingface.co/stabilityai/sd-vae-ft-mse",
)
#: Input side below which the latent would be under 2x2 (x4, then /8); smaller inputs are refused.
MIN_INPUT_SIDE = 4


def _build(config: PatchScalerConfig):
    """Random-weight networks of a config (GRM, Patch-DiT, texture classifier and encoder)."""
    from vs_superres.models.patchscaler.networks import PatchScalerNetworks

    return PatchScalerNetworks(config)


def _load(request) -> Any:
    """Checkpoint + autoencoder folder -> :class:`~.pipeline.PatchScalerPipeline`."""
    from vs_superres.models.patchscaler.pipeline import PatchScalerPipeline

    options = dict(request.options)
    checkpoint = options.pop("checkpoint", None) or request.weights[CHECKPOINT.relpath]
    autoencoder = options.pop("autoencoder", None) or request.weights[AUTOENCODER.relpath]
    return PatchScalerPipeline.from_files(
        checkpoint, autoencoder, device=request.device, dtype=request.dtype, model=request.descriptor.name, **options)


FAMILY = ModelFamily(
    name="patchscaler", config_type=PatchScalerConfig, build=_build, options=OPTIONS, load=_load,
    title="PatchScaler", default_model="patchscaler-x4",
    # the metadata our own safetensors checkpoints carry (checkpoint.py writes it)
    checkpoint_format="vs-superres/patchscaler",
    description="PatchScaler (Liu et al.): patch-adaptive group sampling with a Patch-DiT and texture prompts",
)

MODELS = (
    ModelDescriptor(
        name="patchscaler-x4",
        family="patchscaler",
        config=PatchScalerConfig(),
        kind="image",
        alignment=1,
        precisions=("fp32", "bf16"),
        weights=(CHECKPOINT, AUTOENCODER),
        licence="no released weights: your own checkpoint; autoencoder sd-vae-ft-mse is MIT",
        description=("PatchScaler x4 (no released weights: train your own with `python -m "
                     "vs_superres.models.patchscaler.train`; needs the sd-vae-ft-mse autoencoder)"),
        tileable=False,
        default_overlap=0,
        tiling_options=TILING_OPTIONS,
        min_size=MIN_INPUT_SIDE,
    ),
)

