"""UltraVSR checkpoint files: the official dict and our safetensors form, read and written.

One job: the trained part of UltraVSR as data (:class:`UltraVSRCheckpoint`) and its two file
layouts. Putting it into networks is :mod:`.adapters`; the base model is :mod:`.base`.

The official checkpoint (``UltraVSR.pkl``, written with ``torch.save``) is a dict with
``rank_unet``, ``unet_lora_{encoder,decoder,others}_modules``, ``state_dict_unet``,
``rank_vae``, ``vae_lora_modules`` and ``state_dict_vae``. Both layouts are read by the one
safe loader, :mod:`vs_superres.numerics.checkpoints` (``torch.load(weights_only=True)`` or
safetensors): only tensors, numbers, strings, lists and dicts are accepted, so no code from a
file ever runs.

Our own format is one ``.safetensors`` file: tensors ``unet.<key>`` and ``vae.<key>``, and the
ranks and target lists as JSON metadata (``format`` is the family's ``checkpoint_format``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from vs_superres.contracts.errors import WeightsError
from vs_superres.numerics.checkpoints import load_checkpoint, read_safetensors

from vs_superres.models.ultravsr.family import FAMILY

__all__ = [
    "GET_IT", "SAFETENSORS_FORMAT", "UNET_ADAPTERS", "VAE_ADAPTER", "UltraVSRCheckpoint", "read_checkpoint",
    "save_official_checkpoint", "save_safetensors_checkpoint",
]

#: The adapters the three UNet target lists belong to, in the file's order, and the VAE's one.
UNET_ADAPTERS = ("default_encoder", "default_decoder", "default_others")
VAE_ADAPTER = "default_encoder"
SAFETENSORS_FORMAT: str = FAMILY.checkpoint_format  # type: ignore[assignment]  # declared in family.py
_OFFICIAL_KEYS = (
    "rank_unet", "unet_lora_encoder_modules", "unet_lora_decoder_modules", "unet_lora_others_modules",
    "state_dict_unet", "rank_vae", "vae_lora_modules", "state_dict_vae",
)
GET_IT = (
    "Use the official UltraVSR checkpoint (.pkl, from github.com/yongliuy/UltraVSR) or a .safetensors "
    "file written by save_safetensors_checkpoint."
)
"""Where a good checkpoint comes from: the end of every message about a bad one."""


@dataclass
class UltraVSRCheckpoint:
    """The trained part of UltraVSR: LoRA ranks and targets plus the trained tensors."""

    rank_unet: int
    unet_lora_encoder_modules: list[str]
    unet_lora_decoder_modules: list[str]
    unet_lora_others_modules: list[str]
    state_dict_unet: dict[str, torch.Tensor]
    rank_vae: int
    vae_lora_modules: list[str]
    state_dict_vae: dict[str, torch.Tensor]
    source: str = "<in memory>"

    def to_official_dict(self) -> dict[str, Any]:
        """The dict layout of the official ``.pkl`` (plain lists, ints and tensors)."""
        return {key: getattr(self, key) for key in _OFFICIAL_KEYS}

    def unet_targets(self) -> dict[str, list[str]]:
        lists = (self.unet_lora_encoder_modules, self.unet_lora_decoder_modules, self.unet_lora_others_modules)
        return dict(zip(UNET_ADAPTERS, lists))


def _validated(obj: Any, source: str) -> UltraVSRCheckpoint:
    def bad(what: str) -> WeightsError:
        return WeightsError(f"{source} is not an UltraVSR checkpoint: {what}. {GET_IT}")

    if not isinstance(obj, Mapping):
        raise bad(f"expected a dict with keys {list(_OFFICIAL_KEYS)}, got {type(obj).__name__}")
    missing = [k for k in _OFFICIAL_KEYS if k not in obj]
    if missing:
        raise bad(f"keys {missing} are missing (found {sorted(map(str, obj))[:12]})")
    for key in ("rank_unet", "rank_vae"):
        if isinstance(obj[key], bool) or not isinstance(obj[key], int) or obj[key] < 1:
            raise bad(f"{key} must be a positive int, got {obj[key]!r}")
    for key in _OFFICIAL_KEYS[1:4] + ("vae_lora_modules",):
        value = obj[key]
        if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
            raise bad(f"{key} must be a list of module names (str)")
    for key in ("state_dict_unet", "state_dict_vae"):
        value = obj[key]
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
        ):
            raise bad(f"{key} must map parameter names to tensors")
    return UltraVSRCheckpoint(
        rank_unet=int(obj["rank_unet"]),
        unet_lora_encoder_modules=list(obj["unet_lora_encoder_modules"]),
        unet_lora_decoder_modules=list(obj["unet_lora_decoder_modules"]),
        unet_lora_others_modules=list(obj["unet_lora_others_modules"]),
        state_dict_unet=dict(obj["state_dict_unet"]),
        rank_vae=int(obj["rank_vae"]),
        vae_lora_modules=list(obj["vae_lora_modules"]),
        state_dict_vae=dict(obj["state_dict_vae"]),
        source=source,
    )


def read_checkpoint(path: str | os.PathLike) -> UltraVSRCheckpoint:
    """Read an official ``.pkl``/``.pt`` dict (weights-only) or our ``.safetensors`` file.

    Both go through :mod:`vs_superres.numerics.checkpoints` (no code from the file runs).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    return _validated(load_checkpoint(path, hint=GET_IT), str(path))


def save_official_checkpoint(checkpoint: UltraVSRCheckpoint, path: str | os.PathLike) -> None:
    """Write the official dict layout with ``torch.save`` (readable by the released code)."""
    torch.save(checkpoint.to_official_dict(), Path(path))


def save_safetensors_checkpoint(checkpoint: UltraVSRCheckpoint, path: str | os.PathLike) -> None:
    """Write one ``.safetensors`` file: ``unet.*``/``vae.*`` tensors, ranks and targets as metadata."""
    from safetensors.torch import save_file

    tensors = {f"unet.{k}": v.detach().contiguous().clone() for k, v in checkpoint.state_dict_unet.items()}
    tensors.update({f"vae.{k}": v.detach().contiguous().clone() for k, v in checkpoint.state_dict_vae.items()})
    metadata = {"format": SAFETENSORS_FORMAT, "format_version": "1"}
    for key in _OFFICIAL_KEYS:
        if not key.startswith("state_dict"):
            metadata[key] = json.dumps(getattr(checkpoint, key))
    save_file(tensors, str(path), metadata=metadata)


def _read_safetensors(path: Path) -> UltraVSRCheckpoint:
    tensors, metadata = read_safetensors(path, hint=GET_IT)
    if metadata.get("format") != SAFETENSORS_FORMAT:
        raise WeightsError(
            f"{path} is a .safetensors file but not an UltraVSR checkpoint (metadata format "
            f"{metadata.get('format')!r}, expected {SAFETENSORS_FORMAT!r}). {GET_IT}"
        )
    try:
        obj: dict[str, Any] = {k: json.loads(metadata[k]) for k in _OFFICIAL_KEYS if not k.startswith("state_dict")}
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"{path}: UltraVSR metadata is incomplete or not JSON ({exc}). {GET_IT}") from exc
    obj["state_dict_unet"] = {k[5:]: v for k, v in tensors.items() if k.startswith("unet.")}
    obj["state_dict_vae"] = {k[4:]: v for k, v in tensors.items() if k.startswith("vae.")}
    stray = [k for k in tensors if not k.startswith(("unet.", "vae."))]
    if stray:
        raise WeightsError(f"{path}: tensors {stray[:5]} belong to neither unet. nor vae. {GET_IT}")
    return _validated(obj, str(path))

