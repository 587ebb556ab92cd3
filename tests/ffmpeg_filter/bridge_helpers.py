"""Shared helpers of the FFmpeg bridge tests: real clips made by the ffmpeg CLI, the two
commands run as real processes, and the engine's own output on the same input as reference."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from media_helpers import planes_of

HAVE_FFMPEG = bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))
needs_ffmpeg = pytest.mark.skipif(
    not HAVE_FFMPEG, reason="the ffmpeg/ffprobe CLI is needed: the bridge runs between ffmpeg "
    "processes (apt-get install ffmpeg; scripts/setup_env.sh does it)")

SUBTITLES = ("1\n00:00:00,000 --> 00:00:00,150\nhello\n\n"
             "2\n00:00:00,150 --> 00:00:00,300\nworld\n")
TAGS = ["-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709",
        "-color_trc", "bt709", "-chroma_sample_location", "left"]


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *map(str, args)],
                   check=True)


def ffmpeg_bytes(*args) -> bytes:
    return subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", *map(str, args)],
                          check=True, capture_output=True).stdout


def ffprobe(path_or_bytes, *entries: str) -> dict:
    """ffprobe's streams (``-show_streams``), chapters and format as a dict."""
    args = ["ffprobe", "-v", "error", "-show_streams", "-show_chapters", "-show_format",
            "-of", "json"]
    if isinstance(path_or_bytes, bytes):
        out = subprocess.run([*args, "-"], input=path_or_bytes, capture_output=True, check=True)
    else:
        out = subprocess.run([*args, str(path_or_bytes)], capture_output=True, check=True)
    return json.loads(out.stdout)


def run_filter(*args, input: bytes = b"") -> subprocess.CompletedProcess:
    """``superres-filter ARGS`` in this process (the same function the console script runs,
    without paying a second torch import per test): status, stdout bytes, stderr bytes."""
    from vs_superres.ffmpeg_filter.filter_cmd import run

    out, err = io.BytesIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run([str(a) for a in args], io.BytesIO(input), out)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue().encode())


def run_wrapper(*args) -> int:
    """``superres-ffmpeg ARGS`` in this process; ffmpeg's own stderr goes to fd 2 (capfd)."""
    from vs_superres.ffmpeg_filter.wrapper import run_command

    return run_command([str(a) for a in args])


def filter_cmd(*args, input: bytes = b"", timeout: int = 120) -> subprocess.CompletedProcess:
    """``superres-filter ARGS`` as a real process."""
    return subprocess.run([sys.executable, "-m", "vs_superres.ffmpeg_filter.filter_cmd", *map(str, args)],
                          input=input, capture_output=True, timeout=timeout)


def wrapper_cmd(*args, cwd=None, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vs_superres.ffmpeg_filter.wrapper", *map(str, args)],
                          capture_output=True, timeout=timeout, cwd=cwd)


def make_clips(folder: Path) -> dict[str, Path]:
    """Tiny real clips (32x24, 8 frames at 24 fps, FFV1 so that samples are exact)."""
    video = ["-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24:duration=1"]
    clips = {}
    srt = folder / "subs.srt"
    srt.write_text(SUBTITLES)
    clips["420.mkv"] = folder / "420.mkv"
    # two audio streams (stereo flac, mono aac) and a subtitle stream, chapters and a title
    ffmpeg(*video, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=0.3333",
           "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100:duration=0.3333", "-i", srt,
           "-filter_complex", "[1:a]pan=stereo|c0=c0|c1=c0[st]",
           "-map", "0:v", "-map", "[st]", "-map", "2:a", "-map", "3:s",
           "-frames:v", "8", "-c:v", "ffv1", "-pix_fmt", "yuv420p", *TAGS, "-c:a:0", "flac", "-c:a:1", "aac",
           "-c:s", "srt", "-metadata", "title=bridge test", "-metadata:s:a:0", "language=eng",
           "-metadata:s:a:1", "language=fra", "-metadata:s:s:0", "language=deu",
           clips["420.mkv"])
    for name, pix_fmt, extra in (
            ("420p10.mkv", "yuv420p10le", ["-color_range", "tv", "-colorspace", "bt2020nc",
                                           "-color_primaries", "bt2020", "-color_trc", "smpte2084",
                                           "-chroma_sample_location", "left"]),
            ("444.mkv", "yuv444p", ["-color_range", "pc", "-colorspace", "bt709",
                                    "-color_primaries", "bt709", "-color_trc", "bt709"]),
            ("rgb.mkv", "gbrp10le", [])):
        clips[name] = folder / name
        ffmpeg(*video, "-frames:v", "8", "-c:v", "ffv1", "-pix_fmt", pix_fmt, *extra, clips[name])
    clips["vfr.mkv"] = folder / "vfr.mkv"
    ffmpeg("-f", "lavfi", "-i",
           "testsrc2=size=32x24:rate=24:duration=1,setpts='N/24/TB+if(gte(N,4),0.1/TB,0)'",
           "-frames:v", "8", "-c:v", "ffv1", "-pix_fmt", "yuv420p", *TAGS, "-fps_mode", "vfr",
           clips["vfr.mkv"])
    return clips


def decode(data: bytes, format: str | None = None, **options) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data), format=format, options=options) as container:
        return list(container.decode(video=0))


def engine_reference(source, model: str, colour=None, **engine) -> tuple[list, object]:
    """``(frames, info)``: what the engine makes of ``source`` (a path or bytes), read and
    converted by the media layer as the CLI reads it: float R'G'B' ``[3, sH, sW]`` frames."""
    import torch

    from vs_superres import Upscaler
    from vs_superres.media import VideoReader

    src = io.BytesIO(source) if isinstance(source, bytes) else source
    with VideoReader(src) as reader:
        info = reader.info
        if colour is not None:
            import dataclasses
            info = dataclasses.replace(info, colour=colour)
            reader.info = info
        up = Upscaler(model, device="cpu", **engine)
        frames = [f.numpy() for f in up.stream((torch.from_numpy(d.rgb) for d in reader), total=len(reader) or None)]
    return frames, info


def reference_planes(rgb: np.ndarray, pix_fmt: str, colour) -> list[np.ndarray]:
    from vs_superres.media.convert import pixel_layout, rgb_to_frame

    planar = pixel_layout(pix_fmt).planar_name()
    frame = rgb_to_frame(rgb, planar, colour)
    return planes_of(frame)


def as_planar(frame: av.VideoFrame) -> av.VideoFrame:
    from vs_superres.media.convert import pixel_layout

    planar = pixel_layout(frame.format.name).planar_name()
    return frame if frame.format.name == planar else frame.reformat(format=planar)


def assert_frames_equal(frames: list[av.VideoFrame], reference: list[np.ndarray], colour) -> None:
    assert len(frames) == len(reference)
    for index, (frame, rgb) in enumerate(zip(frames, reference)):
        frame = as_planar(frame)
        got, want = planes_of(frame), reference_planes(rgb, frame.format.name, colour)
        for p, (g, w) in enumerate(zip(got, want)):
            assert g.shape == w.shape, (index, p)
            assert np.array_equal(g, w), f"frame {index} plane {p}: max diff {np.abs(g.astype(int) - w).max()}"


def packets(data_or_path, kind: str) -> list[tuple[int | None, bytes]]:
    src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else str(data_or_path)
    out = []
    with av.open(src) as container:
        for index, stream in enumerate(s for s in container.streams if s.type == kind):
            for packet in container.demux(stream):
                if packet.size:
                    out.append((index, packet.pts * packet.time_base if packet.pts is not None else None,
                                bytes(packet)))
    return out


def video_times(data_or_path) -> list[float]:
    src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else str(data_or_path)
    with av.open(src) as container:
        return [float(f.pts * f.time_base) for f in container.decode(video=0)]
