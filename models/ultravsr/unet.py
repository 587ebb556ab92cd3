"""The UltraVSR UNet: SD-2.1's UNet2DConditionModel with RTS modules, and its TAI forward.

:class:`UltraVSRUNet` is diffusers' ``UNet2DConditionModel`` plus two top-level module lists
named as in the released checkpoint:

* ``video_down_RTS_blocks[i]``: applied to the main path right **after** down block ``i``.
  The skip tensors of that block are taken before it, so no RTS output reaches a skip
  connection.
* ``video_up_RTS_blocks[i]``: applied to the incoming sample right **before** up block ``i``.

There is no RTS after the mid block. State-dict keys are
``video_down_RTS_blocks.{i}.RTSConv.conv1.weight`` and so on (9 per module).

The forward pass is the one the released weights were run with (Temporally Asynchronous
Inference): the time embedding is computed once for the single timestep, every spatial layer
runs on mini-batches of ``frames_per_batch`` frames, and every RTS call sees all ``T`` frames of
the clip. All non-RTS layers treat frames independently, so any mini-batch size gives the same
result as one batch of ``T`` frames.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from vs_superres.contracts.errors import InternalError, SuperResError

from vs_superres.models.ultravsr.configs import unet_rts_channels
from vs_superres.models.ultravsr.rts import RTSModule

try:  # diffusers is an optional dependency ("ultravsr" extra)
    from diffusers import UNet2DConditionModel
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "UltraVSR needs diffusers; install the extra with `pip install vs-superres[ultravsr]`."
    ) from exc

__all__ = ["UltraVSRUNet", "frame_chunk_sizes"]


def frame_chunk_sizes(num_frames: int, frames_per_batch: int | None) -> list[int]:
    """Sizes of the consecutive frame mini-batches; the last one may be shorter.

    ``None`` means one batch of all frames.
    """
    if num_frames < 1:
        raise SuperResError(f"need at least one frame, got {num_frames}.")
    if frames_per_batch is None:
        return [num_frames]
    if isinstance(frames_per_batch, bool) or not isinstance(frames_per_batch, int) or frames_per_batch < 1:
        raise SuperResError(
            f"frames_per_batch must be a positive integer or None (all frames at once), got {frames_per_batch!r}."
        )
    full, rest = divmod(num_frames, frames_per_batch)
    return [frames_per_batch] * full + ([rest] if rest else [])


class UltraVSRUNet(UNet2DConditionModel):
    """UNet2DConditionModel with UltraVSR's RTS modules (``video_down/up_RTS_blocks``).

    Build it with the same keywords as ``UNet2DConditionModel`` (e.g.
    :data:`~vs_superres.models.ultravsr.configs.SD21_BASE_UNET_CONFIG`). Only the features
    SD-2.1 uses are supported: no class, addition or encoder-hidden-state projections.
    """

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        unsupported = [
            name
            for name in ("class_embedding", "add_embedding", "encoder_hid_proj", "position_net")
            if getattr(self, name, None) is not None
        ]
        if unsupported:
            raise SuperResError(
                f"UltraVSRUNet supports SD-2.1-style UNets only; this config enables {unsupported}. "
                "Use an SD-2.1-base UNet config (see configs.SD21_BASE_UNET_CONFIG)."
            )
        if self.mid_block is None or len(self.down_blocks) != len(self.up_blocks):
            raise SuperResError("UltraVSRUNet needs a mid block and as many up blocks as down blocks.")
        down, up = unet_rts_channels(self.config.block_out_channels)
        self.video_down_RTS_blocks = nn.ModuleList(RTSModule(c) for c in down)
        self.video_up_RTS_blocks = nn.ModuleList(RTSModule(c) for c in up)

    def reset_rts_parameters(self) -> None:
        """Re-initialise every RTS module (zero output projections: RTS then adds only constants)."""
        for module in (*self.video_down_RTS_blocks, *self.video_up_RTS_blocks):
            module.reset_parameters()

    def _time_embedding_once(self, sample: torch.Tensor, timestep) -> torch.Tensor:
        """The time embedding of the single timestep, shaped ``[1, temb]``.

        Every resnet adds it with broadcasting over the frames, so it serves mini-batches of
        any size (including a short last one) without being recomputed.
        """
        t = torch.as_tensor(timestep, device=sample.device)
        if t.numel() != 1:
            raise InternalError(
                f"UltraVSRUNet takes one timestep for the whole clip, got {t.numel()} values; "
                "pass a Python number or a one-element tensor."
            )
        if not t.is_floating_point():
            t = t.long()
        # time_proj has no weights and returns float32; the MLP runs in the model's dtype.
        t_emb = self.time_proj(t.reshape(1)).to(dtype=sample.dtype)
        emb = self.time_embedding(t_emb, None)
        if self.time_embed_act is not None:
            emb = self.time_embed_act(emb)
        return emb

    def _check_inputs(self, sample: torch.Tensor, encoder_hidden_states: torch.Tensor) -> None:
        if sample.dim() != 4 or sample.shape[1] != self.config.in_channels:
            raise InternalError(
                f"UltraVSRUNet expects latents shaped [T, {self.config.in_channels}, h, w], got {tuple(sample.shape)}."
            )
        dim = self.config.cross_attention_dim
        if (
            encoder_hidden_states.dim() != 3
            or encoder_hidden_states.shape[0] not in (1, sample.shape[0])
            or encoder_hidden_states.shape[2] != dim
        ):
            raise InternalError(
                f"encoder_hidden_states must be [T, tokens, {dim}] (one text embedding per frame) or "
                f"[1, tokens, {dim}] (shared); got {tuple(encoder_hidden_states.shape)} for T={sample.shape[0]}."
            )

    @staticmethod
    def _split_context(context: torch.Tensor, sizes: Sequence[int]) -> list[torch.Tensor]:
        if context.shape[0] == 1:
            return [context.expand(n, -1, -1) for n in sizes]
        return list(context.split(list(sizes), dim=0))

    def forward(
        self,
        sample: torch.Tensor,
        timestep: int | float | torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        *,
        frames_per_batch: int | None = None,
    ) -> torch.Tensor:
        """Predict the noise for all frames of one clip.

        Args:
            sample: latents ``[T, 4, h, w]`` (any ``h``, ``w``; odd sizes are handled as in diffusers).
            timestep: one timestep for the whole clip (a number or a one-element tensor).
            encoder_hidden_states: text embeddings ``[T, 77, 1024]`` (per frame) or ``[1, 77, 1024]``.
            frames_per_batch: TAI mini-batch size ``b`` for the spatial layers; ``None`` = all ``T``.
                The result does not depend on it (up to float rounding); memory does.

        Returns:
            The predicted noise ``[T, 4, h, w]``, a plain tensor (not a ``UNet2DConditionOutput``).
        """
        self._check_inputs(sample, encoder_hidden_states)
        sizes = frame_chunk_sizes(sample.shape[0], frames_per_batch)
        contexts = self._split_context(encoder_hidden_states, sizes)
        emb = self._time_embedding_once(sample, timestep)

        up_factor = 2**self.num_upsamplers
        forward_upsample_size = any(s % up_factor != 0 for s in sample.shape[-2:])

        chunks = list(self.conv_in(sample).split(sizes, dim=0))
        skips: list[list[torch.Tensor]] = [[c] for c in chunks]

        for block, rts in zip(self.down_blocks, self.video_down_RTS_blocks):
            cross = getattr(block, "has_cross_attention", False)
            outputs = []
            for j, h in enumerate(chunks):
                if cross:
                    h, res = block(hidden_states=h, temb=emb, encoder_hidden_states=contexts[j])
                else:
                    h, res = block(hidden_states=h, temb=emb)
                skips[j].extend(res)
                outputs.append(h)
            chunks = rts(outputs)

        mid = self.mid_block
        if getattr(mid, "has_cross_attention", False):
            chunks = [mid(h, emb, encoder_hidden_states=contexts[j]) for j, h in enumerate(chunks)]
        else:
            chunks = [mid(h, emb) for h in chunks]

        last = len(self.up_blocks) - 1
        for i, (block, rts) in enumerate(zip(self.up_blocks, self.video_up_RTS_blocks)):
            chunks = rts(chunks)
            n = len(block.resnets)
            cross = getattr(block, "has_cross_attention", False)
            outputs = []
            for j, h in enumerate(chunks):
                res = tuple(skips[j][-n:])
                del skips[j][-n:]
                upsample_size = skips[j][-1].shape[2:] if (i != last and forward_upsample_size) else None
                if cross:
                    h = block(
                        hidden_states=h,
                        temb=emb,
                        res_hidden_states_tuple=res,
                        encoder_hidden_states=contexts[j],
                        upsample_size=upsample_size,
                    )
                else:
                    h = block(hidden_states=h, temb=emb, res_hidden_states_tuple=res, upsample_size=upsample_size)
                outputs.append(h)
            chunks = outputs

        out = torch.cat(chunks, dim=0)
        if self.conv_norm_out is not None:
            out = self.conv_act(self.conv_norm_out(out))
        return self.conv_out(out)
