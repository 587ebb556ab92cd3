"""The video path vs the model alone (DITN x4), and peak RSS vs clip length.

    SUPERRES_WEIGHTS=../shared/weights python benchmarks/bench_video.py [--frames 60] [--rounds 3]

Speed: a 320x180 H.264 clip made from a real photo (a slow pan over ``skimage.data.astronaut``)
is upscaled, in each round, (a) by the model alone (``Upscaler.upscale`` on every frame,
already decoded, results dropped) and (b) by the video path the CLI runs
(:func:`vs_superres.media.transcode` with ``Upscaler.stream``: decode, colour conversion,
inference, encode to H.264), once with the run path's declared queue depth
(``vs_superres.media.pump.QUEUE_FRAMES``) and once with twice that (``--queue-compare``).
Rounds interleave the configurations; the ratios are per round.

Memory: ``superres upscale`` itself (one child process per clip length, small frames so it
stays quick) on clips of ``--rss-short`` and ``--rss-long`` frames; peak RSS should not grow
with the length.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_clip(path: Path, frames: int, width: int, height: int, fps: int = 25) -> None:
    import av
    import numpy as np
    from skimage import data
    from skimage.transform import resize

    photo = data.astronaut()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            x = (i * 3) % (photo.shape[1] - 2 * width)
            crop = photo[100:100 + 2 * height, x:x + 2 * width]
            rgb = (resize(crop, (height, width), anti_aliasing=True) * 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def speed(args, folder: Path) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from vs_superres import Upscaler
    from vs_superres.media import transcode
    from vs_superres.media.video import VideoReader

    clip = folder / "clip.mp4"
    make_clip(clip, args.frames, 320, 180)
    with VideoReader(clip) as reader:
        frames = [torch.from_numpy(f.rgb) for f in reader]
    up = Upscaler("ditn-real-x4", device="cpu")
    up.upscale(frames[0])  # warm-up (weights prepared)

    def model_alone() -> None:
        for f in frames:
            up.upscale(f)

    from vs_superres.media import pump

    declared = pump.QUEUE_FRAMES

    def video_path(depth: int):
        def run() -> None:
            def process(src):
                for out in up.stream((torch.from_numpy(f) for f in src), total=getattr(src, "total", None)):
                    yield out.numpy()

            pump.QUEUE_FRAMES = depth  # read by each run
            try:
                transcode(clip, folder / "out.mp4", process)
            finally:
                pump.QUEUE_FRAMES = declared
        return run

    configs = [("model alone", model_alone), ("video path", video_path(declared))]
    if args.queue_compare:
        configs.append((f"queue {2 * declared}", video_path(2 * declared)))
    times: dict[str, list[float]] = {name: [] for name, _ in configs}
    for _ in range(args.rounds):
        for name, fn in configs:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    ratios = [a / v for a, v in zip(times["model alone"], times["video path"])]
    print(f"DITN x4, {args.frames} frames 320x180 -> 1280x720 H.264, CPU, {args.threads} threads, {args.rounds} interleaved rounds")
    print(f"{'config':<14}{'frames/s per round':>34}")
    for name, ts in times.items():
        print(f"{name:<14}{'  '.join(f'{args.frames / t:7.3f}' for t in ts):>34}")
    print(f"video path (queue {declared}) / model alone: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    if args.queue_compare:
        deeper = [v / d for v, d in zip(times["video path"], times[f"queue {2 * declared}"])]
        print(f"queue {2 * declared} / queue {declared} speed: median {statistics.median(deeper):.3f} "
              f"(min {min(deeper):.3f}, max {max(deeper):.3f})")


def rss(args, folder: Path) -> None:
    rows = []
    for n in (args.rss_short, args.rss_long):
        clip = folder / f"small_{n}.mp4"
        make_clip(clip, n, 48, 32)
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(clip), str(folder / f"up_{n}.mp4"),
                              "--threads", str(args.threads)], capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"superres upscale failed on {n} frames:\n{out.stderr}")
        rows.append((n, *map(float, out.stdout.split()[-2:])))
    print("\npeak RSS of `superres upscale` (DITN x4, 48x32 -> 192x128), one process per clip")
    print(f"{'frames':>7}{'peak RSS MB':>13}{'seconds':>9}")
    for n, mb, s in rows:
        print(f"{n:>7}{mb:>13.0f}{s:>9.1f}")
    print(f"long / short peak RSS: {rows[1][1] / rows[0][1]:.3f}")


def rss_child(src: str, dst: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from vs_superres.cli import main

    t0 = time.perf_counter()
    code = main(["upscale", src, dst, "--model", "ditn-real-x4", "--quiet"])
    if code:
        sys.exit(code)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rss-short", type=int, default=30)
    ap.add_argument("--rss-long", type=int, default=600)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--queue-compare", action="store_true", help="also run the video path at twice the declared queue depth")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child, args.threads)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_speed:
            speed(args, Path(tmp))
        if not args.skip_rss:
            rss(args, Path(tmp))


if __name__ == "__main__":
    main()
