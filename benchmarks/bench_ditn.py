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
per row); ``--alone`` times each configuration again in a fresh process of its own.

Page faults are printed because they are much of the authors' configuration's time: its
whole-frame tensors (up to 56 MB) are freshly mapped memory on every op under glibc's default
allocator settings, and how often smaller ones are depends on what ran before in the process.
An ``Upscaler`` tells glibc to keep freed memory (``vs_superres.runtime.allocator``), for the
whole process: the interleaved rows share one process, so both run with that setting (a
comparison of the compute); ``--alone`` runs the authors' configuration as the authors' script
runs, with glibc's default thresholds (``SUPERRES_ALLOCATOR=system``), and the Upscaler as a
user's process runs it (the comparison a user sees).
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

ROOT = Path(__file__).resolve().parents[1]


def peak_gflops(threads: int, ghz: float, flop_per_cycle: int) -> float:
    return threads * ghz * flop_per_cycle


def cpu_flop_per_cycle() -> tuple[int, str]:
    """fp32 FLOP per cycle per core from /proc/cpuinfo, and the CPU's name.

    AMD Zen 5 (family 26) and Intel server cores with AVX-512 have two 512-bit FMA pipes
    (2 x 16 lanes x 2 = 64); Zen 4 runs AVX-512 on 256-bit pipes and AVX2 cores have two
    256-bit pipes (32). The figure is checked against a measured GEMM (:func:`gemm_gflops`).
    """
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        return 32, "unknown CPU"
    flags = info.get("flags", "").split()
    vendor, family = info.get("vendor_id", ""), int(info.get("cpu family", "0") or 0)
    name = f"{info.get('model name', 'CPU')} (family {family})"
    if "avx512f" in flags and (vendor == "GenuineIntel" or (vendor == "AuthenticAMD" and family >= 26)):
        return 64, name
    return 32, name


def gemm_gflops(threads: int) -> float:
    """A 2048^3 fp32 GEMM through the fast path's kernels (oneDNN where present): what this
    CPU's matrix units reach in practice."""
    import torch

    from vs_superres.models.ditn.kernels import ATEN, ONEDNN

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    k = ONEDNN or ATEN  # the kernels the fast path uses on this CPU

    def run():
        return k.linear(a, b, None)

    for _ in range(3):
        run()
    t0 = time.perf_counter()
    for _ in range(10):
        run()
    return 10 * 2 * 2048**3 / (time.perf_counter() - t0) / 1e9


def gflop_per_frame(net, x, fast: bool) -> float:
    """GFLOP of one frame (convolutions and matrix products, as torch's FLOP counter counts them):
    ``arch.DITN``'s forward, or the fast path's arithmetic (its portable kernels, the same
    operations as the oneDNN ones, which the counter cannot see)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vs_superres.models.ditn import kernels
    from vs_superres.models.ditn.arch import DITN
    from vs_superres.models.ditn.fast import fast_forward, prepare

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        if fast:
            fast_forward(prepare(net), x, kernels=kernels.ATEN)
        else:
            DITN.forward(net, x)
    return counter.get_total_flops() / 1e9


def minor_faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


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
    faults: dict[str, list[int]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, fn in configs.items():
            f0, t0 = minor_faults(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            faults[name].append(minor_faults() - f0)
    flop_per_cycle, cpu = cpu_flop_per_cycle()
    flop_per_cycle = args.flop_per_cycle or flop_per_cycle
    nominal = peak_gflops(args.threads, args.ghz, flop_per_cycle)
    measured = gemm_gflops(args.threads)
    peak = max(nominal, measured)  # a boost clock can take a GEMM past the nominal figure
    gflop = {"authors' configuration": gflop_per_frame(authors, x, fast=False)}
    gflop["Upscaler default"] = gflop["fast path, torch.compile"] = gflop_per_frame(up._runner, x, fast=True)
    print(f"DITN x4, 320x180 -> 1280x720 (astronaut photo), CPU, fp32, {args.threads} threads, "
          f"{args.rounds} interleaved rounds; {cpu}")
    print(f"peak {peak:.0f} GFLOP/s, the larger of nominal {nominal:.0f} ({args.threads} x {args.ghz} GHz x "
          f"{flop_per_cycle} FLOP/cycle) and a measured 2048^3 oneDNN GEMM {measured:.0f}")
    authors_gflop, fast_gflop = gflop["authors' configuration"], gflop["Upscaler default"]
    print(f"GFLOP per frame: authors' network {authors_gflop:.1f}, fast path (merged maps) {fast_gflop:.1f}")
    print(f"arch.DITN vs the authors' code (tests/data/ditn_reference.npz): max|diff| "
          f"crop a {ref_diff['a']:.1e}, crop b {ref_diff['b']:.1e}")
    if compile_s is not None:
        print(f"torch.compile: first call (compile) {compile_s:.1f} s")
    print(f"{'config':<28}{'s/frame (median)':>18}{'frames/s':>10}{'ratio (min-max)':>20}{'of peak':>9}"
          f"{'max|diff|':>11}{'page faults/frame':>19}")
    for name, ts in times.items():
        ratios = [b / t for b, t in zip(times["authors' configuration"], ts)]
        med = statistics.median(ts)
        gfs = gflop[name] / med
        diff = float((outputs[name].reshape(base.shape) - base).abs().max())
        print(f"{name:<28}{med:>18.3f}{1 / med:>10.3f}{statistics.median(ratios):>8.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f}){gfs / peak:>9.1%}{diff:>11.1e}"
              f"{statistics.median(faults[name]):>19.0f}")
    print("per-round s/frame: " + "; ".join(f"{name}: " + ", ".join(f"{t:.3f}" for t in ts) for name, ts in times.items()))


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


def _alone_child(cfg: dict) -> dict:
    import torch

    torch.set_num_threads(cfg["threads"])
    from vs_superres import Upscaler
    from vs_superres.models.ditn.arch import DITN

    x = _frame()
    up = Upscaler("ditn-real-x4", device="cpu")
    if cfg["config"] == "authors":
        net = DITN().eval()
        net.load_state_dict(up._runner.state_dict(), strict=True)
        del up

        def run():
            with torch.no_grad():
                return net(x).clamp(0, 1)
    else:
        def run():
            return up.upscale(x[0])
    run()  # warm-up
    times, faults = [], []
    for _ in range(cfg["frames"]):
        f0, t0 = minor_faults(), time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
        faults.append(minor_faults() - f0)
    return {"s": statistics.median(times), "faults": statistics.median(faults)}


def alone(args) -> None:
    rows = {}
    for name, config in (("authors' configuration", "authors"), ("Upscaler default", "upscaler")):
        cfg = {"config": config, "frames": args.frames, "threads": args.threads}
        # The authors' script makes no Upscaler, so glibc keeps its own thresholds there; the
        # child borrows an Upscaler only to load the weights (see the module docstring).
        env = {**os.environ, "SUPERRES_ALLOCATOR": "system"} if config == "authors" else dict(os.environ)
        out = subprocess.run([sys.executable, __file__, "--alone-child", json.dumps(cfg)], capture_output=True, text=True, env=env)
        if out.returncode:
            sys.exit(f"{name} failed:\n{out.stderr}")
        rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
    base = rows["authors' configuration"]["s"]
    print(f"\nEach configuration alone in a fresh process, median of {args.frames} frames after one warm-up; "
          "glibc's default thresholds for the authors' configuration, the engine's setting for the Upscaler")
    print(f"{'config':<28}{'s/frame':>10}{'ratio':>8}{'page faults/frame':>19}")
    for name, r in rows.items():
        print(f"{name:<28}{r['s']:>10.3f}{base / r['s']:>8.2f}{r['faults']:>19.0f}")


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
    ap.add_argument("--flop-per-cycle", type=int, default=0,
                    help="fp32 FLOP per cycle per core (default: from /proc/cpuinfo, 64 or 32)")
    ap.add_argument("--compile", action="store_true", help="add torch.compile of the fast path")
    ap.add_argument("--tiles", action="store_true", help="add the tiled-vs-untiled table")
    ap.add_argument("--alone", action="store_true", help="add each configuration alone in a fresh process")
    ap.add_argument("--frames", type=int, default=4, help="frames per row of the --tiles and --alone tables")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--alone-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_tile_child(json.loads(args.child))))
        return
    if args.alone_child:
        print(json.dumps(_alone_child(json.loads(args.alone_child))))
        return
    speed(args)
    if args.alone:
        alone(args)
    if args.tiles:
        tiles(args)


if __name__ == "__main__":
    main()
