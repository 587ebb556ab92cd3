"""What resumable jobs cost: the whole job through the journal vs in one pass, and the work a
kill loses.

    SUPERRES_WEIGHTS=../shared/weights python benchmarks/bench_jobs.py [--frames 600] [--rounds 3]

A ``--frames``-frame clip (a slow pan over a real photo, 96x64 H.264, 24 fps) is upscaled x4 by
DITN into Matroska, in each round (a) in one pass (the run path with one writer) and (b)
through the journal (segments of ``--segment-seconds``, then the stream-copy join), in the same
process with the same engine; rounds interleave, the ratio is per round. Then the job is run as
a user runs it (``superres upscale``), killed with SIGKILL at a random moment, and run again:
the time lost is (killed run + resumed run) - an uninterrupted run, printed next to one
segment's share of the job.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_video import make_clip  # noqa: E402  (the same real-photo clip)


def in_process(args, folder: Path) -> None:
    from vs_superres import Upscaler
    from vs_superres.cli.upscale import _one_pass
    from vs_superres.jobs import upscale_journaled
    from vs_superres.runtime.loading import resolve_model

    clip = folder / "clip.mp4"
    make_clip(clip, args.frames, 96, 64, fps=24)
    model = resolve_model("ditn-real-x4")
    up = Upscaler(model, device="cpu")

    def one_pass() -> None:
        _one_pass(clip, folder / "one.mkv", lambda: model, lambda cancel: up, None, {})  # the CLI default encoder settings

    def journaled() -> None:
        upscale_journaled(clip, folder / "journal.mkv", model=lambda: model, make_engine=lambda cancel: up,
                          options={}, weights=lambda desc: [], device_kind="cpu",
                          segment_seconds=args.segment_seconds, say=lambda line: None)

    one_pass()  # warm-up
    times: dict[str, list[float]] = {"one pass": [], "journaled": []}
    for _ in range(args.rounds):
        for name, fn in (("one pass", one_pass), ("journaled", journaled)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    ratios = [a / b for a, b in zip(times["one pass"], times["journaled"])]
    print(f"DITN x4, {args.frames} frames 96x64 -> 384x256, Matroska, CPU, {args.rounds} interleaved rounds, "
          f"segments of {args.segment_seconds} s")
    for name, ts in times.items():
        print(f"{name:<10} s per round: " + "  ".join(f"{t:6.2f}" for t in ts))
    print(f"journaled speed / one pass: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    one = (folder / "one.mkv").stat().st_size
    print(f"output {one / 1e6:.2f} MB; the journal holds at most the output's size plus its manifest until the join")


def kill_cost(args, folder: Path) -> None:
    clip = folder / "clip.mp4"
    cmd = [sys.executable, "-m", "vs_superres.cli", "upscale", str(clip), "", "-q", "-y", "--model", "ditn-real-x4",
           "--device", "cpu", "--segment-seconds", str(args.segment_seconds)]

    def run(out: Path) -> float:
        t0 = time.perf_counter()
        subprocess.run([*cmd[:5], str(out), *cmd[6:]], check=True, capture_output=True)
        return time.perf_counter() - t0

    whole = run(folder / "whole.mkv")
    rng = random.Random(args.seed)
    lost = []
    for i in range(args.kills):
        out = folder / f"killed{i}.mkv"
        moment = rng.uniform(0.2, 0.8) * whole
        t0 = time.perf_counter()
        proc = subprocess.Popen([*cmd[:5], str(out), *cmd[6:]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(moment)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.perf_counter() - t0
        resumed = run(out)
        lost.append(killed + resumed - whole)
        same = out.read_bytes() == (folder / "whole.mkv").read_bytes()
        print(f"kill at {moment:5.1f} s of {whole:5.1f} s: killed run {killed:5.1f} s + resumed {resumed:5.1f} s; "
              f"lost {lost[-1]:5.1f} s; file equal to the uninterrupted one: {same}")
    segments = max(1, round(args.frames / (args.segment_seconds * 24)))
    print(f"median time lost per kill {statistics.median(lost):.1f} s; one segment's share of the job "
          f"{whole / segments:.1f} s (plus start-up: the process, the model, decoding up to the first segment not kept)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--segment-seconds", type=float, default=5.0)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        in_process(args, Path(tmp))
        kill_cost(args, Path(tmp))


if __name__ == "__main__":
    main()
