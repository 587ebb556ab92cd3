"""Safe checkpoint loading: the one loader every family and the runtime use.

Loading never unpickles code: safetensors, or ``torch.load(..., weights_only=True)`` (plain
tensors, numbers, strings and containers only). Errors name the file and say what to do.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch

from ..contracts.errors import WeightsError

_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net", "generator")


def unwrap_state_dict(obj) -> dict[str, torch.Tensor]:
    """Strip the usual training wrappers (``params_ema``, ``state_dict``, ... and ``module.``)."""
    seen = 0
    while isinstance(obj, Mapping) and seen < 4:
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
        else:
            break
        seen += 1
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError("the checkpoint holds no state dict (expected a mapping of names to tensors)")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError("the checkpoint's mapping holds no tensors; it is not a model state dict")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def load_checkpoint(path: str | os.PathLike) -> Any:
    """Load a checkpoint without executing code: safetensors (a dict of tensors) or a
    ``weights_only`` torch file (whatever plain containers it holds)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{str(path)!r} is not a readable safetensors file ({e})") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsError(
            f"{str(path)!r} was refused: it is a pickle that needs code beyond plain tensors and "
            f"containers to load ({str(e).splitlines()[0][:200]}). vs-superres never runs code "
            "from checkpoints; convert it to safetensors or a plain state dict in a trusted "
            "environment."
        ) from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        raise WeightsError(
            f"{str(path)!r} is not a readable PyTorch checkpoint (corrupt or truncated?): "
            f"{str(e).splitlines()[0][:200]}"
        ) from None


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    return unwrap_state_dict(load_checkpoint(path))

