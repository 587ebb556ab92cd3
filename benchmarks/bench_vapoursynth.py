"""DITN throughput through core.superres under vspipe against the engine on the same frames.

Run where VapourSynth and vs-superres are installed, e.g. in the trixie root:

    tools/vs_env.sh python benchmarks/bench_vapoursynth.py [--frames 8] [--size 128x96]

Model loading and start-up are excluded on both sides: the engine is timed after a warm-up
frame; vspipe is timed on N frames and on 1 frame, and the difference is divided by N-1.
The target is a ratio of at least 0.95 (the plugin adds no measurable cost to the model).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

from vs_superres import registry
from vs_superres.engine import Upscaler

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import vapoursynth as vs
    core = vs.core
    core.num_threads = {threads}
    frames = np.load({frames!r})
    t, h, w, _ = frames.shape
    blank = core.std.BlankClip(width=w, height=h, format=vs.RGBS, length=t)

    def fill(n, f):
        out = f.copy()
        for p in range(3):
            np.asarray(out[p])[...] = frames[n, :, :, p]
        return out

    clip = core.std.ModifyFrame(blank, blank, fill)
    core.superres.Upscale(clip, model={model!r}, device={device!r}).set_output()
    """
)


def default_model() -> str:
    if any(m.name == "ditn-real-x4" for m in registry.list_models()):
        return "ditn-real-x4"
    root = os.environ.get("SUPERRES_WEIGHTS")
    if root and (Path(root) / "ditn" / "DITN_Real_x4.pth").is_file():
        return str(Path(root) / "ditn" / "DITN_Real_x4.pth")
    sys.exit("no DITN model: register ditn-real-x4 or set SUPERRES_WEIGHTS to a folder with ditn/DITN_Real_x4.pth")


def photo_frames(count: int, height: int, width: int) -> np.ndarray:
    from skimage import data

    img = data.astronaut().astype(np.float32) / 255.0
    return np.stack([img[100 + i: 100 + i + height, 100 + 3 * i: 100 + 3 * i + width] for i in range(count)])


def time_engine(model: str, device: str, frames: np.ndarray) -> float:
    up = Upscaler(model, device=device)
    t = len(frames)
    tensors = [torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))) for f in frames]
    # Warm-up under another clip length, so that no window it computes is reused below.
    up.render_frame(0, t + 1, {i: tensors[min(i, t - 1)] for i in up.frames_needed(0, t + 1)})
    start = time.perf_counter()
    for n in range(t):
        up.render_frame(n, t, {i: tensors[i] for i in up.frames_needed(n, t)})
    return time.perf_counter() - start


def time_vspipe(script: Path, count: int, requests: int) -> float:
    vspipe = shutil.which("vspipe") or sys.exit("vspipe is not on PATH")

    def run(last: int) -> float:
        start = time.perf_counter()
        subprocess.run([vspipe, "-r", str(requests), "--end", str(last), str(script), "--"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start

    one = min(run(0) for _ in range(2))
    full = run(count - 1)
    return full - one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model name or checkpoint (default: DITN x4)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", default="128x96", help="input WxH")
    ap.add_argument("--requests", type=int, default=1, help="vspipe -r (concurrent requests)")
    ap.add_argument("--threads", type=int, default=1, help="core.num_threads in the script")
    args = ap.parse_args()
    model = args.model or default_model()
    w, h = (int(v) for v in args.size.lower().split("x"))
    frames = photo_frames(args.frames, h, w)

    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "frames.npy", frames)
        script = Path(tmp) / "bench.vpy"
        script.write_text(SCRIPT.format(frames=str(Path(tmp) / "frames.npy"), model=model,
                                        device=args.device, threads=args.threads))
        engine_s = time_engine(model, args.device, frames)
        vspipe_s = time_vspipe(script, args.frames, args.requests)

    engine_fps = args.frames / engine_s
    vspipe_fps = (args.frames - 1) / vspipe_s
    print(f"model {Path(model).name}, {args.frames} frames of {w}x{h}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}, vspipe -r {args.requests}")
    print(f"{'path':<22}{'frames/s':>10}{'ratio':>8}")
    print(f"{'engine render_frame':<22}{engine_fps:>10.3f}{1.0:>8.3f}")
    ratio = vspipe_fps / engine_fps
    print(f"{'vspipe core.superres':<22}{vspipe_fps:>10.3f}{ratio:>8.3f}")
    print(f"target ratio >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'}")


if __name__ == "__main__":
    main()
