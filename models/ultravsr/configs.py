"""Network configurations for UltraVSR: the real SD-2.1-base shapes and tiny test shapes.

The SD-2.1-base dictionaries repeat the public ``unet/config.json``, ``vae/config.json`` and
``scheduler/scheduler_config.json`` of ``stabilityai/stable-diffusion-2-1-base`` as diffusers
constructor keywords. They were written from knowledge of those public files, not read from a
downloaded copy (see ``UNVERIFIED``). When a local base-model folder is loaded, its own
``config.json`` files are used; these dictionaries only serve building without the files
(shape checks on the meta device, documentation, tests).

The tiny configurations have the same structure as SD-2.1 (four down/up blocks, cross
attention in the first three down and last three up blocks, an attention mid block, the same
VAE block types) with every RTS insertion point at 96 channels or more, the minimum an RTS
module can be built with. They exist for fast CPU tests.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SD21_BASE_UNET_CONFIG",
    "SD21_BASE_VAE_CONFIG",
    "SD21_BASE_SCHEDULER_CONFIG",
    "TINY_UNET_CONFIG",
    "TINY_VAE_CONFIG",
    "UNVERIFIED",
    "unet_rts_channels",
    "vae_decoder_rts_channels",
]

#: UNet2DConditionModel keywords of SD-2.1-base (``unet/config.json``).
SD21_BASE_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "only_cross_attention": False,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 1024,
    # diffusers' historical name: for SD-2.x this is the number of heads per block (64-dim heads).
    "attention_head_dim": (5, 10, 20, 20),
    "dual_cross_attention": False,
    "use_linear_projection": True,
    "upcast_attention": False,
    "num_class_embeds": None,
}

#: AutoencoderKL keywords of SD-2.1-base (``vae/config.json``).
SD21_BASE_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}

#: Noise schedule of SD-2.1-base (``scheduler/scheduler_config.json``); DRS needs alphas_cumprod.
SD21_BASE_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}

#: Facts above that come from memory of the public configs and were not checked against a copy.
UNVERIFIED: tuple[str, ...] = (
    "SD21_BASE_UNET_CONFIG['sample_size'] == 64 and ['upcast_attention'] is False (2-1-base; the 768 model differs)",
    "SD21_BASE_UNET_CONFIG['attention_head_dim'] == (5, 10, 20, 20) with use_linear_projection True",
    "SD21_BASE_VAE_CONFIG['sample_size'] == 512",
    "SD21_BASE_VAE_CONFIG['scaling_factor'] == 0.18215 (diffusers' default; the official notes also mark it [U])",
    "SD21_BASE_SCHEDULER_CONFIG (scaled_linear 0.00085..0.012 over 1000 steps, epsilon prediction)",
    "whether the hub's vae weights still use the pre-0.14 attention names query/key/value/proj_attn "
    "(both layouts are accepted by the loader)",
)

#: Same structure as SD-2.1, RTS at 96/192 channels; runs in milliseconds on a CPU.
TINY_UNET_CONFIG: dict[str, Any] = {
    **SD21_BASE_UNET_CONFIG,
    "sample_size": 16,
    "block_out_channels": (96, 96, 192, 192),
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": (2, 2, 4, 4),
}

#: Same structure as the SD-2.1 VAE, every decoder RTS at 96 channels.
TINY_VAE_CONFIG: dict[str, Any] = {
    **SD21_BASE_VAE_CONFIG,
    "block_out_channels": (96, 96, 96, 96),
    "layers_per_block": 1,
    "sample_size": 64,
}


def unet_rts_channels(block_out_channels) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Channels of ``(video_down_RTS_blocks, video_up_RTS_blocks)`` for a UNet.

    Down RTS ``i`` sits after down block ``i`` (its output width); up RTS ``i`` sits before up
    block ``i`` (its input width, diffusers' ``prev_output_channel``). SD-2.1:
    ``(320, 640, 1280, 1280)`` and ``(1280, 1280, 1280, 640)``.
    """
    down = tuple(int(c) for c in block_out_channels)
    reversed_channels = down[::-1]
    up = (reversed_channels[0],) + reversed_channels[:-1]
    return down, up


def vae_decoder_rts_channels(block_out_channels) -> tuple[int, ...]:
    """Channels of ``decoder.video_up_RTS_blocks`` (input width of each decoder up block).

    SD-2.1 VAE: ``(512, 512, 512, 256)``.
    """
    return unet_rts_channels(block_out_channels)[1]
