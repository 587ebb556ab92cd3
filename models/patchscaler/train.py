"""Training PatchScaler: ``python -m vs_superres.models.patchscaler.train --stage STAGE ...``.

Stages, in the order a model is built (each reads and rewrites ``--out``; rerunning a stage
resumes it from its last saved step and optimiser state):

``classifier``  the texture classifier T (cross-entropy on latent V x V patches; classes are the
                data folder's sub-folders, else one per image: a stand-in for DTD);
``rtm``         the Reference Texture Memory: ``--candidates`` random latent patches (paper: 20,000),
                keys from T, farthest-point sampling down to ``rtm_size`` (paper: 2,000);
``grm``         the GRM with the confidence-driven loss of Eq. 1;
``joint``       Patch-DiT + texture encoder and the GRM together, the GRM input to the DiT
                detached (the paper's first 100K iterations);
``dit``         Patch-DiT + texture encoder with the GRM frozen (the remaining 600K).

The diffusion loss (not stated in the paper) is the MSE of the x0 prediction, t ~ U{1..T}.
Checkpoints are our safetensors format with the config (and the training state) in the metadata.

EMA (``--ema DECAY``, default 0.9999; 0 disables): the ``grm``, ``joint`` and ``dit`` stages keep
an exponential moving average of the GRM, Patch-DiT and texture-encoder parameters, updated
after every optimiser step with the decay ``min(DECAY, (1 + n) / (10 + n))`` of the stage's
``n``-th update (the warm-up lets short runs average too), stored as ``ema.*`` tensors and
resumed with the optimiser state. Inference uses them when present. A module that a stage does
not train is frozen at its EMA weights when the stage starts, so the Patch-DiT learns from the
GRM that inference will run. The texture classifier is never averaged: its raw weights made
the RTM keys.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from vs_superres.contracts.errors import SuperResError

from vs_superres.models.patchscaler.autoencoder import load_autoencoder
from vs_superres.models.patchscaler.checkpoint import ema_parameter_names, load_networks, read_contents, save_checkpoint
from vs_superres.models.patchscaler.configs import TINY_CONFIG, PatchScalerConfig
from vs_superres.models.patchscaler.data import HRFolder, LatentPool, random_latent_patches, write_skimage_photos
from vs_superres.models.patchscaler.degradations import DEFAULT, DegradationConfig
from vs_superres.models.patchscaler.grm import grm_loss, squared_error_map
from vs_superres.models.patchscaler.networks import PatchScalerNetworks
from vs_superres.models.patchscaler.pgs import GROUP_NAMES, qmap
from vs_superres.models.patchscaler.rtm import build_rtm
from vs_superres.models.patchscaler.schedule import NoiseSchedule, q_sample

STAGES = ("classifier", "rtm", "grm", "joint", "dit")
#: The EMA decay the notes suggest (the paper is silent): an averaging horizon of 10K steps.
DEFAULT_EMA = 0.9999
#: The stages that keep an EMA (the classifier stage does not: see the module docstring).
EMA_STAGES = ("grm", "joint", "dit")
#: lighter degradations for smoke runs on a CPU (small kernels); ranges otherwise Real-ESRGAN's
SMOKE_DEGRADATIONS = dataclasses.replace(DEFAULT, kernel_sizes=(7, 9, 11))


@dataclasses.dataclass
class TrainResult:
    stage: str
    losses: list[float]
    samples_per_second: float
    checkpoint: Path
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def _trained_modules(nets: PatchScalerNetworks, stage: str) -> list[torch.nn.Module]:
    modules: dict[str, list[torch.nn.Module]] = {
        "classifier": [nets.classifier], "grm": [nets.grm], "joint": [nets.dit, nets.texture_encoder, nets.grm],
        "dit": [nets.dit, nets.texture_encoder]}
    return modules[stage]


def _named_params(nets: PatchScalerNetworks, stage: str) -> list[tuple[str, torch.nn.Parameter]]:
    keep = {id(p) for m in _trained_modules(nets, stage) for p in m.parameters()}
    return [(n, p) for n, p in nets.named_parameters() if id(p) in keep]


def _optimizer_tensors(opt: torch.optim.Optimizer, names: Sequence[str]) -> dict[str, torch.Tensor]:
    out = {}
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            out[f"{names[i]}.{key}"] = torch.as_tensor(value)
    return out


def _restore_optimizer(opt: torch.optim.Optimizer, names: Sequence[str], tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state = {}
    for i, name in enumerate(names):
        entry = {key[len(name) + 1:]: v for key, v in tensors.items() if key.startswith(name + ".") and
                 key[len(name) + 1:] in ("step", "exp_avg", "exp_avg_sq")}
        if entry:
            state[i] = entry
    opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})


def ema_decay(decay: float, updates: int) -> float:
    """The decay of a stage's EMA update number ``updates`` (0-based): ``min(decay, (1 + n) / (10 + n))``.

    The warm-up term keeps the first updates from weighting the initial weights for ``1 / (1 - decay)``
    steps: after 10 updates the average already follows the training.
    """
    return min(decay, (1 + updates) / (10 + updates))


@torch.no_grad()
def update_ema(ema: dict[str, torch.Tensor], params: Mapping[str, torch.Tensor], decay: float) -> None:
    """``ema[n] = decay * ema[n] + (1 - decay) * params[n]`` in place, for every ``n`` in ``ema`` (fp32)."""
    for name, average in ema.items():
        average.lerp_(params[name].detach().to(average.dtype), 1.0 - decay)


def _start_ema(nets: PatchScalerNetworks, stage: str, saved: dict[str, torch.Tensor], decay: float,
               fresh: bool) -> dict[str, torch.Tensor]:
    """The EMA a stage continues from, on the networks' device (fp32); ``{}`` when ``decay`` is 0.

    ``fresh``: the stage starts (not resumes), so the EMA-covered modules it does not train are
    frozen at their saved averages.
    """
    params = dict(nets.named_parameters())
    trained = {id(p) for m in _trained_modules(nets, stage) for p in m.parameters()}
    if fresh and saved:
        with torch.no_grad():
            for name, average in saved.items():
                if name in params and id(params[name]) not in trained:
                    params[name].copy_(average)
    if not decay:
        return {}
    return {n: (saved[n] if n in saved else params[n].detach()).to(params[n].device, torch.float32).clone()
            for n in ema_parameter_names(nets)}


def calibrate_eta(errors: torch.Tensor, patch: int, target_simple: float = 1 / 3, gamma_simple: float = 0.95) -> float:
    """The eta of Eq. 1 that puts ``target_simple`` of the V x V patches of ``errors [B, 1, h, w]`` in the
    simple group.

    Calibrated on patch-mean errors: a confidence head that is smooth within a patch (any real one)
    reaches at best ``C = eta / mean_patch(e)`` there, so a patch is simple when its mean error is
    below ``eta / gamma1``; eta is ``gamma1`` times the ``target_simple`` quantile of the patch means.
    (Calibrating on the per-pixel optimum ``min(1, eta / e)`` instead overestimates the simple share
    of a head that cannot resolve single pixels.)
    """
    means = F.avg_pool2d(errors.double(), patch).flatten()
    return float(gamma_simple * torch.quantile(means, target_simple))


def _group_shares(conf: torch.Tensor, patch: int) -> dict[str, float]:
    means = F.avg_pool2d(conf.float(), patch).flatten().tolist()
    names = [qmap(min(max(m, 0.0), 1.0)) for m in means]
    return {g: names.count(g) / max(1, len(names)) for g in GROUP_NAMES}


def _progress(stage: str, step: int, total: int, loss: float, rate: float) -> None:
    stream, width = sys.stderr, 24
    done = int(width * step / max(1, total))
    stream.write(f"\r{stage} [{'#' * done}{'.' * (width - done)}] {step}/{total} loss {loss:.5f} {rate:.1f} samples/s")
    if step == total:
        stream.write("\n")
    stream.flush()


def train(stage: str, *, data: str | Path, autoencoder: str | Path, out: str | Path, steps: int,
          config: PatchScalerConfig | None = None, batch: int = 6, lr: float = 5e-5, crop: int = 512,
          pool: int = 64, refresh: int = 50, eta: float | str = 0.05, lam: float = 1.0, candidates: int = 20000,
          device: str = "cpu", bf16: bool | None = None, seed: int = 0, save_every: int = 1000,
          log_every: int = 10, degradations: DegradationConfig = DEFAULT, quiet: bool = False,
          ema: float = DEFAULT_EMA, on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Run (or resume) one stage; returns the per-step losses and the throughput.

    ``ema``: the decay of the weights' moving average (see the module docstring); 0 disables it
    (and drops an average the checkpoint had, which would no longer match the weights).
    """
    if stage not in STAGES:
        raise SuperResError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    if not 0.0 <= ema < 1.0:
        raise SuperResError(f"--ema must be in [0, 1) (the notes suggest {DEFAULT_EMA}; 0 disables it), got {ema}")
    out = Path(out)
    dev = torch.device(device)
    bf16 = dev.type == "cuda" if bf16 is None else bf16
    start = 0
    opt_tensors: dict[str, torch.Tensor] = {}
    saved_ema: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {}
    if out.exists():
        nets = load_networks(out, ema=False).train().requires_grad_(True)
        contents = read_contents(out)
        state, opt_tensors, saved_ema = contents.train_state, contents.optimizer, contents.ema
        if config is not None and config != nets.config:
            raise SuperResError(f"{out} holds a different config than the one asked for; use another --out or drop --config")
        if state.get("stage") == stage and state.get("step", 0) < steps and not state.get("finished"):
            start = int(state["step"])
        elif state.get("stage") != stage:
            opt_tensors = {}
    else:
        nets = PatchScalerNetworks(config or TINY_CONFIG)
    cfg = nets.config
    nets.to(dev)
    vae = load_autoencoder(autoencoder).to(dev)
    g = torch.Generator().manual_seed(seed + start)
    folder = HRFolder(data, crop)
    if stage == "classifier" and folder.num_classes > cfg.texture_classes:
        raise SuperResError(f"the data has {folder.num_classes} classes but the config's classifier has "
                            f"{cfg.texture_classes}; use a config with texture_classes >= {folder.num_classes}")
    lat_pool = LatentPool(folder, vae, size=pool, crop=crop, refresh=refresh, g=g, device=dev, cfg=degradations,
                          scale=cfg.upscale)
    extra: dict[str, Any] = {}
    if stage == "rtm":
        return _build_rtm_stage(nets, lat_pool, candidates, out, g, quiet, saved_ema)
    if stage in EMA_STAGES:
        ema_tensors = _start_ema(nets, stage, saved_ema, ema, fresh=not start)
        ema_updates = int(state.get("ema_updates", 0)) if start and saved_ema else 0
    else:  # the classifier stage changes no averaged parameter: an average the file has stays valid
        ema_tensors, ema_updates = saved_ema, 0
    # the decay that made the average the file will hold (the classifier stage keeps an earlier one)
    ema_written = (ema if stage in EMA_STAGES else float(state.get("ema", 0.0))) if ema_tensors else 0.0

    auto_eta = isinstance(eta, str)

    def recalibrate() -> float:
        # The GRM's errors shrink as it trains, so a fixed eta would drift every patch into the
        # simple group: "auto" re-fits eta to the pool's current errors every tenth of the run.
        with torch.no_grad():
            y_hr, _ = nets.grm(lat_pool.y_lr)
            return calibrate_eta(squared_error_map(y_hr, lat_pool.x_hr), cfg.patch_size)

    if auto_eta:
        eta = float(state["eta"]) if start and state.get("eta") else recalibrate()
    schedule = NoiseSchedule.linear(cfg.num_timesteps, cfg.beta_start, cfg.beta_end)
    named = _named_params(nets, stage)
    names = [n for n, _ in named]
    for p in nets.parameters():
        p.requires_grad_(False)
    for _, p in named:
        p.requires_grad_(True)
    opt = torch.optim.Adam([p for _, p in named], lr=lr)
    if start and opt_tensors:
        _restore_optimizer(opt, names, opt_tensors)
    nets.train()
    losses: list[float] = list(state.get("recent_losses", [])) if start else []
    t0, seen = time.perf_counter(), 0

    def step_loss() -> torch.Tensor:
        y_lr, x_hr, labels = lat_pool.batch(batch)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            if stage == "classifier":
                (patch,) = random_latent_patches([x_hr], cfg.patch_size, g)
                return F.cross_entropy(nets.classifier(patch).float(), labels)
            if stage == "grm":
                y_hr, conf = nets.grm(y_lr)
                return grm_loss(y_hr.float(), conf.float(), x_hr, lam=lam, eta=float(eta))
            with torch.set_grad_enabled(stage == "joint"):
                y_hr, conf = nets.grm(y_lr)
            y0, x0 = random_latent_patches([y_hr.detach(), x_hr], cfg.patch_size, g)
            t = torch.randint(1, cfg.num_timesteps + 1, (batch,), generator=g).to(dev)
            noise = torch.randn(x0.shape, generator=g).to(dev)
            x_t = q_sample(x0, t, schedule, noise)
            kv = nets.dit.prompt_cache(nets.texture_prompt(y0))
            loss = F.mse_loss(nets.dit(x_t, t, y0, kv).float(), x0)
            if stage == "joint":
                loss = loss + grm_loss(y_hr.float(), conf.float(), x_hr, lam=lam, eta=float(eta))
            return loss

    def save(step: int, finished: bool) -> None:
        rate = seen / max(1e-9, time.perf_counter() - t0)
        save_checkpoint(out, nets, optimizer_tensors=_optimizer_tensors(opt, names), ema_tensors=ema_tensors,
                        train_state={
                            "stage": stage, "step": step, "steps": steps, "finished": finished, "lr": lr,
                            "batch": batch, "eta": float(eta), "samples_per_second": rate,
                            "ema": ema_written, "ema_updates": ema_updates,
                            "recent_losses": losses[-200:]})

    params = dict(nets.named_parameters())
    step = start
    for step in range(start + 1, steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = step_loss()
        loss.backward()
        opt.step()
        if stage in EMA_STAGES and ema_tensors:
            update_ema(ema_tensors, params, ema_decay(ema, ema_updates))
            ema_updates += 1
        losses.append(loss.item())
        if auto_eta and stage in ("grm", "joint") and step % max(1, steps // 10) == 0:
            eta = recalibrate()
        seen += batch
        if on_step is not None:
            on_step(step, losses[-1])
        if not quiet and (step % log_every == 0 or step == steps):
            _progress(stage, step, steps, sum(losses[-log_every:]) / len(losses[-log_every:]),
                      seen / max(1e-9, time.perf_counter() - t0))
        if save_every and step % save_every == 0 and step != steps:
            save(step, False)
    save(max(step, start), True)
    extra["eta"] = float(eta)
    if stage in ("grm", "joint"):
        with torch.no_grad():
            extra["group_shares"] = _group_shares(nets.grm(lat_pool.y_lr)[1], cfg.patch_size)
    return TrainResult(stage, losses, seen / max(1e-9, time.perf_counter() - t0), out, extra)


@torch.no_grad()
def _build_rtm_stage(nets: PatchScalerNetworks, lat_pool: LatentPool, candidates: int, out: Path,
                     g: torch.Generator, quiet: bool, ema_tensors: dict[str, torch.Tensor]) -> TrainResult:
    cfg = nets.config
    need = max(candidates, cfg.rtm_size)
    values: list[torch.Tensor] = []
    while sum(v.shape[0] for v in values) < need:
        _, x_hr, _ = lat_pool.batch(min(64, lat_pool.size))
        values.append(random_latent_patches([x_hr], cfg.patch_size, g)[0])
    cand = torch.cat(values)[:need]
    t0 = time.perf_counter()
    nets.eval()
    nets.set_rtm(build_rtm(cand, nets.classifier, cfg.rtm_size).to(nets.rtm_keys.device))
    save_checkpoint(out, nets, ema_tensors=ema_tensors,  # the RTM is a buffer: averaged parameters stay valid
                    train_state={"stage": "rtm", "step": 1, "steps": 1, "finished": True,
                                 "candidates": int(cand.shape[0])})
    if not quiet:
        print(f"rtm: {cand.shape[0]} candidates -> {cfg.rtm_size} by farthest-point sampling "
              f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return TrainResult("rtm", [], 0.0, out, {"candidates": int(cand.shape[0])})


def _config_arg(text: str | None) -> PatchScalerConfig | None:
    if text is None:
        return None
    if text == "tiny":
        return TINY_CONFIG
    if text == "paper":
        return PatchScalerConfig()
    try:
        return PatchScalerConfig.from_dict(json.loads(Path(text).read_text()))
    except (OSError, ValueError) as exc:
        raise SuperResError(f"--config must be tiny, paper or a JSON file of PatchScalerConfig fields ({exc})") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vs_superres.models.patchscaler.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument("--data", required=True, help="folder of HR images, or 'skimage' for scikit-image's bundled photos")
    p.add_argument("--autoencoder", help="diffusers AutoencoderKL folder (KL-f8), e.g. sd-vae-ft-mse")
    p.add_argument("--tiny-autoencoder", help="write (if absent) and use a tiny random autoencoder here (smoke runs only)")
    p.add_argument("--out", required=True, help="checkpoint to create / continue (.safetensors)")
    p.add_argument("--config", help="tiny, paper, or a JSON file (new checkpoints only; default tiny)")
    p.add_argument("--steps", type=int, default=1000, help="total steps of this stage (paper: 700K in all)")
    p.add_argument("--batch", type=int, default=6, help="batch size (paper: 6)")
    p.add_argument("--lr", type=float, default=5e-5, help="Adam learning rate (paper: 5e-5, fixed)")
    p.add_argument("--crop", type=int, default=512, help="HR crop side in pixels (>= 8 V = 128)")
    p.add_argument("--pool", type=int, default=64, help="encoded training pairs held at once")
    p.add_argument("--refresh", type=int, default=50, help="rebuild the pool every this many steps (0: never)")
    p.add_argument("--eta", default="0.05", help="eta of Eq. 1, or 'auto' to calibrate a 1/3 simple share")
    p.add_argument("--lam", type=float, default=1.0, help="lambda of Eq. 1")
    p.add_argument("--ema", type=float, default=DEFAULT_EMA,
                   help=f"EMA decay of the GRM / Patch-DiT / texture-encoder weights (default {DEFAULT_EMA}; 0: off)")
    p.add_argument("--candidates", type=int, default=20000, help="rtm: candidate patches before FPS (paper: 20,000)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-bf16", action="store_true", help="train in fp32 on CUDA too")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--smoke-degradations", action="store_true", help="small blur kernels (fast CPU smoke runs)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        data = args.data
        if data == "skimage":
            data = write_skimage_photos(Path(tempfile.mkdtemp(prefix="patchscaler-photos-")))
        vae = args.autoencoder
        if vae is None and args.tiny_autoencoder:
            from vs_superres.models.patchscaler.tiny import write_tiny_autoencoder

            vae = args.tiny_autoencoder
            if not (Path(vae) / "config.json").is_file():
                write_tiny_autoencoder(vae)
        if vae is None:
            raise SuperResError("--autoencoder DIR is required (e.g. sd-vae-ft-mse; --tiny-autoencoder for smoke runs)")
        eta: float | str = "auto" if args.eta == "auto" else float(args.eta)
        result = train(args.stage, data=data, autoencoder=vae, out=args.out, steps=args.steps,
                       config=_config_arg(args.config), batch=args.batch, lr=args.lr, crop=args.crop, pool=args.pool,
                       refresh=args.refresh, eta=eta, lam=args.lam, candidates=args.candidates, device=args.device,
                       bf16=False if args.no_bf16 else None, seed=args.seed, save_every=args.save_every,
                       degradations=SMOKE_DEGRADATIONS if args.smoke_degradations else DEFAULT, quiet=args.quiet,
                       ema=args.ema)
    except SuperResError as exc:
        print(f"patchscaler train: error: {exc}", file=sys.stderr)
        return 2
    summary = {"stage": result.stage, "checkpoint": str(result.checkpoint), "samples_per_second": result.samples_per_second,
               **result.extra}
    if result.losses:
        summary["first_loss"], summary["last_loss"] = result.losses[0], result.losses[-1]
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
