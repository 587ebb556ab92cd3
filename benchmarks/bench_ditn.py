"""DITN x4 on this CPU: the authors' configuration vs the engine's default, side by side.

    SUPERRES_WEIGHTS=../shared/weights python benchmarks/bench_ditn.py [--rounds 3] [--threads 2]
        [--compile] [--tiles]

The baseline is *not* the authors' code (no third-party code is in this repository): it is our
checkpoint-true ``models/ditn/arch.py`` ``DITN``, run the way the authors' test script runs
``DITN_Real`` (eager, fp32, NCHW, ``torch.no_grad()``, the whole frame at once). That network
reproduces the authors' outputs; the first lines printed show it, as the max difference to
``tests/data/ditn_reference.npz`` (written by the unmodified official code).

Every round times each configuration once on the same 320x180 photo frame, interleaved, so a
busy machine slows all rows of a round alike; the ratio is taken per round and its spread over
rounds is printed. ``--compile`` adds :func:`torch.compile` (inductor) of the fast path, with its
compile time; ``--tiles`` adds the tiled-vs-untiled table (peak RSS per row, one child process
per row).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

GFLOP_PER_FRAME = 55.0  # 320x180 -> 1280x720, convolutions + matrix products (issue 14)
ROOT = Path(__file__).resolve().parents[1]


def peak_gflops(threads: int, ghz: float, flop_per_cycle: int) -> float:
    return threads * ghz * flop_per_cycle


def _frame(h: int = 180, w: int = 320):
    import numpy as np
    import torch
    from skimage import data
    from skimage.transform import resize

    photo = resize(data.astronaut(), (h, w), anti_aliasing=True).astype(np.float32)
    return torch.from_numpy(photo).permute(2, 0, 1)[None].contiguous()


def _reference_check(net) -> dict[str, float]:
    """max |arch.DITN - authors' output| on the stored reference crops."""
    import numpy as np
    import torch

    out = {}
    with np.load(ROOT / "tests" / "data" / "ditn_reference.npz") as ref, torch.no_grad():
        for crop in ("a", "b"):
            x = torch.from_numpy(ref[f"input_{crop}"]).permute(2, 0, 1)[None].float() / 255
            y = net(x)[0].permute(1, 2, 0).numpy()
            out[crop] = float(np.abs(y - ref[f"output_{crop}_real"]).max())
    return out


def speed(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from vs_superres import Upscaler
    from vs_superres.models.ditn.arch import DITN
    from vs_superres.models.ditn.fast import fast_forward

    up = Upscaler("ditn-real-x4", device="cpu")  # default settings
    authors = DITN().eval()
    authors.load_state_dict(up._runner.state_dict(), strict=True)
    ref_diff = _reference_check(authors)
    x = _frame()
    frame = x[0]

    def run_authors():
        with torch.no_grad():
            return authors(x).clamp(0, 1)

    configs = {"authors' configuration": run_authors, "Upscaler default": lambda: up.upscale(frame)}
    compile_s = None
    if args.compile:
        prepared = up._runner._prepared_weights()
        compiled = torch.compile(fast_forward, dynamic=False)
        t0 = time.perf_counter()
        with torch.no_grad():
            compiled(prepared, x)
        compile_s = time.perf_counter() - t0

        def run_compiled():
            with torch.no_grad():
                return compiled(prepared, x).clamp(0, 1)

        configs["fast path, torch.compile"] = run_compiled
    outputs = {name: fn() for name, fn in configs.items()}  # warm-up, and the outputs compared
    base = outputs["authors' configuration"]
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, fn in configs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    peak = peak_gflops(args.threads, args.ghz, args.flop_per_cycle)
    print(f"DITN x4, 320x180 -> 1280x720 (astronaut photo), CPU, fp32, {args.threads} threads, "
          f"{args.rounds} interleaved rounds; peak {peak:.0f} GFLOP/s "
          f"({args.threads} x {args.ghz} GHz x {args.flop_per_cycle} FLOP/cycle), {GFLOP_PER_FRAME:.0f} GFLOP/frame")
    print(f"arch.DITN vs the authors' code (tests/data/ditn_reference.npz): max|diff| "
          f"crop a {ref_diff['a']:.1e}, crop b {ref_diff['b']:.1e}")
    if compile_s is not None:
        print(f"torch.compile: first call (compile) {compile_s:.1f} s")
    print(f"{'config':<28}{'s/frame (median)':>18}{'frames/s':>10}{'ratio (min-max)':>20}{'of peak':>9}{'max|diff|':>11}")
    for name, ts in times.items():
        ratios = [b / t for b, t in zip(times["authors' configuration"], ts)]
        med = statistics.median(ts)
        gfs = GFLOP_PER_FRAME / med
        diff = float((outputs[name].reshape(base.shape) - base).abs().max())
        print(f"{name:<28}{med:>18.3f}{1 / med:>10.3f}{statistics.median(ratios):>8.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f}){gfs / peak:>9.1%}{diff:>11.1e}")


def _tile_child(cfg: dict) -> dict:
    import resource

    import torch

    torch.set_num_threads(cfg["threads"])
    from vs_superres import Upscaler

    frame = _frame()[0]
    up = Upscaler("ditn-real-x4", device="cpu", dtype=cfg["dtype"], tile=cfg["tile"], overlap=cfg["overlap"])
    up.upscale(frame)  # warm-up
    t0 = time.perf_counter()
    for _ in range(cfg["frames"]):
        up.upscale(frame)
    dt = time.perf_counter() - t0
    return {"fps": cfg["frames"] / dt, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def tiles(args) -> None:
    configs = [
        ("untiled", dict(tile=0, overlap=None)),
        ("default (auto)", dict(tile=None, overlap=None)),
        ("tiled 192/128", dict(tile=192, overlap=None)),  # the model's exact overlap (docs/design.md)
        ("tiled 96/32", dict(tile=96, overlap=32)),
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
    print(f"\nEngine tiling, {args.frames} frames each, one child process per row")
    print(f"{'config':<16}{'frames/s':>10}{'ratio':>8}{'peak RSS MB':>14}")
    for name, r in rows:
        print(f"{name:<16}{r['fps']:>10.3f}{r['fps'] / base:>8.2f}{r['rss_mb']:>14.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ghz", type=float, default=2.6, help="CPU clock for the peak figure")
    ap.add_argument("--flop-per-cycle", type=int, default=32, help="fp32 FLOP per cycle per core (AVX-512 FMA: 32)")
    ap.add_argument("--compile", action="store_true", help="add torch.compile of the fast path")
    ap.add_argument("--tiles", action="store_true", help="add the tiled-vs-untiled table")
    ap.add_argument("--frames", type=int, default=4, help="frames per row of the --tiles table")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_tile_child(json.loads(args.child))))
        return
    speed(args)
    if args.tiles:
        tiles(args)


if __name__ == "__main__":
    main()
