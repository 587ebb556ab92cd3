"""Distributed runs on one machine: frames per second with 1 and 2 local Ray workers, both
transports, the driver's overhead per frame, and an estimate for a two-hour 1080p film.

    python benchmarks/bench_distributed.py [--size 96x64] [--frames 48] [--model PATH|NAME]

Every worker runs torch on one thread (as does the single-process baseline, in this process),
so on this 2-core machine two workers can at best double the rate. Ray's start-up is excluded
(one local instance for all runs); each run includes its workers' start and model load, which
is printed apart (the time to the first frame). The model defaults to the tiny DITN (random
weights, dim 8), built here, so the script needs no weights.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

FILM_FRAMES = 2 * 3600 * 24  # a two-hour film at 24 fps
#: UltraVSR's cost per 720p output frame on one RTX 8000 (the paper), scaled to 1080p by pixels
GPU_SECONDS_PER_1080P_FRAME = 0.9 * (1920 * 1080) / (1280 * 720)


def make_clip(path: Path, size: str, frames: int) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24",
                    "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)


def tiny_ditn(folder: Path) -> str:
    from vs_superres.models.ditn.arch import build

    torch.manual_seed(0)
    path = folder / "tiny_ditn.pth"
    torch.save(build({"dim": 8, "num_itl": 1, "num_sal": 1}).state_dict(), path)
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="96x64")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--model", default=None, help="model name or checkpoint (default: the tiny DITN)")
    args = parser.parse_args()

    import ray

    from vs_superres.cli import main as cli
    from vs_superres.distributed import upscale_video

    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    src = work / "in.mp4"
    make_clip(src, args.size, args.frames)
    model = args.model or tiny_ditn(work)
    width, height = (int(v) for v in args.size.split("x"))

    torch.set_num_threads(1)
    began = time.monotonic()
    assert cli(["upscale", str(src), str(work / "ref.mp4"), "--model", model, "--device", "cpu", "-q", "-y"]) == 0
    single = time.monotonic() - began
    print(f"single process, 1 thread: {args.frames / single:.2f} frames/s ({single:.1f} s, model load included)")

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    rates = {}
    for workers, transport in ((1, "store"), (2, "store"), (2, "path")):
        first: list[float] = []
        began = time.monotonic()

        def progress(report, began=began, first=first) -> None:
            if not first:
                first.append(time.monotonic() - began)

        summary = upscale_video(src, work / f"out-{workers}-{transport}.mp4", model=model, workers=workers,
                                device="cpu", transport=transport, progress=progress)
        wall = time.monotonic() - began
        steady = (summary.frames / (wall - first[0])) if first and wall > first[0] else 0.0
        rates[(workers, transport)] = summary.frames / wall
        print(f"{workers} worker(s), {transport:5s}: {summary.frames / wall:.2f} frames/s overall, "
              f"{steady:.2f} after the first frame ({first[0]:.1f} s to it); driver busy "
              f"{1000 * summary.driver_seconds / summary.frames:.2f} ms/frame at {width}x{height}")
        for line in summary.lines()[1:]:
            print("   ", line)
    ray.shutdown()
    print(f"2 workers / 1 worker (store): {rates[(2, 'store')] / rates[(1, 'store')]:.2f}x")

    # The estimate: workers in parallel, the driver (decode, send, encode) in series with them.
    ms = 1000 * summary.driver_seconds / summary.frames
    driver_1080p = ms / 1000 * (1920 * 1080) / (width * height)
    print(f"\ntwo-hour 1080p film ({FILM_FRAMES} frames), {GPU_SECONDS_PER_1080P_FRAME:.2f} GPU-s/frame (UltraVSR), "
          f"driver {driver_1080p * 1000:.1f} ms/frame (measured here, scaled by pixels):")
    for gpus in (1, 8, 64):
        compute = FILM_FRAMES * GPU_SECONDS_PER_1080P_FRAME / gpus
        wall = max(compute, FILM_FRAMES * driver_1080p)
        print(f"  {gpus:3d} GPU(s): {wall / 3600:6.2f} h (compute {compute / 3600:.2f} h, driver bound "
              f"{FILM_FRAMES * driver_1080p / 3600:.2f} h)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
