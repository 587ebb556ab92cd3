"""Speed and memory of ``superres-filter`` against the engine alone, on the same frames.

    SUPERRES_WEIGHTS=../shared/weights python benchmarks/bench_ffmpeg_filter.py [--frames 8]
        [--rounds 3] [--model ditn-real-x4] [--size 320x180] [--rss-frames 30,600] [--rss-model MODEL]

For each carrier (y4m, Matroska) it times the filter process from its start line (the model is
loaded, the first frame decoded) to its "frames written" line (the last frame flushed; the
interpreter's exit after it is printed apart, a fixed cost per run), reading ffmpeg-made ``testsrc2`` frames from a
file on stdin and writing to /dev/null, and the engine's ``Upscaler.stream`` on the same
frames already in memory, in ``--rounds`` interleaved rounds; it prints frames per second, the
ratio (target >= 0.95; median and min-max over the rounds) and the per-frame overhead in ms.
The Matroska input carries rawvideo, as ``ffmpeg -c:v rawvideo -f matroska -`` writes it. Then the filter's peak RSS for a short and a long clip (flat means
memory does not grow with the video's length; ``--rss-model`` lets a fast model stand in,
e.g. the tests' ``temporal-mean-x2`` with ``PYTHONPATH=tests SUPERRES_FAMILIES=families.temporal_mean``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_input(folder: Path, carrier: str, size: str, frames: int) -> Path:
    path = folder / f"in-{carrier}-{frames}.{'y4m' if carrier == 'y4m' else 'mkv'}"
    # Matroska as the example writes it: rawvideo (the common 8-bit 4:2:0 case)
    fmt = ["-f", "yuv4mpegpipe"] if carrier == "y4m" else ["-c:v", "rawvideo", "-f", "matroska"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24",
                    "-frames:v", str(frames), "-pix_fmt", "yuv420p", *fmt, str(path)], check=True)
    return path


def run_filter(path: Path, model: str, threads: int) -> tuple[float, float, int]:
    """(seconds from the start line to the "frames written" line, seconds from there to the
    process's exit, peak RSS in KiB) of one filter process. The start line comes once the model
    is loaded and the first frame decoded; the "written" line once the last frame is flushed to
    stdout, so the first span is the per-frame work and the second the interpreter's teardown,
    a fixed cost per run."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with open(path, "rb") as source, open(os.devnull, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "vs_superres.ffmpeg_filter.filter_cmd", "-m", model,
                                 "--matrix", "bt709", "--device", "cpu", "-nostats"],
                                stdin=source, stdout=sink, stderr=subprocess.PIPE, env=env)
        assert proc.stderr is not None
        while True:
            line = proc.stderr.readline()
            if not line or b"-> x" in line:
                break
        start = time.perf_counter()
        written = None
        for line in proc.stderr:
            if b"frames written" in line:
                written = time.perf_counter()
        _, code, usage = os.wait4(proc.pid, 0)
        end = time.perf_counter()
    if code or written is None:
        raise SystemExit(f"superres-filter failed on {path} (wait status {code})")
    return written - start, end - written, usage.ru_maxrss


def engine_seconds(path: Path, model: str, threads: int) -> tuple[float, int]:
    import torch

    from vs_superres import Upscaler
    from vs_superres.media import VideoReader

    torch.set_num_threads(threads)
    with VideoReader(path) as reader:
        frames = [torch.from_numpy(f.rgb) for f in reader]
    up = Upscaler(model, device="cpu")
    # No warm-up call: the filter's clock also starts before its first model call, so both
    # sides pay the first call's one-off cost (oneDNN primitive creation) once.
    start = time.perf_counter()
    count = sum(1 for _ in up.stream(iter(frames), total=len(frames)))
    return time.perf_counter() - start, count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ditn-real-x4")
    p.add_argument("--size", default="320x180")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rss-frames", default="30,600")
    p.add_argument("--rss-model", default=None, help="model for the RSS runs (default --model)")
    p.add_argument("--skip-speed", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_speed:
            inputs = {c: make_input(folder, c, args.size, args.frames) for c in ("y4m", "matroska")}
            rounds: dict[str, list[tuple[float, float, int, int]]] = {c: [] for c in inputs}
            exits: list[float] = []
            for round_ in range(args.rounds):  # interleaved, so load drifts hit both sides alike
                for carrier, path in inputs.items():
                    engine, count = engine_seconds(path, args.model, args.threads)
                    bridge, teardown, rss = run_filter(path, args.model, args.threads)
                    rounds[carrier].append((engine, bridge, count, rss))
                    exits.append(teardown)
                    print(f"round {round_ + 1} {carrier:9s}: engine {count / engine:.3f} fps, filter "
                          f"{count / bridge:.3f} fps, ratio {engine / bridge:.3f}", flush=True)
            print("carrier   model, input             engine fps  filter fps  ratio median (min-max)  "
                  "overhead ms/frame  peak RSS")
            for carrier, runs in rounds.items():
                ratios = sorted(e / b for e, b, _, _ in runs)
                engine = statistics.median(e for e, _, _, _ in runs)
                bridge = statistics.median(b for _, b, _, _ in runs)
                count = runs[0][2]
                print(f"{carrier:9s} {args.model} {args.size} x{count}  {count / engine:10.3f}  "
                      f"{count / bridge:10.3f}  {statistics.median(ratios):.3f} ({ratios[0]:.3f}-{ratios[-1]:.3f})"
                      f"         {(bridge - engine) / count * 1000:+8.1f}  {max(r for *_, r in runs) / 1024:.0f} MiB",
                      flush=True)
            print(f"interpreter exit after the last frame (fixed per run, not in the ratio): median "
                  f"{statistics.median(exits):.2f} s", flush=True)
        model = args.rss_model or args.model
        for frames in (int(n) for n in args.rss_frames.split(",")):
            path = make_input(folder, "y4m", args.size, frames)
            seconds, _, rss = run_filter(path, model, args.threads)
            print(f"RSS       {model} {args.size} x{frames}: peak {rss / 1024:.0f} MiB ({seconds:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
