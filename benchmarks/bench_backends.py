"""DITN x4 backends on this CPU: PyTorch, ONNX Runtime and OpenVINO, through the engine and alone.

    SUPERRES_WEIGHTS=../shared/weights python benchmarks/bench_backends.py [--rounds 7] [--threads 2]

One 320x180 photo frame -> 1280x720, fp32, ``--threads`` threads in every runtime. Rows:

- ``torch (engine)``: ``Upscaler("ditn-real-x4")`` with its defaults: the fused PyTorch path;
- ``onnxruntime (engine)``, ``openvino (engine)``: the same ``Upscaler`` with ``backend=...``
  (the exported graph from the cache, the engine's tiling, clamping and frame handling);
- ``onnxruntime alone``, ``openvino alone``: the runtime's own session on the same cached
  graph file with the same thread count, fed the same float32 array: what the runtime costs
  without the engine.

Every round times each row once, interleaved (in an order rotated every round, so that no row
always follows the same one), so load on the machine slows a round's rows alike; ratios are
taken per round, and their median and spread printed. The goal of issue 26: the
engine adds at most 5% over each runtime alone. The max difference of each row's output to the
torch row is printed (outputs of the runtimes alone are clamped like the engine's). The load
average before and after is printed: the development machine is shared.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _frame(h: int = 180, w: int = 320):
    import numpy as np
    from skimage import data
    from skimage.transform import resize

    photo = resize(data.astronaut(), (h, w), anti_aliasing=True).astype(np.float32)
    return np.ascontiguousarray(photo.transpose(2, 0, 1)[None])


def _alone_onnxruntime(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(["output"], {"input": x})[0]


def _alone_openvino(path: Path, threads: int):
    import openvino as ov

    core = ov.Core()
    model = core.compile_model(core.read_model(str(path)), "CPU",
                               {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    request = model.create_infer_request()
    return lambda x: request.infer({"input": x})["output"]


def _timed(run, frame, spent: list[float]):
    t0 = time.perf_counter()
    out = run(frame)
    spent.append(time.perf_counter() - t0)
    return out


def _graph_path(backend: str) -> Path:
    """The cached graph the engine runs for ``backend`` (exported by its first ``Upscaler``)."""
    from vs_superres.runtime.backends import runtime_version
    from vs_superres.runtime.exported import graph_cache_dir

    version = runtime_version(backend).replace("/", "_")
    (path,) = graph_cache_dir().glob(f"ditn-989dc21e2379c6924a6b-fp32-{backend}-{version}-g*.onnx")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import onnxruntime
    import openvino
    import torch

    from vs_superres import Upscaler

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    x = _frame()
    engines = {"torch": Upscaler("ditn-real-x4", device="cpu")}
    for backend in ("onnxruntime", "openvino"):
        engines[backend] = Upscaler("ditn-real-x4", device="cpu", backend=backend)
    tensor = torch.from_numpy(x)
    # The engine's own time, measured directly: each engine's runtime calls are timed inside
    # its runner, so (engine row) - (runtime inside it) is what the engine adds in that very call,
    # whatever the load did to the other rows.
    inside: dict[str, list[float]] = {"onnxruntime": [], "openvino": []}
    for backend, spent in inside.items():
        runner = engines[backend]._runner
        runner.run = (lambda run, spent: lambda frame: _timed(run, frame, spent))(runner.run, spent)
    rows = {
        "torch (engine)": lambda: engines["torch"].upscale(tensor).numpy(),
        "onnxruntime (engine)": lambda: engines["onnxruntime"].upscale(tensor).numpy(),
        "onnxruntime alone": (lambda run: lambda: np.clip(run(x), 0, 1))(_alone_onnxruntime(_graph_path("onnxruntime"), args.threads)),
        "openvino (engine)": lambda: engines["openvino"].upscale(tensor).numpy(),
        "openvino alone": (lambda run: lambda: np.clip(run(x), 0, 1))(_alone_openvino(_graph_path("openvino"), args.threads)),
    }
    outputs = {name: run() for name, run in rows.items()}  # warm-up (first-shape compilation) and outputs
    for run in rows.values():
        run()
    for spent in inside.values():
        spent.clear()
    times: dict[str, list[float]] = {name: [] for name in rows}
    names = list(rows)
    shuffler = random.Random(0)
    for r in range(args.rounds):
        # A new order every round (seeded): a runtime's pool threads still spinning after its
        # call (ONNX Runtime's and OpenMP's default) slow whichever row comes next. Rotating one
        # order was not enough: it keeps every row's predecessor, and "openvino (engine)" always
        # came after "onnxruntime alone" (+14% that the engine's own 1.4% of a frame did not explain).
        order = names[:]
        shuffler.shuffle(order)
        for name in order:
            t0 = time.perf_counter()
            rows[name]()
            times[name].append(time.perf_counter() - t0)
    load_after = os.getloadavg()

    print(f"DITN x4, 320x180 -> 1280x720 (astronaut photo), CPU, fp32, {args.threads} threads, {args.rounds} interleaved rounds")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}, python {sys.version.split()[0]}")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} (the machine is shared)")
    base = times["torch (engine)"]
    print(f"{'row':24s} {'s/frame (median)':>16s} {'frames/s':>9s} {'vs torch (min-max)':>20s} {'max|diff| to torch':>19s}")
    for name, t in times.items():
        ratios = [b / s for b, s in zip(base, t)]
        diff = float(np.abs(outputs[name] - outputs["torch (engine)"]).max())
        print(f"{name:24s} {statistics.median(t):16.3f} {1 / statistics.median(t):9.2f} "
              f"{statistics.median(ratios):8.2f} ({min(ratios):.2f}-{max(ratios):.2f}) {diff:19.1e}")
    for backend in ("onnxruntime", "openvino"):
        over = [e / a - 1 for e, a in zip(times[f"{backend} (engine)"], times[f"{backend} alone"])]
        print(f"engine overhead over {backend} alone: median {100 * statistics.median(over):+.1f}% "
              f"(per round {', '.join(f'{100 * o:+.1f}' for o in over)})")
    for backend, spent in inside.items():
        engine_row = times[f"{backend} (engine)"]
        own = [total - runtime for total, runtime in zip(engine_row, spent)]
        print(f"engine's own time around {backend} (same calls): median {1000 * statistics.median(own):.1f} ms, "
              f"min {1000 * min(own):.1f} ms per frame = {100 * statistics.median(own) / statistics.median(spent):.2f}% "
              f"of the runtime's {statistics.median(spent):.3f} s")
    print("per-round s/frame: " + "; ".join(f"{n}: {', '.join(f'{v:.3f}' for v in t)}" for n, t in times.items()))
    for up in engines.values():
        up.close()


if __name__ == "__main__":
    main()
