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


#: Fields of the base folder's configs that size what is allocated (a tensor per timestep, a
#: channel count, a layer count, a vocabulary), with the range an SD-2.1-base-like model can
#: have; SD-2.1-base itself: 1000 timesteps, channels up to 1280, 23 text layers of 1024. A
#: config from an upload or a download is untrusted: a value beyond its range would allocate
#: gigabytes before any weight is read (``"num_train_timesteps": 100000000`` took 2.7 GB).
CONFIG_BOUNDS: dict[str, tuple[int, int]] = {
    "num_train_timesteps": (1, 10_000),
    "in_channels": (1, 64), "out_channels": (1, 64), "latent_channels": (1, 64),
    "block_out_channels": (1, 8192), "layers_per_block": (1, 16), "cross_attention_dim": (1, 8192),
    "attention_head_dim": (1, 1024), "num_attention_heads": (1, 256), "norm_num_groups": (1, 1024),
    "sample_size": (1, 4096), "transformer_layers_per_block": (1, 64), "class_embed_type_dim": (1, 8192),
    "projection_class_embeddings_input_dim": (1, 65_536), "time_embedding_dim": (1, 65_536),
    "hidden_size": (1, 16_384), "intermediate_size": (1, 65_536), "num_hidden_layers": (1, 128),
    "vocab_size": (1, 1_000_000), "max_position_embeddings": (1, 65_536), "projection_dim": (1, 16_384),
}
#: a list-valued field (``block_out_channels``, per-block settings) has at most this many entries
MAX_CONFIG_LIST = 16
#: a config file is a few kilobytes; a larger one is not a model config
MAX_CONFIG_BYTES = 1_000_000


def read_config(file: Path) -> dict:
    """A base folder's JSON config, read with bounds: at most :data:`MAX_CONFIG_BYTES`, a JSON
    object, and every field of :data:`CONFIG_BOUNDS` (a whole number, or a list of at most
    :data:`MAX_CONFIG_LIST` of them) within its range. Raises :class:`WeightsError` naming the
    field and the file."""
    where = str(file.parent.parent)
    fix = f"the folder is damaged or is not SD-2.1-base; {_download_hint(where)}"
    try:
        size = file.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise WeightsError(f"{file} is {size} bytes, not a model config (at most {MAX_CONFIG_BYTES}); {fix}")
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WeightsError(f"{file} is not a readable JSON config ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}); {fix}") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{file} holds a JSON {type(config).__name__}, not a config object; {fix}")
    for field, (low, high) in CONFIG_BOUNDS.items():
        value = config.get(field)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) > MAX_CONFIG_LIST:
            raise WeightsError(f"{file}: \"{field}\" lists {len(value)} values, more than the "
                               f"{MAX_CONFIG_LIST} a model config has; {fix}")
        for item in values:
            if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
                raise WeightsError(
                    f"{file}: \"{field}\" is {json.dumps(value)[:80]}, outside {low}..{high}, the range an "
                    f"SD-2.1-base model's \"{field}\" has (it sizes what is allocated when the model is "
                    f"built); {fix}")
    return config


#: the configs of a diffusers base folder that size allocations
_CONFIGS = ("unet/config.json", "vae/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json")


def check_configs(base_dir: str | os.PathLike) -> None:
    """Every config of the base folder (:data:`_CONFIGS`, those present) through
    :func:`read_config`, before any part is built: a bad field is refused at once, whichever
    part it belongs to."""
    for name in _CONFIGS:
        if (Path(base_dir) / name).is_file():
            read_config(Path(base_dir) / name)


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
    check_configs(folder.parent)
    config = read_config(folder / "config.json")
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
    read_config(folder / "text_encoder" / "config.json")  # bounded before transformers builds it
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

    read_config(Path(folder) / "scheduler" / "scheduler_config.json")  # bounded before it allocates
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
