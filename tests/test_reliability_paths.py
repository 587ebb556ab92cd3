"""File names that look like FFmpeg URLs are the local files they name, on every input path.

FFmpeg reads a string as a URL: ``concat:a.mp4|b.mp4`` would decode a.mp4 then b.mp4,
``pipe:1`` is standard output, ``subfile,,start,0,end,0,,:x`` a byte range of x. The file that
was checked must be the file that is read or written, whatever its name looks like.
"""

from __future__ import annotations

import os

import av
import numpy as np
import pytest

from vs_superres.cli import main
from vs_superres.media import read_image, transcode, write_image

# One name per protocol family FFmpeg knows; "/" cannot be in a file name, so URLs keep their scheme only.
PREFIXES = ["file:", "concat:decoy.{ext}|decoy.{ext}", "pipe:", "pipe:1", "http:", "https:", "tcp:",
            "subfile,,start,0,end,0,,:decoy.{ext}", "async:", "cache:", "crypto:", "data:", "fd:", "md5:", "tee:"]


def make_clip(path, frames=5, size=(16, 12), shade=0.5) -> None:
    with av.open("file:" + os.path.abspath(path), "w", format="matroska") as out:
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv444p"
        for i in range(frames):
            rgb = np.full((size[1], size[0], 3), int(255 * shade), np.uint8)
            rgb[:, : i + 1] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def frame_count(path) -> int:
    with av.open("file:" + os.path.abspath(path)) as src:
        return sum(1 for _ in src.decode(video=0))


@pytest.mark.parametrize("prefix", PREFIXES)
def test_video_names_are_local_files(prefix, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_clip("decoy.mkv", frames=2, shade=0.1)  # what a URL reading would decode instead
    name = prefix.format(ext="mkv") + "in.mkv"
    make_clip(name, frames=5)
    out = prefix.format(ext="mkv") + "out.mkv"
    code = main(["upscale", name, out, "--model", "temporal-mean-x2", "--device", "cpu", "-q"])
    assert code == 0, capsys.readouterr().err
    assert frame_count(out) == 5  # this file's frames, not the decoy's 2
    with av.open("file:" + os.path.abspath(out)) as dst:
        assert (dst.streams.video[0].width, dst.streams.video[0].height) == (32, 24)
    assert frame_count("decoy.mkv") == 2
    assert not [f for f in os.listdir(".") if ".partial" in f]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_video_names_through_the_api(prefix, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_clip("decoy.mkv", frames=2, shade=0.1)
    name = prefix.format(ext="mkv") + "in.mkv"
    make_clip(name, frames=4)

    def same(frames):
        yield from frames

    assert str(transcode(name, prefix.format(ext="mkv") + "copy.mkv", same)) == prefix.format(ext="mkv") + "copy.mkv"
    assert frame_count(prefix.format(ext="mkv") + "copy.mkv") == 4


@pytest.mark.parametrize("prefix", PREFIXES)
def test_image_names_are_local_files(prefix, tmp_path, monkeypatch, tiny_ditn_path, capsys):
    monkeypatch.chdir(tmp_path)
    write_image("decoy.png", np.zeros((4, 4, 3), np.float32))
    name = prefix.format(ext="png") + "in.png"
    picture = np.random.default_rng(0).random((10, 14, 3)).astype(np.float32)
    write_image(name, picture)
    np.testing.assert_allclose(read_image(name)[0], np.rint(picture * 255) / 255, atol=1e-6)
    out = prefix.format(ext="png") + "out.png"
    code = main(["upscale", name, out, "--model", str(tiny_ditn_path), "--device", "cpu", "-q"])
    assert code == 0, capsys.readouterr().err
    assert read_image(out)[0].shape == (40, 56, 3)
    assert read_image("decoy.png")[0].shape == (4, 4, 3)


def test_pipe_named_output_folder_is_a_folder(tmp_path, monkeypatch, capsys):
    """An output folder named ``pipe:`` crashed once: it is a folder like any other."""
    monkeypatch.chdir(tmp_path)
    os.mkdir("pipe:")
    make_clip("in.mkv", frames=3)
    assert main(["upscale", "in.mkv", "pipe:/out.mkv", "--model", "temporal-mean-x2", "--device", "cpu", "-q"]) == 0
    assert frame_count("pipe:/out.mkv") == 3
