"""Faults of a distributed run through the real ``superres`` command (real Ray, real servers):
a local instance too big for this machine, an address where Ray is not (a web server, a closed
port, a service that accepts HTTP/2 and then says nothing), a malformed address, SIGTERM
mid-run, and Ray's own notices kept off stderr."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from vs_superres.contracts.errors import InvalidOption, SuperResError

pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="needs the ffmpeg command")

SUPERRES = [sys.executable, "-m", "vs_superres.cli"]


def make_video(path: Path, seconds: float, size: str = "32x24") -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def superres(*argv: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    run = subprocess.run([*SUPERRES, "upscale", *argv], capture_output=True, text=True, timeout=timeout)
    return run, time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def clip(tmp_path, tiny_ditn_path) -> tuple[Path, tuple[str, ...]]:
    return make_video(tmp_path / "in.mp4", 1), ("--model", str(tiny_ditn_path), "--device", "cpu")


def test_more_workers_than_this_machine_holds_are_refused_before_ray_starts(tmp_path, clip):
    from vs_superres.distributed.cluster import machine_cores

    src, model = clip
    cores = machine_cores()
    run, seconds = superres(str(src), str(tmp_path / "out.mp4"), *model, "--workers", str(cores + 48))
    assert run.returncode == 2, run.stderr
    err = run.stderr.strip().splitlines()[-1]
    assert f"--workers {cores + 48} of 1 thread(s) each asks a local Ray instance for {cores + 48} CPU cores" in err
    assert f"this machine has {cores} CPU cores and " in err and "GB of memory available" in err
    assert f"at most {cores} worker" in err and f"--workers {cores} or fewer" in err
    assert "--ray HEAD:6379" in err and "ray start --head" in err
    assert seconds < 30  # no Ray instance was started (that alone takes ~10 s here)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_threads_per_worker_count_against_the_cores(tmp_path, clip):
    from vs_superres.distributed.cluster import machine_cores

    src, model = clip
    cores = machine_cores()
    run, _ = superres(str(src), str(tmp_path / "out.mp4"), *model, "--workers", "1", "--worker-threads", str(cores + 1))
    assert run.returncode == 2, run.stderr
    assert "not one worker fits here" in run.stderr and f"this machine has {cores} CPU cores" in run.stderr


def test_local_sizing_counts_cores_and_memory():
    """The sizing arithmetic with a machine's numbers given (what the CLI test cannot vary)."""
    from vs_superres.distributed.cluster import RAY_PROCESSES_BYTES, LocalInstance

    local = LocalInstance(workers=4, threads=2, worker_bytes=10**9, store_bytes=10**8)
    local.check(cores=8, available=RAY_PROCESSES_BYTES + 10**8 + 4 * 10**9)
    with pytest.raises(InvalidOption, match=r"workers=4 of 2 thread\(s\) each .* 8 CPU cores .*at most 3 workers fit here"):
        local.check(cores=6, available=10**12)
    with pytest.raises(InvalidOption, match=r"this machine has 8 CPU cores and 2.5 GB of memory available; at most 2 workers"):
        local.check(cores=8, available=int(2.5e9))
    with pytest.raises(InvalidOption, match="not one worker fits here"):
        local.check(cores=8, available=5 * 10**8)


def test_the_estimate_counts_the_model_and_a_segment(tmp_path, tiny_ditn_path):
    from vs_superres.distributed.cluster import WORKER_PROCESS_BYTES
    from vs_superres.distributed.driver import local_instance
    from vs_superres.media.video import VideoReader
    from vs_superres.runtime.loading import resolve_model

    src = make_video(tmp_path / "in.mp4", 1, size="320x240")
    descriptor = resolve_model(str(tiny_ditn_path))[0]
    with VideoReader(src) as reader:
        small = local_instance(str(tiny_ditn_path), descriptor, {}, reader.info, 25, 2, 1, None)
        long = local_instance(str(tiny_ditn_path), descriptor, {}, reader.info, 10**6, 2, 1, None)
    assert small.worker_bytes > WORKER_PROCESS_BYTES + tiny_ditn_path.stat().st_size
    # a long clip: the segment is capped, so the estimate is too (256 MiB of float32 output
    # per segment, its codes and inputs on top)
    assert small.worker_bytes < long.worker_bytes < WORKER_PROCESS_BYTES + 10**9


def test_a_web_server_is_refused_in_seconds_naming_what_answered(tmp_path, clip):
    src, model = clip
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        run, seconds = superres(str(src), str(tmp_path / "out.mp4"), *model, "--ray", f"127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert run.returncode == 2, run.stderr
    err = run.stderr.strip().splitlines()[-1]
    assert err.startswith(f"superres: error: cannot join the Ray cluster at '127.0.0.1:{port}': a web server answered")
    assert "ray start --head" in err
    assert seconds < 30, seconds  # was: no exit after 400 s
    assert not (tmp_path / "out.mp4").exists()


def test_a_closed_port_is_refused_in_seconds(tmp_path, clip):
    src, model = clip
    port = free_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        run, seconds = superres(str(src), str(tmp_path / "out.mp4"), *model, "--ray", address)
        assert run.returncode == 2, run.stderr
        assert f"cannot join the Ray cluster at '{address}': Connection refused" in run.stderr
        assert seconds < 30


def test_a_silent_http2_service_is_refused_after_the_deadline():
    """A service that answers HTTP/2's preface (as gRPC does) and then nothing: the probe lets it
    through, ``ray.init`` gets the deadline instead of retrying for ever."""
    from vs_superres.distributed.cluster import connected

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            conn.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an empty SETTINGS frame

    threading.Thread(target=serve, daemon=True).start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    started = time.monotonic()
    try:
        with pytest.raises(SuperResError, match=rf"the Ray cluster at '{address}' did not answer within 8 s"):
            with connected(address, init_timeout=8):
                pass
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("address", ["nonsense", "http://example.org:80", "head:"])
def test_a_malformed_address_is_a_user_error(tmp_path, clip, address):
    src, model = clip
    run, _ = superres(str(src), str(tmp_path / "out.mp4"), *model, "--ray", address)
    assert run.returncode == 2, run.stderr  # was 3, "this is a bug"
    err = run.stderr.strip().splitlines()[-1]
    assert err.startswith(f"superres: error: --ray {address} is not a Ray address; give auto")
    assert "HOST:PORT" in err and "ray://HOST:PORT" in err


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return ""


def test_sigterm_mid_run_exits_143_with_one_line_and_no_output(tmp_path, tiny_ditn_path):
    """A real SIGTERM to a real ``superres upscale --workers 2``: exit 143 and the host kit's one
    line (was: exit 1 and Ray's crash dump), the workers and Ray's processes gone, no output and
    no partial file; and Ray's own notices (token authentication, usage statistics) never
    reached stderr."""
    src = make_video(tmp_path / "long.mp4", 60, size="64x48")
    proc = subprocess.Popen([*SUPERRES, "upscale", str(src), str(tmp_path / "out.mp4"), "--model", str(tiny_ditn_path),
                             "--device", "cpu", "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        rendering: list[psutil.Process] = []
        while time.monotonic() < deadline and proc.poll() is None and not rendering:
            time.sleep(0.5)
            rendering = [p for p in _descendants(proc.pid) if _cmdline(p).startswith("ray::SegmentWorker.render")]
        assert rendering, "the workers never started rendering"
        tree = [p.pid for p in _descendants(proc.pid)]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[-1] == "superres: interrupted by SIGTERM; no output file was written", err
    assert all(line.startswith("superres:") for line in lines), err  # no crash dump, no Ray notices
    assert "SIGTERM received" not in err and "Token authentication" not in err and "Usage stats" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]
    deadline = time.monotonic() + 30
    alive = tree
    while time.monotonic() < deadline and alive:
        alive = [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.5)
    assert not alive, [(_cmdline(psutil.Process(p)), p) for p in alive if psutil.pid_exists(p)]


def test_ray_notices_stay_off_stderr_and_the_local_instance_sends_no_usage_stats(tmp_path, clip):
    src, model = clip
    run, _ = superres(str(src), str(tmp_path / "out.mp4"), *model, "--workers", "2", timeout=300)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert all(line.startswith("superres:") or " -> " in line for line in lines), run.stderr


def test_usage_stats_are_off_for_the_local_instance_only(monkeypatch):
    from vs_superres.distributed.cluster import _quiet_ray

    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    with _quiet_ray(local=True):
        assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"  # what the instance's processes inherit
    assert "RAY_USAGE_STATS_ENABLED" not in os.environ
    with _quiet_ray(local=False):
        assert "RAY_USAGE_STATS_ENABLED" not in os.environ  # a cluster's own setting is its own
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")
    with _quiet_ray(local=True):
        assert os.environ["RAY_USAGE_STATS_ENABLED"] == "1"  # the user's choice stands
