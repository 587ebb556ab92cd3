"""PatchScaler checkpoints: one ``.safetensors`` file, the config as JSON in its metadata.

Read through the project's one safe loader (:func:`vs_superres.numerics.checkpoints.read_safetensors`).
Training checkpoints add the optimiser state and the step (``train_state``), so a run resumes
where it stopped; an inference load ignores them.

Tensor prefixes: ``net.*`` the networks' state dict (every parameter and buffer, the RTM
included), ``ema.*`` the exponential moving average of the parameters that
:data:`EMA_MODULES` hold (written by training with ``--ema``), ``optim.*`` Adam's state. An
inference load takes ``net.*`` and, by default, replaces those parameters by their ``ema.*``
copies when the file has them; everything else (the texture classifier, whose raw weights
made the RTM keys, and every buffer) always comes from ``net.*``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from vs_superres.contracts.errors import WeightsError, option_ref
from vs_superres.numerics.checkpoints import read_safetensors

from vs_superres.models.patchscaler.configs import PatchScalerConfig
from vs_superres.models.patchscaler.networks import PatchScalerNetworks

FORMAT = "vs-superres/patchscaler"
FORMAT_VERSION = "1"
_GET_IT = ("PatchScaler has no released weights: train a checkpoint with "
           "`python -m vs_superres.models.patchscaler.train` (see docs/patchscaler.md) and pass it as " + option_ref("checkpoint", "PATH") + ".")
_NET_PREFIX = "net."
_EMA_PREFIX = "ema."
_OPT_PREFIX = "optim."
#: The modules whose parameters training averages. Not the texture classifier: the RTM keys were
#: computed by its raw weights, and the queries of Algorithm 1 must come from the same weights.
EMA_MODULES = ("grm", "dit", "texture_encoder")


def ema_parameter_names(networks: PatchScalerNetworks) -> list[str]:
    """The names (``state_dict`` keys) of the parameters an EMA covers, in ``named_parameters`` order."""
    return [n for n, _ in networks.named_parameters() if n.split(".", 1)[0] in EMA_MODULES]


@dataclasses.dataclass
class CheckpointContents:
    """Everything a checkpoint holds, split by prefix (see the module docstring)."""

    config: PatchScalerConfig
    networks: dict[str, torch.Tensor]
    train_state: dict[str, Any]
    optimizer: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]


def save_checkpoint(path: str | os.PathLike, networks: PatchScalerNetworks, *, train_state: dict[str, Any] | None = None,
                    optimizer_tensors: dict[str, torch.Tensor] | None = None,
                    ema_tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the networks (and optionally training state and EMA weights) atomically: a temporary file, then a rename."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {_NET_PREFIX + k: v.detach().cpu().contiguous().clone() for k, v in networks.state_dict().items()}
    for k, v in (optimizer_tensors or {}).items():
        tensors[_OPT_PREFIX + k] = v.detach().cpu().contiguous().clone()
    for k, v in (ema_tensors or {}).items():
        tensors[_EMA_PREFIX + k] = v.detach().cpu().contiguous().clone()
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": json.dumps(networks.config.to_dict())}
    if train_state is not None:
        metadata["train_state"] = json.dumps(train_state)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> tuple[PatchScalerConfig, dict[str, torch.Tensor], dict[str, Any],
                                                        dict[str, torch.Tensor]]:
    """``(config, network tensors, train_state, optimizer tensors)``; a file of another kind raises :class:`WeightsError`."""
    c = read_contents(path)
    return c.config, c.networks, c.train_state, c.optimizer


def read_contents(path: str | os.PathLike) -> CheckpointContents:
    """Every part of a checkpoint (EMA tensors included); a file of another kind raises :class:`WeightsError`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"{path} is not a PatchScaler checkpoint: expected a .safetensors file. {_GET_IT}",
                           option="checkpoint")
    tensors, metadata = read_safetensors(path, hint=_GET_IT)
    if metadata.get("format") != FORMAT:
        raise WeightsError(
            f"{path} is a .safetensors file but not a PatchScaler checkpoint (metadata format "
            f"{metadata.get('format')!r}, expected {FORMAT!r}). {_GET_IT}", option="checkpoint")
    try:
        config = PatchScalerConfig.from_dict(json.loads(metadata["config"]))
        train_state = json.loads(metadata.get("train_state", "{}"))
    except (KeyError, ValueError, TypeError) as exc:
        raise WeightsError(f"{path}: the PatchScaler config in its metadata is missing or invalid ({exc}). {_GET_IT}",
                           option="checkpoint") from None

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    return CheckpointContents(config, part(_NET_PREFIX), train_state, part(_OPT_PREFIX), part(_EMA_PREFIX))


def load_networks(path: str | os.PathLike, *, ema: bool = True) -> PatchScalerNetworks:
    """Build the networks of a checkpoint's config and load every tensor strictly (fp32, CPU, eval).

    ``ema``: take the averaged weights of :data:`EMA_MODULES` when the file has them (it has
    them when it was trained with ``--ema``); ``False`` loads the raw trained weights.
    """
    contents = read_contents(path)
    config, tensors = contents.config, dict(contents.networks)
    networks = PatchScalerNetworks(config)
    if ema and contents.ema:
        stray = sorted(set(contents.ema) - set(ema_parameter_names(networks)))
        if stray:
            raise WeightsError(f"{path}: EMA tensors {stray[:5]} name no parameter of its PatchScaler config; the file "
                               f"is damaged or was written by another version (load it with {option_ref('ignore_ema', 'true')} "
                               f"to ignore them). {_GET_IT}", option="checkpoint")
        tensors.update(contents.ema)
    own = networks.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = [f"{k}: file {tuple(tensors[k].shape)}, model {tuple(own[k].shape)}"
             for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{path} does not fit its own PatchScaler config: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"shape mismatches {wrong[:3]}; the file is damaged or was written by another version. {_GET_IT}",
            option="checkpoint")
    networks.load_state_dict(tensors, strict=True)
    return networks.eval().requires_grad_(False)
