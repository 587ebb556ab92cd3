"""The PatchScaler pipeline (Sec. 3.1): bicubic x4 -> frozen encoder -> GRM (``y_HR``, ``C``) ->
PGS groups (Eq. 2) -> Patch-DiT from each group's intermediate step (Eq. 6/7) with texture
prompts (Algorithm 1) -> stitching -> decoder (in overlapping latent tiles past ``decoder_tile``,
blended by the project's one tile blender) -> wavelet colour normalisation against the input.

Progress and cancellation: ``pipeline(x, on_step=fn)`` calls ``fn`` with a
:class:`~vs_superres.contracts.progress.Progress` before the first Patch-DiT step, after every
step (unit ``patch-steps``: one patch through one step) and before every decoder tile; whatever
``fn`` raises (the engine's reporter raises ``Cancelled``) stops the image, with no output.

The LR image is resized to the output size before encoding (StableSR's convention): ``y_LR``
and ``x_HR`` share one spatial size in the paper, and the decoder yields the HR image.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from vs_superres.contracts.errors import InvalidOption, UnsupportedFormat
from vs_superres.contracts.progress import ProgressFn
from vs_superres.numerics.colorfix import color_fix
from vs_superres.numerics.oom import retry_on_oom
from vs_superres.numerics.resample import upscale_bicubic
from vs_superres.numerics.tiling import FEATHERED, Grid, blend_tiles, tile_starts

from vs_superres.models.patchscaler.autoencoder import decode, encode, load_autoencoder
from vs_superres.models.patchscaler.checkpoint import load_networks
from vs_superres.models.patchscaler.configs import LATENT_FACTOR
from vs_superres.models.patchscaler.family import MIN_INPUT_SIDE
from vs_superres.models.patchscaler.networks import PatchScalerNetworks
from vs_superres.models.patchscaler.options import MIN_DECODER_TILE, PatchScalerSettings
from vs_superres.models.patchscaler.pgs import GROUP_NAMES, PatchGrid, assign_groups
from vs_superres.models.patchscaler.sampler import GroupJob, StepReporter, sample_patches, texture_prompts
from vs_superres.models.patchscaler.schedule import NoiseSchedule, group_plans

log = logging.getLogger(__name__)


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

    #: ``__call__`` takes ``on_step`` and reports its steps (progress and cancellation inside one image)
    reports_steps = True

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
                   ignore_ema: bool = False, **settings: Any) -> "PatchScalerPipeline":
        """Load a checkpoint (its EMA weights when it has them, unless ``ignore_ema``) and an
        autoencoder folder, both through the safe loader."""
        return cls(load_networks(checkpoint, ema=not ignore_ema), load_autoencoder(autoencoder), device=device, dtype=dtype,
                   devices=devices, settings=PatchScalerSettings.from_options(settings), model=model)

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

    def refine_latent(self, y_hr: torch.Tensor, confidence: torch.Tensor, on_step: ProgressFn | None = None,
                      phase: str = "sampling") -> torch.Tensor:
        """PGS + Patch-DiT + stitching of one coarse latent ``[c, h, w]`` with its ``C [1, h, w]`` -> ``[c, h, w]``.

        ``on_step`` gets ``Progress(done, total, phase + ": <group> group", "patch-steps")`` after
        every Patch-DiT step (``total``: the image's patch-evaluations) and once before the first.
        """
        grid = PatchGrid.of(y_hr.shape[-2], y_hr.shape[-1], self.config.patch_size, self.settings.patch_stride)
        jobs = self.group_jobs(grid, confidence)
        reporter = StepReporter(on_step, sum(job.cost for job in jobs), phase)
        reporter.start()
        patches = grid.extract(y_hr)
        x0 = sample_patches(self._replicas, self.devices, patches, texture_prompts(self.networks, patches), jobs,
                            self.schedule, seed=self.settings.seed, batch=self.settings.patches_per_batch,
                            reporter=reporter)
        for job in jobs:
            self.last_run.group_sizes[job.plan.name] = self.last_run.group_sizes.get(job.plan.name, 0) + len(job.indices)
            self.last_run.patch_evaluations += job.cost
        return grid.stitch(x0)

    def decoder_grid(self, height: int, width: int, tile: int) -> Grid:
        """Overlapping latent tiles of at most ``tile`` per side (one tile when the latent fits)."""
        overlap = min(self.settings.decoder_overlap, tile // 2)
        return Grid(tile_starts(height, tile, overlap, 1), tile_starts(width, tile, overlap, 1))

    def decode_latent(self, latent: torch.Tensor, on_step: ProgressFn | None = None, phase: str = "decoder") -> torch.Tensor:
        """Scaled latent ``[1, c, h, w]`` -> pixels ``[1, 3, 8h, 8w]`` (not clamped), in tiles of ``decoder_tile``.

        The decoder's GroupNorm and mid-block attention see the whole input, so a tiled decode is
        close to, not equal to, the one-piece decode; tiles are blended with the project's
        feathered weights (``vs_superres.numerics.tiling``). A latent no larger than the tile is
        decoded in one piece, exactly as untiled. Out of memory halves the tile (not below
        :data:`~.options.MIN_DECODER_TILE`) for this call.
        """
        h, w = latent.shape[-2:]
        tile = self.settings.decoder_tile or max(h, w)

        def attempt(t: int) -> torch.Tensor:
            return blend_tiles(lambda z: decode(self.vae, z), latent, self.decoder_grid(h, w, t), weights=FEATHERED,
                               scale=LATENT_FACTOR, phase=phase, on_tile=on_step).to(latent.dtype)

        def shrink(t: int) -> None:
            log.warning("out of memory in the PatchScaler decoder: retrying with %dx%d latent tiles", t, t)

        return retry_on_oom(attempt, tile, floor=MIN_DECODER_TILE, what="VAE-decoder tiles (latent pixels)",
                            on_shrink=shrink)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, *, on_step: ProgressFn | None = None) -> torch.Tensor:
        """Each image on its own, end to end: convolution kernels round differently with the batch
        size, so batching frames through the encoder, GRM or decoder would make an image's output
        depend on its neighbours in the engine's batch.

        ``on_step``: progress and cancellation (see the module docstring); with several images
        each phase is prefixed by ``image i/N``.
        """
        self.check_input(x)
        self.last_run = RunStats()
        n = x.shape[0]
        return torch.cat([self._one(x[i:i + 1], on_step, f"image {i + 1}/{n}: " if n > 1 else "") for i in range(n)])

    def _one(self, x: torch.Tensor, on_step: ProgressFn | None = None, prefix: str = "") -> torch.Tensor:
        up, y_lr = self.upscale_and_encode(x)
        y_hr, confidence = self.networks.grm(y_lr)
        refined = self.refine_latent(y_hr[0], confidence[0], on_step, prefix + "sampling").unsqueeze(0)
        image = self.decode_latent(refined, on_step, prefix + "decoder")[..., : up.shape[-2], : up.shape[-1]]
        return color_fix(image.clamp(0, 1), up.clamp(0, 1), self.settings.color_fix)
