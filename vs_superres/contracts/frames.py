"""The frame contract: float RGB in [0, 1], ``[T, C, H, W]`` torch tensors.

Hosts and the CLI hand frames in many layouts; :func:`as_frames` turns them into the one
layout the engine works in and rejects what cannot be right, with a message naming the fix.
"""

from __future__ import annotations

import numpy as np
import torch

from vs_superres.contracts.errors import InvalidOption, OutOfRangeFrames, SuperResError, UnsupportedFormat

#: Float values a legal conversion can produce (limited-range 8-bit YUV -> RGB spans about
#: [-1.2, 2.0]); anything beyond is data in the wrong scale.
PLAUSIBLE_FLOAT_RANGE = (-1.5, 2.5)


#: the bit depths integer frames may have: 1 to 16 bits per sample (8 in uint8; 10, 12, 14,
#: 16 in uint16 or wider integers)
BIT_DEPTHS = range(1, 17)


def check_bit_depth(bit_depth: object) -> None:
    """Refuse a ``bit_depth`` that is not a whole number in :data:`BIT_DEPTHS`, naming them."""
    if isinstance(bit_depth, (bool, np.bool_)) or not isinstance(bit_depth, (int, np.integer)) \
            or int(bit_depth) not in BIT_DEPTHS:
        raise InvalidOption(
            f"bit_depth must be a whole number of bits per sample from {BIT_DEPTHS.start} to "
            f"{BIT_DEPTHS.stop - 1} (8 for uint8 data, 10, 12 or 16 for uint16 data), or None for "
            f"float frames in [0, 1] and uint8; got {bit_depth!r}", option="bit_depth")


def as_frames(x, *, channels: int = 3, bit_depth: int | None = None) -> torch.Tensor:
    """Validate and convert frames to a float ``[T, C, H, W]`` tensor.

    Accepts a numpy array or tensor shaped ``[H, W, C]`` / ``[C, H, W]`` (one frame) or
    ``[T, C, H, W]`` / ``[T, H, W, C]`` (channels-last is recognised when the last axis has
    ``channels`` entries and the second does not). Integer arrays need ``bit_depth`` (e.g. 8 or
    16) and are scaled to [0, 1]. Float input is clipped to [0, 1]: legal conversions land
    outside it (limited-range YUV with super-whites or out-of-gamut chroma reaches about -1.2 to
    2.0 in RGB, resizers overshoot), and the networks were trained on [0, 1], as the CLI's own
    YUV->RGB path clips. Values beyond :data:`PLAUSIBLE_FLOAT_RANGE` are not a conversion but
    unscaled integer data, and are refused with the fix.
    """
    if bit_depth is not None:
        check_bit_depth(bit_depth)
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise SuperResError("frames must be a numeric array, got an object array")
        try:
            t = torch.from_numpy(np.ascontiguousarray(x))
        except TypeError:
            raise SuperResError(f"frames of numpy dtype {x.dtype} cannot be read; use float32 in [0, 1], "
                                "or uint8/uint16 codes (with bit_depth=)") from None
    elif isinstance(x, torch.Tensor):
        t = x
        if t.is_meta:
            raise SuperResError("frames are a tensor on the 'meta' device, which has a shape but no "
                                "values; pass a tensor that holds the pixels (on the CPU or a GPU)")
        if t.layout != torch.strided:
            raise SuperResError(f"frames are a sparse tensor ({t.layout}); pass a dense one: x.to_dense()")
        if t.is_quantized:
            raise SuperResError("frames are a quantized tensor; pass x.dequantize() (float in [0, 1])")
    else:
        raise SuperResError(
            f"frames must be a numpy array or a torch tensor, got {type(x).__name__}"
        )
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4:
        raise SuperResError(
            f"frames must be [H, W, C], [C, H, W] or [T, C, H, W]; got shape {tuple(t.shape)}"
        )
    if t.shape[1] != channels and t.shape[-1] == channels:
        t = t.permute(0, 3, 1, 2)
    if t.shape[1] != channels:
        # name the axis that looks like channels (the small one) in the message
        got = t.shape[-1] if t.shape[-1] <= 4 < t.shape[1] else t.shape[1]
        raise SuperResError(
            f"expected {channels}-channel RGB frames, got shape {tuple(t.shape)} "
            f"({got} channels); convert grey or RGBA input to RGB first"
        )
    if any(s == 0 for s in t.shape):
        raise SuperResError(f"frames are empty: shape {tuple(t.shape)}")
    if not t.is_floating_point():
        if t.dtype == torch.bool or t.is_complex():
            raise SuperResError(f"unsupported frame dtype {t.dtype}; use float32 in [0, 1] or uint8/uint16")
        if bit_depth is None:
            bit_depth = {torch.uint8: 8}.get(t.dtype)
            if bit_depth is None:
                raise SuperResError(
                    f"integer frames of dtype {t.dtype} need their bit depth to be scaled to [0, 1]: "
                    "pass bit_depth=10 (or 12, 16, ...) to Upscaler.upscale()/stream() or as_frames(), "
                    "or divide them by their peak value (1023 for 10-bit data) to float first"
                )
        peak = (1 << int(bit_depth)) - 1
        t = t.to(torch.float32)  # exact for codes up to 2**24; min/max of every integer dtype
        low, high = int(t.min()), int(t.max())
        if low < 0 or high > peak:
            raise UnsupportedFormat(
                f"integer frames with bit_depth={bit_depth} hold codes 0..{peak}, but these hold "
                f"{low}..{high}",
                hint=f"pass the bit depth the data was written with (bit_depth={max(8, high.bit_length())} "
                     "holds these codes), or convert it to float in [0, 1] first")
        t = t / float(peak)
    elif t.dtype == torch.float64:
        t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        raise SuperResError("frames contain NaN or infinite values; clean the input first")
    lo, hi = float(t.min()), float(t.max())
    if lo < PLAUSIBLE_FLOAT_RANGE[0] or hi > PLAUSIBLE_FLOAT_RANGE[1]:
        raise OutOfRangeFrames(
            f"float frames must be in [0, 1] (values slightly outside, from YUV conversions or "
            f"resizer overshoot, are clipped), got values in [{lo:.3g}, {hi:.3g}]; this looks like "
            "unscaled integer data",
            hint="divide it by its peak value (255 for 8-bit, 1023 for 10-bit, 65535 for 16-bit), "
                 "or pass the integer frames themselves with bit_depth=",
        )
    return t.clamp(0, 1)
