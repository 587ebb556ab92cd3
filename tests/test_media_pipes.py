"""Media: pipes and file objects in and out, and names that look like FFmpeg URLs."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from media_helpers import (COLOUR_KEYS, PipeLike, PipeSink, decoded, frame_pts, make_clips,
                           needs_ffmpeg, packets_of, probe, streams_of, upscale_nearest)

from vs_superres.contracts.errors import SuperResError, UnsupportedFormat
from vs_superres.media import VideoReader, transcode


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    return make_clips(tmp_path_factory)


@needs_ffmpeg
def test_transcode_from_a_pipe_matches_the_file(clips, tmp_path):
    src = clips["stream.mkv"]
    seen: dict[str, list] = {"file": [], "pipe": []}

    def recording(kept):
        def process(frames):
            for frame in frames:
                kept.append(frame.copy())
                yield frame.repeat(2, axis=1).repeat(2, axis=2)
        return process

    from_file, from_pipe = tmp_path / "from_file.mkv", tmp_path / "from_pipe.mkv"
    assert transcode(src, from_file, recording(seen["file"])) == from_file
    pipe = PipeLike(src.read_bytes())
    assert transcode(pipe, from_pipe, recording(seen["pipe"])) == from_pipe
    assert not pipe.closed  # the caller's object is the caller's to close

    assert len(seen["pipe"]) == len(seen["file"]) == 12
    for a, b in zip(seen["file"], seen["pipe"]):
        np.testing.assert_array_equal(a, b)  # same decoding, same colour maths
    for a, b in zip(decoded(from_file), decoded(from_pipe), strict=True):
        np.testing.assert_array_equal(a, b)
    assert frame_pts(from_pipe) == frame_pts(from_file) == frame_pts(src)
    for kind in ("audio", "subtitle"):
        copied = packets_of(src, kind)
        assert copied and packets_of(from_pipe, kind) == packets_of(from_file, kind) == copied, kind
    (v_src,), (v_file,), (v_pipe,) = (streams_of(probe(p), "video") for p in (src, from_file, from_pipe))
    for key in COLOUR_KEYS:
        assert v_pipe.get(key) == v_file.get(key) == v_src.get(key), key
    assert v_pipe["chroma_location"] == "topleft" and v_pipe["color_space"] == "bt709"


@needs_ffmpeg
def test_ffmpeg_pipe_in_and_pipe_out(clips, tmp_path):
    """The FFmpeg bridge: `ffmpeg ... -f nut - | transcode | (a pipe)`, no file on either side."""
    src = clips["h264_8bit.mp4"]
    feeder = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(src),
                               "-map", "0", "-c", "copy", "-f", "nut", "-"], stdout=subprocess.PIPE)
    sink = PipeSink()
    try:
        assert transcode(feeder.stdout, sink, upscale_nearest, format="matroska") is None
    finally:
        feeder.stdout.close()
        assert feeder.wait() == 0
    out = tmp_path / "out.mkv"
    out.write_bytes(bytes(sink.data))
    before, after = probe(src), probe(out)
    (v0,), (v1,) = streams_of(before, "video"), streams_of(after, "video")
    assert int(v1["nb_read_frames"]) == 12 and (v1["width"], v1["height"]) == (128, 96)
    for key in COLOUR_KEYS:
        assert v1.get(key) == v0.get(key), key
    assert [a["codec_name"] for a in streams_of(after, "audio")] == ["aac"]
    assert [p for _, p in packets_of(out, "audio")] == [p for _, p in packets_of(src, "audio")]
    assert list(tmp_path.iterdir()) == [out]


@needs_ffmpeg
def test_reader_takes_a_seekable_file_object(clips):
    path = clips["h264_10bit.mp4"]  # index at the end: needs seeking, which BytesIO allows
    handle = io.BytesIO(path.read_bytes())
    with VideoReader(path) as by_path, VideoReader(handle) as by_object:
        assert by_object.info == by_path.info  # a value: same stream, same description
        assert by_object.info.colour.names()["transfer"] == "smpte2084"
        first, again = [f.rgb for f in by_object], [f.rgb for f in by_object]
        for a, b, c in zip(first, again, by_path.frames(), strict=True):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)
    assert len(first) == 12 and not handle.closed


@needs_ffmpeg
def test_a_pipe_is_read_once_and_needs_a_streamable_container(clips):
    reader = VideoReader(PipeLike(clips["stream.mkv"].read_bytes()))
    assert reader.info.passthrough == ()  # frames only: no packets kept for a writer
    assert len(list(reader)) == 12
    with pytest.raises(SuperResError, match="only once"):
        list(reader)
    with pytest.raises(UnsupportedFormat, match="faststart"):  # an MP4 with its index last
        VideoReader(PipeLike(clips["h264_8bit.mp4"].read_bytes()))
    with pytest.raises(UnsupportedFormat, match="does not recognise it as a video"):
        VideoReader(PipeLike(b"this is not a video\n" * 500))


@needs_ffmpeg
def test_names_that_look_like_ffmpeg_urls_are_local_files(clips, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # What the concat protocol would read instead, were the name taken for a URL.
    shutil.copy(clips["solid_bt709_tv.mp4"], "a.mp4")
    shutil.copy(clips["solid_bt470bg_tv.mp4"], "b.mp4")
    for name in ("concat:a.mp4|b.mp4", "pipe:"):
        shutil.copy(clips["h264_8bit.mp4"], name)
    expected = decoded(clips["h264_8bit.mp4"])
    for name in ("concat:a.mp4|b.mp4", "pipe:"):
        for a, b in zip(decoded(name), expected, strict=True):
            np.testing.assert_array_equal(a, b)
    for name in ("pipe:1.mkv", "concat:x.mp4|y.mp4"):  # pipe:1 would be standard output
        assert transcode("concat:a.mp4|b.mp4", name, upscale_nearest) == Path(name)
        with VideoReader(name, passthrough=True) as reader:
            assert (reader.width, reader.height, len(list(reader))) == (128, 96, 12)
            assert [s.kind for s in reader.info.passthrough] == ["audio"]
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["a.mp4", "b.mp4", "concat:a.mp4|b.mp4", "pipe:", "pipe:1.mkv", "concat:x.mp4|y.mp4"])
