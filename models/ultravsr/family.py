"""The UltraVSR family's declaration (no torch): config type, options, the registered model.

The runtime resolves the files (the checkpoint, the SD-2.1-base folder, CLIP RN50 weights) from
the options or the weight search and hands them to :func:`_load`; this family never searches
for weights itself. The base folder is declared with its :class:`HubSnapshot`, so the runtime
also takes it as a hub id (``base=stabilityai/stable-diffusion-2-1-base``), finds it in the
Hugging Face cache when the search has none, and downloads it when ``allow_download`` is true.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vs_superres.contracts.config import FrozenConfig, FrozenDict
from vs_superres.contracts.descriptor import HubSnapshot, ModelDescriptor, ModelFamily, WeightFile
from vs_superres.contracts.errors import SuperResError

from vs_superres.models.ultravsr.configs import SD21_BASE_UNET_CONFIG, SD21_BASE_VAE_CONFIG
from vs_superres.models.ultravsr.options import OPTIONS

UPSTREAM = "https://github.com/yongliuy/UltraVSR"
TILING_OPTIONS = ("unet_tile", "unet_overlap", "decoder_tile", "decoder_overlap", "encoder_tile", "encoder_overlap", "tile_grid")
CHECKPOINT = WeightFile(relpath="ultravsr/UltraVSR.pkl", sha256=None, licence="Apache-2.0", upstream=UPSTREAM, option="checkpoint")
BASE_REPO = "stabilityai/stable-diffusion-2-1-base"
BASE = WeightFile(
    relpath="stable-diffusion-2-1-base", sha256=None, licence="CreativeML Open RAIL++-M",
    upstream=f"https://huggingface.co/{BASE_REPO}", option="base", required=False, folder=True,
    hub=HubSnapshot(
        repo=BASE_REPO, what="base model",
        subfolders=("unet", "vae", "text_encoder", "tokenizer", "scheduler"),
        files=("unet/config.json", "vae/config.json"),
        patterns=("model_index.json", "*/*.json", "*/*.txt", "text_encoder/model.safetensors",
                  "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"),
        download_option="allow_download",
    ),
)
CLIP_RN50 = WeightFile(
    relpath="clip/RN50.safetensors", sha256=None, licence="MIT", upstream="https://github.com/openai/CLIP",
    option="clip_iqa", required=False,
)


@dataclasses.dataclass(frozen=True)
class UltraVSRConfig(FrozenConfig):
    """diffusers constructor keywords of the UNet and the VAE (frozen); UltraVSR is x4."""

    unet: FrozenDict = FrozenDict(SD21_BASE_UNET_CONFIG)
    vae: FrozenDict = FrozenDict(SD21_BASE_VAE_CONFIG)

    @property
    def scale(self) -> int:
        return 4


def _build(config: UltraVSRConfig):
    """Random-weight UNet and VAE of a config in a ModuleDict."""
    from torch import nn

    from vs_superres.models.ultravsr.unet import UltraVSRUNet
    from vs_superres.models.ultravsr.vae import UltraVSRAutoencoder

    unet, vae = UltraVSRUNet(**config.unet.thaw()), UltraVSRAutoencoder(**config.vae.thaw())
    return nn.ModuleDict({"unet": unet, "vae": vae})  # type: ignore[dict-item]  # diffusers is untyped


def _load(request) -> Any:
    """Base folder + checkpoint (+ CLIP RN50 for the d estimate) -> :class:`~.pipeline.UltraVSRPipeline`.

    The runtime found the base folder (``base`` and ``allow_download`` were its to read)."""
    from vs_superres.models.ultravsr.pipeline import UltraVSRPipeline

    options = dict(request.options)
    found = request.weights
    checkpoint = options.pop("checkpoint", None) or found[CHECKPOINT.relpath]
    options.pop("base", None)
    options.pop("allow_download", None)
    if options.get("strength") is None and options.get("clip_iqa") is None and found.get(CLIP_RN50.relpath) is not None:
        options["clip_iqa"] = str(found[CLIP_RN50.relpath])
    try:
        return UltraVSRPipeline.from_pretrained(
            checkpoint, found[BASE.relpath], descriptor=request.descriptor, device=request.device,
            dtype=request.dtype, search_roots=request.search_roots, **options)
    except ImportError as exc:  # the optional dependencies: one line, not a traceback
        raise SuperResError(f"{exc} (pip install 'vs-superres[ultravsr]')", model=request.descriptor.name) from None


FAMILY = ModelFamily(
    name="ultravsr", config_type=UltraVSRConfig, build=_build, options=OPTIONS, load=_load,
    title="UltraVSR", default_model="ultravsr",
    # the metadata our own safetensors checkpoints carry (checkpoint.py writes it)
    checkpoint_format="vs-superres/ultravsr",
    description="UltraVSR (Liu et al.): one-step diffusion video SR on SD-2.1-base with DRS, RTS and TAI",
)

MODEL = ModelDescriptor(
    name="ultravsr",
    family="ultravsr",
    config=UltraVSRConfig(),
    kind="video",
    alignment=1,
    precisions=("fp32", "bf16", "fp16"),
    weights=(CHECKPOINT, BASE, CLIP_RN50),
    licence="Apache-2.0 (UltraVSR); the SD-2.1-base weights it needs: CreativeML Open RAIL++-M",
    description="UltraVSR: one-step diffusion video SR on SD-2.1-base (needs base= and the checkpoint)",
    tileable=False,
    default_overlap=0,
    window=30,
    window_overlap=4,
    tiling_options=TILING_OPTIONS,
    min_size=4,  # 16 pre-upscaled pixels, a 2x2 latent
)
"""The registered model; :class:`~.pipeline.UltraVSRPipeline` built without the runtime takes it
as its descriptor (the runtime hands over the one it resolved, see ``_load``)."""

MODELS = (MODEL,)
