"""Media layer tests on real files: clips made by the ffmpeg CLI, photos from skimage.data."""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

import vs_superres.media
from vs_superres.contracts.errors import SuperResError, UnsupportedFormat
from vs_superres.media import (StreamInfo, VideoReader, VideoWriter, atomic_output, read_image,
                               transcode, write_image)
from vs_superres.media.colour import ColourInfo
from vs_superres.media.convert import frame_to_rgb, rgb_to_frame

HAVE_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg/ffprobe CLI not installed")

SUBTITLES = "1\n00:00:00,000 --> 00:00:00,250\nhello\n\n2\n00:00:00,250 --> 00:00:00,500\nworld\n"
TARGET = np.array([0x30, 0x80, 0xC0]) / 255.0  # the solid colour of the colour clips


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams",
                          "-show_format", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def streams_of(info: dict, kind: str) -> list[dict]:
    return [s for s in info["streams"] if s["codec_type"] == kind]


def upscale_nearest(frames):
    """Stands in for a model: nearest-neighbour x2 of each [3, H, W] frame."""
    assert not isinstance(frames, (list, tuple)), "frames must be streamed"
    for frame in frames:
        yield frame.repeat(2, axis=1).repeat(2, axis=2)


def upscale_lagged(frames, lag=3):
    """Like a temporal model: yields each frame only after `lag` later ones were read."""
    window = []
    for frame in upscale_nearest(frames):
        window.append(frame)
        if len(window) > lag:
            yield window.pop(0)
    yield from window


def frame_pts(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [f.pts for f in container.decode(video=0)]


def packets_of(path: Path, kind: str) -> list[tuple[int | None, bytes]]:
    """``(pts, payload)`` of every packet of the ``kind`` streams of ``path``."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        return [(p.pts, bytes(p)) for p in container.demux(*streams) if p.size]


def decoded(path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [frame.rgb for frame in reader]


class PipeLike(io.RawIOBase):
    """What ``sys.stdin.buffer`` fed by a pipe looks like to a reader: bytes once, no seeking."""

    def __init__(self, data: bytes, chunk: int = 5000):
        self._data, self._pos, self._chunk = data, 0, chunk

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        piece = self._data[self._pos: self._pos + min(len(buffer), self._chunk)]
        buffer[: len(piece)] = piece
        self._pos += len(piece)
        return len(piece)


class PipeSink(io.RawIOBase):
    """A write-only, non-seekable output, like ``sys.stdout.buffer`` into a pipe."""

    def __init__(self):
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.data += data
        return len(data)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    if not HAVE_FFMPEG:
        pytest.skip("ffmpeg/ffprobe CLI not installed")
    folder = tmp_path_factory.mktemp("clips")
    src = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=24:duration=0.5",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=0.5"]
    tags = ["-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709",
            "-color_trc", "bt709"]
    clips = {name: folder / name for name in
             ("h264_8bit.mp4", "h264_10bit.mp4", "subs.mkv", "stream.mkv", "audio.wav",
              "notes.mp4")}
    ffmpeg(*src, "-c:v", "libx264", "-pix_fmt", "yuv420p", *tags,
           "-chroma_sample_location", "topleft", "-c:a", "aac", str(clips["h264_8bit.mp4"]))
    ffmpeg(*src, "-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-color_range", "tv",
           "-colorspace", "bt2020nc", "-color_primaries", "bt2020", "-color_trc", "smpte2084",
           "-c:a", "aac", str(clips["h264_10bit.mp4"]))
    srt = folder / "subs.srt"
    srt.write_text(SUBTITLES)
    ffmpeg(*src, "-i", str(srt), "-map", "0:v", "-map", "1:a", "-map", "2:s",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", *tags, "-c:a", "aac", "-c:s", "srt",
           str(clips["subs.mkv"]))
    # What a pipe carries: a streamable container, audio, subtitles, every colour tag.
    ffmpeg(*src, "-i", str(srt), "-map", "0:v", "-map", "1:a", "-map", "2:s",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", *tags, "-chroma_sample_location", "topleft",
           "-c:a", "aac", "-c:s", "srt", str(clips["stream.mkv"]))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=0.2", str(clips["audio.wav"]))
    clips["notes.mp4"].write_text("this is not a video\n")
    # Solid colour, converted from RGB by swscale with a given matrix/range, stored losslessly.
    for matrix, rng, pix in (("bt709", "tv", "yuv420p10le"), ("bt470bg", "tv", "yuv420p"),
                             ("bt2020nc", "tv", "yuv420p10le"), ("bt709", "pc", "yuv444p")):
        name = f"solid_{matrix}_{rng}.mp4"
        clips[name] = folder / name
        ffmpeg("-f", "lavfi", "-i", "color=c=0x3080C0:s=64x48:r=24:d=0.25,format=rgb24",
               "-vf", f"scale=out_color_matrix={matrix}:out_range={rng},format={pix}",
               "-c:v", "libx264", "-qp", "0", "-colorspace", matrix, "-color_range", rng,
               "-color_primaries", "bt709", "-color_trc", "bt709", str(clips[name]))
    return clips


# ---------------------------------------------------------------- video: transcode

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
def test_rotation_is_carried(tmp_path):
    src = tmp_path / "rotated.mp4"
    with av.open(str(src), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        stream.set_display_rotation(90)
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((16, 32, 3), 40 * i, np.uint8), "rgb24")
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert VideoReader(src).rotation == 90
    transcode(src, tmp_path / "out.mp4", upscale_nearest)
    assert VideoReader(tmp_path / "out.mp4").rotation == 90


# ---------------------------------------------------------------- video: pipes, file objects, names

COLOUR_KEYS = ("color_range", "color_space", "color_primaries", "color_transfer",
               "chroma_location", "r_frame_rate", "sample_aspect_ratio", "pix_fmt")


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


@needs_ffmpeg
def test_writer_needs_only_a_stream_info(clips, tmp_path):
    with VideoReader(clips["h264_10bit.mp4"]) as reader:
        info = reader.info
        frames = list(reader.frames())
    assert isinstance(info, StreamInfo) and info.bit_depth == 10 and info.frame_step == 512
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.width = 1  # type: ignore[misc]
    dst = tmp_path / "out.mkv"
    with VideoWriter(dst, info, 64, 48) as writer:  # the reader is closed: never needed
        for frame in frames:
            writer.write(frame)
    (v0,), (v1,) = streams_of(probe(clips["h264_10bit.mp4"]), "video"), streams_of(probe(dst), "video")
    assert int(v1["nb_read_frames"]) == 12
    for key in COLOUR_KEYS:
        assert v1.get(key) == v0.get(key), key


@needs_ffmpeg
def test_writer_takes_pass_through_packets_as_an_iterable(clips, tmp_path):
    src, dst = clips["subs.mkv"], tmp_path / "out.mkv"
    with VideoReader(src, passthrough=True) as reader:
        frames = list(reader.frames())
        packets = reader.passthrough_packets()  # every packet, once the video is read
        assert reader.passthrough_packets() == []
        assert [(s.kind, s.codec_name) for s in reader.info.passthrough] == [
            ("audio", "aac"), ("subtitle", "subrip")]
        with VideoWriter(dst, reader.info, 64, 48, packets=packets) as writer:
            for frame in frames:
                writer.write(frame)
    for kind in ("audio", "subtitle"):
        assert packets_of(dst, kind) == packets_of(src, kind), kind


@needs_ffmpeg
def test_attachments_are_carried_into_matroska(clips, tmp_path, caplog):
    font = tmp_path / "font.ttf"
    font.write_bytes(b"not really a font " * 20)
    src = tmp_path / "fonts.mkv"
    ffmpeg("-i", str(clips["subs.mkv"]), "-attach", str(font), "-metadata:s:t",
           "mimetype=application/x-truetype-font", "-map", "0", "-c", "copy", str(src))
    transcode(src, tmp_path / "up.mkv", upscale_nearest)
    with av.open(str(tmp_path / "up.mkv")) as container:
        (attached,) = [s for s in container.streams if s.type == "attachment"]
        assert (attached.name, attached.mimetype) == ("font.ttf", "application/x-truetype-font")
        assert bytes(attached.data) == font.read_bytes()
        assert {s.type for s in container.streams} == {"video", "audio", "subtitle", "attachment"}
    with caplog.at_level(logging.WARNING, logger="vs_superres.media"):
        transcode(src, tmp_path / "up.mp4", upscale_nearest)
    assert "attachment" in caplog.text and ".mkv" in caplog.text


def _carrier_info(pix_fmt: str, sar=Fraction(1)) -> StreamInfo:
    from vs_superres.media.convert import pixel_layout

    return StreamInfo(width=32, height=24, fps=Fraction(24), time_base=Fraction(1, 24),
                      pix_fmt=pix_fmt, layout=pixel_layout(pix_fmt),
                      colour=ColourInfo(matrix=1, range=1, primaries=1, transfer=1,
                                        chroma_location=1), sample_aspect_ratio=sar)


def _photo_frames(count: int) -> list[np.ndarray]:
    photo = skdata.coffee().astype(np.float32) / 255
    return [np.ascontiguousarray(photo[10 * i: 10 * i + 48, 100: 164].transpose(2, 0, 1))
            for i in range(count)]


@needs_ffmpeg
@pytest.mark.parametrize("fmt, codec, pix_fmt", [
    ("yuv4mpegpipe", "wrapped_avframe", "yuv420p10le"),  # 9-16 bit y4m: the muxer's strict -1
    ("nut", "rawvideo", "nv12"),                          # semi-planar: filled planar, repacked
    ("matroska", "rawvideo", "yuyv422"),                  # packed, stored uncompressed
    ("rawvideo", "rawvideo", "rgb24")])                   # bare frames
def test_writer_writes_uncompressed_carriers(tmp_path, fmt, codec, pix_fmt):
    """Explicit ``codec``/``pix_fmt``/``format``, an explicit sample aspect and field order:
    what the FFmpeg bridge writes its pipes with. Samples are exactly ``rgb_to_frame``'s."""
    from vs_superres.media.convert import pixel_layout

    info = _carrier_info(pix_fmt)
    frames = _photo_frames(3)
    sink = PipeSink()
    with VideoWriter(sink, info, 64, 48, codec=codec, pix_fmt=pix_fmt, format=fmt,
                     sample_aspect_ratio=Fraction(4, 3), field_order="tt") as writer:
        for index, rgb in enumerate(frames):
            writer.write(rgb, index)
    data = bytes(sink.data)
    options = {"video_size": "64x48", "pixel_format": pix_fmt, "framerate": "24"} if fmt == "rawvideo" else {}
    with av.open(io.BytesIO(data), format=fmt, options=options) as container:
        stream = container.streams.video[0]
        decoded_frames = list(container.decode(stream))
        sar = stream.sample_aspect_ratio
    assert [f.format.name for f in decoded_frames] == [pix_fmt] * 3
    from vs_superres.media.encoders import fill_format

    planar = fill_format(pix_fmt)  # what write() fills before swscale repacks it
    assert planar == pixel_layout(pix_fmt).planar_name()
    for got, rgb in zip(decoded_frames, frames):
        want = rgb_to_frame(rgb, planar, writer.colour)
        assert np.array_equal(got.reformat(format=planar).to_ndarray(), want.to_ndarray())
    if fmt == "rawvideo":
        assert len(data) == 3 * 64 * 48 * 3  # nothing but the samples
        return
    assert sar == Fraction(4, 3)
    if fmt == "yuv4mpegpipe":
        line = data[: data.index(b"\n")]
        assert b" A4:3 " in line and b" It " in line  # aspect and top field first
        return
    probed = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", "-"], input=data,
        capture_output=True, check=True).stdout)["streams"][0]
    assert (probed["pix_fmt"], probed["sample_aspect_ratio"]) == (pix_fmt, "4:3")
    if fmt == "matroska":  # NUT has no field for the field order
        assert probed.get("field_order") == "tt"


@needs_ffmpeg
def test_writer_y4m_file_and_rawvideo_without_a_pixel_format(tmp_path):
    """A ``.y4m`` path gets y4m at 10 bits too; ``codec="rawvideo"`` alone keeps the source's
    own pixel format, packed as it came."""
    dst = tmp_path / "out.y4m"
    with VideoWriter(dst, _carrier_info("yuv422p10le"), 64, 48, codec="wrapped_avframe") as writer:
        for rgb in _photo_frames(2):
            writer.write(rgb)
    with av.open(str(dst)) as container:
        assert [f.format.name for f in container.decode(video=0)] == ["yuv422p10le"] * 2
    writer = VideoWriter(io.BytesIO(), _carrier_info("p010le"), 64, 48, codec="rawvideo", format="nut")
    assert (writer.codec, writer.pix_fmt) == ("rawvideo", "p010le")
    writer.abort()
    with pytest.raises(SuperResError, match="pixel format 'yuv444p' cannot be written by libx264rgb"):
        VideoWriter(io.BytesIO(), _carrier_info("gbrp"), 64, 48, codec="libx264rgb",
                    pix_fmt="yuv444p", format="matroska")


_SVT_SCRIPT = """
import os, sys
from fractions import Fraction
import numpy as np
from vs_superres.media import StreamInfo, VideoWriter
from vs_superres.media.colour import ColourInfo
from vs_superres.media.convert import pixel_layout
after_import = os.environ.get("SVT_LOG")
info = StreamInfo(width=64, height=64, fps=Fraction(24), time_base=Fraction(1, 24), pix_fmt="yuv420p",
                  layout=pixel_layout("yuv420p"), colour=ColourInfo(matrix=1, range=1))
with VideoWriter(sys.argv[1], info, 64, 64, codec="libsvtav1") as writer:
    writer.write(np.full((3, 64, 64), 0.5, np.float32))
print(after_import, os.environ.get("SVT_LOG"))
"""


@pytest.mark.skipif(not vs_superres.media.encoder_available("libsvtav1"), reason="no libsvtav1")
@pytest.mark.parametrize("given", [None, "3"])
def test_svt_av1_is_quiet_unless_asked_and_writers_leave_the_environment_alone(tmp_path, given):
    """``SVT_LOG`` is set once, when the encoders module is imported, only where the user has
    not set it; making a writer changes no environment variable."""
    env = {k: v for k, v in os.environ.items() if k != "SVT_LOG"}
    if given is not None:
        env["SVT_LOG"] = given
    run = subprocess.run([sys.executable, "-c", _SVT_SCRIPT, str(tmp_path / "out.mkv")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    expected = given or "1"
    assert run.stdout.split() == [expected, expected]
    assert ("Svt[info]" in run.stderr) == (given == "3"), run.stderr


def test_media_modules_import_no_cycle():
    """``media/*.py`` import one another in one direction only (writer never imports video)."""
    folder = Path(vs_superres.media.__file__).parent
    names = {path.stem for path in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):  # function bodies too
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                parts = node.module.split(".")
                if parts[:2] == ["vs_superres", "media"]:
                    deps.add(parts[2] if len(parts) > 2 else "__init__")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[:2] == ["vs_superres", "media"]:
                        deps.add(parts[2] if len(parts) > 2 else "__init__")
        graph[path.stem] = deps & names
    assert "video" not in graph["writer"], "writer imports video: it must take a StreamInfo only"
    assert "writer" not in graph["video"], "video imports writer: transcode belongs in transcoding"

    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycle = trail[trail.index(dep):] + [dep] if dep in trail else [module, dep]
                raise AssertionError("import cycle in media: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, trail + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


# ---------------------------------------------------------------- video: colour maths

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


# ---------------------------------------------------------------- atomic writes

@needs_ffmpeg
def test_interrupted_transcode_leaves_nothing(clips, tmp_path):
    dst = tmp_path / "out.mp4"

    def interrupted(frames):
        for index, frame in enumerate(upscale_nearest(frames)):
            if index == 5:
                raise KeyboardInterrupt
            yield frame

    with pytest.raises(KeyboardInterrupt):
        transcode(clips["h264_8bit.mp4"], dst, interrupted)
    assert list(tmp_path.iterdir()) == []
    dst.write_bytes(b"previous result")
    with pytest.raises(KeyboardInterrupt):
        transcode(clips["h264_8bit.mp4"], dst, interrupted)
    assert list(tmp_path.iterdir()) == [dst] and dst.read_bytes() == b"previous result"


@needs_ffmpeg
def test_process_must_yield_one_frame_per_input(clips, tmp_path):
    def drops_last(frames):
        return list(upscale_nearest(frames))[:-1]

    with pytest.raises(SuperResError, match="11 frames for 12 inputs"):
        transcode(clips["h264_8bit.mp4"], tmp_path / "out.mp4", drops_last)
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_cleans_up_on_interrupt(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]


# ---------------------------------------------------------------- images

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


# ---------------------------------------------------------------- clear errors

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
