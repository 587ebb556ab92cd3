"""DITN through a real ComfyUI workflow against the engine on the same frames, the peak memory
of LoadVideo -> Upscale Video -> SaveVideo at two clip lengths, and our nodes against ComfyUI's
built-in "Upscale Image (using Model)" on the same DITN checkpoint.

    python benchmarks/bench_comfyui.py [--size 128x96] [--frames 4] [--repeats 3] [--video-frames 30,600]
                                       [--stock-size 320x180] [--stock-tiled 600x400] [--no-stock]

The ComfyUI environment is the tests' (tools/comfy_env.sh builds it once). ComfyUI's start-up
and the model load are excluded: the server is started and one warm-up run made first; each
timed run changes only the input file, so ComfyUI re-runs LoadImage and the upscale node while
the loader's cached model handle is reused. Both sides run torch on one thread (the server with
OMP_NUM_THREADS=1). The ratio printed is engine time / ComfyUI time (target >= 0.95). The
video part runs LoadVideo -> Upscale Video -> SaveVideo on ``--video-frames`` frames with the
tiny DITN and samples the server's resident memory every 50 ms.
DITN needs ditn/DITN_Real_x4.pth under $SUPERRES_WEIGHTS; without it the tiny DITN is used.

The comparison with the built-in node: the checkpoint is put into the server's
``models/upscale_models/`` (where a stock ComfyUI user puts it); the built-in loader reads it
through spandrel, installed for this run only (``pip install --no-deps --target``, beside the
test environment, which has no spandrel). Spandrel imports torchvision names at import time
for architectures other than DITN; the test environment's torchvision (a stand-in, see
tools/comfy_env.sh) lacks them, so this run adds a wider stand-in whose names exist and fail
when called: spandrel's DITN uses no torchvision operation. Both nodes run in one server on
one torch thread, on the same LoadImage output; printed: the largest difference, each side's
best time and the ratio, and, on an image larger than the built-in node's 512-px tile, each
side's largest difference from the untiled network (ours tiled with ``tile=256``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "comfyui"), str(REPO / "tests")]
os.environ.setdefault("SUPERRES_FAMILIES", "")

from conftest import ComfyServer, make_base  # noqa: E402
from graphs import image_prompt, node  # noqa: E402


def installed_layout(site: Path) -> Path:
    pkg = site / "vs_superres"
    pkg.mkdir(parents=True)
    for entry in (REPO / "vs_superres").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name in ("models", "comfy_nodes", "ffmpeg_filter"):
        (pkg / name).symlink_to(REPO / name)
    return site


def video_memory(server, base: Path, frames: int) -> None:
    """LoadVideo -> Upscale Video -> SaveVideo on ``frames`` frames 64x48 (tiny DITN); the
    server's peak resident memory while it runs."""
    import av
    import psutil
    from skimage import data

    name = f"long_{frames}.mp4"
    with av.open(str(base / "input" / name), "w") as c:
        s = c.add_stream("mpeg4", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            img = np.ascontiguousarray(np.roll(data.astronaut()[:48, :64], i, axis=1))
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    proc = psutil.Process(server.proc.pid)
    idle = proc.memory_info().rss
    peak = [idle]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    prompt = {
        "1": node(server, "LoadVideo", file=name),
        "2": node(server, "SuperResLoadDITN", model="superres/tiny_ditn.pth", device="cpu"),
        "3": node(server, "SuperResUpscaleVideo", model=["2", 0], video=["1", 0]),
        "4": node(server, "SaveVideo", video=["3", 0], filename_prefix=f"video/long{frames}", format="auto", codec="auto"),
    }
    t0 = time.perf_counter()
    hist = server.run(prompt, timeout=1800)
    done.set()
    assert hist["status"]["status_str"] == "success", hist["status"]
    mib = 2 ** 20
    out_f32 = frames * 256 * 192 * 3 * 4
    print(f"video workflow: {frames} frames 64x48 -> 256x192 in {time.perf_counter() - t0:.1f} s; server RSS before "
          f"{idle / mib:.0f} MiB, peak {peak[0] / mib:.0f} MiB (+{(peak[0] - idle) / mib:.0f} MiB); the clip as "
          f"float32 output would be {out_f32 / mib:.1f} MiB")


WIDE_STANDIN = '''"""torchvision stand-in for bench_comfyui.py: every module and name exists; calling one fails."""
import importlib.abc, importlib.machinery, sys, types


class _Absent:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Absent(f"{self._name}.{name}")

    def __call__(self, *args, **kwargs):
        raise ImportError(f"{self._name} is not available (bench_comfyui.py's torchvision stand-in)")

    def __mro_entries__(self, bases):
        return (object,)


class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Absent(f"{self.__name__}.{name}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Module(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())
__path__ = []
__version__ = "0.0.0+standin"


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Absent(f"torchvision.{name}")
'''


def spandrel_site(tmp: Path, env: Path) -> Path:
    """spandrel (no dependencies) and the wide torchvision stand-in in a folder of their own."""
    site = tmp / "spandrel_site"
    subprocess.run([str(env / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), "spandrel"], check=True)
    (site / "torchvision").mkdir()
    (site / "torchvision" / "__init__.py").write_text(WIDE_STANDIN)
    return site


def stock_comparison(server, base: Path, weights: Path, tmp: Path, args) -> None:
    """Ours against the built-in ImageUpscaleWithModel on the same checkpoint, in the server."""
    from skimage import data

    from vs_superres import Upscaler

    shutil.copy(weights, base / "models" / "upscale_models" / "DITN_Real_x4.pth")
    for label, size, photo in (("one tile", args.stock_size, data.astronaut()), ("tiled", args.stock_tiled, data.coffee())):
        w, h = (int(v) for v in size.split("x"))
        Image.fromarray(photo[:h, :w]).save(base / "input" / f"stock_{w}x{h}.png")
        tile = {"tile": 256} if label == "tiled" else {}
        times: dict[str, list[float]] = {"ours": [], "built-in": []}
        for repeat in range(args.repeats + 1):
            ours = {
                "1": node(server, "LoadImage", image=f"stock_{w}x{h}.png"),
                "2": node(server, "SuperResLoadDITN", model="ditn-real-x4", device="cpu"),
                "3": node(server, "SuperResUpscaleImage", model=["2", 0], image=["1", 0], **tile),
                "4": node(server, "SuperResProbeSaveImage", image=["3", 0], name=f"ours_{repeat}"),
            }
            stock = {
                "1": node(server, "LoadImage", image=f"stock_{w}x{h}.png"),
                "2": node(server, "UpscaleModelLoader", model_name="DITN_Real_x4.pth"),
                "3": node(server, "ImageUpscaleWithModel", upscale_model=["2", 0], image=["1", 0]),
                "4": node(server, "SuperResProbeSaveImage", image=["3", 0], name=f"stock_{repeat}"),
            }
            for side, prompt in (("ours", ours), ("built-in", stock)):
                t0 = time.perf_counter()
                hist = server.run(prompt, timeout=1800)
                assert hist["status"]["status_str"] == "success", (side, hist["status"])
                times[side].append(time.perf_counter() - t0)
        got = np.load(server.output(f"ours_{args.repeats}.npy"))[0]
        stock_out = np.load(server.output(f"stock_{args.repeats}.npy"))[0]
        best = {k: min(v[1:]) for k, v in times.items()}  # the first run loads the model
        line = (f"built-in node comparison, {label} ({w}x{h}, DITN_Real_x4.pth from models/upscale_models/): "
                f"ours {best['ours']:.2f} s, built-in {best['built-in']:.2f} s, speed ratio "
                f"{best['built-in'] / best['ours']:.1f}x; largest difference {np.abs(got - stock_out).max():.2e}")
        if label == "tiled":
            with Upscaler("ditn-real-x4", device="cpu", tile=0) as up:
                x = torch.from_numpy(photo[:h, :w].astype(np.float32) / 255).movedim(-1, 0)
                whole = up.upscale(x).movedim(1, -1).numpy()[0]
            line += (f"; from the untiled network: ours (tile 256, blended) {np.abs(got - whole).max():.2e}, "
                     f"built-in (tile 512, overlap 32) {np.abs(stock_out - whole).max():.2e}")
        print(line)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="128x96")
    p.add_argument("--frames", type=int, default=4, help="images per batch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--video-frames", default="30,600", help="clip lengths of the video memory measurement")
    p.add_argument("--stock-size", default="320x180", help="image size of the built-in node comparison")
    p.add_argument("--stock-tiled", default="600x400", help="image larger than the built-in node's 512-px tile")
    p.add_argument("--no-stock", action="store_true", help="skip the comparison with the built-in node")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(1)
    env = Path(subprocess.run(["bash", str(REPO / "tools" / "comfy_env.sh"), "--build-only"], check=True,
                              capture_output=True, text=True).stdout.strip().splitlines()[-1])
    from skimage import data

    from vs_superres import Upscaler
    from vs_superres.cli.comfyui import install
    from vs_superres.models.ditn.arch import build

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = make_base(tmp / "base", {"superres_probe": REPO / "tests" / "comfyui" / "probe_pack"})
        install(base)
        weights = Path(os.environ.get("SUPERRES_WEIGHTS", "/nonexistent")) / "ditn" / "DITN_Real_x4.pth"
        torch.manual_seed(0)
        torch.save(build({"dim": 8, "num_itl": 1, "num_sal": 1}).state_dict(), base / "models" / "superres" / "tiny_ditn.pth")
        model, engine_model = ("ditn-real-x4", "ditn-real-x4") if weights.is_file() else \
            ("superres/tiny_ditn.pth", base / "models" / "superres" / "tiny_ditn.pth")
        photo = data.astronaut()[:h, :w]
        batch = np.stack([np.roll(photo, 7 * i, axis=1) for i in range(args.frames)])
        paths = [installed_layout(tmp / "site"), REPO / "tests"]
        if not args.no_stock and weights.is_file():
            paths.insert(0, spandrel_site(tmp, env))
        server = ComfyServer(env, base, paths)
        try:
            for i in range(args.repeats + 1):
                Image.fromarray(batch[0]).save(base / "input" / f"b{i}.png")
            comfy_times = []
            for i in range(args.repeats + 1):
                t0 = time.perf_counter()
                hist = server.run(image_prompt(server, f"b{i}.png", model, out=f"b{i}", loader_type="SuperResLoadDITN"))
                assert hist["status"]["status_str"] == "success", hist["status"]
                comfy_times.append(time.perf_counter() - t0)
            comfy_best = min(comfy_times[1:])  # the first run loads the model
            frame = torch.from_numpy(batch[0].astype(np.float32) / 255).movedim(-1, 0)[None]
            with Upscaler(engine_model, device="cpu") as up:
                up.upscale(frame)
                engine_times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    up.upscale(frame)
                    engine_times.append(time.perf_counter() - t0)
            engine_best = min(engine_times)
            print(f"DITN ({model}) on {w}x{h}, best of {args.repeats}: engine {engine_best * 1000:.0f} ms, "
                  f"ComfyUI workflow {comfy_best * 1000:.0f} ms, ratio {engine_best / comfy_best:.3f}")

            for frames in (int(n) for n in args.video_frames.split(",")):
                video_memory(server, base, frames)
            if not args.no_stock:
                if weights.is_file():
                    stock_comparison(server, base, weights, tmp, args)
                else:
                    print("built-in node comparison skipped: ditn/DITN_Real_x4.pth is not under $SUPERRES_WEIGHTS")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
