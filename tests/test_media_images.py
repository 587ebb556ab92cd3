"""Media: image files (PNG, TIFF, JPEG; 8 and 16 bits, grey and alpha inputs) and their errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from vs_superres.contracts.errors import SuperResError
from vs_superres.media import read_image, write_image


def test_png_and_tiff_round_trip_8_bit(tmp_path):
    photo = skdata.chelsea().astype(np.float32) / 255
    for name in ("cat.png", "cat.tif"):
        write_image(tmp_path / name, photo, 8)
        back, info = read_image(tmp_path / name)
        assert back.dtype == np.float32 and back.shape == photo.shape
        assert info.bit_depth == 8 and not info.has_alpha and not info.is_grey
        np.testing.assert_array_equal(back, photo)


def test_16_bit_round_trip_keeps_precision(tmp_path):
    photo = skdata.coffee().astype(np.float32) / 255
    codes = np.rint(photo * 65535).astype(np.int64)
    codes = np.clip(codes + (np.arange(codes.size).reshape(codes.shape) % 200) - 100, 0, 65535)
    exact = codes.astype(np.float32) / 65535
    assert (codes % 257 != 0).mean() > 0.9  # mostly values 8 bits cannot hold
    for name in ("coffee.png", "coffee.tiff"):
        write_image(tmp_path / name, exact, 16)
        back, info = read_image(tmp_path / name)
        assert info.bit_depth == 16
        np.testing.assert_array_equal(np.rint(back * 65535).astype(np.int64), codes)
    header = (tmp_path / "coffee.png").read_bytes()[:26]
    assert header[24] == 16 and header[25] == 2  # IHDR: 16 bits per sample, truecolour RGB


def test_rounding_not_truncation(tmp_path):
    write_image(tmp_path / "r8.png", np.full((4, 4, 3), 200.6 / 255, np.float32), 8)
    assert np.all(np.rint(read_image(tmp_path / "r8.png")[0] * 255) == 201)
    write_image(tmp_path / "r16.tif", np.full((4, 4, 3), 1000.7 / 65535, np.float32), 16)
    assert np.all(np.rint(read_image(tmp_path / "r16.tif")[0] * 65535) == 1001)


def test_jpeg_write_and_read(tmp_path):
    photo = skdata.astronaut().astype(np.float32) / 255
    write_image(tmp_path / "a.jpg", photo)
    back, info = read_image(tmp_path / "a.jpg")
    assert info.format == "jpeg" and info.bit_depth == 8 and back.shape == photo.shape
    assert np.abs(back - photo).mean() < 0.01
    Image.fromarray(skdata.rocket()).save(tmp_path / "b.jpeg", quality=90)
    back, _ = read_image(tmp_path / "b.jpeg")
    assert np.abs(back - skdata.rocket() / 255).mean() < 0.02


def test_grey_and_alpha_inputs(tmp_path):
    camera = skdata.camera()
    Image.fromarray(camera, "L").save(tmp_path / "grey.png")
    back, info = read_image(tmp_path / "grey.png")
    assert info.is_grey and back.shape == camera.shape + (3,)
    np.testing.assert_array_equal(back[..., 0], camera / np.float32(255))
    np.testing.assert_array_equal(back[..., 0], back[..., 2])

    deep = camera.astype(np.uint16) * 257 + 3
    Image.fromarray(deep).save(tmp_path / "grey16.png")
    back, info = read_image(tmp_path / "grey16.png")
    assert info.is_grey and info.bit_depth == 16
    np.testing.assert_array_equal(np.rint(back[..., 1] * 65535), deep)

    rgba = np.dstack([skdata.astronaut(), np.full(camera.shape, 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    back, info = read_image(tmp_path / "alpha.png")
    assert info.has_alpha and back.shape == (512, 512, 3)
    np.testing.assert_array_equal(back, skdata.astronaut() / np.float32(255))


def test_write_image_accepts_channels_first(tmp_path):
    photo = skdata.chelsea().astype(np.float32) / 255
    write_image(tmp_path / "c.png", photo.transpose(2, 0, 1))
    np.testing.assert_array_equal(read_image(tmp_path / "c.png")[0], photo)


def test_image_errors(tmp_path):
    photo = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(SuperResError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(SuperResError, match="unknown image extension '.gif'"):
        read_image(tmp_path / "x.gif")
    with pytest.raises(SuperResError, match="unknown image extension"):
        write_image(tmp_path / "x.bmp", photo)
    with pytest.raises(SuperResError, match="JPEG stores 8 bits"):
        write_image(tmp_path / "x.jpg", photo, 16)
    with pytest.raises(SuperResError, match=r"\[H, W, 3\]"):
        write_image(tmp_path / "x.png", np.zeros((8, 8), np.float32))
    with pytest.raises(SuperResError, match="float values"):
        write_image(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "fake.png").write_text("not a picture")
    with pytest.raises(SuperResError, match="not a readable PNG"):
        read_image(tmp_path / "fake.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.png"]
