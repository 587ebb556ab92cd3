"""PatchScaler: PGS against uniform sampling with the same (tiny) model, on a real photo.

    python benchmarks/bench_patchscaler.py [--lr-size 128] [--grm-steps 150] [--dit-steps 100] [--threads 1]

1. Trains the tiny config's confidence head (GRM stage, eta calibrated for a 1/3 simple share)
   and a few Patch-DiT steps on scikit-image's bundled photos with a tiny random autoencoder,
   reporting the training throughput (samples/s on this CPU).
2. Upscales a crop of ``astronaut`` (``--lr-size`` square, x4) twice with that checkpoint:
   PGS with the paper's settings (gamma 0.95 / 0.75, tau 400 / 700 / 1000, N 8 / 14 / 20) and
   uniform sampling (every patch tau = 1000, N = 20). Prints the group shares, the Patch-DiT
   patch-evaluations (patches x steps), the time of the sampling stage (texture prompts, PGS,
   Patch-DiT, stitching) and of the whole call (with encoder, GRM and decoder; the colour fix is
   left out), and their ratios.

The paper's comparable figure is StableSR + PGS against StableSR (8.53 s / 35.22 s = 0.24x):
the same model with and without PGS. Its 0.23x (PatchScaler against ResShift) compares two
different models. The paper's task is 512 -> 2048 on an A100; on a 2-core CPU the default here is
128 -> 512 (``--lr-size 512`` runs the paper's size, slowly).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lr-size", type=int, default=128)
    p.add_argument("--grm-steps", type=int, default=150)
    p.add_argument("--dit-steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from skimage import data

    from vs_superres.models.patchscaler.configs import TINY_CONFIG
    from vs_superres.models.patchscaler.autoencoder import decode
    from vs_superres.models.patchscaler.data import write_skimage_photos
    from vs_superres.models.patchscaler.degradations import degrade
    from vs_superres.models.patchscaler.pgs import PatchGrid
    from vs_superres.models.patchscaler.pipeline import PatchScalerPipeline
    from vs_superres.models.patchscaler.tiny import write_tiny_autoencoder
    from vs_superres.models.patchscaler.train import SMOKE_DEGRADATIONS, train

    work = Path(tempfile.mkdtemp(prefix="bench-patchscaler-"))
    photos = write_skimage_photos(work / "photos")
    vae = write_tiny_autoencoder(work / "vae")
    ckpt = work / "tiny.safetensors"
    common = dict(data=photos, autoencoder=vae, out=ckpt, crop=128, pool=32, refresh=0, quiet=True,
                  degradations=SMOKE_DEGRADATIONS, lr=2e-3, batch=8)
    grm = train("grm", steps=args.grm_steps, config=TINY_CONFIG, eta="auto", **common)
    dit = train("dit", steps=args.dit_steps, **common)

    # the LR input: a real photo through the training degradations (the paper's inputs are real LR images)
    s = args.lr_size
    hr = torch.from_numpy(np.ascontiguousarray(data.astronaut())).float().permute(2, 0, 1)[None] / 255
    hr = torch.nn.functional.interpolate(hr, size=(4 * s, 4 * s), mode="bicubic", align_corners=False).clamp(0, 1)
    x = degrade(hr, torch.Generator().manual_seed(1), SMOKE_DEGRADATIONS).contiguous()
    # a third run puts gamma1 / gamma2 at the terciles of this image's Avg(C): the tiny model's
    # confidence head (random autoencoder, minutes of CPU training) barely tells patches apart, so
    # with the paper's thresholds every patch can land in one group
    probe = PatchScalerPipeline.from_files(ckpt, vae)
    with torch.no_grad():
        _, conf = probe.networks.grm(probe.upscale_and_encode(x)[1])
    grid = PatchGrid.of(conf.shape[-2], conf.shape[-1], TINY_CONFIG.patch_size, probe.settings.patch_stride)
    means = grid.footprint_means(conf[0])
    q1, q2 = (float(v) for v in torch.quantile(means, torch.tensor([1 / 3, 2 / 3], dtype=torch.float64)))
    terciles = dict(gamma_medium=min(q1, q2 - 1e-9), gamma_simple=q2)
    runs: dict[str, dict] = {}
    for name, settings in (("pgs", {}), ("pgs at terciles", terciles),
                           ("uniform", dict(tau_simple=1000, tau_medium=1000, steps_simple=20, steps_medium=20))):
        pipe = PatchScalerPipeline.from_files(ckpt, vae, **settings)
        pipe(x[..., :16, :16])  # warm-up
        totals, sampling = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with torch.no_grad():  # the pipeline's stages, timed apart: PGS + Patch-DiT is what PGS changes
                pipe.last_run = type(pipe.last_run)()
                up, y_lr = pipe.upscale_and_encode(x)
                y_hr, conf = pipe.networks.grm(y_lr)
                t1 = time.perf_counter()
                refined = pipe.refine_latent(y_hr[0], conf[0])[None]
                t2 = time.perf_counter()
                decode(pipe.vae, refined)
            totals.append(time.perf_counter() - t0)
            sampling.append(t2 - t1)
        stats = pipe.last_run
        total = sum(stats.group_sizes.values())
        runs[name] = {"seconds": round(min(totals), 3), "sampling seconds": round(min(sampling), 3),
                      "patch_evaluations": stats.patch_evaluations, "patches": total}
        if name.startswith("pgs"):
            runs[name]["group_shares"] = {g: round(n / total, 3) for g, n in stats.group_sizes.items()}
    report = {
        "task": f"x4 {s} -> {4 * s}, tiny config, {args.threads} thread(s)",
        "eta (calibrated)": grm.extra.get("eta"),
        "group shares on the training pool": {g: round(v, 3) for g, v in grm.extra["group_shares"].items()},
        "training samples/s (grm, dit)": [round(grm.samples_per_second, 1), round(dit.samples_per_second, 1)],
        **runs,
        **{f"ratio {what} {name}/uniform": round(runs[name][key] / runs["uniform"][key], 3)
           for name in ("pgs", "pgs at terciles") for what, key in (("patch_evaluations", "patch_evaluations"),
                                                                     ("sampling time", "sampling seconds"),
                                                                     ("wall time", "seconds"))},
        "paper, comparable (StableSR+PGS / StableSR)": 0.24,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
