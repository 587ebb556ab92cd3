"""Full-reference figures on luma, as the video-SR papers compute them (BasicSR, MATLAB).

Y is the studio-range luma of ITU-R BT.601 (``rgb2ycbcr``'s first row: ``16 + 65.481 R +
128.553 G + 24.966 B`` for R'G'B' in [0, 1], so Y lies in [16, 235]) on a data range of 255;
BT.709's coefficients can be asked for instead (``luma="bt709"``). PSNR is ``10 log10(255² /
MSE)``; SSIM is Wang et al.'s (2004) with an 11-tap Gaussian window of sigma 1.5, K1 = 0.01,
K2 = 0.03, averaged over the window positions that lie wholly inside the picture: BasicSR's
``calculate_ssim`` and scikit-image's ``structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255)`` alike. Nothing is rounded to
integer codes first.

Arrays are float ``[H, W, 3]`` R'G'B' in [0, 1]; computation is float64.
"""

from __future__ import annotations

import math

import numpy as np

from vs_superres.contracts.errors import InvalidOption

#: luma coefficients (R, G, B) per matrix; studio range: Y = 16 + 219 * (kr R + kg G + kb B)
LUMA_MATRICES = {
    "bt601": (65.481, 128.553, 24.966),
    "bt709": (219 * 0.2126, 219 * 0.7152, 219 * 0.0722),
}
DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 * sigma + 0.5): scikit-image's truncation, BasicSR's 11x11 window
_K1, _K2 = 0.01, 0.03


def luma(rgb: np.ndarray, matrix: str = "bt601") -> np.ndarray:
    """Studio-range luma ``[H, W]`` float64 in [16, 235] of R'G'B' ``[H, W, 3]`` in [0, 1]."""
    if matrix not in LUMA_MATRICES:
        raise InvalidOption(f"luma must be one of {', '.join(LUMA_MATRICES)}, got {matrix!r}", option="luma")
    kr, kg, kb = LUMA_MATRICES[matrix]
    x = np.asarray(rgb, dtype=np.float64)
    return 16.0 + kr * x[..., 0] + kg * x[..., 1] + kb * x[..., 2]


def _cropped(y: np.ndarray, border: int) -> np.ndarray:
    return y[border:y.shape[0] - border, border:y.shape[1] - border] if border else y


def psnr_y(a: np.ndarray, b: np.ndarray, *, matrix: str = "bt601", crop_border: int = 0) -> float:
    """PSNR in dB between the lumas of two same-size R'G'B' pictures; ``inf`` when identical."""
    ya, yb = (_cropped(luma(x, matrix), crop_border) for x in (a, b))
    mse = float(np.mean((ya - yb) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(DATA_RANGE ** 2 / mse)


def _gaussian_taps() -> np.ndarray:
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    taps = np.exp(-(x ** 2) / (2 * SSIM_SIGMA ** 2))
    return taps / taps.sum()


def _filter_valid(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable filtering keeping only the positions where the window lies inside."""
    n = len(taps)
    h, w = image.shape
    rows = sum(taps[k] * image[k:h - n + 1 + k, :] for k in range(n))
    return sum(taps[k] * rows[:, k:w - n + 1 + k] for k in range(n))


def ssim_y(a: np.ndarray, b: np.ndarray, *, matrix: str = "bt601", crop_border: int = 0) -> float:
    """SSIM between the lumas of two same-size R'G'B' pictures (module docstring)."""
    ya, yb = (_cropped(luma(x, matrix), crop_border) for x in (a, b))
    if min(ya.shape) < 2 * SSIM_RADIUS + 1:
        raise InvalidOption(f"SSIM needs pictures of at least {2 * SSIM_RADIUS + 1} pixels a side after the crop, "
                            f"got {ya.shape[1]}x{ya.shape[0]}; give larger pictures or a smaller crop_border",
                            option="crop_border")
    taps = _gaussian_taps()
    mu_a, mu_b = _filter_valid(ya, taps), _filter_valid(yb, taps)
    var_a = _filter_valid(ya * ya, taps) - mu_a ** 2
    var_b = _filter_valid(yb * yb, taps) - mu_b ** 2
    cov = _filter_valid(ya * yb, taps) - mu_a * mu_b
    c1, c2 = (_K1 * DATA_RANGE) ** 2, (_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def frame_change(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean squared R'G'B' difference (values in [0, 1], averaged over pixels and channels)
    between two consecutive frames, with no motion compensation: everything that changed."""
    d = np.asarray(current, dtype=np.float32) - np.asarray(previous, dtype=np.float32)
    return float(np.mean(d * d, dtype=np.float64))
