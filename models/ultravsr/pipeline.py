"""UltraVSR inference: one temporal window of low-resolution frames to 4x frames.

:class:`UltraVSRPipeline` is what the engine runs for the ``ultravsr`` model (a *clip runner*,
see ``vs_superres.contracts.runners.ClipRunner``). Per clip it computes a :class:`ClipState` once (the
degradation factor ``d``, its timestep and the text embedding); per window it

1. pre-upscales x4 with Pillow's bicubic kernel and reflect-pads to a multiple of 8,
2. encodes with the (LoRA'd) VAE encoder, tiled in pixels, blending posterior moments,
3. runs the RTS UNet once at the clip's timestep, tiled in latent space, every tile carrying
   all frames of the window and its spatial layers running in TAI mini-batches,
4. applies ``x0 = (z - sqrt(1 - d) eps) / sqrt(d)`` in float32,
5. decodes with the RTS VAE decoder, tiled in latent space, each tile clamped to [-1, 1],
6. crops to 4x the input and corrects colours against the pre-upscaled input.

Design and the deliberate differences from the released script: ``docs/ultravsr.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from fractions import Fraction
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vs_superres.contracts.descriptor import ModelDescriptor
from vs_superres.contracts.errors import SuperResError, option_ref
from vs_superres.contracts.progress import ProgressFn
from vs_superres.numerics.colorfix import color_fix
from vs_superres.numerics.oom import retry_on_oom
from vs_superres.numerics.resample import upscale_bicubic
from vs_superres.numerics.tiling import Grid, blend_tiles

from vs_superres.models.ultravsr.drs import MIN_STRENGTH, ClipIqaEstimator, _check_strength, DegradationEstimator, FixedStrength, reconstruct_x0, sample_frame_indices, timestep_for
from vs_superres.models.ultravsr.family import MODEL
from vs_superres.models.ultravsr.options import UltraVSRSettings
from vs_superres.models.ultravsr.tiles import GAUSSIAN_WEIGHTS, RELEASED_WEIGHTS, balanced_spans, official_decoder_grid, official_encoder_grid, official_unet_grid

log = logging.getLogger("vs_superres")

__all__ = ["ClipState", "UltraVSRPipeline", "UltraVSRSettings", "Tagger", "SCALE", "CLIP_RN50_RELPATH"]

SCALE = 4
CLIP_RN50_RELPATH = "clip/RN50.safetensors"
Tagger = Callable[[torch.Tensor], str]
"""``tagger(frames) -> "tag, tag, ..."``: sees the clip's sampled, pre-upscaled frames
``[K, 3, H, W]`` in [0, 1]; its tags are appended to the prompt."""


@dataclasses.dataclass(frozen=True)
class ClipState:
    """What UltraVSR computes once per clip: ``d``, its timestep and the text condition."""

    d: float
    timestep: int
    prompt: str
    context: torch.Tensor  # [1, tokens, cross_attention_dim]


def degradation_estimator(strength: float | None, clip_iqa: Any = None, *, search_roots: Sequence[os.PathLike] = ()) -> DegradationEstimator:
    """``FixedStrength(strength)``, else CLIP-IQA from ``clip_iqa`` (a path, state dict or module).

    The runtime passes ``clip/RN50.safetensors`` from the weight search as ``clip_iqa`` when
    the user gave neither; with neither here, the error names both ways out and the folders
    searched (``search_roots``).
    """
    if strength is not None and clip_iqa is not None:
        raise SuperResError(f"pass either {option_ref('strength')} (a fixed degradation factor) or {option_ref('clip_iqa')} (estimate it), not both", option="strength", model="ultravsr")
    if strength is not None:
        return FixedStrength(_check_strength(strength, "strength"))
    if clip_iqa is None:
        roots = ", ".join(str(r) for r in search_roots) or "the weight search path ($SUPERRES_WEIGHTS)"
        raise SuperResError(
            f"UltraVSR needs the clip's degradation factor d: pass {option_ref('strength', 'D')} with 0 < D <= 1 "
            "(1 = clean input, smaller = stronger restoration; CLIP-IQA gives about 0.1-0.3 on "
            "real-world video), or let it be estimated as released with CLIP RN50 weights: "
            f"{option_ref('clip_iqa', 'PATH')}, or a file {CLIP_RN50_RELPATH} in one of: {roots}",
            option="strength", model="ultravsr",
        )
    return clip_iqa if isinstance(clip_iqa, ClipIqaEstimator) else ClipIqaEstimator(clip_iqa)


class UltraVSRPipeline:
    """UltraVSR on one temporal window; a clip runner for the engine.

    Build it with :meth:`from_pretrained` (base model folder + checkpoint), or from modules.
    Call it with frames ``[T, 3, h, w]`` (float, [0, 1]); it returns ``[T, 3, 4h, 4w]`` float32
    in [0, 1] on its device. Without a ``clip_state`` the window is treated as the whole clip.
    ``descriptor`` is the model it runs as (the runtime passes the one it resolved; default the
    family's registered ``ultravsr``): small frames are refused with its
    :meth:`~vs_superres.contracts.descriptor.ModelDescriptor.check_size`, so a direct call and
    the engine say the same.
    """

    scale = SCALE

    def __init__(
        self,
        unet,
        vae,
        text_encoder,
        tokenizer,
        *,
        alphas_cumprod: torch.Tensor,
        estimator: DegradationEstimator,
        tagger: Tagger | None = None,
        settings: UltraVSRSettings = UltraVSRSettings(),
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        descriptor: ModelDescriptor = MODEL,
    ):
        self.descriptor = descriptor
        self.device, self.dtype = torch.device(device), dtype
        # nn.Module.to, not diffusers' override: that one warns about fp32-only modules that
        # SD-2.1 does not have.
        self.unet = nn.Module.to(unet, self.device, dtype).eval().requires_grad_(False)
        self.vae = nn.Module.to(vae, self.device, dtype).eval().requires_grad_(False)
        self.text_encoder = text_encoder.to(self.device, dtype).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.alphas_cumprod = torch.as_tensor(alphas_cumprod).detach().cpu()
        self.estimator = estimator
        self.tagger = tagger
        self.settings = settings
        # Text embeddings by prompt; VapourSynth threads may ask for the same clip state at once.
        self._contexts: dict[str, torch.Tensor] = {}
        self._contexts_lock = threading.Lock()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        checkpoint: str | os.PathLike,
        base: str | os.PathLike,
        *,
        descriptor: ModelDescriptor = MODEL,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        strength: float | None = None,
        clip_iqa: Any = None,
        tagger: Tagger | None = None,
        merge_lora: bool = True,
        search_roots: Sequence[os.PathLike] = (),
        **settings: Any,
    ) -> "UltraVSRPipeline":
        """Load the SD-2.1-base diffusers folder ``base`` and the UltraVSR ``checkpoint``.

        ``base`` is a local folder: finding it (the weight search, a hub id, the Hugging Face
        cache, a download) is the runtime's, which passes the folder it found.

        ``settings`` are :class:`UltraVSRSettings` fields. Cheap checks (settings, the
        estimator) run before anything large is read. ``merge_lora`` (default True, see
        :class:`~.options.UltraVSRLoadOptions`) folds the LoRA adapters into the base weights;
        ``False`` keeps the peft layers the released script runs.
        """
        from vs_superres.models.ultravsr.base import load_alphas_cumprod, load_text_encoder
        from vs_superres.models.ultravsr.checkpoint import read_checkpoint
        from vs_superres.models.ultravsr.loader import load_ultravsr

        config = UltraVSRSettings.from_options(settings)
        estimator = degradation_estimator(strength, clip_iqa, search_roots=search_roots)
        if tagger is not None and not callable(tagger):
            raise SuperResError(f"tagger must be a callable frames -> str, got {type(tagger).__name__}")
        ckpt = read_checkpoint(checkpoint)
        unet, vae = load_ultravsr(ckpt, base, merge_lora=bool(merge_lora))
        text_encoder, tokenizer = load_text_encoder(base)
        return cls(
            unet, vae, text_encoder, tokenizer, alphas_cumprod=load_alphas_cumprod(base), estimator=estimator,
            tagger=tagger, settings=config, device=device, dtype=dtype, descriptor=descriptor,
        )

    # ------------------------------------------------------------------ clip state
    def clip_frames(self, num_frames: int | None) -> list[int]:
        """Frames the clip state is computed from: the estimator's, or the sampled ones for a tagger."""
        if isinstance(self.estimator, FixedStrength) and self.tagger is None:
            return []
        if num_frames is None:
            raise SuperResError(
                "UltraVSR estimates the degradation from frames spread over the clip, so it needs "
                f"the clip's frame count (stream(..., total=N)); or pass {option_ref('strength', 'D')} to fix d", option="strength", model="ultravsr"
            )
        wanted = set(self.estimator.frames_for(num_frames))
        if self.tagger is not None:
            wanted.update(sample_frame_indices(num_frames))
        return sorted(wanted)

    def clip_state(self, frames: Mapping[int, torch.Tensor], num_frames: int) -> ClipState:
        """``d``, timestep and text condition of a clip, from ``{index: [3, h, w]}`` of :meth:`clip_frames`."""
        pre = None
        if frames:
            order = sorted(frames)
            lr = torch.stack([torch.as_tensor(frames[i]) for i in order]).to(self.device, torch.float32)
            pre = upscale_bicubic(lr, SCALE).clamp_(0, 1)
        wanted = self.estimator.frames_for(num_frames)
        if wanted:
            missing = sorted(set(wanted) - set(frames))
            if missing:
                raise SuperResError(f"the degradation estimate needs frames {missing} of the clip; they were not given")
            assert pre is not None  # every wanted frame was given, so there are frames
            chosen = pre[[sorted(frames).index(i) for i in wanted]]
        else:
            chosen = None
        d = float(self.estimator.estimate(chosen))
        if not 0.0 < d <= 1.0:
            raise SuperResError(f"the degradation estimator returned d={d}; it must be in (0, 1]")
        if d < MIN_STRENGTH:
            log.warning("degradation factor d=%.3g is below %s; using %s so that 1/sqrt(d) stays bounded", d, MIN_STRENGTH, MIN_STRENGTH)
            d = MIN_STRENGTH
        prompt = self.settings.prompt
        if self.tagger is not None and pre is not None:
            tags = str(self.tagger(pre)).strip()
            prompt = ", ".join(p for p in (prompt.strip(), tags) if p)
        return ClipState(d=d, timestep=timestep_for(d, self.alphas_cumprod), prompt=prompt, context=self.encode_prompt(prompt))

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """``[1, tokens, dim]`` last hidden state of the text encoder (77 tokens, truncated), cached."""
        with self._contexts_lock:
            if prompt not in self._contexts:
                tok = self.tokenizer
                ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
                if len(tok(prompt).input_ids) > tok.model_max_length:
                    log.warning("the prompt is longer than %d tokens; the rest is ignored", tok.model_max_length)
                self._contexts[prompt] = self.text_encoder(ids.to(self.device))[0].to(self.dtype)
            return self._contexts[prompt]

    # ------------------------------------------------------------------ one window
    @torch.no_grad()
    def __call__(
        self,
        x: torch.Tensor,
        *,
        clip_state: ClipState | None = None,
        frame_indices: Sequence[int] | None = None,
        on_step: ProgressFn | None = None,
    ) -> torch.Tensor:
        """Upscale one window ``[T, 3, h, w]`` -> ``[T, 3, 4h, 4w]`` (float32, [0, 1])."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise SuperResError(f"UltraVSR expects frames shaped [T, 3, h, w], got {tuple(x.shape)}")
        T, _, h, w = x.shape
        self.descriptor.check_size(h, w)  # a network invariant; the engine checked it already
        indices = list(range(T)) if frame_indices is None else [int(i) for i in frame_indices]
        if len(indices) != T:
            raise SuperResError(f"frame_indices has {len(indices)} entries for {T} frames")
        if clip_state is None:
            clip_state = self.clip_state({i: x[i] for i in self.clip_frames(T)}, T)

        pre = upscale_bicubic(x.to(self.device, torch.float32), SCALE).clamp_(0, 1)
        H, W = pre.shape[-2:]
        pad_h, pad_w = -H % 8, -W % 8
        pixels = F.pad(pre * 2 - 1, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else pre * 2 - 1

        scaling = float(self.vae.config.scaling_factor)
        z = self.encode(pixels, indices, on_step) * scaling
        del pixels  # output-sized; only `pre` is kept, for the colour fix
        eps = self.denoise(z, clip_state, on_step)
        x0 = reconstruct_x0(z, eps, clip_state.d)
        decoded = self.decode(x0 / scaling, on_step)[..., :H, :W]
        out = (decoded * 0.5 + 0.5).clamp_(0, 1)
        return color_fix(out, pre, self.settings.color_fix)

    # ------------------------------------------------------------------ stages
    def _grid(self, stage: str, height: int, width: int, tile: int, overlap: int) -> Grid:
        if self.settings.tile_grid == "official":
            official = {"unet": official_unet_grid, "decoder": official_decoder_grid, "encoder": official_encoder_grid}[stage]
            return official(height, width, tile, overlap)
        align = 8 if stage == "encoder" else 1
        ov = min(overlap, tile // 2 // align * align)
        return Grid(balanced_spans(height, tile, ov, align), balanced_spans(width, tile, ov, align))

    def _tiled(self, stage: str, fn, x: torch.Tensor, tile: int, overlap: int, scale, on_step: ProgressFn | None, floor: int) -> torch.Tensor:
        align = 8 if stage == "encoder" else 1
        what = {"encoder": "VAE-encoder tiles (pixels)", "unet": "UNet tiles (latent)", "decoder": "VAE-decoder tiles (latent)"}[stage]
        weights = RELEASED_WEIGHTS if self.settings.tile_grid == "official" else GAUSSIAN_WEIGHTS

        def attempt(t: int) -> torch.Tensor:
            grid = self._grid(stage, x.shape[-2], x.shape[-1], t, overlap)
            return blend_tiles(fn, x, grid, weights=weights, scale=scale, phase=stage, on_tile=on_step)

        def shrink(t: int) -> None:
            log.warning("out of memory in the UltraVSR %s: retrying with %dx%d %s", stage, t, t, what)

        return retry_on_oom(attempt, tile, floor=floor, alignment=align, what=what, on_shrink=shrink)

    def encode(self, pixels: torch.Tensor, indices: Sequence[int], on_step: ProgressFn | None = None) -> torch.Tensor:
        """Raw latents ``[T, 4, H/8, W/8]`` (float32) of pixels in [-1, 1] (multiples of 8)."""
        s = self.settings

        def fn(tile: torch.Tensor) -> torch.Tensor:
            return self.vae.encode_moments(tile.to(self.dtype), frames_per_batch=s.frames_per_batch).float()

        moments = self._tiled("encoder", fn, pixels, s.encoder_tile, s.encoder_overlap, Fraction(1, 8), on_step, floor=64)
        mean, logvar = moments.float().chunk(2, dim=1)
        if not s.sample_latent:
            return mean
        noise = torch.stack([
            torch.randn(mean.shape[1:], generator=torch.Generator().manual_seed(s.seed * 1_000_003 + i)) for i in indices
        ]).to(mean.device)
        return mean + torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * noise

    def denoise(self, z: torch.Tensor, state: ClipState, on_step: ProgressFn | None = None) -> torch.Tensor:
        """The UNet's noise estimate ``eps`` (float32) for scaled latents ``z`` at the clip's timestep."""
        s = self.settings
        context = state.context.to(self.device, self.dtype)

        def fn(tile: torch.Tensor) -> torch.Tensor:
            return self.unet(tile.to(self.dtype), state.timestep, context, frames_per_batch=s.frames_per_batch).float()

        return self._tiled("unet", fn, z, s.unet_tile, s.unet_overlap, 1, on_step, floor=16)

    def decode(self, latents: torch.Tensor, on_step: ProgressFn | None = None) -> torch.Tensor:
        """Pixels ``[T, 3, 8h, 8w]`` in [-1, 1] (float32) from raw latents; every tile clamped."""
        s = self.settings

        def fn(tile: torch.Tensor) -> torch.Tensor:
            return self.vae.decode_frames(tile.to(self.dtype), frames_per_batch=s.frames_per_batch).float().clamp_(-1, 1)

        return self._tiled("decoder", fn, latents, s.decoder_tile, s.decoder_overlap, 8, on_step, floor=16)
