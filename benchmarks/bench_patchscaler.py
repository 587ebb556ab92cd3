"""PatchScaler: PGS against uniform sampling with the same (tiny) model, on a real photo; and the
group shares of a longer-trained confidence head on held-out real photos.

    python benchmarks/bench_patchscaler.py [--part speed|shares|all] [--lr-size 128] [--grm-steps 150]
        [--dit-steps 100] [--shares-steps 2000] [--threads 1]

``--part speed`` (sections 1-2 below) and ``--part shares`` (section 3) run apart; the default runs both.

1. Trains the tiny config's confidence head (GRM stage, eta calibrated for a 1/3 simple share)
   and a few Patch-DiT steps on scikit-image's bundled photos with a tiny random autoencoder,
   reporting the training throughput (samples/s on this CPU).
2. Upscales a crop of ``astronaut`` (``--lr-size`` square, x4) twice with that checkpoint:
   PGS with the paper's settings (gamma 0.95 / 0.75, tau 400 / 700 / 1000, N 8 / 14 / 20) and
   uniform sampling (every patch tau = 1000, N = 20). Prints the group shares, the Patch-DiT
   patch-evaluations (patches x steps), the time of the sampling stage (texture prompts, PGS,
   Patch-DiT, stitching) and of the whole call (with encoder, GRM and decoder; the colour fix is
   left out), and their ratios.

3. ``--part shares``: trains the tiny config's GRM and confidence head (GRM stage, eta
   calibrated for a 1/3 simple share, EMA on) for ``--shares-steps`` steps on real photos:
   scikit-image's bundled ones and, when installed, Debian ``mate-backgrounds``' nature photos
   (``/usr/share/backgrounds/mate/nature``; nothing is installed or downloaded), each resized to
   a short side of 512. ``coffee``, ``chelsea`` and three of the mate photos are held out; on each
   (512 x 512 centre crop, the training degradations, x4 from 128 x 128) it reports the share of
   the 25 patches in each group with the paper's thresholds (gamma 0.95 / 0.75). The autoencoder
   is the tiny *random* one (no real autoencoder weights are available to this benchmark), so the
   latents are those of a random network, not of ``sd-vae-ft-mse``.

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
MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")
HELD_OUT_SKIMAGE = ("coffee", "chelsea")
HELD_OUT_MATE = ("LadyBird", "Storm", "YellowFlower")
SHARE_SIDE = 512  # HR side of the photos (training and held out); held-out LR inputs are a quarter of it


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("speed", "shares", "all"), default="all")
    p.add_argument("--lr-size", type=int, default=128)
    p.add_argument("--grm-steps", type=int, default=150)
    p.add_argument("--dit-steps", type=int, default=100)
    p.add_argument("--shares-steps", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    report: dict = {}
    if args.part in ("speed", "all"):
        report["speed"] = speed(args)
    if args.part in ("shares", "all"):
        report["shares"] = shares(args)
    print(json.dumps(report, indent=2))
    return 0


def _resized(img, side: int):
    """A PIL image with its short side scaled to ``side`` (Lanczos)."""
    from PIL import Image

    s = side / min(img.size)
    return img.convert("RGB").resize((max(side, round(img.width * s)), max(side, round(img.height * s))),
                                     Image.LANCZOS)


def shares(args) -> dict:
    """Group shares of a longer-trained confidence head on held-out real photos (section 3)."""
    from PIL import Image

    from vs_superres.models.patchscaler.configs import TINY_CONFIG
    from vs_superres.models.patchscaler.data import SKIMAGE_PHOTOS, write_skimage_photos
    from vs_superres.models.patchscaler.degradations import degrade
    from vs_superres.models.patchscaler.pgs import GROUP_NAMES, PatchGrid, assign_groups
    from vs_superres.models.patchscaler.pipeline import PatchScalerPipeline
    from vs_superres.models.patchscaler.tiny import write_tiny_autoencoder
    from vs_superres.models.patchscaler.train import SMOKE_DEGRADATIONS, train

    work = Path(tempfile.mkdtemp(prefix="bench-patchscaler-shares-"))
    raw = write_skimage_photos(work / "skimage")
    sources = {name: raw / f"{name}.png" for name in SKIMAGE_PHOTOS}
    if MATE_NATURE.is_dir():
        sources.update({f.stem: f for f in sorted(MATE_NATURE.glob("*.jpg"))})
    held_names = [n for n in (*HELD_OUT_SKIMAGE, *HELD_OUT_MATE) if n in sources]
    train_dir, held = work / "train", {}
    train_dir.mkdir()
    for name, path in sources.items():
        img = _resized(Image.open(path), SHARE_SIDE)
        if name in held_names:
            held[name] = img
        else:
            img.save(train_dir / f"{name}.png")
    vae = write_tiny_autoencoder(work / "vae")
    ckpt = work / "grm.safetensors"
    t0 = time.perf_counter()
    grm = train("grm", data=train_dir, autoencoder=vae, out=ckpt, steps=args.shares_steps, config=TINY_CONFIG,
                eta="auto", crop=128, pool=64, refresh=50, quiet=True, degradations=SMOKE_DEGRADATIONS, lr=2e-3,
                batch=8)
    seconds = time.perf_counter() - t0
    pipe = PatchScalerPipeline.from_files(ckpt, vae)  # the EMA weights, as inference reads them
    s = pipe.settings

    def group_counts(img, seed: int) -> dict[str, int]:
        w, h = img.size
        box = ((w - SHARE_SIDE) // 2, (h - SHARE_SIDE) // 2)
        crop = np.asarray(img.crop((*box, box[0] + SHARE_SIDE, box[1] + SHARE_SIDE)), dtype=np.float32) / 255
        hr = torch.from_numpy(crop).permute(2, 0, 1)[None].contiguous()
        x = degrade(hr, torch.Generator().manual_seed(seed), SMOKE_DEGRADATIONS).contiguous()
        with torch.no_grad():
            _, conf = pipe.networks.grm(pipe.upscale_and_encode(x)[1])
        grid = PatchGrid.of(conf.shape[-2], conf.shape[-1], TINY_CONFIG.patch_size, s.patch_stride)
        groups = assign_groups(grid.footprint_means(conf[0]), s.gamma_simple, s.gamma_medium)
        return {g: len(groups[g]) for g in GROUP_NAMES}

    per_photo = {name: group_counts(img, i) for i, name in enumerate(held)}
    totals = {g: sum(c[g] for c in per_photo.values()) for g in GROUP_NAMES}
    patches = sum(totals.values())
    train_counts = [group_counts(_resized(Image.open(train_dir / f"{n}.png"), SHARE_SIDE), 100 + i)
                    for i, n in enumerate(sorted(p.stem for p in train_dir.glob("*.png")))]
    train_totals = {g: sum(c[g] for c in train_counts) for g in GROUP_NAMES}
    return {
        "autoencoder": "tiny random AutoencoderKL (no real autoencoder weights available)",
        "training photos": sorted(p.stem for p in train_dir.glob("*.png")),
        "held-out photos": list(held),
        "grm steps": args.shares_steps, "batch": 8, "crop": 128,
        "training seconds": round(seconds, 1), "samples/s": round(grm.samples_per_second, 1),
        "eta (calibrated)": grm.extra.get("eta"),
        "shares on the training pool (raw weights, training crops)": {
            g: round(v, 3) for g, v in grm.extra["group_shares"].items()},
        "shares on the training photos (centre crops, EMA weights)": {
            g: round(n / max(1, sum(train_totals.values())), 3) for g, n in train_totals.items()},
        "shares on the held-out photos (EMA weights)": {g: round(n / max(1, patches), 3) for g, n in totals.items()},
        "held-out counts per photo (simple, medium, hard)": {n: [c[g] for g in GROUP_NAMES] for n, c in per_photo.items()},
    }


def speed(args) -> dict:
    """PGS against uniform sampling (sections 1-2)."""
    from skimage import data

    from vs_superres.models.patchscaler.configs import TINY_CONFIG
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
                pipe.decode_latent(refined)
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
    return report


if __name__ == "__main__":
    sys.exit(main())
