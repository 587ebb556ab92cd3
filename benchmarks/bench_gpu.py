"""GPU numbers in one short run: UltraVSR full-size architecture and DITN, fp16 and bf16.

    python benchmarks/bench_gpu.py              # on a CUDA machine: the full run (< 8 minutes)
    python benchmarks/bench_gpu.py --reduced    # anywhere (CI: tests/test_bench_gpu.py): tiny
                                                # configs and sizes on the CPU, same code path

Prints, for each precision:

1. UltraVSR, full-size SD-2.1-base architecture with random weights (no download): seconds
   per 1280x720 output frame for the released tile grid vs ours, and peak GPU memory (the
   pipeline code of ``benchmarks/bench_ultravsr.py``);
2. DITN x4 (random weights; the speed does not depend on them) frames/s at 1280x720 output
   (320x180 input): eager, ``torch.compile`` (inductor) and ``torch.compile(mode=
   "reduce-overhead")`` (CUDA graphs);
3. the fraction of the GPU's dense fp16/bf16 tensor peak each reaches (``--peak-tflops``;
   known for a few GPUs by name). DITN: ~55 GFLOP per 720p frame; UltraVSR: the FLOPs per
   frame of ``bench_ultravsr.py --flops`` (20.17 TFLOP per 720p frame for our grid, 34.00 for
   the released one).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

DITN_GFLOP_720P = 51.1  # the fast path's arithmetic, counted by bench_ditn.py (the release network: 55.3)
ULTRAVSR_TFLOP_720P = {"official": 34.00, "ours": 22.16}  # docs/benchmarks.md, incl. window overlap
#: dense fp16/bf16 tensor-core peak, TFLOP/s, by a fragment of torch.cuda.get_device_name()
KNOWN_PEAKS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 8000": 130.0, "A10": 125.0}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def gpu_peak(device: torch.device, given: float | None) -> float | None:
    if given:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in KNOWN_PEAKS.items() if k in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fraction(tflop_per_s: float, peak: float | None) -> str:
    return f"{tflop_per_s / peak:.1%}" if peak else "n/a"


def ditn_rows(device: torch.device, dtype: torch.dtype, size: tuple[int, int], frames: int, modes: list[str],
              config: dict) -> list[dict]:
    from vs_superres.models.ditn.fast import DITNInference

    torch.manual_seed(0)
    net = DITNInference(**config).eval().to(device, dtype)
    x = torch.rand(1, 3, size[1], size[0], device=device, dtype=dtype)
    rows = []
    with torch.no_grad():
        for mode in modes:
            if mode == "eager":
                fn = net
            elif mode == "compile":
                fn = torch.compile(net, dynamic=False)
            else:  # CUDA graphs through inductor
                fn = torch.compile(net, mode="reduce-overhead", dynamic=False)
            t0 = time.perf_counter()
            for _ in range(3):  # compile + warm-up (CUDA graphs record on a later call)
                fn(x)
            _sync(device)
            warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(frames):
                fn(x)
            _sync(device)
            rows.append({"mode": mode, "fps": frames / (time.perf_counter() - t0), "warm_s": warm})
    return rows


def ultravsr_rows(device: torch.device, dtype: torch.dtype, size: tuple[int, int], frames: int, full: bool) -> list[dict]:
    from bench_ultravsr import time_full_pipeline

    from vs_superres.models.ultravsr.configs import (
        SD21_BASE_UNET_CONFIG,
        SD21_BASE_VAE_CONFIG,
        TINY_UNET_CONFIG,
        TINY_VAE_CONFIG,
    )

    unet, vae = (SD21_BASE_UNET_CONFIG, SD21_BASE_VAE_CONFIG) if full else (TINY_UNET_CONFIG, TINY_VAE_CONFIG)
    return time_full_pipeline(str(device), dtype, [size], frames, 1, unet, vae)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reduced", action="store_true", help="tiny configs and sizes on the CPU (CI)")
    ap.add_argument("--peak-tflops", type=float, help="the GPU's dense fp16/bf16 peak (default: known by name)")
    ap.add_argument("--dtypes", default="bf16,fp16")
    ap.add_argument("--ditn-frames", type=int, default=50)
    ap.add_argument("--ultravsr-frames", type=int, default=30, help="frames per window (our window is 30)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    if args.reduced:
        device = torch.device("cpu")
        ditn_size, uvsr_size, ditn_frames, uvsr_frames = (32, 24), (16, 16), 2, 2
        ditn_config = {"dim": 8, "num_itl": 1, "num_sal": 1}
        modes = ["eager", "compile"]  # inductor on the CPU too, so the compiled path cannot rot
        full = False
    else:
        if not torch.cuda.is_available():
            print("CUDA is not available: run with --reduced for the CPU smoke run", file=sys.stderr)
            return 2
        device = torch.device("cuda")
        ditn_size, uvsr_size, ditn_frames, uvsr_frames = (320, 180), (320, 180), args.ditn_frames, args.ultravsr_frames
        ditn_config = {}
        modes = ["eager", "compile", "cuda graphs"]
        full = True
    peak = gpu_peak(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (reduced run: tiny configs)"
    print(f"# GPU benchmark: {name}, torch {torch.__version__}, peak {peak or 'unknown'} TFLOP/s (fp16/bf16 dense)")
    scale_w, scale_h = 4 * uvsr_size[0], 4 * uvsr_size[1]
    for dtype_name in args.dtypes.split(","):
        dtype = DTYPES[dtype_name]
        print(f"\n## {dtype_name}")
        print(f"UltraVSR {'full-size' if full else 'tiny'} architecture, random weights, one window of "
              f"{uvsr_frames} frames, output {scale_w}x{scale_h}")
        print(f"{'grid':<10}{'s/frame':>9}{'peak GiB':>10}{'of peak':>9}")
        for r in ultravsr_rows(device, dtype, uvsr_size, uvsr_frames, full):
            mem = f"{r['peak'] / 2**30:.1f}" if r["peak"] is not None else "n/a"
            frac = _fraction(ULTRAVSR_TFLOP_720P[r["grid"]] / r["s_per_frame"], peak) if full else "n/a"
            print(f"{r['grid']:<10}{r['s_per_frame']:>9.3f}{mem:>10}{frac:>9}")
        print(f"DITN x4, {ditn_size[0]}x{ditn_size[1]} -> {4 * ditn_size[0]}x{4 * ditn_size[1]}, {ditn_frames} frames")
        print(f"{'mode':<13}{'frames/s':>10}{'warm-up s':>11}{'of peak':>9}")
        for r in ditn_rows(device, dtype, ditn_size, ditn_frames, modes, ditn_config):
            frac = _fraction(DITN_GFLOP_720P * r["fps"] / 1000, peak) if not args.reduced else "n/a"
            print(f"{r['mode']:<13}{r['fps']:>10.2f}{r['warm_s']:>11.1f}{frac:>9}")
    print(f"\n(total {time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
