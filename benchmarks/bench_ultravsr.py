"""UltraVSR costs: TAI peak memory, analytic FLOPs per output frame, optional GPU seconds per frame.

    SUPERRES_WEIGHTS=../shared/weights python benchmarks/bench_ultravsr.py \
        [--memory] [--flops] [--gpu-timing] [--cpu] [--windows 2,4,8,16] [--size 40x32] [--threads 2]
        [--rounds 5] [--cpu-frames 4] [--cpu-profile 12] [--lora-ranks 4,32]

With no section named, ``--memory`` and ``--flops`` run. Every ratio in a table comes from
numbers measured in the same run.

1. ``--memory``: peak memory of ONE temporal window of T frames through
   ``UltraVSRPipeline.from_pretrained(tiny release, strength=0.3, frames_per_batch=b)`` for
   b = 1 (TAI, the released default) and b = T (all frames in every spatial layer), on the
   tiny but structurally complete release of ``models/ultravsr/tiny.py`` (fp32, CPU). The
   tiles are made larger than the frame, so nothing is tiled and only TAI differs. Each
   configuration runs in a fresh child process, after loading, computing the clip state
   (prompt embedding) and a 1-frame warm-up window at the same frame size (kernel selection,
   the cached bicubic matrices). Two measures:

   * *live tensors*: the exact peak of the bytes held by tensors the window allocates, from
     a ``TorchDispatchMode`` that sees every aten op's outputs, counts each new storage once
     (views and in-place results share their input's storage and add nothing) and subtracts
     it when the storage is freed (a weakref callback on the storage, as torch's own
     ``MemTracker`` does). Weights, the input frames and the cached prompt embedding exist
     before the window and are not counted; kernel-internal scratch (oneDNN workspaces) is
     not a tensor and is not seen. This number does not depend on the allocator, threads
     or machine load. The pipeline's progress callback tags each op with its stage, so the
     peak per stage is printed too, for the longest window.
   * *peak RSS*: ``VmHWM - VmRSS`` of the child around the window call, with the high-water
     mark reset just before it (``/proc/self/clear_refs`` = 5) after ``malloc_trim(0)``.
     This includes allocator slack and scratch buffers; where the reset is not allowed it
     falls back to ``ru_maxrss`` (a lifetime peak, marked ``*``).

   The table also gives ``max |out(b=1) - out(b=T)|`` (the output must not depend on b).
   It gives no seconds: a tiny model on a shared CPU says nothing about the speed of TAI.

2. ``--flops``: analytic FLOPs per output frame of the full-size SD-2.1-base UltraVSR
   (``UltraVSRUNet(**SD21_BASE_UNET_CONFIG)``, ``UltraVSRAutoencoder(**SD21_BASE_VAE_CONFIG)``)
   built on the meta device and run on meta tensors under
   ``torch.utils.flop_counter.FlopCounterMode`` (no weights, no memory; it takes seconds). The counter
   counts convolutions, matrix products (linear layers, RTS channel attention) and attention
   (on the meta device ``scaled_dot_product_attention`` decomposes to two ``bmm``, which are
   counted; a self-check at start-up asserts the counts of a conv, a linear and an SDPA
   against their formulas). One multiply-add = 2 FLOPs. Norms, activations, softmax and
   other element-wise work are not counted, by the usual convention.

   Per stage, one tile of each distinct shape is counted with T = 1 and T = 2 frames; the
   difference is the cost of one more frame in a long window (spatial layers are per frame,
   RTS convs per frame, RTS neighbour attention two frame pairs per frame). F(T) is exactly
   linear in T (checked with T = 3), F(1) differs from the per-frame cost only by the RTS
   attention a single frame skips (printed). That per-frame cost times the number of tiles
   of the shape, summed over the grid, is the stage's cost per output frame. The text
   encoder runs once per clip and is left out; LoRA adapters are not built (merged LoRA, the
   default, costs nothing; ``--cpu`` counts the unmerged adapters). The shapes come from ``configs.SD21_BASE_*_CONFIG``,
   which its module marks as written from memory of the public configs (``UNVERIFIED``).
   Grids: *official* = the released ``inference_arch.py`` grids with the released defaults
   (UNet 96/32, decoder 96/10, encoder 3000/32, ``tiles.official_*_grid``); *ours* = the
   pipeline's balanced grids with our defaults (``UltraVSRSettings()``, printed with the
   table; encoder tiles aligned to 8 px), both taken from ``UltraVSRPipeline._grid``, the
   code the pipeline runs; *untiled* = one tile, for reference. The last row multiplies by
   the temporal-window overlap: the engine runs windows of 30 frames overlapping by 4 (every
   output frame is computed 30/26 times on average), the release runs 30-frame intervals
   without overlap (or the whole clip at once below 1440p).

3. ``--gpu-timing``: only where CUDA is available; otherwise one line says it was skipped.
   Full-size networks with random (default-initialised) weights in bf16, run through
   ``UltraVSRPipeline`` itself (a stand-in text encoder; the clip state is given with a random
   ``[1, 77, 1024]`` context and d = 0.3, so DRS and the text encoder are not timed), one
   window of ``--gpu-frames`` frames (default 30, our window) at 320x180 -> 1280x720, b = 1,
   after one warm-up window; seconds per output frame, ``max_memory_allocated``, and the
   ours/official ratio. A separate pass with a synchronising progress callback splits the
   time into stages. Paper (Table 2): 0.89 s per 720p frame and 2.67 s per 1440p frame on an
   RTX 8000 (48 GB), with the released script (real weights, DAPE prompts, whole clip);
   another GPU and no tagger here, so the seconds are comparable only roughly. The
   ours/official ratio is measured side by side.

4. ``--cpu``: merged vs unmerged LoRA. (a) Seconds per output frame of the tiny release
   (fp32, ``--threads`` torch threads, ``--size`` input, default 40x32 -> 160x128), one
   window of ``--cpu-frames`` frames through ``UltraVSRPipeline.from_pretrained(...,
   merge_lora=True/False)``, both pipelines in one process, one warm-up window each, then
   ``--rounds`` (>= 3) interleaved rounds whose order alternates; printed: the median and
   min-max seconds per frame, the per-round unmerged/merged ratio (median, min-max), the max
   absolute output difference between the two, the peft layers left in each, the FLOPs per
   frame of each (``FlopCounterMode`` on the real run) and the time per stage. With
   ``--cpu-profile N`` (default 12) the N largest aten ops of one merged window
   (``torch.profiler``). (b) FLOPs per 720p output frame of the full-size architecture with the
   official LoRA target lists at each of ``--lora-ranks`` (the released rank is not known
   here), unmerged vs merged with ``checkpoint.merge_adapters``, counted exactly on the meta
   device like section 2 (no weights, no extrapolation); the merged count is checked equal to
   the network without adapters.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MIB = 1024 * 1024

# --------------------------------------------------------------------------- helpers


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(width, height)``."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 320x180, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _pipeline_grid(settings, stage: str, height: int, width: int, tile: int, overlap: int):
    """The grid ``UltraVSRPipeline`` uses for ``stage`` (its own ``_grid``, so nothing is re-implemented)."""
    from vs_superres.models.ultravsr.pipeline import UltraVSRPipeline

    return UltraVSRPipeline._grid(SimpleNamespace(settings=settings), stage, height, width, tile, overlap)


def _tile_shapes(grid) -> Counter:
    ys, xs = grid
    return Counter((y1 - y0, x1 - x0) for y0, y1 in ys for x0, x1 in xs)


def _shapes_text(shapes: Counter) -> str:
    return " + ".join(f"{n}x {h}x{w}" for (h, w), n in sorted(shapes.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- 1. memory


class LiveTensorBytes(TorchDispatchMode):
    """Exact peak of the bytes held by tensor storages allocated while active.

    A ``TorchDispatchMode`` sees every aten op below autograd; each output storage not seen
    before and not shared with an input is added once and subtracted by a weakref callback
    when the storage is freed (torch keeps one Python object per live storage, so the weakref
    dies with the storage, not with a wrapper).
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self.stage = "pre-upscale"
        self.stage_peak: dict[str, int] = {}
        self._held: dict[int, tuple[weakref.ref, int]] = {}

    def _freed(self, key: int, ref) -> None:
        entry = self._held.get(key)
        if entry is not None and entry[0] is ref:
            self.live -= entry[1]
            del self._held[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = {
            id(t.untyped_storage())
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor) and t.device.type != "meta"
        }
        out = func(*args, **kwargs)
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            st = t.untyped_storage()
            key, nbytes = id(st), st.nbytes()
            entry = self._held.get(key)
            if entry is not None and entry[0]() is st:
                if entry[1] != nbytes:  # resized in place (out= ops)
                    self.live += nbytes - entry[1]
                    self._held[key] = (entry[0], nbytes)
                continue
            if key in inputs:  # aliases an input made before the window: not new
                continue
            ref = weakref.ref(st, lambda r, k=key: self._freed(k, r))
            self._held[key] = (ref, nbytes)
            self.live += nbytes
        self.peak = max(self.peak, self.live)
        if self.live > self.stage_peak.get(self.stage, -1):
            self.stage_peak[self.stage] = self.live
        return out


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _memory_child(cfg: dict) -> dict:
    torch.set_num_threads(cfg["threads"])
    from vs_superres.models.ultravsr.pipeline import UltraVSRPipeline

    T, b = cfg["frames"], cfg["frames_per_batch"]
    pipe = UltraVSRPipeline.from_pretrained(
        cfg["checkpoint"], cfg["base"], strength=0.3, frames_per_batch=b, **cfg["tiles"]
    )
    weights = sum(p.numel() * p.element_size() for m in (pipe.unet, pipe.vae) for p in m.parameters())
    state = pipe.clip_state({}, T)  # encodes the prompt once (cached)
    x = torch.rand(T, 3, cfg["height"], cfg["width"], generator=torch.Generator().manual_seed(0))
    pipe(x[:1], clip_state=state)  # warm-up: first-call allocations, kernels and bicubic matrices for this size
    gc.collect()

    reset_ok = _reset_peak_rss()
    rss_before = _status_kib("VmRSS") * 1024
    tracker = LiveTensorBytes()

    def on_step(p) -> None:  # a vs_superres.contracts.progress.Progress
        tracker.stage = "decoder + colour fix" if p.phase == "decoder" else p.phase

    with tracker:
        y = pipe(x, clip_state=state, on_step=on_step)
    if reset_ok:
        rss_peak = _status_kib("VmHWM") * 1024
    else:
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    torch.save(y, cfg["out"])
    return {
        "live_peak": tracker.peak,
        "stage_peak": tracker.stage_peak,
        "rss_delta": rss_peak - rss_before,
        "rss_before": rss_before,
        "rss_exact": reset_ok,
        "weights": weights,
        "shape": list(y.shape),
    }


def _run_child(cfg: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True, text=True, env=os.environ
    )
    if out.returncode:
        sys.exit(f"child {cfg} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_section(args) -> None:
    from vs_superres.models.ultravsr.pipeline import UltraVSRSettings
    from vs_superres.models.ultravsr.tiny import write_tiny_release

    w, h = args.size
    H, W = 4 * h, 4 * w
    Hp, Wp = -(-H // 8) * 8, -(-W // 8) * 8
    lat = max(Hp, Wp) // 8
    # Tiles at least as large as the frame: nothing is tiled, only TAI differs.
    tiles = dict(unet_tile=max(96, lat), decoder_tile=max(96, lat), encoder_tile=max(1024, Hp, Wp))
    settings = UltraVSRSettings(**tiles)
    for stage, tile, ov, hh, ww in (
        ("encoder", settings.encoder_tile, settings.encoder_overlap, Hp, Wp),
        ("unet", settings.unet_tile, settings.unet_overlap, Hp // 8, Wp // 8),
        ("decoder", settings.decoder_tile, settings.decoder_overlap, Hp // 8, Wp // 8),
    ):
        assert sum(_tile_shapes(_pipeline_grid(settings, stage, hh, ww, tile, ov)).values()) == 1, stage

    print("\n## 1. Peak memory of one window vs window length T, TAI b = 1 vs b = T")
    print(
        f"tiny release (models/ultravsr/tiny.py), fp32, CPU, {args.threads} threads; input {w}x{h} -> output "
        f"{W}x{H} (latent {Wp // 8}x{Hp // 8}), untiled (tiles {tiles}), strength 0.3; one child process per cell"
    )
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_ultravsr_") as tmp:
        base, ckpt = write_tiny_release(Path(tmp) / "release")
        rows = []
        for T in args.windows:
            cells = {}
            for b in sorted({1, T}):
                cfg = {
                    "checkpoint": str(ckpt), "base": str(base), "frames": T, "frames_per_batch": b,
                    "width": w, "height": h, "tiles": tiles, "threads": args.threads,
                    "out": str(Path(tmp) / f"out_T{T}_b{b}.pt"),
                }
                cells[b] = _run_child(cfg)
            y1 = torch.load(Path(tmp) / f"out_T{T}_b1.pt")
            yT = torch.load(Path(tmp) / f"out_T{T}_b{T}.pt")
            rows.append((T, cells[1], cells[T], float((y1 - yT).abs().max())))
    elapsed = time.perf_counter() - t_start

    first = rows[0][1]
    print(
        f"weights {first['weights'] / MIB:.1f} MiB; child RSS before the window {first['rss_before'] / MIB:.0f} MiB "
        f"(torch, diffusers, transformers, weights); peaks below are what the window adds"
    )
    print(f"{'T':>3} | {'live tensors MiB (exact)':^26} | {'peak RSS MiB':^26} | {'max|b1-bT|':>10}")
    print(f"{'':>3} | {'b=1':>8}{'b=T':>9}{'bT/b1':>9} | {'b=1':>8}{'b=T':>9}{'bT/b1':>9} |")
    print("-" * 73)
    for T, c1, cT, diff in rows:
        star = "" if c1["rss_exact"] and cT["rss_exact"] else "*"
        print(
            f"{T:>3} | {c1['live_peak'] / MIB:>8.1f}{cT['live_peak'] / MIB:>9.1f}{cT['live_peak'] / c1['live_peak']:>9.2f} | "
            f"{c1['rss_delta'] / MIB:>8.1f}{cT['rss_delta'] / MIB:>9.1f}{cT['rss_delta'] / max(c1['rss_delta'], 1):>8.2f}{star:1}| "
            f"{diff:>10.1e}"
        )
    if len(rows) > 1:
        (Ta, a1, aT, _), (Tb, b1, bT, _) = rows[0], rows[-1]
        print(
            f"live-tensor growth per extra frame (T={Ta}..{Tb}): "
            f"b=1 {(b1['live_peak'] - a1['live_peak']) / (Tb - Ta) / MIB:.2f} MiB, "
            f"b=T {(bT['live_peak'] - aT['live_peak']) / (Tb - Ta) / MIB:.2f} MiB"
        )
    T, c1, cT, _ = rows[-1]
    print(f"highest live-tensor total while each stage runs, T={T} (MiB; includes what earlier stages left alive):")
    print(f"  {'stage':<22}{'b=1':>9}{'b=T':>9}{'bT/b1':>8}")
    for stage in c1["stage_peak"]:
        a, b = c1["stage_peak"][stage], cT["stage_peak"].get(stage, 0)
        print(f"  {stage:<22}{a / MIB:>9.1f}{b / MIB:>9.1f}{b / max(a, 1):>8.2f}")
    print(f"(section time {elapsed:.0f} s, load-affected; the MiB are not)")


# --------------------------------------------------------------------------- 2. FLOPs


def _count(fn) -> tuple[int, dict]:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops(), counter.get_flop_counts()


def _check_counter() -> None:
    """The counter must count conv, linear and SDPA on meta tensors exactly."""
    import torch.nn.functional as F

    m = lambda *s: torch.empty(*s, device="meta")  # noqa: E731
    conv, _ = _count(lambda: F.conv2d(m(2, 8, 10, 12), m(16, 8, 3, 3), padding=1))
    lin, _ = _count(lambda: F.linear(m(2, 50, 32), m(64, 32), m(64)))
    sdpa, _ = _count(lambda: F.scaled_dot_product_attention(m(2, 4, 30, 16), m(2, 4, 40, 16), m(2, 4, 40, 16)))
    expected = (2 * 2 * 16 * 10 * 12 * 8 * 9, 2 * 2 * 50 * 32 * 64, 4 * 2 * 4 * 30 * 40 * 16)
    got = (conv, lin, sdpa)
    if got != expected:
        raise SystemExit(f"FlopCounterMode does not count as assumed on meta: got {got}, expected {expected}")


class _MetaModels:
    """Full-size SD-2.1-base UltraVSR networks on the meta device; per-frame FLOPs per tile shape, cached."""

    def __init__(self, lora_rank: int | None = None, merged: bool = False):
        """``lora_rank``: add UltraVSR's peft adapters (the official target lists) at that rank;
        ``merged``: then fold them in with ``checkpoint.merge_adapters``, as the loader does."""
        from vs_superres.models.ultravsr import adapters as ckpt
        from vs_superres.models.ultravsr.configs import SD21_BASE_UNET_CONFIG, SD21_BASE_VAE_CONFIG
        from vs_superres.models.ultravsr.unet import UltraVSRUNet
        from vs_superres.models.ultravsr.vae import UltraVSRAutoencoder

        with torch.device("meta"):
            self.unet = UltraVSRUNet(**SD21_BASE_UNET_CONFIG).eval()
            self.vae = UltraVSRAutoencoder(**SD21_BASE_VAE_CONFIG).eval()
            if lora_rank is not None:
                ckpt.add_unet_adapters(self.unet, lora_rank, ckpt.official_unet_targets(self.unet))
                ckpt.add_vae_adapter(self.vae, lora_rank, ckpt.official_vae_targets(self.vae))
                if merged:
                    ckpt.merge_adapters(self.unet)
                    ckpt.merge_adapters(self.vae)
        self.lora_layers = sum(_lora_layers(m) for m in (self.unet, self.vae))
        self.context = torch.empty(1, 77, self.unet.config.cross_attention_dim, device="meta")
        self._cache: dict = {}
        self.rts_share: dict[str, float] = {}
        self.single_frame: dict[str, float] = {}

    def _run(self, stage: str, frames: int, h: int, w: int):
        m = lambda *s: torch.empty(*s, device="meta")  # noqa: E731
        if stage == "unet":
            return _count(lambda: self.unet(m(frames, 4, h, w), 483, self.context, frames_per_batch=1))
        if stage == "decoder":
            return _count(lambda: self.vae.decode_frames(m(frames, 4, h, w), frames_per_batch=1))
        return _count(lambda: self.vae.encode_moments(m(frames, 3, h, w), frames_per_batch=1))

    def per_frame(self, stage: str, h: int, w: int) -> int:
        key = (stage, h, w)
        if key not in self._cache:
            f1, _ = self._run(stage, 1, h, w)
            f2, by_module = self._run(stage, 2, h, w)
            delta = f2 - f1
            self._cache[key] = delta
            rts = sum(sum(v.values()) for k, v in by_module.items() if re.search(r"RTS_blocks\.\d+$", k))
            self.rts_share.setdefault(stage, rts / f2)
            self.single_frame.setdefault(stage, (delta - f1) / delta)
        return self._cache[key]

    def check_linear(self) -> None:
        f = [self._run("unet", t, 32, 48)[0] for t in (1, 2, 3)]
        g = [self._run("decoder", t, 16, 24)[0] for t in (1, 2, 3)]
        if f[2] - f[1] != f[1] - f[0] or g[2] - g[1] != g[1] - g[0]:
            raise SystemExit(f"FLOPs are not linear in T: UNet {f}, decoder {g}")


def _other_per_frame(h_in: int, w_in: int) -> int:
    """Pre-upscale (dense bicubic matrices) and wavelet colour fix of one frame."""
    from vs_superres.numerics.colorfix import color_fix
    from vs_superres.numerics.resample import upscale_bicubic

    x = torch.empty(1, 3, h_in, w_in, device="meta")
    up, _ = _count(lambda: upscale_bicubic(x, 4))
    y = torch.empty(1, 3, 4 * h_in, 4 * w_in, device="meta")
    fix, _ = _count(lambda: color_fix(y, y, "wavelet"))
    return up + fix


RESOLUTIONS = (
    ("720p", 320, 180),
    ("1080p", 480, 270),
    ("1440p", 640, 360),
)


def flops_section(args) -> None:
    from vs_superres.runtime import registry
    from vs_superres.models.ultravsr.pipeline import UltraVSRSettings

    t_start = time.perf_counter()
    _check_counter()
    models = _MetaModels()
    models.check_linear()
    ours = UltraVSRSettings()
    official = UltraVSRSettings(
        tile_grid="official", unet_tile=96, unet_overlap=32, decoder_tile=96, decoder_overlap=10,
        encoder_tile=3000, encoder_overlap=32,
    )
    desc = registry.get_model("ultravsr")
    window_factor = desc.window / (desc.window - desc.window_overlap)

    print("\n## 2. Analytic FLOPs per output frame, full-size SD-2.1-base UltraVSR (meta device, FlopCounterMode)")
    print(
        "TFLOPs per output frame in a long window (per-frame cost of each tile shape x tiles); 1 MAC = 2 FLOPs; "
        "conv + matmul + attention counted, element-wise not"
    )
    print(
        "grids: official = released inference_arch.py (UNet 96/32, decoder 96/10, encoder 3000/32); "
        f"ours = balanced (UNet {ours.unet_tile}/{ours.unet_overlap}, decoder {ours.decoder_tile}/{ours.decoder_overlap}, "
        f"encoder {ours.encoder_tile}/{ours.encoder_overlap} px); untiled = one tile"
    )
    stages = (("VAE encoder", "encoder", "encoder_tile", "encoder_overlap"),
              ("UNet", "unet", "unet_tile", "unet_overlap"),
              ("VAE decoder", "decoder", "decoder_tile", "decoder_overlap"))
    for name, w_in, h_in in RESOLUTIONS:
        H, W = 4 * h_in, 4 * w_in
        Hp, Wp = -(-H // 8) * 8, -(-W // 8) * 8
        print(f"\n{name}: input {w_in}x{h_in} -> output {W}x{H} (w x h); latent {Hp // 8}x{Wp // 8} (h x w); tiles h x w")
        print(
            f"{'stage':<22}{'official tiles':<22}{'ours tiles':<22}{'official':>10}{'ours':>10}{'untiled':>10}"
            f"{'ours/off':>10}"
        )
        print("-" * 106)
        totals = [0, 0, 0]
        for label, stage, tile_key, ov_key in stages:
            hh, ww = (Hp, Wp) if stage == "encoder" else (Hp // 8, Wp // 8)
            cells, texts = [], []
            for settings in (official, ours):
                shapes = _tile_shapes(
                    _pipeline_grid(settings, stage, hh, ww, getattr(settings, tile_key), getattr(settings, ov_key))
                )
                cells.append(sum(n * models.per_frame(stage, th, tw) for (th, tw), n in shapes.items()))
                texts.append(_shapes_text(shapes))
            cells.append(models.per_frame(stage, hh, ww))
            for i, c in enumerate(cells):
                totals[i] += c
            print(
                f"{label:<22}{texts[0]:<22}{texts[1]:<22}{cells[0] / 1e12:>10.2f}{cells[1] / 1e12:>10.2f}"
                f"{cells[2] / 1e12:>10.2f}{cells[1] / cells[0]:>10.2f}"
            )
        other = _other_per_frame(h_in, w_in)
        totals = [t + other for t in totals]
        print(f"{'pre-upscale+colour fix':<22}{'':<44}{other / 1e12:>10.3f}{other / 1e12:>10.3f}{other / 1e12:>10.3f}{1:>10.2f}")
        print(
            f"{'total':<66}{totals[0] / 1e12:>10.2f}{totals[1] / 1e12:>10.2f}{totals[2] / 1e12:>10.2f}"
            f"{totals[1] / totals[0]:>10.2f}"
        )
        wl = f"total x windows (ours x{desc.window}/{desc.window - desc.window_overlap})"
        print(
            f"{wl:<66}{totals[0] / 1e12:>10.2f}{totals[1] * window_factor / 1e12:>10.2f}"
            f"{totals[2] * window_factor / 1e12:>10.2f}{totals[1] * window_factor / totals[0]:>10.2f}"
        )
    print(
        "\nRTS modules' share of a stage's FLOPs (first tile counted, T=2): "
        + ", ".join(f"{k} {100 * v:.2f}%" for k, v in models.rts_share.items())
        + ";\nF(T=1) is below the per-frame cost of a long window (no RTS neighbour attention) by "
        + ", ".join(f"{k} {100 * v:.3f}%" for k, v in models.single_frame.items())
    )
    print(f"(section time {time.perf_counter() - t_start:.0f} s; counts do not depend on machine load)")


# --------------------------------------------------------------------------- 3. GPU timing


def time_full_pipeline(
    device: str, dtype: torch.dtype, sizes, frames: int, repeats: int, unet_config: dict, vae_config: dict
) -> list[dict]:
    """Seconds per output frame of ``UltraVSRPipeline`` with random weights, official vs ours tiling.

    Also used with tiny configs on the CPU as a smoke test of this code path.
    """
    from torch import nn

    from vs_superres.models.ultravsr.drs import FixedStrength, timestep_for
    from vs_superres.models.ultravsr.pipeline import ClipState, UltraVSRPipeline, UltraVSRSettings
    from vs_superres.models.ultravsr.unet import UltraVSRUNet
    from vs_superres.models.ultravsr.vae import UltraVSRAutoencoder

    def sync() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    torch.manual_seed(0)
    with torch.device(device):
        unet = UltraVSRUNet(**unet_config)
        vae = UltraVSRAutoencoder(**vae_config)
    grids = {
        "official": UltraVSRSettings(tile_grid="official", decoder_overlap=10, encoder_tile=3000, encoder_overlap=32),
        "ours": UltraVSRSettings(),
    }
    pipes = {
        k: UltraVSRPipeline(
            unet, vae, nn.Identity(), None, alphas_cumprod=_sd21_alphas_cumprod(), estimator=FixedStrength(0.3),
            settings=s, device=device, dtype=dtype,
        )
        for k, s in grids.items()
    }
    d = 0.3
    context = torch.randn(1, 77, unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(0))
    state = ClipState(d=d, timestep=timestep_for(d), prompt="", context=context.to(device, dtype))
    results = []
    for w, h in sizes:
        x = torch.rand(frames, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
        for name, pipe in pipes.items():
            pipe(x, clip_state=state)  # warm-up (kernel selection, allocator)
            sync()
            if torch.device(device).type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(repeats):
                pipe(x, clip_state=state)
            sync()
            seconds = (time.perf_counter() - t0) / (repeats * frames)
            peak = torch.cuda.max_memory_allocated() if torch.device(device).type == "cuda" else None
            marks: list[tuple[str, float]] = []

            def on_step(p) -> None:  # a Progress; its phase is the stage
                stage = p.phase
                if not marks or marks[-1][0] != stage:
                    sync()
                    marks.append((stage, time.perf_counter()))

            sync()
            start = time.perf_counter()
            pipe(x, clip_state=state, on_step=on_step)
            sync()
            end = time.perf_counter()
            bounds = [m[1] for m in marks] + [end]
            split = {"pre-upscale": marks[0][1] - start} if marks else {}
            names = {"encoder": "encoder", "unet": "UNet+x0", "decoder": "decoder+colour fix"}
            for i, (stage, _) in enumerate(marks):
                split[names.get(stage, stage)] = bounds[i + 1] - bounds[i]
            results.append({"size": (w, h), "grid": name, "s_per_frame": seconds, "peak": peak,
                            "split": {k: v / frames for k, v in split.items()}})
    return results


def _sd21_alphas_cumprod() -> torch.Tensor:
    from diffusers import DDPMScheduler

    from vs_superres.models.ultravsr.configs import SD21_BASE_SCHEDULER_CONFIG

    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
    return DDPMScheduler(**{k: SD21_BASE_SCHEDULER_CONFIG[k] for k in keys}).alphas_cumprod.to(torch.float32)


def gpu_section(args) -> None:
    print("\n## 3. GPU seconds per output frame, full-size architecture, random weights, bf16")
    if not torch.cuda.is_available():
        print(
            f"SKIPPED: CUDA is not available (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda or 'none'}); no GPU timing was run."
        )
        return
    from vs_superres.models.ultravsr.configs import SD21_BASE_UNET_CONFIG, SD21_BASE_VAE_CONFIG

    print(
        f"{torch.cuda.get_device_name()}, one window of {args.gpu_frames} frames, b = 1, {args.gpu_repeats} timed "
        "window(s) after a warm-up; DRS and text encoder not timed; paper: 0.89 s (720p), 2.67 s (1440p) on an RTX 8000"
    )
    print("split: a separate pass with a synchronising progress callback, from the first tile of each stage")
    rows = time_full_pipeline(
        "cuda", torch.bfloat16, args.gpu_sizes, args.gpu_frames, args.gpu_repeats, SD21_BASE_UNET_CONFIG, SD21_BASE_VAE_CONFIG
    )
    print_gpu_rows(rows)


def print_gpu_rows(rows: list[dict]) -> None:
    print(f"{'output':<11}{'grid':<10}{'s/frame':>9}{'ours/off':>9}{'peak GiB':>10}  split, s/frame")
    official = {r["size"]: r["s_per_frame"] for r in rows if r["grid"] == "official"}
    for r in rows:
        w, h = r["size"]
        peak = f"{r['peak'] / 2**30:.1f}" if r["peak"] is not None else "n/a"
        ratio = r["s_per_frame"] / official[r["size"]]
        split = ", ".join(f"{k} {v:.3f}" for k, v in r["split"].items())
        print(f"{f'{4 * w}x{4 * h}':<11}{r['grid']:<10}{r['s_per_frame']:>9.3f}{ratio:>9.2f}{peak:>10}  {split}")


# --------------------------------------------------------------------------- 4. CPU, merged LoRA


def _lora_layers(model) -> int:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return sum(isinstance(m, BaseTunerLayer) for m in model.modules())


def _spread(values) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def _timed_window(pipe, x, state) -> tuple[float, dict[str, float]]:
    """Seconds of one window call and its split by stage (from the first tile callback of each stage)."""
    marks: list[tuple[str, float]] = []

    def on_step(p) -> None:  # a Progress; its phase is the stage
        if not marks or marks[-1][0] != p.phase:
            marks.append((p.phase, time.perf_counter()))

    start = time.perf_counter()
    pipe(x, clip_state=state, on_step=on_step)
    end = time.perf_counter()
    names = {"encoder": "encoder", "unet": "UNet + x0", "decoder": "decoder + colour fix"}
    split = {"pre-upscale": marks[0][1] - start} if marks else {}
    bounds = [m[1] for m in marks] + [end]
    for i, (stage, _) in enumerate(marks):
        split[names.get(stage, stage)] = bounds[i + 1] - bounds[i]
    return end - start, split


def _op_profile(pipe, x, state, top: int) -> list[tuple[str, float]]:
    """Share of self CPU time per aten op over one window (torch.profiler), largest first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        pipe(x, clip_state=state)
    events = [(e.key, e.self_cpu_time_total) for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(t for _, t in events) or 1
    events.sort(key=lambda kv: -kv[1])
    return [(k, t / total) for k, t in events[:top]]


def cpu_section(args) -> None:
    from vs_superres.models.ultravsr.pipeline import UltraVSRPipeline
    from vs_superres.models.ultravsr.tiny import TINY_LORA_RANK, write_tiny_release

    torch.set_num_threads(args.threads)
    w, h = args.size
    T = args.cpu_frames
    print("\n## 4. CPU: tiny release, merged vs unmerged LoRA (seconds per output frame)")
    print(
        f"tiny release (models/ultravsr/tiny.py, LoRA rank {TINY_LORA_RANK}), fp32, CPU, {torch.get_num_threads()} threads; "
        f"one window of {T} frames, input {w}x{h} -> output {4 * w}x{4 * h}, strength 0.3, default settings "
        f"(b = 1, untiled at this size); both pipelines in this process, one warm-up window each, then "
        f"{args.rounds} interleaved rounds (the order alternates every round)"
    )
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_ultravsr_cpu_") as tmp:
        base, ckpt = write_tiny_release(Path(tmp) / "release")
        pipes = {
            name: UltraVSRPipeline.from_pretrained(str(ckpt), str(base), strength=0.3, merge_lora=merge)
            for name, merge in (("unmerged", False), ("merged", True))
        }
    layers = {k: _lora_layers(p.unet) + _lora_layers(p.vae) for k, p in pipes.items()}
    x = torch.rand(T, 3, h, w, generator=torch.Generator().manual_seed(0))
    state = pipes["merged"].clip_state({}, T)
    outs = {k: p(x, clip_state=state) for k, p in pipes.items()}  # warm-up; also the outputs compared
    diff = (outs["merged"] - outs["unmerged"]).abs()
    flops = {k: _count(lambda p=p: p(x, clip_state=state))[0] / T for k, p in pipes.items()}

    seconds: dict[str, list[float]] = {k: [] for k in pipes}
    splits: dict[str, list[dict[str, float]]] = {k: [] for k in pipes}
    for r in range(args.rounds):
        for name in (list(pipes) if r % 2 == 0 else list(pipes)[::-1]):
            total, split = _timed_window(pipes[name], x, state)
            seconds[name].append(total / T)
            splits[name].append({k: v / T for k, v in split.items()})
    speedup = [u / m for u, m in zip(seconds["unmerged"], seconds["merged"])]

    print(f"peft LoRA layers in the loaded networks: unmerged {layers['unmerged']}, merged {layers['merged']}")
    print(
        f"max |merged - unmerged| over the window's output ([0, 1]): {diff.max().item():.2e} "
        f"(mean {diff.mean().item():.2e})"
    )
    print(f"{'config':<10}{'s/frame median (min-max)':>28}{'GFLOP/frame':>13}{'GFLOP/s':>9}{'unmerged/merged':>24}")
    for name in pipes:
        med = statistics.median(seconds[name])
        ratio = _spread(speedup) if name == "merged" else "1.00"
        print(f"{name:<10}{_spread(seconds[name]):>28}{flops[name] / 1e9:>13.2f}{flops[name] / 1e9 / med:>9.1f}{ratio:>24}")
    print("per-round unmerged/merged: " + ", ".join(f"{v:.2f}" for v in speedup))
    print("where the time goes (s/frame, median over rounds; stage starts at its first tile callback):")
    stages = list(splits["merged"][0])
    print(f"  {'stage':<22}" + "".join(f"{k:>12}" for k in pipes) + f"{'share (merged)':>16}")
    merged_total = statistics.median(seconds["merged"])
    for stage in stages:
        meds = [statistics.median(sp.get(stage, 0.0) for sp in splits[k]) for k in pipes]
        print(f"  {stage:<22}" + "".join(f"{v:>12.3f}" for v in meds) + f"{100 * meds[-1] / merged_total:>15.1f}%")
    if args.cpu_profile:
        print(f"top aten ops by self CPU time, one merged window (torch.profiler; {args.cpu_profile} largest):")
        for op, share in _op_profile(pipes["merged"], x, state, args.cpu_profile):
            print(f"  {op:<44}{100 * share:>6.1f}%")
    print(f"(section time {time.perf_counter() - t_start:.0f} s; seconds are load-affected, the per-round ratios less so)")

    _lora_flops_720p(args)


def _lora_flops_720p(args) -> None:
    """FLOPs per 720p output frame of the full-size architecture with unmerged vs merged adapters."""
    from vs_superres.models.ultravsr.pipeline import UltraVSRSettings

    w_in, h_in = 320, 180
    H, W = 4 * h_in, 4 * w_in
    Hp, Wp = -(-H // 8) * 8, -(-W // 8) * 8
    ours = UltraVSRSettings()
    _check_counter()
    print(
        f"\nFLOPs per 720p output frame ({w_in}x{h_in} -> {W}x{H}), full-size SD-2.1-base UltraVSR, our default tiles; "
        "networks and tensors on the meta device (no weights allocated, exact counts, no extrapolation); "
        "per-frame cost of a long window (F(T=2) - F(T=1) per tile shape); "
        "LoRA on the official target lists (UNet three adapters, VAE encoder one); the released rank is not "
        "known here, so the ranks are assumptions"
    )
    plain = _MetaModels()
    print(f"{'stage':<14}{'rank':>6}{'LoRA layers':>13}{'unmerged TFLOP':>16}{'merged TFLOP':>14}{'no LoRA':>10}{'unmerged/merged':>17}")
    for rank in args.lora_ranks:
        unmerged, merged = _MetaModels(rank), _MetaModels(rank, merged=True)
        if merged.lora_layers:
            raise SystemExit(f"merge_adapters left {merged.lora_layers} peft layers in the full-size networks")
        totals = [0, 0, 0]
        for label, stage, tile_key, ov_key in (("VAE encoder", "encoder", "encoder_tile", "encoder_overlap"),
                                               ("UNet", "unet", "unet_tile", "unet_overlap"),
                                               ("VAE decoder", "decoder", "decoder_tile", "decoder_overlap")):
            hh, ww = (Hp, Wp) if stage == "encoder" else (Hp // 8, Wp // 8)
            shapes = _tile_shapes(_pipeline_grid(ours, stage, hh, ww, getattr(ours, tile_key), getattr(ours, ov_key)))
            cells = [sum(n * m.per_frame(stage, th, tw) for (th, tw), n in shapes.items()) for m in (unmerged, merged, plain)]
            if cells[1] != cells[2]:
                raise SystemExit(f"merged {stage} counts {cells[1]} FLOPs, the network without LoRA {cells[2]}")
            totals = [a + b for a, b in zip(totals, cells)]
            n_layers = _lora_layers(unet_or_vae(unmerged, stage))
            print(f"{label:<14}{rank:>6}{n_layers:>13}{cells[0] / 1e12:>16.3f}{cells[1] / 1e12:>14.3f}"
                  f"{cells[2] / 1e12:>10.3f}{cells[0] / cells[1]:>17.4f}")
        print(f"{'total':<14}{rank:>6}{unmerged.lora_layers:>13}{totals[0] / 1e12:>16.3f}{totals[1] / 1e12:>14.3f}"
              f"{totals[2] / 1e12:>10.3f}{totals[0] / totals[1]:>17.4f}")
    print("(merged = exactly the network without LoRA: checked per stage; pre-upscale and colour fix are the same in both)")


def unet_or_vae(models: "_MetaModels", stage: str):
    """The network of ``models`` that runs ``stage`` (every VAE adapter is on the encode path)."""
    return models.unet if stage == "unet" else (models.vae if stage == "encoder" else models.vae.decoder)


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memory", action="store_true", help="peak memory vs window length, b=1 vs b=T (tiny model)")
    ap.add_argument("--flops", action="store_true", help="analytic FLOPs per output frame, full-size model")
    ap.add_argument("--gpu-timing", action="store_true", help="seconds per output frame on CUDA (skipped without)")
    ap.add_argument("--windows", type=_int_list, default=[2, 4, 8, 16], help="window lengths T (default 2,4,8,16)")
    ap.add_argument("--size", type=_size, default=(40, 32), help="memory, cpu: input WxH (default 40x32 -> 160x128)")
    ap.add_argument("--threads", type=int, default=2, help="memory, cpu: torch threads (default 2)")
    ap.add_argument("--gpu-sizes", type=lambda s: [_size(v) for v in s.split(",")], default=[(320, 180)],
                    help="GPU: input sizes WxH, comma-separated (default 320x180 -> 720p; 640x360 -> 1440p)")
    ap.add_argument("--gpu-frames", type=int, default=30, help="GPU: frames per window (default 30)")
    ap.add_argument("--gpu-repeats", type=int, default=2, help="GPU: timed windows per configuration (default 2)")
    ap.add_argument("--cpu", action="store_true",
                    help="CPU seconds per output frame of the tiny release, merged vs unmerged LoRA, and the "
                    "full-size FLOPs per 720p frame merged vs unmerged")
    ap.add_argument("--rounds", type=int, default=5, help="cpu: interleaved timing rounds (default 5, at least 3)")
    ap.add_argument("--cpu-frames", type=int, default=4, help="cpu: frames in the timed window (default 4)")
    ap.add_argument("--cpu-profile", type=int, default=12, metavar="N",
                    help="cpu: print the N largest aten ops of one merged window (0 = no profile; default 12)")
    ap.add_argument("--lora-ranks", type=_int_list, default=[4, 32],
                    help="cpu: LoRA ranks for the full-size FLOP count (default 4,32)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_memory_child(json.loads(args.child))))
        return
    if not (args.memory or args.flops or args.gpu_timing or args.cpu):
        args.memory = args.flops = True
    if args.cpu and args.rounds < 3:
        ap.error("--rounds must be at least 3: a ratio needs its spread")

    import diffusers

    print("# UltraVSR benchmark")
    print(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, python {platform.python_version()}; "
        f"CPU: {_cpu_name()}, {os.cpu_count()} cores, torch threads here {torch.get_num_threads()}; "
        f"CUDA {'available: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'not available'}"
    )
    if args.memory:
        memory_section(args)
    if args.flops:
        flops_section(args)
    if args.gpu_timing:
        gpu_section(args)
    if args.cpu:
        cpu_section(args)


if __name__ == "__main__":
    main()
