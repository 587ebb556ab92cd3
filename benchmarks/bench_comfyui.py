"""DITN through a real ComfyUI workflow against the engine on the same frames, and the peak
memory of a 300-frame video workflow.

    python benchmarks/bench_comfyui.py [--size 128x96] [--frames 4] [--repeats 3] [--video-frames 300]

The ComfyUI environment is the tests' (tools/comfy_env.sh builds it once). ComfyUI's start-up
and the model load are excluded: the server is started and one warm-up run made first; each
timed run changes only the input file, so ComfyUI re-runs LoadImage and the upscale node while
the loader's cached model handle is reused. Both sides run torch on one thread (the server with
OMP_NUM_THREADS=1). The ratio printed is engine time / ComfyUI time (target >= 0.95). The
video part runs LoadVideo -> Upscale Video -> SaveVideo on ``--video-frames`` frames with the
tiny DITN and samples the server's resident memory every 50 ms.
DITN needs ditn/DITN_Real_x4.pth under $SUPERRES_WEIGHTS; without it the tiny DITN is used.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "comfyui"), str(REPO / "tests")]
os.environ.setdefault("SUPERRES_FAMILIES", "")

from conftest import ComfyServer, make_base  # noqa: E402
from graphs import image_prompt, node  # noqa: E402


def installed_layout(site: Path) -> Path:
    pkg = site / "vs_superres"
    pkg.mkdir(parents=True)
    for entry in (REPO / "vs_superres").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name in ("models", "comfy_nodes", "ffmpeg_filter"):
        (pkg / name).symlink_to(REPO / name)
    return site


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="128x96")
    p.add_argument("--frames", type=int, default=4, help="images per batch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--video-frames", type=int, default=300)
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(1)
    env = Path(subprocess.run(["bash", str(REPO / "tools" / "comfy_env.sh"), "--build-only"], check=True,
                              capture_output=True, text=True).stdout.strip().splitlines()[-1])
    from skimage import data

    from vs_superres import Upscaler
    from vs_superres.cli.comfyui import install
    from vs_superres.models.ditn.arch import build

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = make_base(tmp / "base", {"superres_probe": REPO / "tests" / "comfyui" / "probe_pack"})
        install(base)
        weights = Path(os.environ.get("SUPERRES_WEIGHTS", "/nonexistent")) / "ditn" / "DITN_Real_x4.pth"
        torch.manual_seed(0)
        torch.save(build({"dim": 8, "num_itl": 1, "num_sal": 1}).state_dict(), base / "models" / "superres" / "tiny_ditn.pth")
        model, engine_model = ("ditn-real-x4", "ditn-real-x4") if weights.is_file() else \
            ("superres/tiny_ditn.pth", base / "models" / "superres" / "tiny_ditn.pth")
        photo = data.astronaut()[:h, :w]
        batch = np.stack([np.roll(photo, 7 * i, axis=1) for i in range(args.frames)])
        server = ComfyServer(env, base, [installed_layout(tmp / "site"), REPO / "tests"])
        try:
            for i in range(args.repeats + 1):
                Image.fromarray(batch[0]).save(base / "input" / f"b{i}.png")
            comfy_times = []
            for i in range(args.repeats + 1):
                t0 = time.perf_counter()
                hist = server.run(image_prompt(server, f"b{i}.png", model, out=f"b{i}"))
                assert hist["status"]["status_str"] == "success", hist["status"]
                comfy_times.append(time.perf_counter() - t0)
            comfy_best = min(comfy_times[1:])  # the first run loads the model
            frame = torch.from_numpy(batch[0].astype(np.float32) / 255).movedim(-1, 0)[None]
            with Upscaler(engine_model, device="cpu") as up:
                up.upscale(frame)
                engine_times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    up.upscale(frame)
                    engine_times.append(time.perf_counter() - t0)
            engine_best = min(engine_times)
            print(f"DITN ({model}) on {w}x{h}, best of {args.repeats}: engine {engine_best * 1000:.0f} ms, "
                  f"ComfyUI workflow {comfy_best * 1000:.0f} ms, ratio {engine_best / comfy_best:.3f}")

            import av
            import psutil

            vid = base / "input" / "long.mp4"
            with av.open(str(vid), "w") as c:
                s = c.add_stream("mpeg4", rate=24)
                s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
                for i in range(args.video_frames):
                    img = np.ascontiguousarray(np.roll(data.astronaut()[:48, :64], i, axis=1))
                    for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                        c.mux(pkt)
                for pkt in s.encode():
                    c.mux(pkt)
            proc = psutil.Process(server.proc.pid)
            idle = proc.memory_info().rss
            peak = [idle]
            done = threading.Event()

            def sample():
                while not done.is_set():
                    peak[0] = max(peak[0], proc.memory_info().rss)
                    time.sleep(0.05)

            threading.Thread(target=sample, daemon=True).start()
            prompt = {
                "1": node(server, "LoadVideo", file="long.mp4"),
                "2": node(server, "SuperResModelLoader", model="superres/tiny_ditn.pth", device="cpu"),
                "3": node(server, "SuperResUpscaleVideo", model=["2", 0], video=["1", 0]),
                "4": node(server, "SaveVideo", video=["3", 0], filename_prefix="video/long", format="mp4", codec="h264"),
            }
            t0 = time.perf_counter()
            hist = server.run(prompt, timeout=1800)
            done.set()
            assert hist["status"]["status_str"] == "success", hist["status"]
            mib = 2 ** 20
            in_f32 = args.video_frames * 64 * 48 * 3 * 4
            print(f"video workflow: {args.video_frames} frames 64x48 -> 256x192 in {time.perf_counter() - t0:.1f} s; "
                  f"server RSS idle {idle / mib:.0f} MiB, peak {peak[0] / mib:.0f} MiB (+{(peak[0] - idle) / mib:.0f} MiB); "
                  f"float32 clip in {in_f32 / mib:.1f} MiB, out {16 * in_f32 / mib:.1f} MiB")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
