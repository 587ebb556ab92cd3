"""Real-ESRGAN-style synthetic degradations, in torch (the paper trains with "the degradation
pipeline of Real-ESRGAN [49]").

Two rounds of blur -> resize -> noise -> JPEG, then the final resize to ``HR / scale`` with a
sinc (ringing) filter and JPEG in random order, as in Real-ESRGAN's second-order model. The
parameter ranges are Real-ESRGAN's published training defaults (``DEFAULT``). Simplifications,
stated: the blur kernels are (an)isotropic Gaussians and generalised Gaussians (no plateau
kernels); JPEG is a torch implementation of baseline JPEG (YCbCr, 4:2:0 chroma, 8x8 DCT, the
standard quantisation tables scaled by quality, rounding) rather than libjpeg, so it runs on
any device. Every random draw comes from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F


@dataclasses.dataclass(frozen=True)
class DegradationConfig:
    """Ranges of one second-order degradation (defaults: Real-ESRGAN's x4 training config)."""

    scale: int = 4
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    generalized_prob: float = 0.15
    beta_range: tuple[float, float] = (0.5, 4.0)
    second_blur_prob: float = 0.8
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob: float = 0.5
    noise_sigma: tuple[float, float] = (1.0, 30.0)
    noise_sigma2: tuple[float, float] = (1.0, 25.0)
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    poisson_scale2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    sinc_prob: float = 0.1
    final_sinc_prob: float = 0.8


DEFAULT = DegradationConfig()


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _chance(g: torch.Generator, p: float) -> bool:
    return float(torch.rand((), generator=g)) < p


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float = 2.0) -> torch.Tensor:
    """A normalised ``[size, size]`` (generalised, beta != 2) anisotropic Gaussian rotated by ``theta``."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    q = (u / sigma_x) ** 2 + (v / sigma_y) ** 2
    k = torch.exp(-0.5 * q ** (beta / 2))
    return (k / k.sum()).float()


def sinc_kernel(size: int, cutoff: float) -> torch.Tensor:
    """A circular low-pass (2-D sinc / jinc) kernel with cut-off ``cutoff`` in (0, pi]: ringing artefacts."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    d = torch.sqrt(xx ** 2 + yy ** 2)
    k = torch.where(d == 0, torch.full_like(d, cutoff ** 2 / (4 * math.pi)),
                    cutoff * torch.special.bessel_j1(cutoff * d) / (2 * math.pi * d.clamp_min(1e-12)))
    return (k / k.sum()).float()


def filter2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-channel convolution with reflect padding, ``[B, C, H, W]``."""
    k = kernel.shape[-1]
    pad = k // 2
    if min(x.shape[-2:]) <= pad:
        mode = "replicate"
    else:
        mode = "reflect"
    xp = F.pad(x, (pad, pad, pad, pad), mode=mode)
    w = kernel.to(x.device, x.dtype).expand(x.shape[1], 1, k, k)
    return F.conv2d(xp, w, groups=x.shape[1])


def random_blur_kernel(g: torch.Generator, sigma: tuple[float, float], cfg: DegradationConfig) -> torch.Tensor:
    size = cfg.kernel_sizes[int(torch.randint(len(cfg.kernel_sizes), (), generator=g))]
    if _chance(g, cfg.sinc_prob):
        cutoff = _uniform(g, math.pi / 3, math.pi) if size < 13 else _uniform(g, math.pi / 5, math.pi)
        return sinc_kernel(size, cutoff)
    sx = _uniform(g, *sigma)
    sy = sx if _chance(g, 0.5) else _uniform(g, *sigma)
    beta = _uniform(g, *cfg.beta_range) if _chance(g, cfg.generalized_prob) else 2.0
    return gaussian_kernel(size, sx, sy, _uniform(g, -math.pi, math.pi), beta)


def random_resize(x: torch.Tensor, g: torch.Generator, rng: tuple[float, float], cfg: DegradationConfig) -> torch.Tensor:
    kind = int(torch.multinomial(torch.tensor(cfg.resize_prob), 1, generator=g))
    factor = _uniform(g, 1.0, rng[1]) if kind == 0 else (_uniform(g, rng[0], 1.0) if kind == 1 else 1.0)
    mode = ("area", "bilinear", "bicubic")[int(torch.randint(3, (), generator=g))]
    h, w = max(1, round(x.shape[-2] * factor)), max(1, round(x.shape[-1] * factor))
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x, size=(h, w), mode=mode, **kwargs)


def add_noise(x: torch.Tensor, g: torch.Generator, sigma: tuple[float, float], poisson: tuple[float, float],
              cfg: DegradationConfig) -> torch.Tensor:
    gray = _chance(g, cfg.gray_noise_prob)
    shape = (x.shape[0], 1, *x.shape[2:]) if gray else x.shape
    if _chance(g, cfg.gaussian_noise_prob):
        noise = torch.randn(shape, generator=g).to(x) * (_uniform(g, *sigma) / 255.0)
    else:
        scale = _uniform(g, *poisson)
        base = x.mean(1, keepdim=True) if gray else x
        vals = 10 ** 2.5  # Real-ESRGAN's intensity levels for Poisson noise
        noise = (torch.poisson((base.clamp(0, 1) * vals).cpu(), generator=g).to(x) / vals - base) * scale
    return x + noise


_Y_TABLE = torch.tensor([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=torch.float32).reshape(8, 8)
_C_TABLE = torch.full((8, 8), 99.0)
_C_TABLE[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]], dtype=torch.float32)


def _dct_matrix() -> torch.Tensor:
    n = torch.arange(8, dtype=torch.float64)
    m = torch.cos((2 * n[None] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m.float()


_DCT = _dct_matrix()


def _quality_scale(table: torch.Tensor, quality: float) -> torch.Tensor:
    q = max(1.0, min(100.0, quality))
    s = 5000 / q if q < 50 else 200 - 2 * q
    return torch.clamp(torch.floor((table * s + 50) / 100), min=1)


def _jpeg_plane(p: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    b, h, w = p.shape
    ph, pw = (-h) % 8, (-w) % 8
    x = F.pad(p.unsqueeze(1), (0, pw, 0, ph), mode="replicate").squeeze(1) if ph or pw else p
    hh, ww = x.shape[-2:]
    blocks = x.reshape(b, hh // 8, 8, ww // 8, 8).transpose(2, 3)
    d = _DCT.to(x)
    coef = d @ blocks @ d.T
    t = table.to(x)
    coef = torch.round(coef / t) * t
    out = (d.T @ coef @ d).transpose(2, 3).reshape(b, hh, ww)
    return out[:, :h, :w]


def jpeg(x: torch.Tensor, quality: float) -> torch.Tensor:
    """Baseline JPEG round trip of ``[B, 3, H, W]`` in [0, 1] at ``quality`` (4:2:0 chroma)."""
    x = x.clamp(0, 1) * 255
    r, gch, b = x.unbind(1)
    y = 0.299 * r + 0.587 * gch + 0.114 * b
    cb = -0.168736 * r - 0.331264 * gch + 0.5 * b
    cr = 0.5 * r - 0.418688 * gch - 0.081312 * b
    y = _jpeg_plane(y - 128, _quality_scale(_Y_TABLE, quality)) + 128
    h, w = x.shape[-2:]
    chroma = []
    for c in (cb, cr):
        small = F.avg_pool2d(c.unsqueeze(1), 2, ceil_mode=True).squeeze(1)
        small = _jpeg_plane(small, _quality_scale(_C_TABLE, quality))
        chroma.append(F.interpolate(small.unsqueeze(1), size=(h, w), mode="bilinear", align_corners=False).squeeze(1))
    cb, cr = chroma
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)
    return (out / 255).clamp(0, 1)


def degrade(hr: torch.Tensor, g: torch.Generator, cfg: DegradationConfig = DEFAULT) -> torch.Tensor:
    """HR ``[B, 3, H, W]`` in [0, 1] (H, W multiples of ``scale``) -> LR ``[B, 3, H/scale, W/scale]`` in [0, 1].

    One draw of the degradation parameters per call (per batch), as Real-ESRGAN does per sample
    on its GPU pipeline; callers wanting per-sample parameters call it per sample.
    """
    h, w = hr.shape[-2:]
    x = filter2d(hr, random_blur_kernel(g, cfg.blur_sigma, cfg))
    x = random_resize(x, g, cfg.resize_range, cfg)
    x = add_noise(x, g, cfg.noise_sigma, cfg.poisson_scale, cfg)
    x = jpeg(x, _uniform(g, *cfg.jpeg_range))
    if _chance(g, cfg.second_blur_prob):
        x = filter2d(x, random_blur_kernel(g, cfg.blur_sigma2, cfg))
    x = random_resize(x, g, cfg.resize_range2, cfg)
    x = add_noise(x, g, cfg.noise_sigma2, cfg.poisson_scale2, cfg)
    size = (h // cfg.scale, w // cfg.scale)
    mode = ("area", "bilinear", "bicubic")[int(torch.randint(3, (), generator=g))]
    kwargs = {} if mode == "area" else {"align_corners": False}
    sinc = sinc_kernel(cfg.kernel_sizes[int(torch.randint(len(cfg.kernel_sizes), (), generator=g))],
                       _uniform(g, math.pi / 3, math.pi)) if _chance(g, cfg.final_sinc_prob) else None
    quality = _uniform(g, *cfg.jpeg_range2)
    if _chance(g, 0.5):
        x = F.interpolate(x, size=size, mode=mode, **kwargs)
        x = filter2d(x, sinc) if sinc is not None else x
        x = jpeg(x, quality)
    else:
        x = jpeg(x, quality)
        x = F.interpolate(x, size=size, mode=mode, **kwargs)
        x = filter2d(x, sinc) if sinc is not None else x
    return x.clamp(0, 1)
