"""A tiny, structurally complete UltraVSR release, written to disk from a seed.

The real model needs Stable Diffusion 2.1-base (about 5 GB) and the authors' checkpoint.
For tests, benchmarks and host smoke tests this module writes the same *kind* of files at a
size that runs in milliseconds on a CPU:

* a diffusers base-model folder (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
  ``scheduler/``) with SD-2.1's structure at small widths
  (:data:`~.configs.TINY_UNET_CONFIG`, :data:`~.configs.TINY_VAE_CONFIG`, a 2-layer CLIP
  text encoder, a byte-level CLIP tokenizer without merges, SD-2.1's noise schedule);
* an UltraVSR checkpoint in the official ``.pkl`` dict layout, with LoRA adapters on the
  official targets and every trained tensor (LoRA, ``conv_in``, RTS) set from the seed.

Everything then loads through the same code as the real release
(:meth:`~.pipeline.UltraVSRPipeline.from_pretrained`). The weights are random: the output is
not super-resolution, only the machinery is real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vs_superres.models.ultravsr.configs import SD21_BASE_SCHEDULER_CONFIG, TINY_UNET_CONFIG, TINY_VAE_CONFIG

__all__ = [
    "TINY_LORA_RANK", "TINY_TEXT_CONFIG", "write_tiny_base", "write_tiny_checkpoint", "write_tiny_clip", "write_tiny_release",
]

TINY_LORA_RANK = 4
TINY_TEXT_CONFIG = {
    "hidden_size": TINY_UNET_CONFIG["cross_attention_dim"],
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 32,
}


def _byte_vocab() -> dict[str, int]:
    """CLIP's byte-to-unicode alphabet, each symbol alone and word-final, plus the two specials."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    symbols = [chr(c) for c in codes]
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def write_tiny_base(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny SD-2.1-structured diffusers folder; returns its path."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vs_superres.models.ultravsr.base import quiet_transformers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    UNet2DConditionModel(**TINY_UNET_CONFIG).save_pretrained(folder / "unet")
    AutoencoderKL(**TINY_VAE_CONFIG).save_pretrained(folder / "vae")
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(  # SD-2.1-base ships a PNDM config
        json.dumps({"_class_name": "PNDMScheduler", "skip_prk_steps": True, **SD21_BASE_SCHEDULER_CONFIG})
    )

    vocab = _byte_vocab()
    tok = folder / "tokenizer"
    tok.mkdir(exist_ok=True)
    (tok / "vocab.json").write_text(json.dumps(vocab))
    (tok / "merges.txt").write_text("#version: 0.2\n")
    (tok / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
    ))
    (tok / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True}
    ))
    text = CLIPTextConfig(vocab_size=len(vocab), bos_token_id=vocab["<|startoftext|>"],
                          eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"], **TINY_TEXT_CONFIG)
    with quiet_transformers():
        CLIPTextModel(text).save_pretrained(folder / "text_encoder")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline", "_note": "vs-superres tiny test model"}))
    return folder


def write_tiny_checkpoint(path: str | os.PathLike, base: str | os.PathLike, seed: int = 0, scale: float = 0.05) -> Path:
    """Write an official-layout UltraVSR ``.pkl`` for the tiny base; trained tensors ~ ``scale * N(0, 1)``.

    The zero-initialised RTS output projections and LoRA ``B`` matrices get random values too, so
    every temporal and LoRA path is live.
    """
    from vs_superres.models.ultravsr.adapters import add_unet_adapters, add_vae_adapter, checkpoint_from_models, official_unet_targets, official_vae_targets
    from vs_superres.models.ultravsr.base import load_base_unet, load_base_vae
    from vs_superres.models.ultravsr.checkpoint import save_official_checkpoint

    unet, vae = load_base_unet(base), load_base_vae(base)
    add_unet_adapters(unet, TINY_LORA_RANK, official_unet_targets(unet))
    add_vae_adapter(vae, TINY_LORA_RANK, official_vae_targets(vae))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for model, markers in ((unet, ("lora", "RTS")), (vae, ("lora", "RTS"))):
            for name, p in model.named_parameters():
                if any(m in name for m in markers):
                    p.copy_(torch.randn(p.shape, generator=g) * scale)
            for name, p in model.named_parameters():
                if name.endswith("temperature"):
                    p.fill_(1.0)
    path = Path(path)
    save_official_checkpoint(checkpoint_from_models(unet, vae), path)
    return path


def write_tiny_clip(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write random CLIP weights of :data:`~.clip.TINY_CONFIG` (OpenAI layout, safetensors) for CLIP-IQA."""
    from safetensors.torch import save_file

    from vs_superres.models.ultravsr.clip import CLIP, TINY_CONFIG

    torch.manual_seed(seed)
    path = Path(path)
    save_file({k: v.contiguous() for k, v in CLIP(TINY_CONFIG).state_dict().items()}, str(path))
    return path


def write_tiny_release(folder: str | os.PathLike, seed: int = 0) -> tuple[Path, Path]:
    """``(base_folder, checkpoint_path)`` of a tiny release written under ``folder``."""
    folder = Path(folder)
    base = write_tiny_base(folder / "stable-diffusion-2-1-base", seed)
    return base, write_tiny_checkpoint(folder / "UltraVSR-tiny.pkl", base, seed)
