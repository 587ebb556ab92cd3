"""PSNR and SSIM on Y against scikit-image's, on real photographs with known damage, and the
detail regions; no files, no OpenCV."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.color
import skimage.data
import skimage.metrics
from PIL import Image, ImageFilter

from vs_superres.compare.metrics import luma, psnr_y, ssim_y
from vs_superres.compare.regions import gradient_energy, most_detailed
from vs_superres.contracts.errors import InvalidOption


def _float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def _pairs():
    rng = np.random.default_rng(0)
    astronaut = _float(skimage.data.astronaut())
    coffee = skimage.data.coffee()
    blurred = np.asarray(Image.fromarray(coffee).filter(ImageFilter.GaussianBlur(2)))
    chelsea = _float(skimage.data.chelsea())
    return {
        "astronaut+noise": (astronaut, np.clip(astronaut + rng.normal(0, 0.05, astronaut.shape), 0, 1).astype(np.float32)),
        "coffee+blur": (_float(coffee), _float(blurred)),
        "chelsea+contrast": (chelsea, np.clip(chelsea * 0.9 + 0.05, 0, 1).astype(np.float32)),
    }


PAIRS = _pairs()


def _reference_y(rgb: np.ndarray) -> np.ndarray:
    """scikit-image's BT.601 studio-range Y (rgb2ycbcr's first channel, in [16, 235])."""
    return skimage.color.rgb2ycbcr(rgb)[..., 0]


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_psnr_and_ssim_equal_scikit_image_on_bt601_luma(name):
    a, b = PAIRS[name]
    ya, yb = _reference_y(a), _reference_y(b)
    expected_psnr = skimage.metrics.peak_signal_noise_ratio(ya, yb, data_range=255)
    expected_ssim = skimage.metrics.structural_similarity(ya, yb, data_range=255, gaussian_weights=True, sigma=1.5,
                                                          use_sample_covariance=False)
    assert psnr_y(a, b) == pytest.approx(expected_psnr, abs=1e-5)
    assert ssim_y(a, b) == pytest.approx(expected_ssim, abs=1e-6)
    assert 15 < expected_psnr < 45 and 0.3 < expected_ssim < 0.999  # damaged, not destroyed: the pairs mean something


def test_crop_border_and_bt709_follow_their_definitions():
    a, b = PAIRS["astronaut+noise"]
    ya, yb = _reference_y(a)[4:-4, 4:-4], _reference_y(b)[4:-4, 4:-4]
    assert psnr_y(a, b, crop_border=4) == pytest.approx(skimage.metrics.peak_signal_noise_ratio(ya, yb, data_range=255), abs=1e-5)
    # BT.709 studio range: 16 + 219 (0.2126 R + 0.7152 G + 0.0722 B)
    y709 = 16 + 219 * (0.2126 * a[..., 0] + 0.7152 * a[..., 1] + 0.0722 * a[..., 2])
    assert np.allclose(luma(a, "bt709"), y709, atol=1e-4)
    assert not np.allclose(luma(a, "bt709"), luma(a, "bt601"), atol=0.5)


def test_identical_pictures_have_infinite_psnr_and_ssim_one():
    a, _ = PAIRS["coffee+blur"]
    assert math.isinf(psnr_y(a, a))
    assert ssim_y(a, a) == pytest.approx(1.0, abs=1e-12)


def test_unknown_luma_matrix_names_the_choices():
    a, b = PAIRS["coffee+blur"]
    with pytest.raises(InvalidOption, match="luma must be one of bt601, bt709, got 'bt2020'"):
        psnr_y(a, b, matrix="bt2020")


def test_detail_regions_are_the_textured_squares_not_the_flat_ones():
    # left half flat grey, right half the photo's texture: both squares land on the right
    picture = np.full((256, 512, 3), 0.5, dtype=np.float32)
    picture[:, 256:] = _float(skimage.data.astronaut())[:256, 256:]
    regions = most_detailed(gradient_energy(picture), 2, 128)
    assert len(regions) == 2
    assert all(r.x >= 256 - 64 and r.size == 128 for r in regions)  # at most half a step into the flat half
    a, b = regions
    assert abs(a.x - b.x) >= 128 or abs(a.y - b.y) >= 128  # never overlapping
    assert a.energy >= b.energy > 0
