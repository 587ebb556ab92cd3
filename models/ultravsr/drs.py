"""Degradation-aware Reconstruction Scheduling (DRS) of UltraVSR.

UltraVSR restores a clip in one step (paper section 3.2). A degradation factor ``d`` in
(0, 1] is estimated from the pre-upscaled input clip (1 = clean); the UNet runs once on the
LQ latent ``z`` at the timestep ``t`` whose ``alphas_cumprod[t]`` is nearest to ``d``, and its
noise estimate ``eps`` gives the restored latent ``x0 = (z - sqrt(1 - d) * eps) / sqrt(d)``.

What the released weights were produced with (official inference code, which differs from
the paper's ``sqrt(alpha_bar) = d`` and ``sqrt(1 - d**2)``):

* ``d = (mean CLIP-IQA score of at most 5 sampled frames) ** 2``, with pyiqa 0.1.10's
  ``clipiqa`` (CLIP RN50, five antonym prompt pairs, OpenAI mean/std, no resize, attention
  pooling without positional embedding), on frames in [0, 1], in float32;
* ``t = argmin_t |d - alphas_cumprod[t]|`` over the SD-2.1 scaled-linear schedule;
* ``x0`` uses ``d`` itself, not ``alphas_cumprod[t]``; ``t`` only selects the time embedding.

Frames are sampled with the official rule, which picks nothing below 10 frames (the
official code then averages an empty list: NaN); :func:`sample_frame_indices` documents the
fix. The official code scores the clip *including* the frames repeated to pad it to the
chunk size; callers that want the same ``d`` pass the padded clip.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

import torch

from vs_superres.contracts.errors import SuperResError

from vs_superres.models.ultravsr.clip import CLIP, clip_from_state_dict, normalize_images

MAX_SAMPLED_FRAMES = 5
MIN_STRENGTH = 1e-3
"""Smallest ``d`` used in :func:`reconstruct_x0`; ``1/sqrt(d)`` would amplify the UNet's
noise estimate without bound as ``d`` goes to 0, so smaller values are raised to this floor
(``x0`` then scales ``z`` by at most ~31.6) with a warning."""

# --------------------------------------------------------------------------------------
# CLIP-IQA prompts (pyiqa 0.1.10, pyiqa/archs/clipiqa_arch.py): positive, negative, ...
# --------------------------------------------------------------------------------------
CLIPIQA_PROMPTS: tuple[str, ...] = (
    "Good image",
    "bad image",
    "Sharp image",
    "blurry image",
    "sharp edges",
    "blurry edges",
    "High resolution image",
    "low resolution image",
    "Noise-free image",
    "noisy image",
)

SOT_TOKEN = 49406  # <|startoftext|>
EOT_TOKEN = 49407  # <|endoftext|>

# CLIP BPE ids of the prompts (text lower-cased, split into words and punctuation, one
# token per word here). Ids of the tokens, as in the CLIP vocabulary (vocab.json of the
# SD / openai CLIP tokenizer, whose order is the bpe_simple_vocab_16e6 merge order):
#   good</w> 886, bad</w> 2103, sharp</w> 8157, blurry</w> 21977, edges</w> 20938,
#   high</w> 1400, low</w> 1042, resolution</w> 9977, image</w> 2867, noise</w> 9307,
#   -</w> 268, free</w> 1139, noisy</w> 33495, <|startoftext|> 49406, <|endoftext|> 49407.
# Each id was read from a public copy of that vocab.json; that each word encodes to its
# single whole-word token ("noise-free" to noise / - / free) was checked by running the CLIP
# BPE merge procedure with the OpenAI merge list (bpe_simple_vocab_16e6.txt.gz, sha256
# 924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a), which also reproduces
# the well-known "a photo of a cat" -> 320 1125 539 320 2368.
_CLIPIQA_PROMPT_BPE: dict[str, tuple[int, ...]] = {
    "Good image": (886, 2867),
    "bad image": (2103, 2867),
    "Sharp image": (8157, 2867),
    "blurry image": (21977, 2867),
    "sharp edges": (8157, 20938),
    "blurry edges": (21977, 20938),
    "High resolution image": (1400, 9977, 2867),
    "low resolution image": (1042, 9977, 2867),
    "Noise-free image": (9307, 268, 1139, 2867),
    "noisy image": (33495, 2867),
}


def pad_token_ids(bpe_ids: Sequence[Sequence[int]], context_length: int = 77) -> torch.Tensor:
    """``[SOT, *ids, EOT, 0, ...]`` rows of length ``context_length`` (CLIP's tokenize)."""
    rows = torch.zeros(len(bpe_ids), context_length, dtype=torch.long)
    for i, ids in enumerate(bpe_ids):
        seq = [SOT_TOKEN, *ids, EOT_TOKEN]
        if len(seq) > context_length:
            raise SuperResError(
                f"prompt {i} needs {len(seq)} tokens but CLIP's context holds {context_length}; "
                "shorten the prompt"
            )
        rows[i, : len(seq)] = torch.tensor(seq)
    return rows


def clipiqa_token_ids(context_length: int = 77) -> torch.Tensor:
    """Token ids ``[10, context_length]`` of :data:`CLIPIQA_PROMPTS`, no tokenizer needed."""
    return pad_token_ids([_CLIPIQA_PROMPT_BPE[p] for p in CLIPIQA_PROMPTS], context_length)


# --------------------------------------------------------------------------------------
# Frame sampling and the degradation estimators
# --------------------------------------------------------------------------------------
def sample_frame_indices(num_frames: int) -> list[int]:
    """Indices of the frames DRS scores for a clip of ``num_frames`` frames.

    Official rule: ``int(v) for v in torch.linspace(0, T - 1, steps=T // 10)`` (float32),
    keeping the first 5. T = 10 -> [0]; 33 -> [0, 16, 32]; 100 -> [0, 11, 22, 33, 44];
    250 -> [0, 10, 20, 31, 41]. Note that for long clips all five come from the first half.

    Deviation: for T < 10 the official rule selects no frame (d becomes NaN). Here the step
    count is ``max(1, T // 10)``, so short clips score frame 0, exactly what the official rule
    does for 10 <= T < 20; results for T >= 10 are unchanged.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise SuperResError(f"the clip must have at least one frame; got {num_frames!r}")
    steps = max(1, num_frames // 10)
    positions = torch.linspace(0, num_frames - 1, steps=steps, dtype=torch.float32)
    return [int(v) for v in positions.tolist()][:MAX_SAMPLED_FRAMES]


@runtime_checkable
class DegradationEstimator(Protocol):
    """Maps a clip to ``d`` in (0, 1], looking only at the frames it names.

    ``frames_for(num_frames)`` lists the frame indices the estimate needs (``[]`` for none);
    ``estimate(frames)`` computes ``d`` from exactly those frames (``[K, 3, H, W]``, float,
    [0, 1], pre-upscaled; ``None`` when none were named); ``estimator(clip)`` does both on a
    whole clip held in memory. Splitting the two lets a streaming or random-access host fetch
    just the named frames, once per clip.
    """

    def frames_for(self, num_frames: int) -> list[int]: ...

    def estimate(self, frames: torch.Tensor | None) -> float: ...

    def __call__(self, frames: torch.Tensor) -> float: ...


def _check_strength(d: float, what: str = "degradation factor d") -> float:
    try:
        value = float(d)
    except (TypeError, ValueError):
        raise SuperResError(f"{what} must be a number in (0, 1]; got {d!r}") from None
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise SuperResError(
            f"{what} must be in (0, 1] (1 = clean input, smaller = stronger restoration); "
            f"got {value}"
        )
    return value


class FixedStrength:
    """A constant degradation factor chosen by the user instead of estimating it."""

    def __init__(self, d: float):
        self.d = _check_strength(d, "FixedStrength d")

    def frames_for(self, num_frames: int) -> list[int]:
        return []

    def estimate(self, frames: torch.Tensor | None) -> float:
        return self.d

    def __call__(self, frames: torch.Tensor) -> float:
        return self.d

    def __repr__(self) -> str:
        return f"FixedStrength({self.d})"


def _check_frames(frames: torch.Tensor) -> None:
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise SuperResError(f"DRS needs frames shaped [T, 3, H, W]; got {shape}")
    if not frames.is_floating_point():
        raise SuperResError(f"DRS needs float frames in [0, 1]; got {frames.dtype}")
    if frames.shape[0] < 1:
        raise SuperResError("DRS needs at least one frame")


Tokenizer = Callable[[Sequence[str]], torch.Tensor]
_CLIP_WEIGHTS_HINT = (
    "CLIP-IQA needs the state dict of a ResNet CLIP such as OpenAI RN50 (github.com/openai/CLIP), "
    "as safetensors or a plain PyTorch state dict."
)


class ClipIqaEstimator:
    """pyiqa-0.1.10-compatible CLIP-IQA over the sampled frames; ``d = mean(score) ** 2``.

    ``clip``: a :class:`~.clip.CLIP` module, an OpenAI-layout state dict, or a path to one
    (safetensors, or a plain state dict readable with ``torch.load(weights_only=True)``; read
    with :func:`vs_superres.numerics.checkpoints.load_state_dict`). With OpenAI RN50 weights this is the
    computation of pyiqa 0.1.10's ``clipiqa`` (not compared numerically here: neither the
    weights nor pyiqa are available to the tests). A module passed in is used as is: it is
    switched to float32 and eval mode and moved to the frames' device.

    ``prompts`` alternate positive and negative descriptions (pairs). The default prompts
    come with precomputed token ids; other prompts (or another CLIP vocabulary) need
    ``token_ids`` (``[P, context_length]``, end token = largest id) or a ``tokenizer`` mapping
    a list of strings to such a tensor.

    The model runs in float32 on the frames' device, one frame at a time, at the frames' own
    resolution.
    """

    def __init__(
        self,
        clip: CLIP | Mapping[str, torch.Tensor] | str | os.PathLike,
        *,
        prompts: Sequence[str] = CLIPIQA_PROMPTS,
        token_ids: torch.Tensor | None = None,
        tokenizer: Tokenizer | None = None,
    ):
        if isinstance(clip, (str, os.PathLike)):
            from vs_superres.numerics.checkpoints import load_state_dict

            clip = load_state_dict(clip, hint=_CLIP_WEIGHTS_HINT)
        if isinstance(clip, Mapping):
            clip = clip_from_state_dict(clip)
        if not isinstance(clip, CLIP):
            raise SuperResError(
                f"ClipIqaEstimator needs a CLIP module, a CLIP state dict or a path to one; "
                f"got {type(clip).__name__}"
            )
        self.model = clip.float().eval()
        self.prompts = tuple(prompts)
        if len(self.prompts) < 2 or len(self.prompts) % 2:
            raise SuperResError(
                "CLIP-IQA prompts come in (positive, negative) pairs; got "
                f"{len(self.prompts)} prompts"
            )
        context = self.model.config.context_length
        if token_ids is None and tokenizer is not None:
            token_ids = tokenizer(list(self.prompts))
        if token_ids is None:
            if self.prompts != CLIPIQA_PROMPTS:
                raise SuperResError(
                    "custom CLIP-IQA prompts need their token ids: pass token_ids=[P, "
                    f"{context}] or tokenizer=callable(list_of_str) -> LongTensor"
                )
            token_ids = clipiqa_token_ids(context)
        token_ids = torch.as_tensor(token_ids, dtype=torch.long)
        if token_ids.shape != (len(self.prompts), context):
            raise SuperResError(
                f"token ids must be [{len(self.prompts)}, {context}] (one padded row per "
                f"prompt); got {tuple(token_ids.shape)}"
            )
        self.token_ids = token_ids
        self._text_features: torch.Tensor | None = None

    @torch.no_grad()
    def text_features(self, device: torch.device) -> torch.Tensor:
        """L2-normalised prompt embeddings ``[P, embed_dim]`` (cached)."""
        if self._text_features is None or self._text_features.device != device:
            feats = self.model.encode_text(self.token_ids.to(device))
            self._text_features = feats / feats.norm(dim=-1, keepdim=True)
        return self._text_features

    @torch.no_grad()
    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """CLIP-IQA score per frame, ``[T]`` float32 in (0, 1); higher = better quality."""
        _check_frames(frames)
        self.model.to(frames.device)
        text = self.text_features(frames.device)
        scale = self.model.logit_scale.exp()
        scores = []
        for frame in frames:
            image = normalize_images(frame.unsqueeze(0).to(torch.float32))
            feat = self.model.encode_image(image)
            feat = feat / feat.norm(dim=-1, keepdim=True)
            logits = scale * feat @ text.t()  # [1, P]
            probs = logits.view(1, -1, 2).softmax(dim=-1)[..., 0]  # P(positive) per pair
            scores.append(probs.mean(dim=1))
        return torch.cat(scores)

    def frames_for(self, num_frames: int) -> list[int]:
        """The released sampling rule (:func:`sample_frame_indices`)."""
        return sample_frame_indices(num_frames)

    def estimate(self, frames: torch.Tensor | None) -> float:
        """``d = mean(score) ** 2`` over ``frames`` (the sampled frames)."""
        if frames is None:
            raise SuperResError("CLIP-IQA needs at least one frame to estimate d")
        d = float(self.score(frames).mean().square())  # float32, as the official code
        return max(d, torch.finfo(torch.float32).tiny)  # never 0, even if every softmax underflows

    def __call__(self, frames: torch.Tensor) -> float:
        _check_frames(frames)
        return self.estimate(frames[self.frames_for(frames.shape[0])])


# --------------------------------------------------------------------------------------
# Schedule and one-step reconstruction
# --------------------------------------------------------------------------------------
def sd21_alphas_cumprod(
    beta_start: float = 0.00085, beta_end: float = 0.012, num_train_timesteps: int = 1000
) -> torch.Tensor:
    """``alphas_cumprod`` of SD-2.1's scaled-linear DDPM schedule, float32 ``[1000]``.

    ``betas = linspace(sqrt(beta_start), sqrt(beta_end), N) ** 2`` in float32, then the
    cumulative product of ``1 - betas``, as diffusers' DDPMScheduler computes it.
    """
    betas = torch.linspace(
        beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32
    ) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def timestep_for(d: float, alphas_cumprod: torch.Tensor | None = None) -> int:
    """The timestep whose ``alphas_cumprod`` is nearest to ``d`` (first one on ties).

    Computed in the schedule's dtype (float32 for diffusers schedules), as the official code
    does. With SD-2.1: d = 0.05 -> 764, 0.1 -> 673, 0.2 -> 562, 0.3 -> 483, 0.5 -> 354.
    """
    d = _check_strength(d)
    schedule = sd21_alphas_cumprod() if alphas_cumprod is None else torch.as_tensor(alphas_cumprod)
    if schedule.ndim != 1 or schedule.numel() == 0:
        raise SuperResError(
            f"alphas_cumprod must be a non-empty 1-D tensor; got shape {tuple(schedule.shape)}"
        )
    if not schedule.is_floating_point():
        schedule = schedule.to(torch.float32)
    return int((schedule - d).abs().argmin())


def reconstruct_x0(z_lq: torch.Tensor, eps: torch.Tensor, d: float) -> torch.Tensor:
    """One-step restored latent ``(z_lq - sqrt(1 - d) * eps) / sqrt(d)``.

    ``z_lq``: the (scaled) LQ latent; ``eps``: the UNet output for it, same shape. ``d`` in
    (0, 1]; values below :data:`MIN_STRENGTH` are raised to it with a warning. Computed in
    float32; returned in ``z_lq``'s dtype.
    """
    d = _check_strength(d)
    if z_lq.shape != eps.shape:
        raise SuperResError(
            f"the LQ latent {tuple(z_lq.shape)} and the UNet output {tuple(eps.shape)} must have "
            "the same shape"
        )
    if d < MIN_STRENGTH:
        warnings.warn(
            f"degradation factor d={d:.3g} is below {MIN_STRENGTH}; using {MIN_STRENGTH} so that "
            "1/sqrt(d) does not blow up the latent",
            RuntimeWarning,
            stacklevel=2,
        )
        d = MIN_STRENGTH
    z = z_lq.to(torch.float32)
    x0 = (z - math.sqrt(1.0 - d) * eps.to(device=z.device, dtype=torch.float32)) / math.sqrt(d)
    return x0.to(z_lq.dtype)
