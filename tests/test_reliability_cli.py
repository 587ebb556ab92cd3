"""Faults a user meets on the command line (issue 9), tried on real processes, real files and
real file systems: an unwritable folder, a read-only file system, a full disk, a file size
limit, termination signals, SIGKILL, an existing output, image formats the CLI once called
videos, and `models verify` on a partial install.

Each case asserts the exit status, the message, and what is on disk afterwards: the output
present, absent or unchanged, and no `.partial*` file left.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vs_superres.contracts.errors import SuperResError
from vs_superres.media import AtomicFile
from vs_superres.media.atomic import check_writable, remove_stale_partials

needs_ffmpeg = pytest.mark.skipif(
    not shutil.which("ffmpeg"),
    reason="the ffmpeg CLI makes the test videos (apt-get install ffmpeg; scripts/setup_env.sh does it)",
)
PREVIOUS = b"previous result, must survive a failed run"
FAST = ("--model", "temporal-mean-x2", "--device", "cpu", "-q")


def superres(*args, env=None, preexec_fn=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "vs_superres.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, preexec_fn=preexec_fn)


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def make_video(path: Path, seconds: float = 1, size: str = "64x48", rate: int = 12, noise: bool = True) -> Path:
    # Noise: the encoded output cannot be compressed below the small file systems' sizes.
    graph = f"testsrc2=size={size}:rate={rate}:duration={seconds}" + (",noise=alls=100:allf=t" if noise else "")
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", graph, "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Small inputs by output kind: the png output is made from a png, the videos from an mkv."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / "in.png")
    found = {"png": folder / "in.png"}
    if shutil.which("ffmpeg"):
        found["mkv"] = found["mp4"] = make_video(folder / "in.mkv")
    return found


OUTPUTS = ["png", pytest.param("mkv", marks=needs_ffmpeg), pytest.param("mp4", marks=needs_ffmpeg)]


@pytest.fixture
def out_dir(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


# ---------------------------------------------------------------- writability, before compute

def _drop_dac_override():
    """Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (dropped from the bounding set, so the
    exec'd process lacks them): folder permissions then apply to it as to any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _permissions_apply(folder: Path, preexec_fn) -> bool:
    probe = subprocess.run([sys.executable, "-c", f"open({str(folder / 'probe')!r}, 'w')"], preexec_fn=preexec_fn,
                           capture_output=True)
    return probe.returncode != 0


@pytest.mark.parametrize("kind", OUTPUTS)
def test_unwritable_folder_is_refused_before_compute(kind, inputs, out_dir):
    out = out_dir / f"out.{kind}"
    out_dir.chmod(0o555)
    try:
        # Root ignores folder permissions; without the capability that lets it, it does not.
        preexec = _drop_dac_override if os.geteuid() == 0 else None
        if not _permissions_apply(out_dir, preexec):
            pytest.skip("this process can write into a 0o555 folder (root keeping CAP_DAC_OVERRIDE) "
                        "and could not drop that capability; the permission case cannot be made here")
        # An absent model proves the check comes before loading: loading would fail differently.
        run = superres("upscale", inputs[kind], out, "--model", "ditn-real-x4", preexec_fn=preexec,
                       env={**os.environ, "SUPERRES_WEIGHTS": str(out_dir / "none"), "XDG_CACHE_HOME": str(out_dir / "none")})
    finally:
        out_dir.chmod(0o755)
    assert run.returncode == 2, run.stderr
    assert f"cannot write '{out}': no permission to create files in '{out_dir}'" in run.stderr
    assert "choose an output folder you can write to" in run.stderr and "Traceback" not in run.stderr
    assert names(out_dir) == []


@pytest.fixture
def mount_tmpfs(tmp_path):
    """``mount_tmpfs(options)``: a real small file system (root only), unmounted afterwards."""
    mounted = []

    def mount(options: str) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        if os.geteuid() != 0 or not shutil.which("mount"):
            pytest.skip("mounting a small tmpfs needs root; a read-only or full file system cannot be made otherwise")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"mount -t tmpfs is not allowed here ({done.stderr.strip()}); no small file system to test on")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


@pytest.mark.parametrize("kind", OUTPUTS)
def test_read_only_file_system_is_refused_before_compute(kind, inputs, mount_tmpfs):
    folder = mount_tmpfs("ro,size=64k")
    out = folder / f"out.{kind}"
    run = superres("upscale", inputs[kind], out, "--model", "ditn-real-x4",
                   env={**os.environ, "SUPERRES_WEIGHTS": str(folder), "XDG_CACHE_HOME": str(folder)})
    assert run.returncode == 2, run.stderr
    assert f"cannot write '{out}': '{folder}' is on a read-only file system" in run.stderr
    assert "weight file" not in run.stderr  # refused before the model was looked for
    assert names(folder) == []


@pytest.mark.parametrize("kind", OUTPUTS)
def test_full_disk_is_said_and_the_old_file_stays(kind, inputs, mount_tmpfs):
    folder = mount_tmpfs("size=16k")
    out = folder / f"out.{kind}"
    out.write_bytes(PREVIOUS)
    run = superres("upscale", inputs[kind], out, *FAST)
    assert run.returncode == 2, run.stderr
    assert f"cannot write '{out}'" in run.stderr
    assert f"no space left on the disk holding '{folder}': the disk is full" in run.stderr
    assert "an existing file of that name was left as it was" in run.stderr and "Traceback" not in run.stderr
    if kind == "png":
        assert "KiB to write)" in run.stderr  # the size of the encoded image
    assert names(folder) == [out.name] and out.read_bytes() == PREVIOUS


def _file_size_limit():
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))


@pytest.mark.parametrize("kind", OUTPUTS)
def test_file_size_limit_is_said_and_the_old_file_stays(kind, inputs, out_dir):
    out = out_dir / f"out.{kind}"
    out.write_bytes(PREVIOUS)
    run = superres("upscale", inputs[kind], out, *FAST, preexec_fn=_file_size_limit)
    assert run.returncode == 2, run.stderr
    assert f"cannot write '{out}'" in run.stderr and "file size limit (`ulimit -f`)" in run.stderr
    assert "Traceback" not in run.stderr
    assert names(out_dir) == [out.name] and out.read_bytes() == PREVIOUS


def test_disk_full_while_creating_is_said(mount_tmpfs):
    folder = mount_tmpfs("size=64k,nr_inodes=2")  # the root folder takes one inode
    (folder / "a").write_bytes(b"")
    with pytest.raises(SuperResError) as err:
        check_writable(folder / "out.png")
    assert "the disk is full" in str(err.value) and getattr(err.value, "errno", None) == errno.ENOSPC
    assert names(folder) == ["a"]


# ---------------------------------------------------------------- termination

@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    if not shutil.which("ffmpeg"):
        pytest.skip("the ffmpeg CLI makes the test videos (apt-get install ffmpeg)")
    return make_video(tmp_path_factory.mktemp("long") / "long.mkv", seconds=10, size="160x120", rate=25, noise=False)


def _start_and_wait_mid_run(src: Path, out: Path, model: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "vs_superres.cli", "upscale", str(src), str(out), "--device", "cpu",
                             "--model", str(model)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    seen: set[str] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        # The writer's partial file lasts (the writability check's one is gone at once): the
        # model is loaded and frames are being encoded.
        now = {p.name for p in out.parent.glob(f".{out.stem}.partial-*")}
        if now & seen:
            break
        seen = now
        time.sleep(0.1)
    time.sleep(0.3)
    assert proc.poll() is None, proc.communicate()
    return proc


# Outputs written in one pass (.avi, .ts): their partial file is the one to watch. A journaled
# output (.mkv, .mp4, ...) keeps its finished segments on purpose: tests/test_jobs_resume.py.
@pytest.mark.parametrize("sig,status,kind", [
    (signal.SIGTERM, 143, "avi"), (signal.SIGTERM, 143, "ts"), (signal.SIGHUP, 129, "avi")])
def test_termination_signals_leave_nothing(sig, status, kind, long_video, out_dir, tiny_ditn_path):
    out = out_dir / f"out.{kind}"
    proc = _start_and_wait_mid_run(long_video, out, tiny_ditn_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert f"superres: interrupted by {signal.Signals(sig).name}; no output file was written" in err
    assert "Traceback" not in err
    assert names(out_dir) == []


@needs_ffmpeg
def test_a_killed_run_leaves_a_partial_that_the_next_run_removes(long_video, out_dir, inputs, tiny_ditn_path):
    out = out_dir / "out.avi"  # one pass; a journaled job's SIGKILL: tests/test_jobs_resume.py
    proc = _start_and_wait_mid_run(long_video, out, tiny_ditn_path)
    proc.kill()  # SIGKILL: no clean-up can run
    proc.communicate(timeout=60)
    left = partials(out_dir)
    assert len(left) == 1 and f"-{proc.pid}-" in left[0], left
    run = superres("upscale", inputs["mkv"], out, *FAST)
    assert run.returncode == 0, run.stderr
    assert names(out_dir) == ["out.avi"]


def test_only_partials_of_dead_processes_of_this_output_are_removed(tmp_path):
    out = tmp_path / "out.mkv"
    probe = AtomicFile(out)
    probe.abort()
    host = probe.tmp_path.name.split(".partial-")[1].split("-")[0]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    files = {
        "dead": f".out.partial-{host}-{gone.pid}-0123abcd.mkv",
        "live": f".out.partial-{host}-{os.getpid()}-0123abcd.mkv",        # another run writing it now
        "other_host": f".out.partial-{'000000' if host != '000000' else '111111'}-{gone.pid}-0123abcd.mkv",
        "other_output": f".out2.partial-{host}-{gone.pid}-0123abcd.mkv",
        "other_suffix": f".out.partial-{host}-{gone.pid}-0123abcd.mp4",
        "old_style": ".out.partial-0123abcd.mkv",                           # no owner: unknown, kept
    }
    for name in files.values():
        (tmp_path / name).write_bytes(b"x")
    assert remove_stale_partials(out) == [tmp_path / files["dead"]]
    assert sorted(names(tmp_path)) == sorted(v for k, v in files.items() if k != "dead")
    target = AtomicFile(out)  # creating a writer is what cleans up
    assert target.tmp_path.exists() and f"-{os.getpid()}-" in target.tmp_path.name
    target.abort()
    assert not target.tmp_path.exists()


# ---------------------------------------------------------------- overwrite

@pytest.mark.parametrize("kind", OUTPUTS)
def test_no_overwrite_refuses_before_compute(kind, inputs, out_dir):
    out = out_dir / f"out.{kind}"
    out.write_bytes(PREVIOUS)
    for flag in ("-n", "--no-overwrite"):
        run = superres("upscale", inputs[kind], out, flag, "--model", "ditn-real-x4",
                       env={**os.environ, "SUPERRES_WEIGHTS": str(out_dir / "none"), "XDG_CACHE_HOME": str(out_dir / "none")})
        assert run.returncode == 2, run.stderr
        assert f"output '{out}' already exists and -n/--no-overwrite was given" in run.stderr
        assert "pass -y/--overwrite to replace it" in run.stderr and "remove it" in run.stderr
        assert names(out_dir) == [out.name] and out.read_bytes() == PREVIOUS


@pytest.mark.parametrize("kind", OUTPUTS)
def test_default_replaces_with_a_notice_and_y_silently(kind, inputs, out_dir):
    out = out_dir / f"out.{kind}"
    out.write_bytes(PREVIOUS)
    run = superres("upscale", inputs[kind], out, *FAST)
    assert run.returncode == 0, run.stderr
    assert f"superres: replacing existing {out}" in run.stderr
    assert names(out_dir) == [out.name] and out.read_bytes() != PREVIOUS
    out.write_bytes(PREVIOUS)
    run = superres("upscale", inputs[kind], out, "-y", *FAST)
    assert run.returncode == 0, run.stderr
    assert "replacing existing" not in run.stderr
    assert names(out_dir) == [out.name] and out.read_bytes() != PREVIOUS


def test_help_documents_the_overwrite_default_and_the_exit_codes():
    top = superres("--help")
    assert top.returncode == 0
    codes = top.stdout.split("exit status:", 1)[1]
    for status in ("0", "2", "3", "4", "129", "130", "143"):
        assert re.search(rf"\b{status}\b", codes), status
    up = superres("upscale", "--help")
    assert "-n, --no-overwrite" in up.stdout and "-y, --overwrite" in up.stdout
    assert "an existing OUTPUT is replaced by default" in " ".join(up.stdout.split())
    # the table is the host kit's, written once (superres-filter --help prints the same rows)
    from vs_superres.hostkit.exits import EXIT_STATUSES

    for code, text in EXIT_STATUSES:
        assert re.search(rf"^\s+{code}\s+{re.escape(text)}$", up.stdout, re.M), (code, text)


# ---------------------------------------------------------------- image or video, said right

@pytest.mark.parametrize("ext", [".bmp", ".webp"])
def test_bmp_and_webp_inputs_are_images(ext, tmp_path):
    src = tmp_path / f"in{ext}"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(src, lossless=True)
    run = superres("upscale", src, tmp_path / "out.mp4", *FAST)
    assert run.returncode == 2
    assert ("input is an image, so the output must be an image file (.jpeg, .jpg, .png, .tif, .tiff), "
            "got 'out.mp4' (inputs named .bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp are read as images)") in run.stderr
    assert not (tmp_path / "out.mp4").exists()
    run = superres("upscale", src, tmp_path / "out.png", *FAST)
    assert run.returncode == 0, run.stderr
    assert names(tmp_path) == sorted([src.name, "out.png"])
    assert Image.open(tmp_path / "out.png").size == (64, 48)


@needs_ffmpeg
@pytest.mark.parametrize("out_name", ["out.bmp", "out.png", "out.xyz"])
def test_video_input_refuses_image_and_unknown_outputs(out_name, inputs, tmp_path):
    run = superres("upscale", inputs["mkv"], tmp_path / out_name, "--model", "ditn-real-x4",
                   env={**os.environ, "SUPERRES_WEIGHTS": str(tmp_path / "none"), "XDG_CACHE_HOME": str(tmp_path / "none")})
    assert run.returncode == 2
    if out_name == "out.xyz":
        assert "has none for the extension '.xyz'; name the output .mkv, .mp4, .mov or .webm" in run.stderr
    else:
        assert ("input 'in.mkv' is read as a video (only .bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp are read as "
                f"images), so the output must be a video file (.mkv, .mp4, .mov, .webm, ...); got '{out_name}'") in run.stderr
    assert names(tmp_path) == []


# ---------------------------------------------------------------- models verify

@pytest.fixture
def weights_env(tmp_path, ditn_x4_path):
    root = tmp_path / "weights"
    (root / "ditn").mkdir(parents=True)
    env = {**os.environ, "SUPERRES_WEIGHTS": str(root), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return root, env


def verify(env, *model_names):
    return superres("models", "verify", *model_names, env=env)


def test_verify_passes_on_a_complete_ditn_install(weights_env, ditn_x4_path):
    root, env = weights_env
    (root / "ditn" / ditn_x4_path.name).symlink_to(ditn_x4_path)
    run = verify(env)
    assert run.returncode == 0, run.stdout
    assert f"OK             ditn-real-x4: {root / 'ditn' / ditn_x4_path.name} (sha256 ok)" in run.stdout
    assert "NOT INSTALLED  ditn-real-gan-x4: ditn/DITN_Real_GAN_x4.pth" in run.stdout
    assert "NOT INSTALLED  ultravsr: ultravsr/UltraVSR.pkl" in run.stdout
    assert "NOT INSTALLED  ultravsr: clip/RN50.safetensors (optional)" in run.stdout
    assert "1 installed file(s) checked" in run.stdout and "no problems" in run.stdout
    assert verify(env, "ditn-real-x4").returncode == 0


def test_verify_fails_for_a_named_model_without_its_file(weights_env):
    _, env = weights_env
    run = verify(env, "ditn-real-gan-x4")
    assert run.returncode == 1
    assert ("MISSING        ditn-real-gan-x4: ditn/DITN_Real_GAN_x4.pth is required and not installed; "
            "run `superres models download ditn-real-gan-x4`") in run.stdout


def test_verify_fails_for_a_corrupt_installed_file(weights_env, ditn_x4_path):
    root, env = weights_env
    bad = root / "ditn" / ditn_x4_path.name
    data = bytearray(ditn_x4_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    run = verify(env)
    assert run.returncode == 1, run.stdout
    assert f"CORRUPT        ditn-real-x4: weight file '{bad}' has sha256" in run.stdout
    assert "NOT INSTALLED  ultravsr: ultravsr/UltraVSR.pkl" in run.stdout
    assert "1 problem(s)" in run.stdout
    assert bad.read_bytes() == bytes(data)  # verify only reads


# ---------------------------------------------------------------- a cut input: exit 4, output kept

@needs_ffmpeg
def test_cut_input_exits_4_and_keeps_the_complete_frames(tmp_path):
    src = make_video(tmp_path / "whole.mkv", seconds=2)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    out = tmp_path / "out.mkv"
    run = superres("upscale", cut, out, *FAST)
    assert run.returncode != 0, "a cut input was reported as a success"
    assert run.returncode == 4, run.stderr
    assert run.stderr.startswith("superres: error: ") or "\nsuperres: error: " in run.stderr
    assert out.exists() and partials(tmp_path) == []
