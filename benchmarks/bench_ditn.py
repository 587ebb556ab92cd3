"""DITN x4 throughput on this CPU: untiled vs tiled, measured side by side in one run.

    SUPERRES_WEIGHTS=../shared/weights python benchmarks/bench_ditn.py [--frames 6] [--threads 2]

Prints a table of frames/s at 320x180 input (fp32), the tiled/untiled ratio and peak RSS.
Each configuration runs in its own child process so that peak RSS is that configuration's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _child(cfg: dict) -> dict:
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(cfg["threads"])
    from vs_superres import Upscaler

    rng = np.random.default_rng(0)
    from skimage import data
    from skimage.transform import resize

    photo = resize(data.astronaut(), (180, 320), anti_aliasing=True).astype(np.float32)
    frames = np.stack([np.clip(photo + rng.normal(0, 0.01, photo.shape), 0, 1) for _ in range(cfg["frames"])]).astype(np.float32)
    up = Upscaler("ditn-real-x4", device="cpu", dtype=cfg["dtype"], tile=cfg["tile"], overlap=cfg["overlap"])
    up.upscale(frames[:1])  # warm-up
    t0 = time.perf_counter()
    for f in frames:
        up.upscale(f)
    dt = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"fps": cfg["frames"] / dt, "rss_mb": rss_mb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    configs = [
        ("untiled", dict(tile=0, overlap=None)),
        ("default (auto)", dict(tile=None, overlap=None)),
        ("tiled 192/128", dict(tile=192, overlap=None)),  # the model's exact overlap (docs/design.md)
        ("tiled 96/32", dict(tile=96, overlap=32)),
        ("tiled 64/32", dict(tile=64, overlap=32)),
        ("untiled bf16", dict(tile=0, overlap=None, dtype="bf16")),
    ]
    rows = []
    for name, extra in configs:
        cfg = {"frames": args.frames, "threads": args.threads, "dtype": "fp32", **extra}
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True, text=True, env=os.environ)
        if out.returncode:
            sys.exit(f"{name} failed:\n{out.stderr}")
        rows.append((name, json.loads(out.stdout.strip().splitlines()[-1])))
    base = rows[0][1]["fps"]
    print(f"DITN x4, 320x180 -> 1280x720, CPU, {args.threads} threads, {args.frames} frames each")
    print(f"{'config':<16}{'frames/s':>10}{'ratio':>8}{'peak RSS MB':>14}")
    for name, r in rows:
        print(f"{name:<16}{r['fps']:>10.3f}{r['fps'] / base:>8.2f}{r['rss_mb']:>14.0f}")


if __name__ == "__main__":
    main()
