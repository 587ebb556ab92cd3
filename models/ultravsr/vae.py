"""The UltraVSR VAE: SD-2.1's AutoencoderKL with RTS modules in the decoder.

The encoder is unchanged (UltraVSR fine-tunes it with LoRA only). The decoder is an
:class:`RTSDecoder`: diffusers' ``Decoder`` with ``video_up_RTS_blocks[i]`` applied right
**before** up block ``i``, so its state-dict keys are
``decoder.video_up_RTS_blocks.{i}.RTSConv.conv1.weight`` and so on.

Both directions run frame mini-batches (TAI): the encoder has no temporal mixing at all; the
decoder's conv_in, mid block, up blocks and output layers run per mini-batch, while every RTS
call sees all ``T`` frames. The result does not depend on the mini-batch size.

Latents here are the raw VAE latents (not multiplied by ``scaling_factor``); pixels are
``[-1, 1]``. The caller scales latents and clamps decoded pixels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vs_superres.contracts.errors import InternalError

from vs_superres.models.ultravsr.configs import vae_decoder_rts_channels
from vs_superres.models.ultravsr.rts import RTSModule
from vs_superres.models.ultravsr.unet import frame_chunk_sizes

try:  # diffusers is an optional dependency ("ultravsr" extra)
    from diffusers import AutoencoderKL
    from diffusers.models.autoencoders.vae import Decoder, DecoderOutput, DiagonalGaussianDistribution
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "UltraVSR needs diffusers; install the extra with `pip install vs-superres[ultravsr]`."
    ) from exc

__all__ = ["RTSDecoder", "UltraVSRAutoencoder"]


class RTSDecoder(Decoder):
    """diffusers' VAE ``Decoder`` with an RTS module before each up block."""

    def __init__(self, *, block_out_channels, **kwargs: Any) -> None:
        super().__init__(block_out_channels=block_out_channels, **kwargs)
        self.video_up_RTS_blocks = nn.ModuleList(RTSModule(c) for c in vae_decoder_rts_channels(block_out_channels))

    def forward(
        self,
        sample: torch.Tensor,
        latent_embeds: torch.Tensor | None = None,
        frames_per_batch: int | None = None,
    ) -> torch.Tensor:
        """Decode ``[T, latent_channels, h, w]`` (after post_quant_conv) to ``[T, 3, 8h, 8w]``.

        ``frames_per_batch`` is the TAI mini-batch size (``None`` = all frames at once).
        """
        if latent_embeds is not None:
            raise InternalError("RTSDecoder does not support spatial-norm latent_embeds (SD-2.1 has none).")
        sizes = frame_chunk_sizes(sample.shape[0], frames_per_batch)
        upscale_dtype = next(iter(self.up_blocks.parameters())).dtype
        chunks = [self.mid_block(self.conv_in(z), None).to(upscale_dtype) for z in sample.split(sizes, dim=0)]
        # Memory: every RTS needs all T frames of its level, so the peak is one full window of
        # the largest level. Under no_grad the RTS adds its residual into the tensors this loop
        # owns, and each chunk is dropped as soon as its up block has consumed it.
        inplace = not torch.is_grad_enabled()
        for rts, up_block in zip(self.video_up_RTS_blocks, self.up_blocks):
            mixed = rts(chunks, inplace=inplace)
            chunks = []
            while mixed:
                chunks.append(up_block(mixed.pop(0), None))
        outs = []
        while chunks:
            h = chunks.pop(0)
            outs.append(self.conv_out(self.conv_act(self.conv_norm_out(h))))
        return torch.cat(outs, dim=0)


class UltraVSRAutoencoder(AutoencoderKL):
    """AutoencoderKL whose decoder is an :class:`RTSDecoder`; encoder and quant convs unchanged.

    Build it with the same keywords as ``AutoencoderKL`` (e.g.
    :data:`~vs_superres.models.ultravsr.configs.SD21_BASE_VAE_CONFIG`).
    """

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        cfg = self.config
        # Rebuilt with exactly the arguments AutoencoderKL gives its own Decoder.
        self.decoder = RTSDecoder(
            in_channels=cfg.latent_channels,
            out_channels=cfg.out_channels,
            up_block_types=cfg.up_block_types,
            block_out_channels=cfg.block_out_channels,
            layers_per_block=cfg.layers_per_block,
            norm_num_groups=cfg.norm_num_groups,
            act_fn=cfg.act_fn,
            mid_block_add_attention=getattr(cfg, "mid_block_add_attention", True),
        )

    @property
    def scaling_factor(self) -> float:
        return float(self.config.scaling_factor)

    def reset_rts_parameters(self) -> None:
        for module in self.decoder.video_up_RTS_blocks:
            module.reset_parameters()  # type: ignore[operator]  # RTSModule, in a ModuleList

    def encode_frames(
        self,
        frames: torch.Tensor,
        *,
        frames_per_batch: int | None = None,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Encode ``[T, 3, H, W]`` pixels in ``[-1, 1]`` to raw latents ``[T, 4, H/8, W/8]``.

        Returns the posterior mean unless ``sample=True``, which draws
        ``mean + std * noise`` with one noise tensor for the whole clip from ``generator`` (so
        the result does not depend on ``frames_per_batch``). The official code samples without a
        seed; the mean is the deterministic choice.
        """
        posterior = DiagonalGaussianDistribution(self.encode_moments(frames, frames_per_batch=frames_per_batch))
        return posterior.sample(generator=generator) if sample else posterior.mode()

    def encode_moments(self, frames: torch.Tensor, *, frames_per_batch: int | None = None) -> torch.Tensor:
        """Posterior moments ``[T, 2 * latent_channels, H/8, W/8]`` (mean, then log-variance).

        Tiled encoders blend these and draw a sample once, from the blended moments.
        """
        if frames.dim() != 4 or frames.shape[1] != self.config.in_channels:
            raise InternalError(
                f"encode_frames expects pixels shaped [T, {self.config.in_channels}, H, W], got {tuple(frames.shape)}."
            )
        sizes = frame_chunk_sizes(frames.shape[0], frames_per_batch)
        return torch.cat([self._encode(c) for c in frames.split(sizes, dim=0)], dim=0)

    def decode_frames(self, latents: torch.Tensor, *, frames_per_batch: int | None = None) -> torch.Tensor:
        """Decode raw latents ``[T, 4, h, w]`` to pixels ``[T, 3, 8h, 8w]`` (about ``[-1, 1]``, not clamped).

        The RTS modules mix all ``T`` frames; ``frames_per_batch`` only bounds memory.
        """
        if latents.dim() != 4 or latents.shape[1] != self.config.latent_channels:
            raise InternalError(
                f"decode_frames expects latents shaped [T, {self.config.latent_channels}, h, w], "
                f"got {tuple(latents.shape)}."
            )
        if self.post_quant_conv is not None:
            latents = self.post_quant_conv(latents)
        return self.decoder(latents, frames_per_batch=frames_per_batch)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator=None):
        """diffusers-compatible decode; ``enable_slicing()`` maps to one frame per TAI mini-batch.

        diffusers' own slicing would decode each frame alone and lose the RTS temporal mixing.
        """
        if self.use_slicing and z.shape[0] > 1 and not self.use_tiling:
            decoded = self.decode_frames(z, frames_per_batch=1)
        else:
            decoded = self._decode(z).sample
        if not return_dict:
            return (decoded,)
        return DecoderOutput(sample=decoded)
