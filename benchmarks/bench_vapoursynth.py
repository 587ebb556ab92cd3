"""core.superres under vspipe against the engine on the same frames: DITN and a tiny UltraVSR.

Run where VapourSynth and vs-superres are installed, e.g. in the trixie root:

    tools/vs_env.sh python benchmarks/bench_vapoursynth.py [--rounds 3] [--modes default,one]
        [--frames 8] [--size 320x180] [--uv-frames 18] [--uv-size 32x24] [--only ultravsr]

Two threading modes, each as a user runs it:

- ``default``: nothing set. ``core.num_threads`` is VapourSynth's (the machine's logical
  cores), torch picks its own thread count, vspipe keeps its default ``-r`` (as many requests
  as the core has threads); ``OMP_NUM_THREADS`` is removed from both sides' environment;
- ``one``: one thread everywhere (``OMP_NUM_THREADS=1``, ``core.num_threads = 1``, ``-r 1``).

What is timed, on both sides, is the same work, each side in a fresh process with the same
environment: output frames 1..N-1 after frame 0 has been rendered. Frame 0 carries what is paid
once (model load, first-call kernel set-up, for UltraVSR the first temporal window), so it is
excluded everywhere:

- engine: a child process renders frame 0, then times ``Upscaler.render_frame`` frame by frame
  for frames 1..N-1 (the random-access path the plugin uses);
- vspipe: a run of N frames minus a run of 1 frame, each as reported by vspipe itself (frame
  output only, not Python start-up or script evaluation).

Each round runs the engine, then vspipe, for every mode and model, so a change of load on a
shared machine reaches both sides of a ratio alike; the rounds' ratios are printed with their
median and spread. The target is a ratio (vspipe fps / engine fps) of at least 0.95 in every
mode: the plugin adds no measurable cost to the engine. UltraVSR uses a tiny release written
from a seed (``vs_superres.models.ultravsr.tiny``) with a fixed strength, so no large weights
are needed; DITN needs ``ditn/DITN_Real_x4.pth`` (registered, or under ``$SUPERRES_WEIGHTS``).
Load from other processes changes everything (two torch threads on two busy cores spin against
each other): the load average is printed before and after; measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import vapoursynth as vs
    core = vs.core
    {threads}
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
MODES = ("default", "one")


@dataclasses.dataclass
class Case:
    """One benchmark row: a plugin function and the engine configured identically."""

    label: str
    function: str  # core.superres.<function>
    plugin_kwargs: dict  # the plugin's arguments, also the engine's (model and options)
    frames: np.ndarray  # [T, H, W, 3]


def mode_env(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if mode == "one":
        env["OMP_NUM_THREADS"] = "1"
    return env


def ditn_model() -> str:
    from vs_superres.runtime import registry

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


def engine_child(frames_path: str, kwargs_json: str) -> None:
    """In a fresh process: frame 0, then frames 1..N-1 timed; prints seconds and torch threads."""
    import torch

    from vs_superres import Upscaler

    frames = np.load(frames_path)
    kw = json.loads(kwargs_json)
    up = Upscaler(kw.pop("model"), **kw)
    t = len(frames)
    tensors = [torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))) for f in frames]

    def render(n: int) -> None:
        up.render_frame(n, t, {i: tensors[i] for i in up.frames_needed(n, t)})

    render(0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for n in range(1, t):
        render(n)
    print(json.dumps({"seconds": time.perf_counter() - start, "torch_threads": torch.get_num_threads(),
                      "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}))


def time_engine(frames_path: Path, case: Case, env: dict) -> tuple[float, int, int]:
    """Seconds for frames 1..N-1, torch's thread count and the minor page faults meanwhile."""
    r = subprocess.run([sys.executable, __file__, "--engine-child", str(frames_path), json.dumps(case.plugin_kwargs)],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"the engine's run failed:\n{r.stderr}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out["seconds"], out["torch_threads"], out["faults"]


def time_vspipe(script: Path, count: int, mode: str, env: dict) -> tuple[float, int]:
    """vspipe's time for frames 1..N-1 (an N-frame run minus a 1-frame run) and its minor page
    faults (whole runs, the same difference)."""
    vspipe = shutil.which("vspipe") or sys.exit("vspipe is not on PATH")
    requests = ["-r", "1"] if mode == "one" else []

    def run(last: int) -> tuple[float, int]:
        faults = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
        start = time.perf_counter()
        r = subprocess.run([vspipe, *requests, "--end", str(last), str(script), "--"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        wall = time.perf_counter() - start
        if r.returncode != 0:
            sys.exit(f"vspipe failed:\n{r.stderr}")
        report = VSPIPE_REPORT.search(r.stderr)
        faults = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - faults
        return float(report.group(2)) if report else wall, faults  # frame output only, when reported

    (one, faults_one), (full, faults_full) = run(0), run(count - 1)
    if full <= one:
        sys.exit(f"vspipe took {full:.2f} s for {count} frames and {one:.2f} s for 1: the machine is too "
                 "busy to measure; retry later or with more frames")
    return full - one, faults_full - faults_one


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def size_arg(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--engine-child":
        engine_child(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="DITN model name or checkpoint (default: DITN x4)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=8, help="DITN clip length")
    ap.add_argument("--size", type=size_arg, default=(320, 180), help="DITN input WxH")
    ap.add_argument("--uv-frames", type=int, default=18, help="UltraVSR clip length")
    ap.add_argument("--uv-size", type=size_arg, default=(32, 24), help="UltraVSR input WxH")
    ap.add_argument("--uv-window", type=int, default=6)
    ap.add_argument("--uv-overlap", type=int, default=2)
    ap.add_argument("--only", choices=("ditn", "ultravsr"), default=None, help="run one model only")
    ap.add_argument("--modes", default=",".join(MODES), help="threading modes, of: " + ", ".join(MODES))
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each times every row once on both sides")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        sys.exit(f"--modes: choose from {', '.join(MODES)}")

    load_before = load()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        cases = []
        if args.only in (None, "ditn"):
            w, h = args.size
            model = args.model or ditn_model()
            cases.append(Case(f"{Path(model).name} {w}x{h}", "DITN", dict(model=model, device=args.device),
                              photo_frames(args.frames, h, w)))
        if args.only in (None, "ultravsr"):
            from vs_superres.models.ultravsr.tiny import write_tiny_release

            base, ckpt = write_tiny_release(tmp / "ultravsr", seed=0)
            w, h = args.uv_size
            kwargs = dict(model="ultravsr", device=args.device, base=str(base), checkpoint=str(ckpt), strength=0.3,
                          window=args.uv_window, window_overlap=args.uv_overlap)
            cases.append(Case(f"ultravsr tiny {w}x{h} w{args.uv_window}/{args.uv_overlap}", "UltraVSR", kwargs,
                              photo_frames(args.uv_frames, h, w)))
        rows: dict[tuple[str, str], dict] = {}
        for case in cases:
            frames_path = tmp / f"{case.function}.npy"
            np.save(frames_path, case.frames)
            for mode in modes:
                script = tmp / f"{case.function}-{mode}.vpy"
                threads = "core.num_threads = 1" if mode == "one" else ""
                script.write_text(SCRIPT.format(frames=str(frames_path), threads=threads, function=case.function,
                                                kwargs=case.plugin_kwargs))
                rows[case.label, mode] = dict(case=case, frames_path=frames_path, script=script, engine=[], vspipe=[],
                                               faults=[])
        for r in range(args.rounds):
            for (label, mode), row in rows.items():
                env = mode_env(mode)
                timed = len(row["case"].frames) - 1
                seconds, row["torch_threads"], engine_faults = time_engine(row["frames_path"], row["case"], env)
                row["engine"].append(timed / seconds)
                seconds, vspipe_faults = time_vspipe(row["script"], len(row["case"].frames), mode, env)
                row["vspipe"].append(timed / seconds)
                row["faults"].append((engine_faults / timed, vspipe_faults / timed))
                print(f"round {r + 1} {mode:<8}{label:<34} engine {row['engine'][-1]:.3f} fps, vspipe "
                      f"{row['vspipe'][-1]:.3f} fps, ratio {row['vspipe'][-1] / row['engine'][-1]:.3f}; minor page "
                      f"faults per frame: engine {engine_faults / timed:.0f}, vspipe {vspipe_faults / timed:.0f}",
                      flush=True)

    cores = os.cpu_count()
    print(f"\ndevice {args.device}, {cores} logical cores, {args.rounds} rounds (engine then vspipe, each a fresh "
          f"process); frame 0 excluded on both sides; load average before {load_before}, after {load()}")
    print("modes: default = core.num_threads and vspipe -r left to VapourSynth, torch's own thread count; "
          "one = one thread everywhere")
    print(f"{'mode':<9}{'model':<34}{'frames':>7}{'torch':>6}  {'engine fps per round':<24}{'vspipe fps per round':<24}"
          f"{'ratio per round':<22}{'median (min-max)'}")
    worst = float("inf")
    for (label, mode), row in rows.items():
        ratios = [v / e for v, e in zip(row["vspipe"], row["engine"])]
        worst = min(worst, statistics.median(ratios))
        print(f"{mode:<9}{label:<34}{len(row['case'].frames) - 1:>7}{row['torch_threads']:>6}  "
              f"{' '.join(f'{v:7.3f}' for v in row['engine']):<24}{' '.join(f'{v:7.3f}' for v in row['vspipe']):<24}"
              f"{' '.join(f'{v:6.3f}' for v in ratios):<22}{statistics.median(ratios):.3f} "
              f"({min(ratios):.3f}-{max(ratios):.3f})")
    print(f"target median ratio >= 0.95 in every row: {'met' if worst >= 0.95 else 'NOT met'} (lowest {worst:.3f})")


if __name__ == "__main__":
    main()
