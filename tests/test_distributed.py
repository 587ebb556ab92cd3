"""Distributed runs on a local Ray instance with two workers: the output is the single-process
CLI's, bit for bit (video and audio packets, subtitles, colour tags, bit depth), for an image
model, the diagnostic video model and the tiny UltraVSR release; also after a worker process
was killed mid-run; and the errors of a run that cannot succeed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from vs_superres.cli import main
from vs_superres.contracts.errors import SuperResError, WeightsError

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="needs the ffmpeg command")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def make_video(path: Path, frames: int, *, pix_fmt: str = "yuv420p", codec: str = "libx264", cut_at: int | None = None,
               subtitles: bool = False) -> Path:
    """A tiny test card (24x16, 12 fps) with a FLAC audio track; ``cut_at`` jumps to another
    picture at that frame (a scene cut); ``subtitles`` adds an SRT track."""
    seconds = frames / 12
    video = f"testsrc2=size=24x16:rate=12:duration={seconds}"
    if cut_at is not None:
        video = (f"testsrc2=size=24x16:rate=12:duration={cut_at / 12}[a];"
                 f"smptebars=size=24x16:rate=12:duration={(frames - cut_at) / 12}[b];[a][b]concat=n=2:v=1")
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    maps = ["-map", "0:v", "-map", "1:a"]
    if subtitles:
        srt = path.with_suffix(".srt")
        srt.write_text("1\n00:00:00,000 --> 00:00:00,500\nhello\n")
        cmd += ["-i", str(srt)]
        maps += ["-map", "2:s"]
    subprocess.run(cmd + maps + ["-c:v", codec, "-pix_fmt", pix_fmt, "-c:a", "flac", "-frames:v", str(frames), str(path)], check=True)
    return path


def streams(path: Path) -> list[str]:
    """md5 of every stream's packets, with its codec, pixel format and colour tags."""
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                            "stream=index,codec_name,pix_fmt,color_space,color_range,color_primaries,color_transfer,width,height,nb_read_frames",
                            "-count_frames", "-of", "compact", str(path)], capture_output=True, text=True, check=True).stdout
    out = probe.split("\n")
    for i in range(len([line for line in out if line.startswith("stream")])):
        md5 = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", f"0:{i}", "-c", "copy", "-f", "md5", "-"],
                             capture_output=True, text=True, check=True).stdout
        out.append(f"{i}: {md5.strip()}")
    return out


def distributed_cli(src: Path, dst: Path, *argv: str) -> int | None:
    """``superres upscale SRC DST ...`` with the distributed flags, through the real CLI."""
    assert "--workers" in argv or "--ray" in argv
    return main(["upscale", str(src), str(dst), *argv])


def single_process(src: Path, dst: Path, *argv: str) -> list[str]:
    """The CLI in this process, on one torch thread like each worker: on a CPU the thread count
    changes the order of float sums, so identical output needs the same count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["upscale", str(src), str(dst), "-q", "-y", *argv]) == 0
    finally:
        torch.set_num_threads(before)
    return streams(dst)


def test_image_model_on_two_workers_is_the_cli_output(tmp_path, tiny_ditn_path):
    src = make_video(tmp_path / "in.mkv", 12, pix_fmt="yuv420p10le", subtitles=True)
    model = ("--model", str(tiny_ditn_path), "--device", "cpu")
    want = single_process(src, tmp_path / "ref.mkv", *model)
    assert distributed_cli(src, tmp_path / "out.mkv", *model, "--workers", "2", "-q", "--segment-frames", "5") == 0
    got = streams(tmp_path / "out.mkv")
    assert got == want
    assert "pix_fmt=yuv420p10le" in got[0] and any("codec_name=ass" in line for line in got)
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


@pytest.mark.parametrize("frames,segment", [(20, 3), (20, None), (4, None)], ids=["small-segments", "chosen", "shorter-than-a-window"])
def test_video_model_on_two_workers_is_the_cli_output(tmp_path, frames, segment):
    from vs_superres.distributed import upscale_video

    src = make_video(tmp_path / "in.mkv", frames)
    want = single_process(src, tmp_path / "ref.mkv", "--model", "temporal-mean-x2", "--device", "cpu")
    summary = upscale_video(src, tmp_path / "out.mkv", model="temporal-mean-x2", workers=2, segment_frames=segment, device="cpu")
    assert streams(tmp_path / "out.mkv") == want
    assert summary.frames == frames and sum(w.frames for w in summary.workers) == frames
    assert len(summary.lines()) == 3 and "frames/s" in summary.lines()[1]
    # input travelled as the decoder's 8-bit yuv420p planes (1.5 bytes a pixel), not float32
    assert summary.sent_as_integers and summary.sent_frames >= frames
    assert summary.sent_bytes == summary.sent_frames * 24 * 16 * 3 // 2


def test_scene_cut_is_respected_as_in_one_process(tmp_path):
    """The CLI has no scene-cut input: the reference is the engine's stream with the same flags."""
    import torch

    from vs_superres.distributed import upscale_video
    from vs_superres.media import transcode
    from vs_superres.runtime.upscaler import Upscaler

    src = make_video(tmp_path / "in.mkv", 16, cut_at=7)
    cuts = [i == 7 for i in range(16)]
    up = Upscaler("temporal-mean-x2", device="cpu")
    transcode(src, tmp_path / "ref.mkv",
              lambda frames: (o.numpy() for o in up.stream((torch.from_numpy(f) for f in frames), scene_starts=cuts, total=16)),
              output_size=lambda info: (info.width * 2, info.height * 2))
    upscale_video(src, tmp_path / "out.mkv", model="temporal-mean-x2", workers=2, segment_frames=3, device="cpu", scene_starts=cuts)
    upscale_video(src, tmp_path / "nocut.mkv", model="temporal-mean-x2", workers=2, segment_frames=3, device="cpu")
    assert streams(tmp_path / "out.mkv") == streams(tmp_path / "ref.mkv")
    assert streams(tmp_path / "nocut.mkv") != streams(tmp_path / "out.mkv")  # the cut changed frames


def test_workers_decoding_their_own_segments_give_the_same_output(tmp_path):
    from vs_superres.distributed import upscale_video

    src = make_video(tmp_path / "in.mkv", 14)
    want = single_process(src, tmp_path / "ref.mkv", "--model", "temporal-mean-x2", "--device", "cpu")
    upscale_video(src, tmp_path / "out.mkv", model="temporal-mean-x2", workers=2, segment_frames=3, device="cpu", transport="path")
    assert streams(tmp_path / "out.mkv") == want


@pytest.fixture(scope="module")
def tiny_ultravsr(tmp_path_factory):
    from vs_superres.models.ultravsr.tiny import write_tiny_clip, write_tiny_release

    folder = tmp_path_factory.mktemp("ultravsr")
    base, ckpt = write_tiny_release(folder)
    return base, ckpt, write_tiny_clip(folder / "clip.safetensors")


def test_tiny_ultravsr_with_clip_state_is_the_cli_output(tmp_path, tiny_ultravsr):
    """The clip state (CLIP-IQA's d, the prompt) is computed once and handed to both workers."""
    base, ckpt, clip = tiny_ultravsr
    src = make_video(tmp_path / "in.mkv", 8, pix_fmt="yuv444p", codec="ffv1")
    model = ("--model", "ultravsr", "--base", str(base), "--checkpoint", str(ckpt), "--clip-iqa", str(clip),
             "--window", "6", "--window-overlap", "2", "--device", "cpu", "-O", "decoder_tile=64", "--prompt", "a test card")
    want = single_process(src, tmp_path / "ref.mkv", *model)
    assert distributed_cli(src, tmp_path / "out.mkv", *model, "--workers", "2", "--segment-frames", "4", "-q") == 0
    assert streams(tmp_path / "out.mkv") == want


def _worker_processes(stale: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """This Ray instance's worker processes: descendants of this process (the instance ray.init
    started here), never another test's run on another xdist worker (killing those let a run
    meant to fail complete: CI's "DID NOT RAISE"), nor those in ``stale`` (a previous test's,
    still exiting)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = proc.cmdline()
        except psutil.Error:  # gone meanwhile
            continue
        if cmd and "SegmentWorker" in cmd[0] and proc.pid not in stale:  # ray::SegmentWorker, ray::SegmentWorker.render
            found.append(proc)
    return found


def _kill_workers_at_first_frame(how_many: int):
    state = {"killed": []}
    stale = frozenset(p.pid for p in _worker_processes())  # Ray's pooled processes become workers, so no start time tells

    def progress(report) -> None:
        if not state["killed"]:  # at the first frame written where the workers' processes are found
            procs = _worker_processes(stale)[:how_many]
            for proc in procs:
                os.kill(proc.pid, signal.SIGKILL)
            state["killed"] = [p.pid for p in procs]

    return progress, state


def test_a_worker_killed_mid_run_is_restarted_and_the_output_is_identical(tmp_path):
    from vs_superres.distributed import upscale_video

    src = make_video(tmp_path / "in.mkv", 20)
    want = single_process(src, tmp_path / "ref.mkv", "--model", "temporal-mean-x2", "--device", "cpu")
    progress, state = _kill_workers_at_first_frame(1)
    upscale_video(src, tmp_path / "out.mkv", model="temporal-mean-x2", workers=2, segment_frames=3, device="cpu", progress=progress)
    assert len(state["killed"]) == 1 and state["killed"][0] > 0
    assert streams(tmp_path / "out.mkv") == want


def test_repeated_failures_name_the_segment_and_leave_no_output(tmp_path):
    from vs_superres.distributed import upscale_video
    from vs_superres.distributed.driver import SegmentFailed

    # Long enough that segments are still to be sent when the first frame is written (the
    # driver keeps at most 2 x workers segments out; progress comes from the run path's
    # encoding thread, a few frames behind the driver)
    src = make_video(tmp_path / "in.mkv", 60)
    progress, state = _kill_workers_at_first_frame(2)
    with pytest.raises(SegmentFailed, match=r"segment \d+ \(frames \d+-\d+\) failed 1 times: its worker or node died"):
        upscale_video(src, tmp_path / "out.mkv", model="temporal-mean-x2", workers=2, segment_frames=3, device="cpu",
                      progress=progress, retries=0)
        assert state["killed"], "no worker process was found to kill"  # reached only when nothing failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


def test_a_worker_that_cannot_find_the_weights_names_its_node_and_the_file(tmp_path):
    from vs_superres.distributed import upscale_video

    src = make_video(tmp_path / "in.mkv", 4)
    missing = tmp_path / "elsewhere" / "DITN_Real_x4.pth"
    with pytest.raises(WeightsError, match=rf"the worker on node \S+ \([0-9.]+\) cannot load ditn-real-x4: weights path '{missing}' does not exist"):
        upscale_video(src, tmp_path / "out.mkv", model="ditn-real-x4", workers=2, device="cpu", weights=str(missing))
    assert not (tmp_path / "out.mkv").exists()


def test_more_workers_than_the_cluster_holds_is_refused(tmp_path):
    from vs_superres.distributed import upscale_video

    src = make_video(tmp_path / "in.mkv", 4)
    with pytest.raises(SuperResError, match="workers=3 asks for 3 workers, but the Ray cluster has room for 2"):
        upscale_video(src, tmp_path / "out.mkv", model="temporal-mean-x2", workers=3, device="cpu")


def test_ctrl_c_stops_the_workers_and_writes_no_output(tmp_path, tiny_ditn_path):
    """A run of its own (a local instance started by the run): SIGINT mid-run leaves neither the
    output nor a partial file, and no worker process."""
    src = tmp_path / "long.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=30",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)], check=True)
    code = ("import sys\n"
            "from vs_superres.distributed import upscale_video\n"
            f"upscale_video({str(src)!r}, {str(tmp_path / 'out.mp4')!r}, model={str(tiny_ditn_path)!r}, workers=2, device='cpu',"
            " segment_frames=10, progress=lambda p: print('frame', p.done, flush=True))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            # as a terminal's Ctrl-C, whatever pytest inherited (see test_cli)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first frame was written: the workers are busy
        assert line.startswith("frame"), proc.stderr.read() if proc.stderr else ""
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                              for p in children):
        time.sleep(0.5)
    assert not [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
