"""Colour correction of a restored clip against its (pre-upscaled) input.

Diffusion restorers tend to shift colours a little. The fix keeps the fine detail of the
restored frames (``target``) and takes the coarse colour and brightness from the input
frames (``source``), which have the same size:

* ``"wavelet"``: a 5-level dilated blur pyramid splits each image into a high-frequency part
  (the sum of the per-level residuals) and a low-frequency residual; the result is the
  target's high part plus the source's low part, clamped to [0, 1]. This is the
  ``wavelet_color_fix`` of StableSR / SeeSR / OSEDiff that UltraVSR calls by default.
* ``"adain"``: per-frame, per-channel mean and standard deviation matching (adaptive instance
  normalisation), clamped to [0, 1].
* ``"none"``: the target unchanged (UltraVSR's ``nofix``).

All functions take float tensors ``[T, 3, H, W]`` in [0, 1]. Work is done one frame at a
time in float32 (so fp16 inputs lose nothing in the pyramid) and the result has the
target's dtype and device. The official code applies the fix to 8-bit PIL images; here it
runs on the float frames and quantisation happens once, when the engine writes its output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vs_superres.contracts.errors import SuperResError

COLOR_FIX_MODES = ("wavelet", "adain", "none")

WAVELET_LEVELS = 5
"""Pyramid depth; level ``i`` blurs with dilation ``2**i`` (1, 2, 4, 8, 16)."""

ADAIN_EPS = 1e-5
"""Added to the variance before the square root, as in the StableSR lineage."""

# 3x3 binomial kernel [1, 2, 1] x [1, 2, 1] / 16.
_BINOMIAL_1D = (0.25, 0.5, 0.25)


def _binomial_kernel(channels: int, device: torch.device) -> torch.Tensor:
    k1 = torch.tensor(_BINOMIAL_1D, dtype=torch.float32, device=device)
    k2 = torch.outer(k1, k1)
    return k2.expand(channels, 1, 3, 3).contiguous()


def _blur(x: torch.Tensor, kernel: torch.Tensor, dilation: int) -> torch.Tensor:
    padded = F.pad(x, (dilation, dilation, dilation, dilation), mode="replicate")
    return F.conv2d(padded, kernel, dilation=dilation, groups=x.shape[1])


def wavelet_decompose(
    frames: torch.Tensor, levels: int = WAVELET_LEVELS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``[N, C, H, W]`` images into ``(high, low)`` with ``high + low == frames``.

    At level ``i`` (dilation ``2**i``) the current image is blurred with the 3x3 binomial
    kernel (replicate padding); ``high`` gains ``current - blurred`` and ``current`` becomes
    ``blurred``. ``low`` is the final ``current``. Computed in float32.
    """
    if frames.ndim != 4:
        raise SuperResError(
            f"wavelet_decompose needs [N, C, H, W] images; got shape {tuple(frames.shape)}"
        )
    current = frames.to(torch.float32)
    kernel = _binomial_kernel(current.shape[1], current.device)
    high = torch.zeros_like(current)
    for level in range(levels):
        blurred = _blur(current, kernel, 2**level)
        high += current - blurred
        current = blurred
    return high, current


def _check_pair(target: torch.Tensor, source: torch.Tensor) -> None:
    for name, t in (("target", target), ("source", source)):
        if not isinstance(t, torch.Tensor):
            raise SuperResError(f"color fix: {name} must be a torch tensor, got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != 3:
            raise SuperResError(
                f"color fix: {name} must be [T, 3, H, W]; got shape {tuple(t.shape)}. "
                "Pass RGB frames in the engine's frame layout."
            )
        if not t.is_floating_point():
            raise SuperResError(
                f"color fix: {name} must be a float tensor in [0, 1], got {t.dtype}; "
                "convert with vs_superres.frames.as_frames first"
            )
    if target.shape != source.shape:
        raise SuperResError(
            f"color fix: target {tuple(target.shape)} and source {tuple(source.shape)} differ "
            "in shape; the source must be the input resized to the output size (same frame "
            "count, same height and width)"
        )


def wavelet_color_fix(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Target's high frequencies plus source's low frequencies, clamped to [0, 1].

    ``target`` and ``source``: float ``[T, 3, H, W]`` in [0, 1] of equal shape. Returns a
    tensor like ``target``. A colour cast that is constant over the frame lives entirely in
    the low part, so ``target = source + cast`` comes back as ``source``.
    """
    _check_pair(target, source)
    out = torch.empty_like(target)
    for i in range(target.shape[0]):
        high, _ = wavelet_decompose(target[i : i + 1])
        _, low = wavelet_decompose(source[i : i + 1].to(target.device))
        out[i : i + 1] = (high + low).clamp_(0.0, 1.0).to(target.dtype)
    return out


def adain_color_fix(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Match each target frame's per-channel mean and std to the source frame's.

    ``(target - mean_t) / std_t * std_s + mean_s`` per frame and channel, with
    ``std = sqrt(var + 1e-5)`` (unbiased variance), clamped to [0, 1].
    """
    _check_pair(target, source)
    out = torch.empty_like(target)
    for i in range(target.shape[0]):
        t = target[i].to(torch.float32).flatten(1)
        s = source[i].to(device=target.device, dtype=torch.float32).flatten(1)
        t_mean, s_mean = t.mean(1, keepdim=True), s.mean(1, keepdim=True)
        t_std = (t.var(1, keepdim=True) + ADAIN_EPS).sqrt()
        s_std = (s.var(1, keepdim=True) + ADAIN_EPS).sqrt()
        fixed = (t - t_mean) / t_std * s_std + s_mean
        out[i] = fixed.clamp_(0.0, 1.0).view_as(target[i]).to(target.dtype)
    return out


def color_fix(target: torch.Tensor, source: torch.Tensor, mode: str = "wavelet") -> torch.Tensor:
    """Apply the colour correction named by ``mode`` ("wavelet", "adain" or "none").

    ``"none"`` returns ``target`` itself. Shapes are checked for every mode, so a wrong
    source is reported even when no correction runs.
    """
    if mode not in COLOR_FIX_MODES:
        raise SuperResError(
            f"unknown colour-fix mode {mode!r}; expected one of {', '.join(COLOR_FIX_MODES)}"
        )
    _check_pair(target, source)
    if mode == "wavelet":
        return wavelet_color_fix(target, source)
    if mode == "adain":
        return adain_color_fix(target, source)
    return target
