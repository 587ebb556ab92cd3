"""Reliability of the video path: odd timestamps, cut inputs, messages, full disks, probe order.

Every clip is made here with PyAV (32x24, a real photograph shifted per frame); runs go through
the CLI (``main([...])``: exit status, message, what is on disk) and through ``transcode``.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from skimage import data as skdata

from vs_superres.cli import main
from vs_superres.contracts.errors import IncompleteInput, SuperResError, UnsupportedFormat
from vs_superres.media import VideoReader, transcode

W, H = 32, 24
PHOTO = skdata.astronaut()[100:100 + H, 200:200 + 4 * W]


def picture(i: int) -> np.ndarray:
    return np.ascontiguousarray(np.roll(PHOTO, 3 * i, axis=1)[:, :W])


def make_clip(path: Path, *, codec="ffv1", fmt=None, n=10, rate=12, pts=None, time_base=None,
              codec_options=None, container_options=None, subtitles=None) -> Path:
    """``n`` frames of the photograph; ``pts`` (in ``time_base``) as given, else one per frame."""
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as out:
        video = out.add_stream(codec, rate=rate, options=codec_options or {})
        video.width, video.height = W, H
        video.pix_fmt = "yuv420p"
        if time_base is not None:
            video.time_base = video.codec_context.time_base = time_base
        sub = None
        if subtitles is not None:
            sub = out.add_stream_from_template(subtitles)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(picture(i), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        del sub
    return path


def upscale2(frames):
    for f in frames:
        yield np.repeat(np.repeat(f, 2, axis=1), 2, axis=2)


def frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def frame_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


def partials(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial" in p.name]


def cli(*args) -> int:
    return main(["upscale", *map(str, args), "--model", "temporal-mean-x2", "-q"])


# ---------------------------------------------------------------- 1. timestamps

TIMESTAMPS = {
    # name: (pts, time base, source container)
    "duplicate": ([0, 1, 1, 2, 3, 4, 5, 6, 7, 8], Fraction(1, 12), "mkv"),
    "finer_than_output": ([0, 1, 3, 1000, 1001, 2002, 2003, 5000, 5001, 9000], Fraction(1, 90000), "nut"),
    "huge_gap": ([0, 1, 2, 3, 4, 70000, 70001, 70002, 70003, 70004], Fraction(1, 12), "mkv"),
    "vfr": ([0, 1, 3, 4, 8, 9, 10, 15, 16, 17], Fraction(1, 12), "mkv"),
    "negative_start": ([-3, -2, -1, 0, 1, 2, 3, 4, 5, 6], Fraction(1, 12), "nut"),
}


@pytest.fixture(scope="module")
def odd_clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("odd")
    return {name: make_clip(folder / f"{name}.{ext}", pts=pts, time_base=tb)
            for name, (pts, tb, ext) in TIMESTAMPS.items()}


@pytest.mark.parametrize("out", ["mkv", "mp4", "mov", "avi", "nut", "ts"])
@pytest.mark.parametrize("name", list(TIMESTAMPS))
def test_odd_timestamps_never_fail_at_the_end(odd_clips, tmp_path, name, out):
    dst = tmp_path / f"up.{out}"
    assert transcode(odd_clips[name], dst, upscale2, output_size=(2 * W, 2 * H)) == dst
    assert frame_count(dst) == 10
    pts = frame_pts(dst)
    if out == "avi":  # AVI stores no presentation times: B-frames read back in decode order
        pts = sorted(pts)
    assert all(b > a for a, b in zip(pts, pts[1:])), pts  # strictly increasing, order kept
    assert not partials(tmp_path)


def test_timestamps_that_fit_are_kept_exactly(odd_clips, tmp_path):
    transcode(odd_clips["vfr"], tmp_path / "up.nut", upscale2)
    with av.open(str(tmp_path / "up.nut")) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    # relative to the first frame: the muxer shifts the start by the encoder's B-frame delay
    assert [t - times[0] for t in times] == pytest.approx([p / 12 for p in TIMESTAMPS["vfr"][0]], abs=1e-3)


def test_duplicate_timestamps_via_the_cli_warn_and_succeed(odd_clips, tmp_path, capsys, caplog):
    dst = tmp_path / "up.mp4"
    with caplog.at_level(logging.WARNING):
        assert cli(odd_clips["duplicate"], dst) == 0
    assert frame_count(dst) == 10 and not partials(tmp_path)
    assert "timestamps were moved to fit the '.mp4' container" in caplog.text


def test_an_output_the_encoder_refuses_fails_before_process_runs(odd_clips, tmp_path):
    called = []

    def process(frames):
        called.append(1)
        yield from upscale2(frames)

    # yuv420p needs even sizes: libx264 refuses 63x47 when the header is written.
    with pytest.raises(SuperResError, match="refuses a 63x47"):
        transcode(odd_clips["vfr"], tmp_path / "up.mp4", process, output_size=(63, 47))
    assert not called and not list(tmp_path.iterdir())


# ---------------------------------------------------------------- 2. truncated input

CONTAINERS = {
    # name: (suffix, codec, format, container options, codec options)
    "mp4": (".mp4", "libx264", None, {"movflags": "+faststart"}, {"g": "1"}),
    "mov": (".mov", "mpeg4", None, {"movflags": "+faststart"}, {"g": "1"}),
    "mkv": (".mkv", "ffv1", None, {}, {}),
    "webm": (".webm", "libvpx-vp9", None, {}, {"g": "1"}),
    "avi": (".avi", "ffv1", None, {}, {}),
    "nut": (".nut", "ffv1", None, {}, {}),
    "ts": (".ts", "mpeg2video", "mpegts", {}, {"g": "1"}),
    "y4m": (".y4m", "rawvideo", "yuv4mpegpipe", {}, {}),
}


@pytest.fixture(scope="module")
def cut_clips(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """(complete, cut at 70 %) per container, 12 frames each."""
    folder = tmp_path_factory.mktemp("cut")
    clips = {}
    for name, (suffix, codec, fmt, copts, vopts) in CONTAINERS.items():
        whole = make_clip(folder / f"whole{suffix}", codec=codec, fmt=fmt, n=12,
                          container_options=copts, codec_options=vopts)
        cut = folder / f"cut{suffix}"
        payload = whole.read_bytes()
        cut.write_bytes(payload[: int(len(payload) * 0.7)])
        clips[name] = (whole, cut)
    return clips


@pytest.mark.parametrize("name", list(CONTAINERS))
def test_a_complete_file_is_not_called_cut(cut_clips, tmp_path, name):
    whole, _ = cut_clips[name]
    assert transcode(whole, tmp_path / "up.mkv", upscale2) == tmp_path / "up.mkv"
    assert frame_count(tmp_path / "up.mkv") == 12


@pytest.mark.parametrize("name", list(CONTAINERS))
def test_a_cut_file_is_reported_after_writing_every_complete_frame(cut_clips, tmp_path, name, capsys):
    _, cut = cut_clips[name]
    dst = tmp_path / "up.mkv"
    assert cli(cut, dst) == 4
    err = capsys.readouterr().err
    written = frame_count(dst)
    assert 0 < written < 12 and not partials(tmp_path)
    assert f"ends early: {written} frames read" in err
    assert f"holds the {written} complete frames" in err and "Traceback" not in err


def test_a_cut_file_through_the_api_carries_its_counts(cut_clips, tmp_path):
    _, cut = cut_clips["avi"]
    with pytest.raises(IncompleteInput) as caught:
        transcode(cut, tmp_path / "up.mkv", upscale2)
    err = caught.value
    assert err.frames_expected == 12 and err.output == tmp_path / "up.mkv"
    assert err.frames_read == frame_count(tmp_path / "up.mkv") < 12


@pytest.mark.parametrize("name", ["ts", "mkv", "y4m"])
def test_a_cut_pipe_is_reported(cut_clips, name):
    _, cut = cut_clips[name]
    sink = io.BytesIO()

    with pytest.raises(IncompleteInput, match="ends early") as caught:
        transcode(_Pipe(cut.read_bytes()), sink, upscale2, format="matroska",
                  src_format=CONTAINERS[name][2] or "matroska")
    assert caught.value.output is None and caught.value.frames_read > 0
    assert frame_count_bytes(sink.getvalue()) == caught.value.frames_read


class _Pipe(io.RawIOBase):
    """A pipe's end: read or written in order, never seeked (what ffmpeg meets on `-`)."""

    def __init__(self, data: bytes = b""):
        self._data, self._pos, self.written = data, 0, bytearray()

    def readable(self):
        return True

    def writable(self):
        return True

    def readinto(self, buffer):
        piece = self._data[self._pos:self._pos + min(len(buffer), 4096)]
        buffer[:len(piece)] = piece
        self._pos += len(piece)
        return len(piece)

    def write(self, data):
        self.written += data
        return len(data)


@pytest.fixture(scope="module")
def piped_matroska() -> bytes:
    """36 frames of Matroska as FFmpeg writes it to a pipe: no DURATION, no Segment size, no
    index, so nothing but the element sizes can tell a cut from a shorter stream."""
    pipe = _Pipe()
    with av.open(pipe, "w", format="matroska") as out:
        video = out.add_stream("ffv1", rate=12)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        for i in range(36):
            for packet in video.encode(av.VideoFrame.from_ndarray(picture(i), format="rgb24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    data = bytes(pipe.written)
    with av.open(io.BytesIO(data)) as c:
        assert not c.streams.video[0].metadata.get("DURATION")  # as from a pipe
    return data


@pytest.mark.parametrize("fraction", [0.3, 0.55, 0.8])
@pytest.mark.parametrize("through", ["pipe", "file"])
def test_a_cut_piped_matroska_is_reported(piped_matroska, tmp_path, capsys, fraction, through):
    """Cut inside a Cluster (ffmpeg writes no DURATION to a pipe): found from a pipe and from a
    file, by the element sizes."""
    cut = piped_matroska[: int(len(piped_matroska) * fraction)]
    if through == "pipe":
        sink = io.BytesIO()
        with pytest.raises(IncompleteInput, match="into a (Cluster|SimpleBlock|BlockGroup) that announces") as caught:
            transcode(_Pipe(cut), sink, upscale2, format="matroska", src_format="matroska")
        assert 0 < caught.value.frames_read < 36
        assert frame_count_bytes(sink.getvalue()) == caught.value.frames_read
    else:
        path = tmp_path / "cut.mkv"
        path.write_bytes(cut)
        assert cli(path, tmp_path / "up.mkv") == 4
        err = capsys.readouterr().err
        written = frame_count(tmp_path / "up.mkv")
        assert 0 < written < 36 and f"ends early: {written} frames read" in err
        assert "bytes into a Cluster that announces" in err


@pytest.mark.parametrize("through", ["pipe", "file"])
def test_a_whole_piped_matroska_is_not_called_cut(piped_matroska, tmp_path, through):
    if through == "pipe":
        sink = io.BytesIO()
        transcode(_Pipe(piped_matroska), sink, upscale2, format="matroska", src_format="matroska")
        assert frame_count_bytes(sink.getvalue()) == 36
    else:
        path = tmp_path / "whole.mkv"
        path.write_bytes(piped_matroska)
        assert cli(path, tmp_path / "up.mkv") == 0
        assert frame_count(tmp_path / "up.mkv") == 36


def test_a_matroska_file_shorter_than_its_segment_is_cut_even_between_clusters(tmp_path):
    """A file written by a seeking muxer announces its Segment's size: a cut exactly at a
    Cluster boundary is found too."""
    from vs_superres.media.matroska_tail import file_verdict

    whole = make_clip(tmp_path / "whole.mkv", n=36)
    data = whole.read_bytes()
    at = data.rfind(b"\x1f\x43\xb6\x75")  # the last Cluster's start
    (tmp_path / "cut.mkv").write_bytes(data[:at])
    assert file_verdict(whole) is None
    assert "before the end its Segment announces" in (file_verdict(tmp_path / "cut.mkv") or "")


def test_a_stream_that_is_not_matroska_gets_no_judgement(tmp_path):
    from vs_superres.media.matroska_tail import MatroskaTail

    tail = MatroskaTail()
    tail.feed(b"\x00\x00\x01\xba not EBML at all" * 10)
    assert tail.verdict() is None and not tail.active


def frame_count_bytes(payload: bytes) -> int:
    with av.open(io.BytesIO(payload)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_an_mp4_cut_before_its_index_is_named_so(tmp_path, capsys):
    whole = make_clip(tmp_path / "whole.mp4", codec="libx264")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.7)])
    assert cli(cut, tmp_path / "up.mp4") == 2
    assert "cut short before its index (moov)" in capsys.readouterr().err
    assert not (tmp_path / "up.mp4").exists() and not partials(tmp_path)


# ---------------------------------------------------------------- 3. messages

@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="the ffmpeg CLI makes the mov_text clip")
def test_mov_text_into_mkv_gets_the_right_advice(tmp_path, caplog):
    video = make_clip(tmp_path / "v.mp4", codec="libx264", n=6)
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,400\nhello\n")
    src = tmp_path / "subs.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-i", str(srt), "-map", "0", "-map", "1",
                    "-c:v", "copy", "-c:s", "mov_text", str(src)], check=True)
    with caplog.at_level(logging.WARNING):
        transcode(src, tmp_path / "up.mkv", upscale2)
    assert "a '.mkv' file cannot store mov_text subtitle" in caplog.text
    assert "-c:s srt" in caplog.text and ".mp4" in caplog.text
    assert "write a .mkv" not in caplog.text


def size_changing_clip(path: Path, sizes) -> Path:
    """One H.264 stream in MPEG-TS whose pictures change size (each size its own encoder;
    H.264 carries the size in-band, so the decoder follows)."""
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = sizes[0][0], sizes[0][1], "yuv420p"
        stream.time_base = Fraction(1, 90000)
        out.start_encoding()
        encoders: dict = {}
        previous = sizes[0]
        pts = 0
        for i, size in enumerate(sizes):
            if size not in encoders:
                if encoders:
                    for packet in encoders[previous].encode(None):
                        packet.stream = stream
                        out.mux(packet)
                ctx = av.CodecContext.create("libx264", "w")
                ctx.width, ctx.height, ctx.pix_fmt = size[0], size[1], "yuv420p"
                ctx.time_base, ctx.framerate = Fraction(1, 90000), Fraction(12)
                ctx.options = {"bf": "0"}
                encoders[size] = ctx
            previous = size
            frame = av.VideoFrame.from_ndarray(picture(i), format="rgb24").reformat(*size, "yuv420p")
            frame.pts, frame.time_base = pts, Fraction(1, 90000)
            pts += 7500
            for packet in encoders[size].encode(frame):
                packet.stream = stream
                out.mux(packet)
        for packet in encoders[previous].encode(None):
            packet.stream = stream
            out.mux(packet)
    return path


def test_a_size_change_mid_stream_is_named_in_user_terms(tmp_path, capsys):
    sizes = [(W, H)] * 4 + [(2 * W, 2 * H)] * 4
    src = size_changing_clip(tmp_path / "sizes.ts", sizes)
    dst = tmp_path / "up.mkv"
    assert cli(src, dst) == 2
    err = capsys.readouterr().err
    assert f"frame 4 of '{src}' is {2 * W}x{2 * H}, but the video started at {W}x{H}" in err
    assert f"-vf scale={W}:{H}" in err and "Traceback" not in err
    assert not dst.exists() and not partials(tmp_path)


# ---------------------------------------------------------------- 4. full disk

def test_a_file_size_limit_is_reported_as_a_full_disk(tmp_path):
    """RLIMIT_FSIZE in a child process stands in for a full disk (no root, no tmpfs): writes
    past the limit fail with EFBIG, mapped like ENOSPC."""
    src = make_clip(tmp_path / "in.nut", n=10)
    old = tmp_path / "up.mkv"
    old.write_bytes(b"old output")
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2500, 2500))
        from vs_superres.cli import main
        sys.exit(main(["upscale", {str(src)!r}, {str(old)!r}, "--model", "temporal-mean-x2", "-q"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr
    assert f"cannot write '{old}'" in done.stderr and "file size limit (`ulimit -f`)" in done.stderr
    assert "Traceback" not in done.stderr
    assert old.read_bytes() == b"old output" and not partials(tmp_path)


# ---------------------------------------------------------------- 5. probe before load

def test_a_broken_video_fails_before_the_model_loads(tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video at all")
    missing_model = tmp_path / "no_such_model.pth"
    code = main(["upscale", str(broken), str(tmp_path / "up.mp4"), "--model", str(missing_model), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot read '{broken}'" in err
    assert "no_such_model" not in err
    assert not (tmp_path / "up.mp4").exists() and not partials(tmp_path)


def test_a_readable_video_then_reports_the_missing_model(tmp_path, capsys):
    src = make_clip(tmp_path / "in.nut", n=4)
    code = main(["upscale", str(src), str(tmp_path / "up.mkv"), "--model", str(tmp_path / "no_such_model.pth"), "-q"])
    assert code == 2 and "no_such_model.pth" in capsys.readouterr().err
    assert not (tmp_path / "up.mkv").exists() and not partials(tmp_path)


def test_reader_reports_no_truncation_for_a_whole_clip(cut_clips):
    with VideoReader(cut_clips["mkv"][0]) as reader:
        assert len(list(reader)) == 12 and reader.truncation is None
    with VideoReader(cut_clips["mkv"][1]) as reader:
        frames = len(list(reader))
        assert reader.truncation is not None and reader.truncation.frames_read == frames


def test_size_change_is_unsupported_format(tmp_path):
    src = size_changing_clip(tmp_path / "sizes.ts", [(W, H), (W, H), (16, 12), (16, 12)])
    with pytest.raises(UnsupportedFormat, match="frame 2"):
        transcode(src, tmp_path / "up.mkv", upscale2)


# ------------------------------------------------- 6. one pixel and memory budget (issue #21)

def huge_ffv1(path: Path, size: str) -> Path:
    """One frame of one colour: FFV1 in Matroska compresses it about 1000:1 (17 KB for 8000x8000)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=size={size}", "-frames:v", "1",
                    "-c:v", "ffv1", str(path)], check=True, timeout=120)
    return path


def run_measured(cmd: list[str], *, stdin=None, env_extra: dict | None = None,
                 timeout: int = 120) -> tuple[subprocess.CompletedProcess, float, float]:
    """``cmd`` as a child: the run, its wall time (s) and its peak RSS (MB; 0 when not the
    largest child so far, whose maximum ru_maxrss reports)."""
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    run = subprocess.run(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                         env={**os.environ, **(env_extra or {})})
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return run, seconds, (peak if peak > before else 0) / 1024


def job_fits(width: int, height: int, scale: int, window: int = 1) -> bool:
    """Whether this machine has the memory a video job of this size needs (the test skips then:
    the refusal it proves is of a job larger than the memory)."""
    from vs_superres.media.budget import available_memory_bytes, video_job_bytes
    from vs_superres.media.pump import QUEUE_FRAMES

    available = available_memory_bytes()
    need = video_job_bytes(width, height, width * scale, height * scale, frames_in_flight=QUEUE_FRAMES, window=window)
    return available is None or need <= available


needs_ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="the ffmpeg CLI makes the huge-frame clips")


@needs_ffmpeg
def test_a_huge_video_frame_is_refused_by_the_cli_before_any_work(tmp_path):
    """A 17 KB FFV1 file of one 8000x8000 frame: x4 needs ~87 GB. ``superres upscale`` refuses
    it from the header and the model's scale, before the model loads: exit 2 in seconds, the
    message names the sizes, the estimate, the memory and the way out; no output."""
    if job_fits(8000, 8000, 4):
        pytest.skip("this machine has the memory an 8000x8000 x4 job needs")
    src = huge_ffv1(tmp_path / "huge.mkv", "8000x8000")
    assert src.stat().st_size < 64_000
    run, seconds, peak_mb = run_measured(
        [sys.executable, "-m", "vs_superres.cli", "upscale", str(src), str(tmp_path / "up.mkv"), "--tile", "128", "-q"])
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert "8000x8000 -> 32000x32000" in err and "needs about" in err
    assert "GB is available" in err and "--tile does not help" in err and "smaller input" in err
    assert "Traceback" not in err
    assert seconds < 60 and peak_mb < 1500, (seconds, peak_mb)
    assert not (tmp_path / "up.mkv").exists() and not partials(tmp_path)


@needs_ffmpeg
def test_a_huge_video_frame_on_a_pipe_is_refused_by_superres_filter(tmp_path):
    """The same bomb sent to ``superres-filter --tile 128`` (it used to reach ~20 GB RSS): the
    pump's budget refuses it before a frame is decoded for the engine: exit 2, bounded RSS."""
    if job_fits(8000, 8000, 2, window=3):
        pytest.skip("this machine has the memory an 8000x8000 x2 job needs")
    src = huge_ffv1(tmp_path / "huge.mkv", "8000x8000")
    with open(src, "rb") as stdin:
        run, seconds, peak_mb = run_measured(
            [sys.executable, "-m", "vs_superres.ffmpeg_filter.filter_cmd", "-m", "temporal-mean-x2",
             "--tile", "128", "-"], stdin=stdin)
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert "cannot upscale the input stream: 8000x8000 -> 16000x16000 with temporal-mean-x2" in err
    assert "GB is available" in err and "Traceback" not in err
    assert run.stdout == b""
    assert seconds < 60 and peak_mb < 1500, (seconds, peak_mb)


@needs_ffmpeg
def test_the_pixel_limit_applies_to_videos_and_pipes(tmp_path):
    """``$SUPERRES_MAX_PIXELS`` is the one limit of every input: a 4000x4000 video over a limit
    of one megapixel is refused from its header by the CLI, by superres-filter from a Matroska
    pipe, and by ``VideoReader`` (every host's reader) before its first frame is decoded."""
    from vs_superres.media.budget import MAX_PIXELS_ENV, OverBudget

    src = huge_ffv1(tmp_path / "big.mkv", "4000x4000")
    limit = {MAX_PIXELS_ENV: "1000000"}
    run, seconds, _ = run_measured(
        [sys.executable, "-m", "vs_superres.cli", "upscale", str(src), str(tmp_path / "up.mkv"),
         "--model", "temporal-mean-x2", "-q"], env_extra=limit)
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert f"cannot read '{src}': its frames are 4000x4000 pixels (16 megapixels), over the limit of 1" in err
    assert f"{MAX_PIXELS_ENV}=16000000" in err and not (tmp_path / "up.mkv").exists()
    with open(src, "rb") as stdin:
        run, seconds, _ = run_measured(
            [sys.executable, "-m", "vs_superres.ffmpeg_filter.filter_cmd", "-m", "temporal-mean-x2", "-"],
            stdin=stdin, env_extra=limit)
    err = run.stderr.decode()
    assert run.returncode == 2 and "4000x4000 pixels" in err and f"{MAX_PIXELS_ENV}=16000000" in err, err
    assert "cannot read the input stream: its frames are 4000x4000" in err and "not a readable" not in err
    os.environ[MAX_PIXELS_ENV] = "1000000"
    try:
        with pytest.raises(OverBudget, match="4000x4000 pixels"):
            VideoReader(src)
    finally:
        del os.environ[MAX_PIXELS_ENV]
    with VideoReader(src) as reader:  # under the default limit it reads
        assert (reader.width, reader.height) == (4000, 4000)


def test_transcode_refuses_an_output_larger_than_memory(tmp_path):
    """The Python API's ``transcode`` with ``output_size`` goes through the same budget: an
    output far beyond any machine's memory is refused before ``process`` runs."""
    from vs_superres.media.budget import OverBudget

    src = make_clip(tmp_path / "in.mkv", n=3)
    called = []

    def process(frames):
        called.append(1)
        yield from upscale2(frames)

    with pytest.raises(OverBudget, match=r"32x24 -> 1000000x1000000 needs about"):
        transcode(src, tmp_path / "up.mkv", process, output_size=(1_000_000, 1_000_000))
    assert not called and not (tmp_path / "up.mkv").exists() and not partials(tmp_path)


# ------------------------------------------ 7. an input rewritten while it is read (issue #21)

def test_an_input_rewritten_during_transcode_is_not_passed_off_as_output(tmp_path):
    """The input is rewritten in place (truncated and written again, as ``ffmpeg -y`` over it
    does) after the first frame: the frames read may mix both versions, so the pass ends with
    an error naming the change and no output is committed."""
    src = make_clip(tmp_path / "in.mkv", n=8)
    other = make_clip(tmp_path / "other.mkv", n=12, rate=24)

    def process(frames):
        for i, out in enumerate(upscale2(frames)):
            if i == 0:
                shutil.copyfile(other, src)  # same inode, new size and time
            yield out

    with pytest.raises(SuperResError, match="changed while it was being read"):
        transcode(src, tmp_path / "up.mkv", process)
    assert not (tmp_path / "up.mkv").exists() and not partials(tmp_path)
    # the same clip left alone upscales; a file replaced by a rename is not a rewrite
    assert transcode(src, tmp_path / "up.mkv", upscale2) == tmp_path / "up.mkv"


@needs_ffmpeg
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="tells when the input is open from /proc")
def test_an_input_rewritten_during_a_cli_run_exits_2_without_output(tmp_path):
    """``superres upscale`` on a file that another program rewrites while it runs: exit 2 with
    the reason, not exit 0 with frames of two versions."""
    import contextlib
    import threading
    import time

    src, out = tmp_path / "in.mkv", tmp_path / "up.mkv"
    for path, pattern in ((src, "testsrc2"), (tmp_path / "other.mkv", "smptebars")):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{pattern}=size=320x240:rate=25",
                        "-frames:v", "40", "-c:v", "ffv1", str(path)], check=True, timeout=120)
    proc = subprocess.Popen([sys.executable, "-m", "vs_superres.cli", "upscale", str(src), str(out),
                             "--model", "temporal-mean-x2", "-q"], stderr=subprocess.PIPE)
    rewritten = threading.Event()

    def reading() -> bool:
        """The child holds the input open (its reader, not a check that opens and closes it)."""
        with contextlib.suppress(OSError):
            return any(os.readlink(f"/proc/{proc.pid}/fd/{fd}") == str(src)
                       for fd in os.listdir(f"/proc/{proc.pid}/fd"))
        return False

    def rewrite() -> None:  # while the input is being read
        deadline, seen = time.monotonic() + 120, 0
        while proc.poll() is None and time.monotonic() < deadline:
            seen = seen + 1 if reading() else 0
            if seen == 3:
                shutil.copyfile(tmp_path / "other.mkv", src)
                rewritten.set()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=rewrite)
    thread.start()
    _, err = proc.communicate(timeout=300)
    thread.join()
    text = err.decode()
    assert rewritten.is_set(), text
    assert proc.returncode == 2, text
    assert f"'{src}' changed while it was being read" in text and "Traceback" not in text
    assert not out.exists()
