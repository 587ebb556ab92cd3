"""Media: the video writer on its own (a StreamInfo is all it needs, pass-through packets,
attachments, the FFmpeg bridge's uncompressed carriers, quiet encoders) and the media
modules' import direction."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media_helpers import (COLOUR_KEYS, PipeSink, ffmpeg, make_clips, needs_ffmpeg, packets_of, planes_of, probe,
                           streams_of, upscale_nearest)
from skimage import data as skdata
from test_architecture import ROOT, imports_of

import vs_superres.media
from vs_superres.contracts.errors import SuperResError
from vs_superres.media import StreamInfo, VideoReader, VideoWriter, transcode
from vs_superres.media.colour import ColourInfo
from vs_superres.media.convert import rgb_to_frame
from vs_superres.media.pyav_features import CONTAINER_HAS_ATTACHMENTS


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    return make_clips(tmp_path_factory)


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
    with caplog.at_level(logging.WARNING, logger="vs_superres.media"):
        transcode(src, tmp_path / "up.mkv", upscale_nearest)
    with av.open(str(tmp_path / "up.mkv")) as container:
        kinds = {s.type for s in container.streams}
        if CONTAINER_HAS_ATTACHMENTS:
            (attached,) = [s for s in container.streams if s.type == "attachment"]
            assert (attached.name, attached.mimetype) == ("font.ttf", "application/x-truetype-font")
            assert bytes(attached.data) == font.read_bytes()
            assert kinds == {"video", "audio", "subtitle", "attachment"}
        else:  # PyAV 14.2: said, and the rest is written
            assert "cannot write attachments; upgrade PyAV" in caplog.text
            assert kinds == {"video", "audio", "subtitle"}
    caplog.clear()
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
        for got_plane, want_plane in zip(planes_of(got.reformat(format=planar)), planes_of(want)):
            assert np.array_equal(got_plane, want_plane)
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
    folder = ROOT / "vs_superres" / "media"  # the files imports_of reads are the checkout's
    names = {path.stem for path in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):  # the architecture test's walker: function bodies too
        parts = [target.split(".") for _line, target in imports_of(path)]
        deps = {p[2] if len(p) > 2 else "__init__" for p in parts if p[:2] == ["vs_superres", "media"]}
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
