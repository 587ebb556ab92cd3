"""core.superres under vspipe against the engine on the same frames: DITN and a tiny UltraVSR.

Run where VapourSynth and vs-superres are installed, e.g. in the trixie root:

    tools/vs_env.sh python benchmarks/bench_vapoursynth.py [--frames 8] [--size 128x96]
        [--uv-frames 18] [--uv-size 32x24] [--torch-threads 1] [--repeats 2] [--only ultravsr]

What is timed, on both sides, is the same work: output frames 1..N-1 after frame 0 has been
rendered. Frame 0 carries what is paid once (model load, first-call kernel set-up, for UltraVSR
the first temporal window), so it is excluded everywhere:

- engine: ``Upscaler.render_frame`` frame by frame (the random-access path the plugin uses),
  after a warm-up under another clip length so no window is reused;
- vspipe: a run of N frames minus a run of 1 frame, each as reported by vspipe itself (frame
  output only, not Python start-up or script evaluation).

Each side takes the best of ``--repeats`` runs. The target is a ratio (vspipe fps / engine fps)
of at least 0.95: the plugin adds no measurable cost to the model. UltraVSR uses a tiny release
written from a seed (``vs_superres.models.ultravsr.tiny``) with a fixed strength, so no large
weights are needed; DITN needs ``ditn/DITN_Real_x4.pth`` (registered, or under
``$SUPERRES_WEIGHTS``). On a shared machine other jobs change the numbers: run it twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

from vs_superres.runtime import registry
from vs_superres import Upscaler

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
    core.superres.{function}(clip, **{kwargs!r}).set_output()
    """
)
VSPIPE_REPORT = re.compile(r"Output (\d+) frames in ([0-9.]+) seconds")


@dataclasses.dataclass
class Case:
    """One benchmark row: a plugin function and the engine configured identically."""

    label: str
    function: str  # core.superres.<function>
    plugin_kwargs: dict  # the plugin's arguments, also the engine's (model and options)
    frames: np.ndarray  # [T, H, W, 3]

    def engine(self) -> Upscaler:
        kw = dict(self.plugin_kwargs)
        return Upscaler(kw.pop("model"), **kw)


def ditn_model() -> str:
    if any(m.name == "ditn-real-x4" for m in registry.list_models()):
        return "ditn-real-x4"
    root = os.environ.get("SUPERRES_WEIGHTS")
    if root and (Path(root) / "ditn" / "DITN_Real_x4.pth").is_file():
        return str(Path(root) / "ditn" / "DITN_Real_x4.pth")
    sys.exit("no DITN model: register ditn-real-x4 or set SUPERRES_WEIGHTS to a folder with ditn/DITN_Real_x4.pth")


def photo_frames(count: int, height: int, width: int, step: int = 3) -> np.ndarray:
    """``count`` crops of a real photograph panning ``step`` pixels per frame."""
    from skimage import data

    img = data.astronaut().astype(np.float32) / 255.0
    return np.stack([img[100 + i: 100 + i + height, 100 + step * i: 100 + step * i + width] for i in range(count)])


def time_engine(case: Case, repeats: int) -> float:
    """Best time of the engine for output frames 1..N-1 (frame 0 rendered first, untimed)."""
    t = len(case.frames)
    tensors = [torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))) for f in case.frames]

    def render(up: Upscaler, n: int, length: int) -> None:
        up.render_frame(n, length, {i: tensors[min(i, t - 1)] for i in up.frames_needed(n, length)})

    best = float("inf")
    for _ in range(repeats):
        up = case.engine()
        render(up, 0, t + 1)  # warm-up under another clip length: its windows are not reused
        render(up, 0, t)
        start = time.perf_counter()
        for n in range(1, t):
            render(up, n, t)
        best = min(best, time.perf_counter() - start)
        up.close()
    return best


def time_vspipe(script: Path, count: int, requests: int, repeats: int, env: dict) -> float:
    """Best vspipe time for frames 1..N-1: an N-frame run minus a 1-frame run."""
    vspipe = shutil.which("vspipe") or sys.exit("vspipe is not on PATH")

    def run(last: int) -> float:
        start = time.perf_counter()
        r = subprocess.run([vspipe, "-r", str(requests), "--end", str(last), str(script), "--"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        wall = time.perf_counter() - start
        if r.returncode != 0:
            sys.exit(f"vspipe failed:\n{r.stderr}")
        report = VSPIPE_REPORT.search(r.stderr)
        return float(report.group(2)) if report else wall  # frame output only, when reported

    one = min(run(0) for _ in range(repeats))
    full = min(run(count - 1) for _ in range(repeats))
    if full <= one:
        sys.exit(f"vspipe took {full:.2f} s for {count} frames and {one:.2f} s for 1: the machine is too "
                 "busy to measure; retry later or with more frames")
    return full - one


def run_case(case: Case, tmp: Path, args, env: dict) -> dict:
    frames_path = tmp / f"{case.function}.npy"
    np.save(frames_path, case.frames)
    script = tmp / f"{case.function}.vpy"
    script.write_text(SCRIPT.format(frames=str(frames_path), threads=args.threads, function=case.function,
                                    kwargs=case.plugin_kwargs))
    timed = len(case.frames) - 1
    engine_fps = timed / time_engine(case, args.repeats)
    vspipe_fps = timed / time_vspipe(script, len(case.frames), args.requests, args.repeats, env)
    t, h, w, _ = case.frames.shape
    return dict(model=case.label, frames=timed, size=f"{w}x{h}", engine=engine_fps, vspipe=vspipe_fps,
                ratio=vspipe_fps / engine_fps)


def size_arg(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="DITN model name or checkpoint (default: DITN x4)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--frames", type=int, default=8, help="DITN clip length")
    ap.add_argument("--size", type=size_arg, default=(128, 96), help="DITN input WxH")
    ap.add_argument("--uv-frames", type=int, default=18, help="UltraVSR clip length")
    ap.add_argument("--uv-size", type=size_arg, default=(32, 24), help="UltraVSR input WxH")
    ap.add_argument("--uv-window", type=int, default=6)
    ap.add_argument("--uv-overlap", type=int, default=2)
    ap.add_argument("--only", choices=("ditn", "ultravsr"), default=None, help="run one row only")
    ap.add_argument("--requests", type=int, default=1, help="vspipe -r (concurrent requests)")
    ap.add_argument("--threads", type=int, default=1, help="core.num_threads in the script")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch threads on both sides; 0: torch's own choice (default 1: on a small shared "
                         "machine OpenMP barriers stall while other jobs hold a core, and the noise swamps the ratio)")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs per side")
    args = ap.parse_args()

    env = dict(os.environ)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
        env["OMP_NUM_THREADS"] = str(args.torch_threads)  # the same in vspipe's process

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        cases = []
        if args.only in (None, "ditn"):
            w, h = args.size
            cases.append(Case(Path(args.model or ditn_model()).name, "DITN",
                              dict(model=args.model or ditn_model(), device=args.device), photo_frames(args.frames, h, w)))
        if args.only in (None, "ultravsr"):
            from vs_superres.models.ultravsr.tiny import write_tiny_release

            base, ckpt = write_tiny_release(tmp / "ultravsr", seed=0)
            w, h = args.uv_size
            kwargs = dict(model="ultravsr", device=args.device, base=str(base), checkpoint=str(ckpt), strength=0.3,
                          window=args.uv_window, window_overlap=args.uv_overlap)
            cases.append(Case(f"ultravsr (tiny, window {args.uv_window}/{args.uv_overlap})", "UltraVSR", kwargs,
                              photo_frames(args.uv_frames, h, w)))
        rows = [run_case(case, tmp, args, env) for case in cases]

    print(f"device {args.device}, torch threads {torch.get_num_threads()}, vspipe -r {args.requests}, "
          f"core.num_threads {args.threads}, best of {args.repeats}; frame 0 excluded on both sides")
    print(f"{'model':<34}{'frames':>7}{'input':>9}{'engine fps':>12}{'vspipe fps':>12}{'ratio':>8}")
    for r in rows:
        print(f"{r['model']:<34}{r['frames']:>7}{r['size']:>9}{r['engine']:>12.3f}{r['vspipe']:>12.3f}{r['ratio']:>8.3f}")
    worst = min(r["ratio"] for r in rows)
    print(f"target ratio >= 0.95: {'met' if worst >= 0.95 else 'NOT met'} (lowest {worst:.3f})")


if __name__ == "__main__":
    main()
