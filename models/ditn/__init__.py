"""DITN family (yongliuy/DITN, Apache-2.0): network, config read-back and registered models.

Importing this module registers the ``ditn`` architecture and the two released x4 models,
``ditn-real-x4`` and ``ditn-real-gan-x4``.

Tiling facts, measured with the official weights on four scikit-image photos (fp32, CPU):
the receptive radius is 57 input pixels (sft 1 + one 8x8 patch 7 + four SALs 4*12 +
conv_after_body 1 + upsample 1), so a pixel 58 or more pixels from a tile cut is bit-identical
to the untiled output; the error is below 1e-4 from 52 pixels on and up to ~1 near the cut.
With the engine's feathered blend (``vs_superres.tiling``: the outer 3/8 of each overlap
zone discarded, a linear ramp over the middle quarter) every output pixel comes from tiles
where it is at least 3/8 of the overlap from a cut, so an overlap of 128 (48 px of discarded
context, ramp over 48..80 px) keeps the tiled output within 1e-4 of the untiled one (measured
2.7e-5 at overlap 96 and 1.8e-7 at 128 on a 320x320 photo crop). Tile origins must be
multiples of the 8-pixel patch (``alignment``); otherwise the patch grid moves and the error
stays ~0.2 at any distance from the cut.

Memory: peak live activations at fp32 were 5,280 bytes per input pixel (sum of live tensor
sizes); ``bytes_per_pixel`` adds headroom for convolution workspaces and fragmentation.
"""

from vs_superres.registry import (
    Architecture,
    ModelDescriptor,
    WeightFile,
    register_architecture,
    register_model,
)

from .arch import DEFAULT_CONFIG, DITN, build, config_from_state_dict, reflect_pad_to_multiple

__all__ = ["DEFAULT_CONFIG", "DITN", "build", "config_from_state_dict", "reflect_pad_to_multiple"]

UPSTREAM = "https://github.com/yongliuy/DITN"
LICENCE = "Apache-2.0"


def _drive(file_id: str) -> str:
    return f"https://drive.google.com/uc?export=download&id={file_id}"


register_architecture(
    Architecture(name="ditn", build=build, config_from_state_dict=config_from_state_dict)
)

_RELEASES = (
    (
        "ditn-real-x4",
        "DITN_Real_x4.pth",
        "989dc21e2379c6924a6bd32696df0f1fa8cfd43dd557e1ae4126b97708695b5a",
        "1V9KHVPvLtOTwYINaD8_nGRuc37KZurkJ",
        "DITN Real x4: lightweight (0.44M-parameter) transformer for real-world photos.",
    ),
    (
        "ditn-real-gan-x4",
        "DITN_Real_GAN_x4.pth",
        "a103f07b5c605c2e23c23bfe44a880e10e7c019388a516f657fb13b0e7df1097",
        "12y6WjNowBkJ982fMql_yj6zBpwPKuhV2",
        "DITN Real GAN x4: the same network trained with an adversarial loss, sharper textures.",
    ),
)

for _name, _filename, _sha256, _drive_id, _description in _RELEASES:
    register_model(
        ModelDescriptor(
            name=_name,
            architecture="ditn",
            config=dict(DEFAULT_CONFIG),
            scale=4,
            kind="image",
            alignment=8,
            precisions=("fp32", "bf16", "fp16"),
            weights=(
                WeightFile(
                    relpath=f"ditn/{_filename}",
                    sha256=_sha256,
                    size=1_811_277,
                    licence=LICENCE,
                    upstream=UPSTREAM,
                    url=_drive(_drive_id),
                ),
            ),
            licence=LICENCE,
            description=_description,
            tileable=True,
            default_overlap=128,
            bytes_per_pixel=8_000,
        )
    )
