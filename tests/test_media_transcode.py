"""Media: a video file transcoded end to end (frames, timestamps, colour tags, audio,
subtitles, rotation carried), and the errors of a bad video."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media_helpers import (ffmpeg, frame_pts, make_clips, needs_ffmpeg, probe, streams_of, upscale_lagged,
                           upscale_nearest)

from vs_superres.contracts.errors import SuperResError
from vs_superres.media import VideoReader, VideoWriter, transcode
from vs_superres.media.pyav_features import STREAM_HAS_DISPLAY_ROTATION, set_display_rotation


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    return make_clips(tmp_path_factory)


@needs_ffmpeg
@pytest.mark.parametrize("name, pix_fmt, profile", [
    ("h264_8bit.mp4", "yuv420p", "High"), ("h264_10bit.mp4", "yuv420p10le", "High 10")])
def test_transcode_keeps_everything_but_size(clips, tmp_path, name, pix_fmt, profile):
    src, dst = clips[name], tmp_path / f"up_{name}"
    calls = []
    assert transcode(src, dst, upscale_lagged,
                     on_progress=lambda p: calls.append((p.done, p.total))) == dst
    before, after = probe(src), probe(dst)
    (v0,), (v1,) = streams_of(before, "video"), streams_of(after, "video")
    assert int(v1["nb_read_frames"]) == int(v0["nb_read_frames"]) == 12
    assert (v1["width"], v1["height"]) == (2 * v0["width"], 2 * v0["height"])
    assert v1["pix_fmt"] == pix_fmt and v1["profile"] == profile
    for key in ("r_frame_rate", "avg_frame_rate", "time_base", "color_range", "color_space",
                "color_primaries", "color_transfer", "chroma_location", "sample_aspect_ratio"):
        assert v1.get(key) == v0.get(key), key
    (a0,), (a1,) = streams_of(before, "audio"), streams_of(after, "audio")
    assert a1["codec_name"] == a0["codec_name"] == "aac"
    assert abs(float(a1["duration"]) - float(a0["duration"])) <= 1 / 24
    assert frame_pts(dst) == frame_pts(src)
    assert calls[-1] == (12, 12) and len(calls) == 12
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@needs_ffmpeg
def test_reader_reports_the_stream(clips):
    with VideoReader(clips["h264_10bit.mp4"]) as reader:
        assert (reader.width, reader.height) == (64, 48)
        assert reader.fps == Fraction(24) and reader.frame_count == 12
        assert reader.frame_count_exact and reader.bit_depth == 10
        assert reader.pix_fmt == "yuv420p10le"
        assert reader.colour.names()["matrix"] == "bt2020nc"
        assert reader.colour.names()["transfer"] == "smpte2084"
        frames = list(reader)
        assert len(frames) == 12 and len(list(reader)) == 12  # a second pass starts over
    first = frames[0]
    assert first.rgb.shape == (3, 48, 64) and first.rgb.dtype == np.float32
    assert 0.0 <= first.rgb.min() and first.rgb.max() <= 1.0
    assert first.pts == 0 and frames[1].time == pytest.approx(1 / 24)


@needs_ffmpeg
def test_mkv_subtitles_copied_and_mp4_warns(clips, tmp_path, caplog):
    src = clips["subs.mkv"]
    transcode(src, tmp_path / "up.mkv", upscale_nearest)
    kinds = {s["codec_type"]: s for s in probe(tmp_path / "up.mkv")["streams"]}
    assert kinds["subtitle"]["codec_name"] == "subrip"
    assert kinds["audio"]["codec_name"] == "aac"
    assert int(kinds["video"]["nb_read_frames"]) == 12
    with caplog.at_level(logging.WARNING, logger="vs_superres.media"):
        transcode(src, tmp_path / "up.mp4", upscale_nearest)
    assert "subtitle" in caplog.text and ".mkv" in caplog.text
    assert not streams_of(probe(tmp_path / "up.mp4"), "subtitle")
    assert streams_of(probe(tmp_path / "up.mp4"), "audio")


@needs_ffmpeg
def test_rotation_is_carried(tmp_path, caplog):
    src = tmp_path / "rotated.mp4"
    with av.open(str(tmp_path / "plain.mp4" if not STREAM_HAS_DISPLAY_ROTATION else src), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        set_display_rotation(stream, 90)
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((16, 32, 3), 40 * i, np.uint8), "rgb24")
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    if not STREAM_HAS_DISPLAY_ROTATION:  # this PyAV cannot write one: FFmpeg >= 6.1 can
        ffmpeg("-display_rotation", "90", "-i", str(tmp_path / "plain.mp4"), "-map", "0", "-c", "copy", str(src))
    assert VideoReader(src).rotation == 90
    with caplog.at_level(logging.WARNING, logger="vs_superres.media"):
        transcode(src, tmp_path / "out.mp4", upscale_nearest)
    if STREAM_HAS_DISPLAY_ROTATION:
        assert VideoReader(tmp_path / "out.mp4").rotation == 90
        return
    # said, with the command that adds it afterwards; that command works
    assert "display rotation (90 degrees) is not written" in caplog.text
    command = caplog.text.split("`")[1].split()
    assert command[:4] == ["ffmpeg", "-display_rotation", "90", "-i"]
    ffmpeg("-display_rotation", "90", "-i", str(tmp_path / "out.mp4"), *command[5:-1], str(tmp_path / "fixed.mp4"))
    assert VideoReader(tmp_path / "fixed.mp4").rotation == 90


@needs_ffmpeg
def test_video_errors(clips, tmp_path):
    with pytest.raises(SuperResError, match="no such file"):
        VideoReader(tmp_path / "missing.mp4")
    with pytest.raises(SuperResError, match="does not recognise it as a video"):
        VideoReader(clips["notes.mp4"])
    with pytest.raises(SuperResError, match="no video stream"):
        VideoReader(clips["audio.wav"])
    reader = VideoReader(clips["h264_8bit.mp4"])
    with pytest.raises(SuperResError, match="no muxer"):
        VideoWriter(tmp_path / "out.unknownext", reader, 128, 96)
    with pytest.raises(SuperResError, match="folder"):
        VideoWriter(tmp_path / "nowhere" / "out.mp4", reader, 128, 96)
    writer = VideoWriter(tmp_path / "out.mp4", reader, 128, 96)
    with pytest.raises(SuperResError, match=r"expected \[3, 96, 128\]"):
        writer.write(np.zeros((3, 48, 64), np.float32))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
