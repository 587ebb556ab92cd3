"""core.superres under vspipe: y4m output, seeking with --start, parallel requests."""

from __future__ import annotations

import numpy as np
import pytest

VIDEO_MODEL = "temporal-mean-x2"


@pytest.fixture
def video_frames(tmp_path, photo):
    frames = photo(13, 24, 32)
    np.save(tmp_path / "frames.npy", frames)
    return frames


def test_y4m_end_to_end(tmp_path, video_frames, write_script, vspipe, run_cmd, read_y4m):
    script = write_script(f"""
        clip = clip_from_frames(np.load({str(tmp_path / 'frames.npy')!r}), cuts={{6}})
        up = core.superres.Upscale(clip, model={VIDEO_MODEL!r}, device="cpu")
        core.resize.Bicubic(up, format=vs.YUV444P8, matrix_s="709").set_output()
    """)
    out = tmp_path / "out.y4m"
    r = run_cmd([vspipe, "-c", "y4m", str(script), str(out)])
    assert r.returncode == 0, r.stderr.decode()
    fields, frames = read_y4m(out.read_bytes())
    assert (fields["W"], fields["H"]) == ("64", "48")
    assert len(frames) == 13 and all(len(f) == 3 * 64 * 48 for f in frames)
    # Through a pipe into FFmpeg as well, as users do.
    r = run_cmd(["bash", "-o", "pipefail", "-c",
                 f"{vspipe} -c y4m {script} - | ffmpeg -v error -f yuv4mpegpipe -i - -f rawvideo -"])
    assert r.returncode == 0, r.stderr.decode()
    assert len(r.stdout) == 13 * 3 * 64 * 48


def raw_frames(data: bytes, count: int, h: int, w: int) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32).reshape(count, 3, h, w)


def test_start_and_requests_equal_sequential(tmp_path, video_frames, write_script, vspipe, run_cmd):
    script = write_script(f"""
        clip = clip_from_frames(np.load({str(tmp_path / 'frames.npy')!r}), cuts={{9}})
        core.superres.Upscale(clip, model={VIDEO_MODEL!r}, device="cpu").set_output()
    """)
    runs = {}
    for name, args in {"sequential": ["-r", "1"], "start7": ["-r", "1", "--start", "7"], "parallel": ["-r", "4"]}.items():
        out = tmp_path / f"{name}.raw"
        r = run_cmd([vspipe, *args, str(script), str(out)], timeout=120)
        assert r.returncode == 0, (name, r.stderr.decode())
        assert not r.stdout  # nothing printed
        runs[name] = out.read_bytes()
    seq = raw_frames(runs["sequential"], 13, 48, 64)
    np.testing.assert_array_equal(raw_frames(runs["start7"], 6, 48, 64), seq[7:])
    np.testing.assert_array_equal(raw_frames(runs["parallel"], 13, 48, 64), seq)


def test_ditn_with_many_requests_does_not_deadlock(tmp_path, ditn_model, photo, write_script, vspipe, run_cmd, read_y4m):
    np.save(tmp_path / "frames.npy", photo(6, 24, 32))
    script = write_script(f"""
        core.num_threads = 4
        clip = clip_from_frames(np.load({str(tmp_path / 'frames.npy')!r}))
        up = core.superres.DITN(clip, model={ditn_model!r}, device="cpu")
        core.resize.Bicubic(up, format=vs.YUV420P8, matrix_s="709").set_output()
    """)
    out = tmp_path / "ditn.y4m"
    r = run_cmd([vspipe, "-r", "4", "-c", "y4m", str(script), str(out)], timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    fields, frames = read_y4m(out.read_bytes())
    assert (fields["W"], fields["H"], len(frames)) == ("128", "96", 6)


def test_script_errors_reach_vspipe(tmp_path, write_script, vspipe, run_cmd):
    script = write_script("""
        core.superres.DITN(core.std.BlankClip(format=vs.YUV420P8)).set_output()
    """)
    r = run_cmd([vspipe, "--info", str(script), "-"], timeout=120)
    assert r.returncode != 0
    assert "superres.DITN: only RGBS and RGBH clips are supported, got YUV420P8" in r.stderr.decode()


def test_a_stopped_vspipe_run_resumes_with_start(tmp_path, video_frames, write_script, vspipe, run_cmd):
    """How a long VapourSynth job resumes (README): keep the complete frames of the stopped
    run's raw output (its size divided by a frame's), then append ``vspipe --start N``. Frames
    never depend on request order, so the joined file is the uninterrupted one, byte for byte."""
    script = write_script(f"""
        clip = clip_from_frames(np.load({str(tmp_path / 'frames.npy')!r}), cuts={{5}})
        core.superres.Upscale(clip, model={VIDEO_MODEL!r}, device="cpu").set_output()
    """)
    whole = tmp_path / "whole.raw"
    assert run_cmd([vspipe, str(script), str(whole)], timeout=120).returncode == 0
    frame_bytes = 3 * 48 * 64 * 4
    stopped = tmp_path / "resumed.raw"
    assert run_cmd([vspipe, "--end", "6", str(script), str(stopped)], timeout=120).returncode == 0
    stopped.write_bytes(stopped.read_bytes() + b"\0" * 100)  # a frame cut short by the kill
    done = stopped.stat().st_size // frame_bytes
    with open(stopped, "r+b") as handle:
        handle.truncate(done * frame_bytes)
    rest = tmp_path / "rest.raw"
    assert run_cmd([vspipe, "--start", str(done), str(script), str(rest)], timeout=120).returncode == 0
    stopped.write_bytes(stopped.read_bytes() + rest.read_bytes())
    assert done == 7 and stopped.read_bytes() == whole.read_bytes()
