"""Media: colour maths (the source's matrix and range when reading, the same when writing,
frame conversions that round-trip)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from media_helpers import TARGET, make_clips, needs_ffmpeg, upscale_nearest
from skimage import data as skdata

from vs_superres.media import VideoReader, transcode
from vs_superres.media.colour import ColourInfo
from vs_superres.media.convert import frame_to_rgb, rgb_to_frame


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    return make_clips(tmp_path_factory)


@needs_ffmpeg
@pytest.mark.parametrize("name", ["solid_bt709_tv.mp4", "solid_bt470bg_tv.mp4",
                                  "solid_bt2020nc_tv.mp4", "solid_bt709_pc.mp4"])
def test_reader_uses_the_source_matrix_and_range(clips, name):
    reader = VideoReader(clips[name])
    rgb = next(iter(reader)).rgb
    np.testing.assert_allclose(rgb.reshape(3, -1).mean(axis=1), TARGET, atol=1 / 255)
    assert rgb.reshape(3, -1).std(axis=1).max() < 1e-3


@needs_ffmpeg
def test_solid_colour_round_trips_through_the_writer(clips, tmp_path):
    for name in ("solid_bt709_tv.mp4", "solid_bt470bg_tv.mp4"):
        dst = tmp_path / f"up_{name}"
        transcode(clips[name], dst, upscale_nearest)
        reader = VideoReader(dst)
        assert reader.colour.matrix == VideoReader(clips[name]).colour.matrix
        for decoded in reader:
            np.testing.assert_allclose(decoded.rgb.reshape(3, -1).mean(axis=1), TARGET,
                                       atol=1.5 / 255)


def test_known_yuv_codes_decode_with_their_matrix():
    """BT.709 limited-range pure red is Y'CbCr (63, 102, 240); BT.601 maths would shift it."""
    frame = av.VideoFrame(16, 16, "yuv420p")
    for plane, code in zip(frame.planes, (63, 102, 240)):
        np.frombuffer(plane, np.uint8)[:] = code
    bt709 = frame_to_rgb(frame, ColourInfo(matrix=1, range=1))
    np.testing.assert_allclose(bt709[:, 8, 8], [1.0, 0.0, 0.0], atol=1 / 255)
    bt601 = frame_to_rgb(frame, ColourInfo(matrix=6, range=1))
    assert np.abs(bt601[:, 8, 8] - bt709[:, 8, 8]).max() > 10 / 255


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "yuv422p10le", "yuv444p",
                                     "gbrp10le"])
@pytest.mark.parametrize("chroma_location", [1, 2, 3])
def test_frame_conversion_round_trip(pix_fmt, chroma_location):
    photo = skdata.astronaut()[100:164, 180:260].astype(np.float32) / 255  # 64x80 RGB
    rgb = np.ascontiguousarray(photo.transpose(2, 0, 1))
    colour = ColourInfo(matrix=9, range=1, chroma_location=chroma_location)
    back = frame_to_rgb(rgb_to_frame(rgb, pix_fmt, colour), colour)
    assert back.shape == rgb.shape
    error = np.abs(back - rgb)
    if pix_fmt in ("yuv444p", "gbrp10le"):
        assert error.max() < 2.5 / 255  # quantisation only
    else:
        assert error.mean() < 4 / 255  # chroma is halved, but sited consistently
    solid = np.broadcast_to(TARGET.astype(np.float32)[:, None, None], (3, 16, 16))
    np.testing.assert_allclose(frame_to_rgb(rgb_to_frame(solid, pix_fmt, colour), colour),
                               solid, atol=1 / 255)
