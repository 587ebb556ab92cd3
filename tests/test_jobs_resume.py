"""Long jobs are never lost: a killed `superres upscale` resumes, and its file equals an
uninterrupted run's byte for byte (real processes, real SIGKILL, real ffmpeg-made clips)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="the ffmpeg CLI makes the test clips (apt-get install ffmpeg)")

SEGMENT = ("--segment-seconds", "0.5")  # 12 frames at 24 fps: several segments in a short clip


def make_clip(path: Path, seconds: float = 4, size: str = "64x48", audio: bool = True, rate: int = 24) -> Path:
    args = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac"]
    subprocess.run([*args, str(path)], check=True)
    return path


def command(src: Path, dst: Path, model: tuple[str, ...], *extra: str) -> list[str]:
    return [sys.executable, "-m", "vs_superres.cli", "upscale", str(src), str(dst), "-q", "-y", *model, *SEGMENT, *extra]


def run(src: Path, dst: Path, model: tuple[str, ...], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(src, dst, model, *extra), capture_output=True, text=True, timeout=600)


def work(dst: Path) -> Path:
    return dst.parent / f".{dst.name}.superres-job"


def segments_done(dst: Path) -> int:
    try:
        return len(json.loads((work(dst) / "journal.json").read_text())["segments"])
    except (OSError, ValueError, KeyError):
        return 0


def kill_after(src: Path, dst: Path, model: tuple[str, ...], segments: int, delay: float) -> None:
    """Start the job, SIGKILL it ``delay`` seconds after ``segments`` segments were recorded."""
    proc = subprocess.Popen(command(src, dst, model), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while proc.poll() is None and segments_done(dst) < segments and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


@pytest.fixture
def ditn(tiny_ditn_path) -> tuple[str, ...]:
    return ("--model", str(tiny_ditn_path), "--device", "cpu")


TEMPORAL = ("--model", "temporal-mean-x2", "--device", "cpu")


@pytest.mark.parametrize("which", ["ditn", "temporal-mean"])
def test_killed_at_random_points_then_resumed_equals_uninterrupted(which, ditn, tmp_path):
    model = ditn if which == "ditn" else TEMPORAL
    src = make_clip(tmp_path / "in.mp4")
    ref = tmp_path / "ref.mkv"
    done = run(src, ref, model)
    assert done.returncode == 0, done.stderr
    assert not work(ref).exists()
    # a notice about the input is said once, not once per segment's writer
    assert done.stderr.count("source has no colour matrix tag; assumed and tagged") == 1, done.stderr
    out = tmp_path / "out.mkv"
    rng = random.Random(7)
    for segments in (1, 3, 5):  # three kills, each further on, each at a random moment
        kill_after(src, out, model, segments, rng.uniform(0.0, 0.3))
    final = run(src, out, model)
    assert final.returncode == 0, final.stderr
    if segments_done(out) or work(out).exists():
        pytest.fail("the work folder outlived a successful run")
    assert out.read_bytes() == ref.read_bytes()


def test_tiny_ultravsr_resumes_with_windows_across_segments(ultravsr_release, tmp_path):
    base, ckpt = ultravsr_release
    model = ("--model", "ultravsr", "--base", str(base), "--checkpoint", str(ckpt), "--window", "6",
             "--window-overlap", "2", "--device", "cpu", "--strength", "0.5", "-O", "decoder_tile=64")
    src = make_clip(tmp_path / "in.mp4", seconds=1, size="32x24", audio=False)  # 2 segments of 12 frames
    ref = tmp_path / "ref.mkv"
    done = run(src, ref, model)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out.mkv"
    kill_after(src, out, model, 1, 0.1)
    assert segments_done(out) >= 1
    final = run(src, out, model)
    assert final.returncode == 0, final.stderr
    assert "resuming 'out.mkv'" in final.stderr
    assert out.read_bytes() == ref.read_bytes()


def make_cut_clip(path: Path, cut: int, frames: int, size: str = "32x24") -> Path:
    """A clip that jumps to another picture at frame ``cut`` (24 fps)."""
    video = (f"testsrc2=size={size}:rate=24:duration={cut / 24}[a];"
             f"smptebars=size={size}:rate=24:duration={(frames - cut) / 24}[b];[a][b]concat=n=2:v=1")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", video, "-frames:v", str(frames), "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def test_a_scene_cut_near_a_segment_boundary_resumes_exactly(ultravsr_release, tmp_path):
    """A scene cut one frame before the end of a journal segment (windows of 6 never cross
    it): the tiny UltraVSR's job killed and resumed equals the uninterrupted one; the cut
    reaches the engine (the window model's frames next to it change); another cut list is
    another job."""
    src = make_cut_clip(tmp_path / "in.mp4", cut=11, frames=36)  # 3 journal segments of 12
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("# from a scene detector\n11\n")
    cut, uncut = tmp_path / "cut.mkv", tmp_path / "uncut.mkv"
    for out, extra in ((cut, ("--scene-cuts", f"@{cuts}")), (uncut, ())):
        done = run(src, out, (*TEMPORAL, "-c:v", "ffv1", *extra))
        assert done.returncode == 0, done.stderr
    changed = [a != b for a, b in zip(framemd5(cut), framemd5(uncut))]
    assert changed[:6] == [False] * 6 and changed[9:14] == [True] * 5 and changed[16:] == [False] * 20
    base, ckpt = ultravsr_release
    model = ("--model", "ultravsr", "--base", str(base), "--checkpoint", str(ckpt), "--window", "6",
             "--window-overlap", "2", "--device", "cpu", "--strength", "0.5", "-O", "decoder_tile=64")
    ref, out = tmp_path / "ref.mkv", tmp_path / "out.mkv"
    assert run(src, ref, (*model, "--scene-cuts", "11")).returncode == 0
    kill_after(src, out, (*model, "--scene-cuts", "11"), 1, 0.1)
    assert segments_done(out) >= 1
    other = run(src, out, (*model, "--scene-cuts", "12"))
    assert "afresh: options changed: scene_cuts" in other.stderr, other.stderr
    kill_after(src, out, (*model, "--scene-cuts", "11"), 1, 0.1)
    final = run(src, out, (*model, "--scene-cuts", "11"))
    assert final.returncode == 0, final.stderr
    assert "resuming 'out.mkv'" in final.stderr
    assert out.read_bytes() == ref.read_bytes()


def framemd5(path: Path) -> list[str]:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if not line.startswith("#")]


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".webm"])
def test_every_journaled_container_resumes_exactly(suffix, ditn, tmp_path):
    src = make_clip(tmp_path / "in.mp4", seconds=2, audio=suffix != ".webm")
    ref, out = tmp_path / f"ref{suffix}", tmp_path / f"out{suffix}"
    assert run(src, ref, ditn).returncode == 0
    kill_after(src, out, ditn, 2, 0.0)
    final = run(src, out, ditn)
    assert final.returncode == 0, final.stderr
    assert out.read_bytes() == ref.read_bytes()
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v", "-show_entries",
                            "stream=nb_read_frames", "-of", "csv=p=0", str(out)], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "48"


def test_sigterm_keeps_the_journal_and_the_next_run_resumes(ditn, tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    out = tmp_path / "out.mkv"
    proc = subprocess.Popen(command(src, out, ditn), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and segments_done(out) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "the next run of the same command resumes" in err
    assert not out.exists() and segments_done(out) >= 2
    final = run(src, out, ditn)
    assert final.returncode == 0 and "resuming 'out.mkv'" in final.stderr, final.stderr


def test_what_makes_a_job_start_afresh(ditn, tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    out = tmp_path / "out.mkv"
    kill_after(src, out, ditn, 2, 0.0)
    # another option: the old segments are set aside, saying which option changed
    changed = run(src, out, ditn, "--batch", "2")
    assert changed.returncode == 0, changed.stderr
    assert "starting 'out.mkv' afresh: options changed: batch" in changed.stderr
    # the input changed in between
    kill_after(src, out, ditn, 2, 0.0)
    make_clip(src, seconds=4, size="64x48", audio=False)
    fresh = run(src, out, ditn)
    assert "afresh: the input file changed" in fresh.stderr, fresh.stderr
    # --no-resume
    kill_after(src, out, ditn, 2, 0.0)
    forced = run(src, out, ditn, "--no-resume")
    assert "afresh: --no-resume was given" in forced.stderr, forced.stderr


def test_a_damaged_segment_is_computed_again(ditn, tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    ref, out = tmp_path / "ref.mkv", tmp_path / "out.mkv"
    assert run(src, ref, ditn).returncode == 0
    kill_after(src, out, ditn, 3, 0.0)
    segment = work(out) / "seg-00001.mkv"
    segment.write_bytes(segment.read_bytes()[: segment.stat().st_size // 2])  # truncated
    final = run(src, out, ditn)
    assert final.returncode == 0, final.stderr
    assert "segment 1 of 'out.mkv' is damaged or missing; it is computed again" in final.stderr
    assert out.read_bytes() == ref.read_bytes()


def test_a_corrupt_journal_starts_afresh(ditn, tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    ref, out = tmp_path / "ref.mkv", tmp_path / "out.mkv"
    assert run(src, ref, ditn).returncode == 0
    kill_after(src, out, ditn, 2, 0.0)
    (work(out) / "journal.json").write_text("{not json")
    final = run(src, out, ditn)
    assert final.returncode == 0 and "afresh: its journal is missing or unreadable" in final.stderr, final.stderr
    assert out.read_bytes() == ref.read_bytes()


def test_a_second_process_on_the_same_output_is_refused(ditn, tmp_path):
    src = make_clip(tmp_path / "in.mp4", seconds=8)
    out = tmp_path / "out.mkv"
    first = subprocess.Popen(command(src, out, ditn), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while first.poll() is None and segments_done(out) < 1:
        time.sleep(0.02)
    first.send_signal(signal.SIGSTOP)  # holds its lock, mid-job, however fast the machine
    second = run(src, out, ditn)
    assert second.returncode == 2, second.stderr
    assert "another superres process is writing" in second.stderr
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)


def test_a_full_disk_keeps_the_done_segments(ditn, tmp_path):
    """A small tmpfs fills up mid-job; once space is freed the rerun resumes and ends with the
    uninterrupted file. (A journaled job needs room for the segments and the joined output:
    twice the output's size at the end.)"""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    src = make_clip(tmp_path / "in.mp4", seconds=4, size="96x64")
    ref = tmp_path / "ref.mkv"
    assert run(src, ref, ditn).returncode == 0
    size = ref.stat().st_size
    disk = tmp_path / "disk"
    disk.mkdir()
    room = 4 * size + (1 << 20)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={room}", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("this machine cannot mount a tmpfs")
    try:
        ballast = disk / "ballast"
        ballast.write_bytes(b"\0" * (room - size // 2 - (1 << 16)))  # room for about half the segments
        out = disk / "out.mkv"
        full = run(src, out, ditn)
        assert full.returncode == 2 and "the disk is full" in full.stderr, full.stderr
        assert f"cannot write '{out}'" in full.stderr
        kept = segments_done(out)
        assert kept >= 1
        ballast.unlink()
        final = run(src, out, ditn)
        assert final.returncode == 0, final.stderr
        assert "resuming 'out.mkv'" in final.stderr
        assert out.read_bytes() == ref.read_bytes()
    finally:
        subprocess.run(["umount", str(disk)])


def test_jobs_list_and_clean(ditn, tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    out = tmp_path / "out.mkv"
    kill_after(src, out, ditn, 2, 0.0)
    listed = subprocess.run([sys.executable, "-m", "vs_superres.cli", "jobs", "list", str(tmp_path)],
                            capture_output=True, text=True)
    assert listed.returncode == 0 and listed.stdout.startswith("out.mkv: "), listed.stdout
    assert "segments" in listed.stdout and str(src.resolve()) in listed.stdout
    cleaned = subprocess.run([sys.executable, "-m", "vs_superres.cli", "jobs", "clean", str(tmp_path)],
                             capture_output=True, text=True)
    assert cleaned.returncode == 0 and "1 journal folder(s) removed" in cleaned.stdout
    assert not work(out).exists()


def partials(folder: Path, name: str) -> list[Path]:
    return list(folder.glob(f".{Path(name).stem}.partial-*"))


def test_killed_during_the_final_join_resumes_with_every_segment_kept(ditn, tmp_path):
    """SIGKILL while the segments are being joined into the output (its temporary file is
    there): the rerun keeps every segment, joins again and removes the dead run's partial."""
    src = make_clip(tmp_path / "in.mp4", seconds=4, size="128x96")
    ref, out = tmp_path / "ref.mkv", tmp_path / "out.mkv"
    assert run(src, ref, ditn).returncode == 0
    for _ in range(5):  # the join takes milliseconds: a kill that lands after it is tried again
        out.unlink(missing_ok=True)
        proc = subprocess.Popen(command(src, out, ditn), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while proc.poll() is None and not partials(tmp_path, out.name) and time.monotonic() < deadline:
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        if not out.exists() and partials(tmp_path, out.name):
            break
    else:
        pytest.skip("five kills all landed after the join ended (machine too fast for this poll)")
    total = segments_done(out)
    assert total == 8, sorted(p.name for p in tmp_path.iterdir())  # 96 frames, segments of 12: all of them done when the join started
    final = run(src, out, ditn)
    assert final.returncode == 0, final.stderr
    assert f"resuming 'out.mkv': {total} of {total} segments done" in final.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert partials(tmp_path, out.name) == [] and not work(out).exists()


def test_killed_between_a_segment_commit_and_its_journal_record(ditn, tmp_path):
    """What a kill between a segment file's rename and the journal's record leaves (the file,
    unrecorded), and a kill while a segment was being written (its partial file): the segment
    is computed again, the partial removed, and the output is the uninterrupted one."""
    src = make_clip(tmp_path / "in.mp4")
    ref, out = tmp_path / "ref.mkv", tmp_path / "out.mkv"
    assert run(src, ref, ditn).returncode == 0
    kill_after(src, out, ditn, 3, 0.0)
    journal = json.loads((work(out) / "journal.json").read_text())
    last = max(journal["segments"], key=int)
    del journal["segments"][last]  # the file stays, unrecorded
    (work(out) / "journal.json").write_text(json.dumps(journal))
    partial = work(out) / f".seg-{int(last) + 1:05d}.partial-000000-1-deadbeef.mkv"
    partial.write_bytes(b"\x1aE\xdf\xa3 half a segment")
    final = run(src, out, ditn)
    assert final.returncode == 0, final.stderr
    assert f"resuming 'out.mkv': {len(journal['segments'])} of 8 segments done" in final.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert not work(out).exists()


@pytest.mark.parametrize("which", ["ditn", "ultravsr"])
def test_a_job_killed_on_ray_resumes_with_another_worker_count(which, ditn, request, tmp_path):
    """A `--workers 2` job killed by SIGKILL, resumed with `--workers 1`: the file equals an
    uninterrupted single-process run's with the same torch threads per process (the journal is
    shared by both: the same segments, whoever computed them)."""
    pytest.importorskip("ray")
    if which == "ditn":
        model, seconds, size = ditn, 4.0, "64x48"
    else:
        base, ckpt = request.getfixturevalue("ultravsr_release")
        model = ("--model", "ultravsr", "--base", str(base), "--checkpoint", str(ckpt), "--window", "6",
                 "--window-overlap", "2", "--device", "cpu", "--strength", "0.5", "-O", "decoder_tile=64",
                 "--scene-cuts", "11")  # one frame before a journal segment's end
        seconds, size = 1.5, "32x24"
    src = make_clip(tmp_path / "in.mp4", seconds=seconds, size=size, audio=True)
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "ref.mkv"
    done = subprocess.run(command(src, ref, model), capture_output=True, text=True, timeout=600, env=one_thread)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out.mkv"
    ray_args = ("--worker-threads", "1", "--segment-frames", "6")
    proc = subprocess.Popen(command(src, out, model, "--workers", "2", *ray_args), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while proc.poll() is None and segments_done(out) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    kept = segments_done(out)
    assert kept >= 1
    final = subprocess.run(command(src, out, model, "--workers", "1", *ray_args), capture_output=True, text=True,
                           timeout=600)
    assert final.returncode == 0, final.stderr
    assert "resuming 'out.mkv'" in final.stderr and "afresh" not in final.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert not work(out).exists()


def make_rich_clip(path: Path) -> Path:
    """10-bit video at a variable frame rate (3 of every 10 frames dropped, the others keep
    their times), two audio streams and a subtitle track."""
    srt = path.with_suffix(".srt")
    srt.write_text("1\n00:00:00,200 --> 00:00:01,000\nfirst\n\n2\n00:00:02,000 --> 00:00:02,600\nsecond\n")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24:duration=3",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
                    "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=44100:duration=3", "-i", str(srt),
                    "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s",
                    "-vf", "select='lt(mod(n\\,10)\\,7)'", "-fps_mode", "vfr",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-c:a:0", "aac", "-c:a:1", "flac", "-c:s", "ass",
                    "-metadata:s:a:1", "language=fra", str(path)], check=True)
    return path


def probe_streams(path: Path) -> list[str]:
    return subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,pix_fmt:stream_tags=language",
                           "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout.split()


def frame_times(path: Path) -> list[float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=pts_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    return [round(float(t.strip(",")), 3) for t in out.split()]


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_ten_bit_vfr_two_audio_streams_and_subtitles_join_exactly(suffix, ditn, tmp_path):
    """Through a kill and a resume: the 10-bit video, both audio streams (one tagged French)
    and the subtitles (MP4 cannot store ASS: said and left out, as in one pass), and each
    frame's time of the variable rate; in MP4 a segment that starts after a gap of the
    variable rate has decoding times reaching back into the previous one's (the join moves
    them on)."""
    src = make_rich_clip(tmp_path / "in.mkv")
    ref, out = tmp_path / f"ref{suffix}", tmp_path / f"out{suffix}"
    done = run(src, ref, ditn)
    assert done.returncode == 0, done.stderr
    kill_after(src, out, ditn, 2, 0.05)
    final = run(src, out, ditn)
    assert final.returncode == 0, final.stderr
    assert f"resuming 'out{suffix}'" in final.stderr
    assert out.read_bytes() == ref.read_bytes()
    if suffix == ".mkv":
        assert probe_streams(out) == ["h264,video,yuv420p10le", "aac,audio", "flac,audio,fra", "ass,subtitle"]
    else:
        assert probe_streams(out) == ["h264,video,yuv420p10le,und", "aac,audio,und", "flac,audio,fra"]
        assert "stream #3 (subtitle, ass) is not copied: a '.mp4' file cannot store ass subtitle" in done.stderr
    times = frame_times(src)
    assert len(times) == 51 and frame_times(out) == times  # the gaps of the variable rate are kept
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-map", "0:v", "-f", "framemd5", "-"],
                             capture_output=True, text=True, check=True)
    assert len([line for line in decoded.stdout.splitlines() if not line.startswith("#")]) == 51


@pytest.mark.parametrize("suffix", [".avi", ".ts", ".nut"])
def test_containers_that_cannot_be_joined_run_in_one_pass_and_say_so(suffix, ditn, tmp_path):
    """AVI, MPEG-TS and NUT are not joined by stream copy into a file equal to an uninterrupted
    one (NUT leaves decoding times unset): said before the job, which runs without a journal."""
    src = make_clip(tmp_path / "in.mp4", seconds=1)
    out = tmp_path / f"out{suffix}"
    done = run(src, out, ditn)
    assert done.returncode == 0, done.stderr
    assert f"'out{suffix}' is written in one pass: an interrupted run starts over" in done.stderr
    assert ".mkv, .mp4, .mov, .webm" in done.stderr
    assert out.stat().st_size > 0 and not work(out).exists()


def test_an_input_rewritten_after_its_frames_were_read_fails_the_join(tiny_ditn_path, tmp_path):
    """The join demuxes the source's audio once more after every frame was read: a source
    rewritten in between is said (exit 2's message), and no output is left, instead of audio
    from the new file beside frames of the old."""
    from vs_superres.contracts.errors import SuperResError
    from vs_superres.jobs import upscale_journaled
    from vs_superres.runtime.loading import resolve_model
    from vs_superres.runtime.upscaler import Upscaler

    src = make_clip(tmp_path / "in.mp4", seconds=1)
    other = make_clip(tmp_path / "other.mp4", seconds=2)
    out = tmp_path / "out.mkv"
    resolved = resolve_model(str(tiny_ditn_path))
    total = 24

    def progress(report) -> None:
        if report.done == total:  # the last frame is written: every frame was read
            shutil.copyfile(other, src)

    with pytest.raises(SuperResError, match=r"in\.mp4' changed while it was being read"):
        upscale_journaled(src, out, model=lambda: resolved, options={"device": "cpu"}, weights=lambda d: [],
                          device_kind="cpu", make_engine=lambda cancel: Upscaler(resolved, device="cpu", cancel=cancel),
                          segment_seconds=0.5, progress=progress)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
