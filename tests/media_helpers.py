"""What the media tests share: the ffmpeg/ffprobe helpers, the stand-in models, pipe-like
file objects, and the clips made by the ffmpeg CLI (:func:`make_clips`; each test file wraps it
in its own module fixture)."""

from __future__ import annotations

import functools
import io
import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from vs_superres.media import VideoReader

HAVE_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg/ffprobe CLI not installed")

SUBTITLES = "1\n00:00:00,000 --> 00:00:00,250\nhello\n\n2\n00:00:00,250 --> 00:00:00,500\nworld\n"
TARGET = np.array([0x30, 0x80, 0xC0]) / 255.0  # the solid colour of the colour clips
COLOUR_KEYS = ("color_range", "color_space", "color_primaries", "color_transfer",
               "chroma_location", "r_frame_rate", "sample_aspect_ratio", "pix_fmt")


# The scale filter's names for these matrices: FFmpeg 7 accepts only these (5.1 took both).
_SCALE_MATRIX = {"bt470bg": "bt601", "bt2020nc": "bt2020"}


@functools.lru_cache(maxsize=1)
def _setparams_has_chroma() -> bool:
    help_text = subprocess.run(["ffmpeg", "-hide_banner", "-h", "filter=setparams"],
                               capture_output=True, text=True, check=False).stdout
    return "chroma_location" in help_text


def colour_tags(rng: str, space: str, primaries: str, trc: str, chroma: str | None = None,
                before: str = "") -> list[str]:
    """ffmpeg output arguments that tag a video with these colour properties in FFmpeg 5.1 and
    7.x alike: FFmpeg 7 takes the frames' own tags over the encoder options, so the frames are
    tagged by setparams too (``before``: filters to run first, e.g. a scale)."""
    params = f"setparams=range={rng}:colorspace={space}:color_primaries={primaries}:color_trc={trc}"
    if chroma and _setparams_has_chroma():
        params += f":chroma_location={chroma}"
    chain = f"{before},{params}" if before else params
    out = ["-vf", chain, "-color_range", rng, "-colorspace", space, "-color_primaries", primaries,
           "-color_trc", trc]
    return out + (["-chroma_sample_location", chroma] if chroma else [])


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


def planes_of(frame: av.VideoFrame) -> list[np.ndarray]:
    """The visible samples of each plane of a planar ``frame`` (PyAV 14.2 has no
    ``to_ndarray`` for most Y'CbCr formats)."""
    wide = any(c.bits > 8 for c in frame.format.components)
    dtype = np.dtype("<u2") if wide else np.dtype(np.uint8)
    out = []
    for plane in frame.planes:
        raw = np.frombuffer(plane, dtype=dtype)
        rows = raw[: plane.height * (plane.line_size // dtype.itemsize)].reshape(plane.height, -1)
        out.append(rows[:, : plane.width].copy())
    return out


def make_clips(tmp_path_factory) -> dict[str, Path]:
    """The test clips, made in a new temporary folder (skips without the ffmpeg CLI)."""
    if not HAVE_FFMPEG:
        pytest.skip("ffmpeg/ffprobe CLI not installed")
    folder = tmp_path_factory.mktemp("clips")
    src = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=24:duration=0.5",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=0.5"]
    tags = colour_tags("tv", "bt709", "bt709", "bt709")
    clips = {name: folder / name for name in
             ("h264_8bit.mp4", "h264_10bit.mp4", "subs.mkv", "stream.mkv", "audio.wav",
              "notes.mp4")}
    ffmpeg(*src, "-c:v", "libx264", "-pix_fmt", "yuv420p",
           *colour_tags("tv", "bt709", "bt709", "bt709", "topleft"), "-c:a", "aac",
           str(clips["h264_8bit.mp4"]))
    ffmpeg(*src, "-c:v", "libx264", "-pix_fmt", "yuv420p10le",
           *colour_tags("tv", "bt2020nc", "bt2020", "smpte2084"), "-c:a", "aac",
           str(clips["h264_10bit.mp4"]))
    srt = folder / "subs.srt"
    srt.write_text(SUBTITLES)
    ffmpeg(*src, "-i", str(srt), "-map", "0:v", "-map", "1:a", "-map", "2:s",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", *tags, "-c:a", "aac", "-c:s", "srt",
           str(clips["subs.mkv"]))
    # What a pipe carries: a streamable container, audio, subtitles, every colour tag.
    ffmpeg(*src, "-i", str(srt), "-map", "0:v", "-map", "1:a", "-map", "2:s",
           "-c:v", "libx264", "-pix_fmt", "yuv420p",
           *colour_tags("tv", "bt709", "bt709", "bt709", "topleft"),
           "-c:a", "aac", "-c:s", "srt", str(clips["stream.mkv"]))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=0.2", str(clips["audio.wav"]))
    clips["notes.mp4"].write_text("this is not a video\n")
    # Solid colour, converted from RGB by swscale with a given matrix/range, stored losslessly.
    for matrix, rng, pix in (("bt709", "tv", "yuv420p10le"), ("bt470bg", "tv", "yuv420p"),
                             ("bt2020nc", "tv", "yuv420p10le"), ("bt709", "pc", "yuv444p")):
        name = f"solid_{matrix}_{rng}.mp4"
        clips[name] = folder / name
        ffmpeg("-f", "lavfi", "-i", "color=c=0x3080C0:s=64x48:r=24:d=0.25,format=rgb24",
               "-c:v", "libx264", "-qp", "0",
               *colour_tags(rng, matrix, "bt709", "bt709", before=(
                   f"scale=out_color_matrix={_SCALE_MATRIX.get(matrix, matrix)}:out_range={rng},format={pix}")),
               str(clips[name]))
    return clips
