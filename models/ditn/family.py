"""The DITN family's declaration (no torch): config type, options, registered models.

Tiling facts, measured with the official weights on four scikit-image photos (fp32, CPU):
the receptive radius is 57 input pixels (sft 1 + one 8x8 patch 7 + four SALs 4*12 +
conv_after_body 1 + upsample 1), so a pixel 58 or more pixels from a tile cut is bit-identical
to the untiled output; the error is below 1e-4 from 52 pixels on and up to ~1 near the cut.
With the runtime's feathered blend (``vs_superres.numerics.tiling``: the outer 3/8 of each
overlap zone discarded, a linear ramp over the middle quarter) every output pixel comes from
tiles where it is at least 3/8 of the overlap from a cut, so an overlap of 128 (48 px of
discarded context, ramp over 48..80 px) keeps the tiled output within 1e-4 of the untiled one
(measured 2.7e-5 at overlap 96 and 1.8e-7 at 128 on a 320x320 photo crop). Tile origins must be
multiples of the 8-pixel patch (``alignment``); otherwise the patch grid moves and the error
stays ~0.2 at any distance from the cut.

Memory: peak live activations at fp32 were 5,280 bytes per input pixel (sum of live tensor
sizes); ``bytes_per_pixel`` adds headroom for convolution workspaces and fragmentation.
"""

from __future__ import annotations

import dataclasses

from vs_superres.contracts.config import FrozenConfig
from vs_superres.contracts.descriptor import ModelDescriptor, ModelFamily, WeightFile
from vs_superres.contracts.options import check_fields, declare, option

UPSTREAM = "https://github.com/yongliuy/DITN"
LICENCE = "Apache-2.0"


@dataclasses.dataclass(frozen=True)
class DITNConfig(FrozenConfig):
    """Hyperparameters of the released DITN_Real network (the defaults are the release's)."""

    in_channels: int = 3
    dim: int = 60
    num_itl: int = 4
    num_sal: int = 4
    num_ufone: int = 1
    ffn_expansion: float = 2
    bias: bool = False
    patch_size: int = 8
    upscale: int = 4

    @property
    def scale(self) -> int:
        return self.upscale


#: What can run a DITN: PyTorch (the fused fast path), or the exported ONNX graph
#: (``models/ditn/export.py``) in one of these runtimes (``vs_superres/runtime/backends.py``).
BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")


@dataclasses.dataclass(frozen=True)
class DITNOptions:
    """DITN's options, declared once: every host derives its flag, argument or widget from them."""

    backend: str = option(
        "torch", "what runs the network: torch, or its exported ONNX graph in that runtime (pip extras "
        "[onnx], [openvino], [tensorrt])",
        choices=BACKENDS)

    def __post_init__(self) -> None:
        check_fields(self)


def _build(config: DITNConfig):
    """The runtime's network: :class:`~.fast.DITNInference`, the checkpoint-true DITN with a
    fused gradient-free forward (``docs/benchmarks.md``: same state dict, output within 1e-4)."""
    from vs_superres.models.ditn.fast import DITNInference

    return DITNInference(**config.to_dict())


def _config_from_state_dict(state_dict) -> DITNConfig:
    from vs_superres.models.ditn.arch import config_from_state_dict

    return config_from_state_dict(state_dict)


def _export(state_dict, config: DITNConfig, **kwargs) -> bytes:
    """The deployment form as ONNX (:func:`~.export.export_onnx`)."""
    from vs_superres.models.ditn.export import export_onnx

    return export_onnx(state_dict, config, **kwargs)


def _drive(file_id: str) -> str:
    return f"https://drive.google.com/uc?export=download&id={file_id}"


_RELEASES = (
    ("ditn-real-x4", "DITN_Real_x4.pth", "989dc21e2379c6924a6bd32696df0f1fa8cfd43dd557e1ae4126b97708695b5a",
     "1V9KHVPvLtOTwYINaD8_nGRuc37KZurkJ",
     "DITN Real x4: lightweight (0.44M-parameter) transformer for real-world photos."),
    ("ditn-real-gan-x4", "DITN_Real_GAN_x4.pth", "a103f07b5c605c2e23c23bfe44a880e10e7c019388a516f657fb13b0e7df1097",
     "12y6WjNowBkJ982fMql_yj6zBpwPKuhV2",
     "DITN Real GAN x4: the same network trained with an adversarial loss, sharper textures."),
)

#: What an unregistered DITN checkpoint inherits (``superres upscale --model file.pth``).
TEMPLATE = ModelDescriptor(
    name="ditn", family="ditn", config=DITNConfig(), kind="image", alignment=8,
    precisions=("fp32", "bf16", "fp16"), licence=LICENCE, tileable=True, default_overlap=128,
    bytes_per_pixel=8_000,
)

FAMILY = ModelFamily(
    name="ditn", config_type=DITNConfig, build=_build, config_from_state_dict=_config_from_state_dict,
    options=declare(DITNOptions), template=TEMPLATE, title="DITN", default_model="ditn-real-x4", export=_export,
    description="DITN (Liu et al., ACM MM 2023): a light inner-patch transformer for single images",
)


MODELS = tuple(
    dataclasses.replace(
        TEMPLATE, name=name, description=description,
        weights=(WeightFile(relpath=f"ditn/{filename}", sha256=sha256, size=1_811_277, licence=LICENCE,
                            upstream=UPSTREAM, url=_drive(drive_id)),),
    )
    for name, filename, sha256, drive_id, description in _RELEASES
)
