"""The Stable Diffusion 2.1-base model UltraVSR builds on, read from a local diffusers folder.

One job: reading the folder's parts (UNet and VAE weights into UltraVSR's RTS networks, the
text encoder and tokenizer, the noise schedule), every weight file through the safe loader.
Which folder that is, whether it is complete, and any download are the runtime's
(``vs_superres.runtime.weights.resolve_snapshot``, driven by ``family.BASE``); a caller
without the runtime passes a folder it has.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import threading
from pathlib import Path

import torch

from vs_superres.contracts.errors import SuperResError, WeightsError
from vs_superres.numerics.checkpoints import load_tensors

from vs_superres.models.ultravsr.family import BASE
from vs_superres.models.ultravsr.rts import RTSModule
from vs_superres.models.ultravsr.unet import UltraVSRUNet
from vs_superres.models.ultravsr.vae import UltraVSRAutoencoder

__all__ = ["load_alphas_cumprod", "load_base_unet", "load_base_vae", "load_text_encoder", "quiet_transformers"]


def _download_hint(where: str) -> str:
    assert BASE.hub is not None
    return BASE.hub.download_hint(where)


_WEIGHT_NAMES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.fp16.bin",
)
_OLD_ATTENTION = re.compile(r"^(.*attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$")
_NEW_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _read_base_state(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    for name in _WEIGHT_NAMES:
        file = folder / name
        if file.is_file():
            state = load_tensors(file, hint="Re-download the base model.")
            renamed = {}
            for key, value in state.items():
                m = _OLD_ATTENTION.match(key)  # diffusers < 0.14 VAE attention names
                renamed[f"{m[1]}.{_NEW_ATTENTION[m[2]]}.{m[3]}" if m else key] = value
            return renamed, file
    raise SuperResError(f"{folder} holds none of {list(_WEIGHT_NAMES)}. {_download_hint(str(folder.parent))}")


def _build_from_folder(cls, base_cls, folder: Path):
    if not (folder / "config.json").is_file():  # a folder the runtime did not check
        where = str(folder.parent)
        raise SuperResError(f"base model folder {where} lacks {[folder.name + '/config.json']}. {_download_hint(where)}")
    config = json.loads((folder / "config.json").read_text())
    accepted = set(inspect.signature(base_cls.__init__).parameters) - {"self"}
    config = {k: v for k, v in config.items() if k in accepted}
    state, file = _read_base_state(folder)
    with torch.device("meta"):
        model = cls(**config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if "RTS" not in k]
    if missing or unexpected:
        raise WeightsError(
            f"{file} does not match its config.json as an SD-2.1 {base_cls.__name__}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}. {_download_hint(str(folder.parent))}"
        )
    for module in model.modules():
        if isinstance(module, RTSModule):
            module.to_empty(device="cpu")
            module.reset_parameters()
    leftovers = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftovers:
        raise WeightsError(f"{file} left {leftovers[:5]} uninitialised; re-download the base model.")
    return model.float().eval()


def load_base_unet(base_dir: str | os.PathLike) -> UltraVSRUNet:
    """SD-2.1-base UNet weights from ``<base_dir>/unet`` in an :class:`UltraVSRUNet` (fp32, CPU, fresh RTS)."""
    from diffusers import UNet2DConditionModel

    return _build_from_folder(UltraVSRUNet, UNet2DConditionModel, Path(base_dir) / "unet")


def load_base_vae(base_dir: str | os.PathLike) -> UltraVSRAutoencoder:
    """SD-2.1-base VAE weights from ``<base_dir>/vae`` in an :class:`UltraVSRAutoencoder` (fp32, CPU, fresh RTS)."""
    from diffusers import AutoencoderKL

    return _build_from_folder(UltraVSRAutoencoder, AutoencoderKL, Path(base_dir) / "vae")


def load_text_encoder(folder: str | os.PathLike):
    """``(CLIPTextModel, CLIPTokenizer)`` from a diffusers base folder (fp32, CPU, eval)."""
    folder = Path(folder)
    try:
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise SuperResError("UltraVSR needs transformers; install `pip install vs-superres[ultravsr]`") from exc
    try:
        with quiet_transformers():
            tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
            text_encoder = CLIPTextModel.from_pretrained(str(folder / "text_encoder"))
    except (OSError, ValueError) as exc:
        raise SuperResError(
            f"the text encoder or tokenizer in {folder} could not be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); re-download the base model"
        ) from None
    return text_encoder.float().eval(), tokenizer


def load_alphas_cumprod(folder: str | os.PathLike) -> torch.Tensor:
    """``alphas_cumprod`` of the base model's training schedule (``scheduler/``)."""
    from diffusers import DDPMScheduler

    try:  # as released: a DDPM schedule from the folder's config, whatever its class name
        scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(str(Path(folder) / "scheduler")))
    except (OSError, ValueError) as exc:
        raise SuperResError(f"the scheduler config in {folder} could not be read ({exc}); re-download the base model") from None
    return scheduler.alphas_cumprod.to(torch.float32)


_QUIET_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_transformers():
    """No progress bars or info chatter from transformers while loading (hosts own the terminal).

    transformers' verbosity is process-wide, so loads that overlap (two VapourSynth filters
    created on two threads) take turns; otherwise the second would restore the first one's
    quiet level as the "original".
    """
    from transformers.utils import logging as tlog

    with _QUIET_LOCK:
        bars, level = tlog.is_progress_bar_enabled(), tlog.get_verbosity()
        tlog.disable_progress_bar()
        tlog.set_verbosity_error()
        try:
            yield
        finally:
            tlog.set_verbosity(level)
            if bars:
                tlog.enable_progress_bar()
