"""The PatchScaler pipeline (Sec. 3.1): bicubic x4 -> frozen encoder -> GRM (``y_HR``, ``C``) ->
PGS groups (Eq. 2) -> Patch-DiT from each group's intermediate step (Eq. 6/7) with texture
prompts (Algorithm 1) -> stitching -> decoder -> wavelet colour normalisation against the input.

The LR image is resized to the output size before encoding (StableSR's convention): ``y_LR``
and ``x_HR`` share one spatial size in the paper, and the decoder yields the HR image.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from vs_superres.contracts.errors import InvalidOption, UnsupportedFormat
from vs_superres.numerics.colorfix import color_fix
from vs_superres.numerics.resample import upscale_bicubic

from .autoencoder import decode, encode, load_autoencoder
from .checkpoint import load_networks
from .configs import LATENT_FACTOR
from .family import MIN_INPUT_SIDE
from .networks import PatchScalerNetworks
from .options import PatchScalerSettings
from .pgs import GROUP_NAMES, PatchGrid, assign_groups
from .sampler import GroupJob, sample_patches, texture_prompts
from .schedule import NoiseSchedule, group_plans


@dataclasses.dataclass
class RunStats:
    """What the last call did: patches per group and Patch-DiT patch-evaluations (patches x steps)."""

    group_sizes: dict[str, int] = dataclasses.field(default_factory=dict)
    patch_evaluations: int = 0


def parse_devices(devices: str | Sequence[str] | None, default: torch.device) -> list[torch.device]:
    """``'cuda:0,cuda:1'`` / ``['cpu', 'cpu']`` / ``None`` -> devices (each checked)."""
    if devices is None or devices == "" or devices == []:
        return [torch.device(default)]
    names = [d.strip() for d in devices.split(",")] if isinstance(devices, str) else [str(d) for d in devices]
    out = []
    for name in names:
        try:
            dev = torch.device(name)
        except (RuntimeError, ValueError):
            raise InvalidOption(f"devices: {name!r} is not a device (use e.g. 'cuda:0,cuda:1' or 'cpu')",
                                option="devices", model="patchscaler") from None
        if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
            raise InvalidOption(f"devices: {name} is not available on this machine", option="devices", model="patchscaler")
        out.append(dev)
    return out


class PatchScalerPipeline:
    """``pipeline(x [N, 3, h, w] in [0, 1]) -> [N, 3, 4h, 4w]``: the runner the engine calls.

    ``networks`` (GRM, Patch-DiT, texture parts, RTM) and ``vae`` are moved to ``device`` /
    ``dtype``; the Patch-DiT groups run on ``devices`` (default: ``device``).
    """

    def __init__(self, networks: PatchScalerNetworks, vae, *, device: Any = "cpu", dtype: torch.dtype = torch.float32,
                 devices: str | Sequence[str] | None = None, settings: PatchScalerSettings | None = None,
                 model: str = "patchscaler-x4"):
        self.model = model
        self.device = torch.device(device)
        self.dtype = dtype
        self.settings = settings or PatchScalerSettings()
        self.config = networks.config
        if self.settings.patch_stride > self.config.patch_size:
            raise InvalidOption(f"patch_stride must be at most V = {self.config.patch_size}, got {self.settings.patch_stride}",
                                option="patch_stride", model=model)
        self.networks = networks.to(self.device, dtype).eval().requires_grad_(False)
        # diffusers warns on any dtype cast of a model; fp32 is what it was loaded in
        vae = vae.to(self.device) if dtype == torch.float32 else vae.to(self.device, dtype)
        self.vae = vae.eval().requires_grad_(False)
        self.devices = parse_devices(devices, self.device)
        self._replicas: dict[int, PatchScalerNetworks] = {}
        by_device: dict[torch.device, PatchScalerNetworks] = {self.device: self.networks}
        for i, dev in enumerate(self.devices):
            if dev not in by_device:
                by_device[dev] = copy.deepcopy(self.networks).to(dev)
            self._replicas[i] = by_device[dev]
        self.schedule = NoiseSchedule.linear(self.config.num_timesteps, self.config.beta_start, self.config.beta_end)
        self.plans = group_plans(self.settings.group_schedule(), self.config.num_timesteps)
        self.last_run = RunStats()

    @classmethod
    def from_files(cls, checkpoint: str | os.PathLike, autoencoder: str | os.PathLike, *, device: Any = "cpu",
                   dtype: torch.dtype = torch.float32, model: str = "patchscaler-x4", devices: str | None = None,
                   **settings: Any) -> "PatchScalerPipeline":
        """Load a checkpoint and an autoencoder folder (both through the safe loader)."""
        return cls(load_networks(checkpoint), load_autoencoder(autoencoder), device=device, dtype=dtype, devices=devices,
                   settings=PatchScalerSettings.from_options(settings), model=model)

    # ------------------------------------------------------------------ stages
    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise UnsupportedFormat(f"{self.model} needs RGB frames [N, 3, H, W], got shape {tuple(x.shape)}",
                                    model=self.model)
        h, w = x.shape[-2:]
        if min(h, w) < MIN_INPUT_SIDE:
            raise UnsupportedFormat(
                f"{self.model} needs images of at least {MIN_INPUT_SIDE}x{MIN_INPUT_SIDE} pixels (a 2x2 latent after "
                f"x4 and the autoencoder's /8), got {w}x{h}; enlarge it with a classical resizer first", model=self.model)

    def upscale_and_encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(bicubic x4 [N, 3, 4h, 4w], y_LR [N, c, ceil(4h/8), ceil(4w/8)])``; odd sizes are edge-padded to /8."""
        up = upscale_bicubic(x.to(self.device, self.dtype), self.config.upscale)
        ph, pw = (-up.shape[-2]) % LATENT_FACTOR, (-up.shape[-1]) % LATENT_FACTOR
        padded = F.pad(up, (0, pw, 0, ph), mode="replicate") if ph or pw else up
        return up, encode(self.vae, padded)

    def group_jobs(self, grid: PatchGrid, confidence: torch.Tensor) -> list[GroupJob]:
        """Eq. 2 on every patch's footprint mean, then one job per group in the order simple, medium, hard."""
        s = self.settings
        groups = assign_groups(grid.footprint_means(confidence), s.gamma_simple, s.gamma_medium)
        return [GroupJob(self.plans[g], tuple(groups[g])) for g in GROUP_NAMES]

    def refine_latent(self, y_hr: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        """PGS + Patch-DiT + stitching of one coarse latent ``[c, h, w]`` with its ``C [1, h, w]`` -> ``[c, h, w]``."""
        grid = PatchGrid.of(y_hr.shape[-2], y_hr.shape[-1], self.config.patch_size, self.settings.patch_stride)
        jobs = self.group_jobs(grid, confidence)
        patches = grid.extract(y_hr)
        x0 = sample_patches(self._replicas, self.devices, patches, texture_prompts(self.networks, patches), jobs,
                            self.schedule, seed=self.settings.seed, batch=self.settings.patches_per_batch)
        for job in jobs:
            self.last_run.group_sizes[job.plan.name] = self.last_run.group_sizes.get(job.plan.name, 0) + len(job.indices)
            self.last_run.patch_evaluations += job.cost
        return grid.stitch(x0)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Each image on its own, end to end: convolution kernels round differently with the batch
        size, so batching frames through the encoder, GRM or decoder would make an image's output
        depend on its neighbours in the engine's batch."""
        self.check_input(x)
        self.last_run = RunStats()
        return torch.cat([self._one(x[i:i + 1]) for i in range(x.shape[0])])

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        up, y_lr = self.upscale_and_encode(x)
        y_hr, confidence = self.networks.grm(y_lr)
        refined = self.refine_latent(y_hr[0], confidence[0]).unsqueeze(0)
        image = decode(self.vae, refined)[..., : up.shape[-2], : up.shape[-1]]
        return color_fix(image.clamp(0, 1), up.clamp(0, 1), self.settings.color_fix)
