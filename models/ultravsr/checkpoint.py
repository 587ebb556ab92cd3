"""UltraVSR weights: the official checkpoint dict, our safetensors form, LoRA adapters, base model.

The official checkpoint (``UltraVSR.pkl``, written with ``torch.save``) is a dict with
``rank_unet``, ``unet_lora_{encoder,decoder,others}_modules``, ``state_dict_unet``,
``rank_vae``, ``vae_lora_modules`` and ``state_dict_vae``. Every file here (the checkpoint,
our safetensors form, the base model's weights) is read by the one safe loader,
:mod:`vs_superres.numerics.checkpoints` (``torch.load(weights_only=True)`` or safetensors):
only tensors, numbers, strings, lists and dicts are accepted, so no code from a file ever runs.

Applying it follows the released loader: peft LoRA adapters ``default_encoder``,
``default_decoder`` and ``default_others`` on the UNet and ``default_encoder`` on the VAE
encoder (rank from the file, ``lora_alpha`` 8 so the scale is ``8 / rank``, no dropout), all
active together; then every UNet tensor whose name contains ``lora``, ``conv_in`` or ``RTS``
and every VAE tensor whose name contains ``lora`` or ``RTS`` is taken from the file. All other
weights are SD-2.1-base's. Unlike the released loader this one is strict: every expected key
must be present and (by default) every key in the file must be used.

Our own format is one ``.safetensors`` file: tensors ``unet.<key>`` and ``vae.<key>``, and the
ranks and target lists as JSON metadata.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from vs_superres.contracts.errors import SuperResError, WeightsError, option_ref
from vs_superres.numerics.checkpoints import load_checkpoint, load_tensors, read_safetensors

from .rts import RTSModule
from .unet import UltraVSRUNet
from .vae import UltraVSRAutoencoder

__all__ = [
    "DEFAULT_BASE_MODEL", "LORA_ALPHA", "UNET_ADAPTERS", "VAE_ADAPTER", "UltraVSRCheckpoint",
    "add_unet_adapters", "add_vae_adapter", "apply_checkpoint", "checkpoint_from_models",
    "load_base_unet", "load_base_vae", "load_ultravsr", "merge_adapters", "official_unet_targets",
    "official_vae_targets", "read_checkpoint", "resolve_base_model", "save_official_checkpoint",
    "save_safetensors_checkpoint",
]

DEFAULT_BASE_MODEL = "stabilityai/stable-diffusion-2-1-base"
BASE_SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
UNET_ADAPTERS = ("default_encoder", "default_decoder", "default_others")
VAE_ADAPTER = "default_encoder"
LORA_ALPHA = 8  # peft's default, which the released code relied on
SAFETENSORS_FORMAT = "vs-superres/ultravsr"
_UNET_TRAINED = ("lora", "conv_in", "RTS")
_VAE_TRAINED = ("lora", "RTS")
_OFFICIAL_KEYS = (
    "rank_unet", "unet_lora_encoder_modules", "unet_lora_decoder_modules", "unet_lora_others_modules",
    "state_dict_unet", "rank_vae", "vae_lora_modules", "state_dict_vae",
)
_GET_IT = (
    "Use the official UltraVSR checkpoint (.pkl, from github.com/yongliuy/UltraVSR) or a .safetensors "
    "file written by save_safetensors_checkpoint."
)


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


# --------------------------------------------------------------------------- reading / writing


def _validated(obj: Any, source: str) -> UltraVSRCheckpoint:
    def bad(what: str) -> WeightsError:
        return WeightsError(f"{source} is not an UltraVSR checkpoint: {what}. {_GET_IT}")

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
    return _validated(load_checkpoint(path, hint=_GET_IT), str(path))


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
    tensors, metadata = read_safetensors(path, hint=_GET_IT)
    if metadata.get("format") != SAFETENSORS_FORMAT:
        raise WeightsError(
            f"{path} is a .safetensors file but not an UltraVSR checkpoint (metadata format "
            f"{metadata.get('format')!r}, expected {SAFETENSORS_FORMAT!r}). {_GET_IT}"
        )
    try:
        obj: dict[str, Any] = {k: json.loads(metadata[k]) for k in _OFFICIAL_KEYS if not k.startswith("state_dict")}
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"{path}: UltraVSR metadata is incomplete or not JSON ({exc}). {_GET_IT}") from exc
    obj["state_dict_unet"] = {k[5:]: v for k, v in tensors.items() if k.startswith("unet.")}
    obj["state_dict_vae"] = {k[4:]: v for k, v in tensors.items() if k.startswith("vae.")}
    stray = [k for k in tensors if not k.startswith(("unet.", "vae."))]
    if stray:
        raise WeightsError(f"{path}: tensors {stray[:5]} belong to neither unet. nor vae. {_GET_IT}")
    return _validated(obj, str(path))


# --------------------------------------------------------------------------- adapters


def _first_pattern_modules(model: nn.Module, patterns: Iterable[str], keep) -> list[str]:
    names: list[str] = []
    for name, _ in model.named_parameters():
        if "bias" in name or "norm" in name or "RTS" in name or not keep(name):
            continue
        if any(p in name for p in patterns):
            module = name[: -len(".weight")] if name.endswith(".weight") else name
            if module not in names:
                names.append(module)
    return names


def official_unet_targets(unet: nn.Module) -> dict[str, list[str]]:
    """The three UNet target lists, built as the authors' training code built them."""
    patterns = ("to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_in", "conv_shortcut",
                "conv_out", "proj_out", "proj_in", "ff.net.2", "ff.net.0.proj")
    targets: dict[str, list[str]] = {name: [] for name in UNET_ADAPTERS}
    for module in _first_pattern_modules(unet, patterns, lambda n: True):
        if "down_blocks" in module or "conv_in" in module:
            targets["default_encoder"].append(module)
        elif "up_blocks" in module or "conv_out" in module:
            targets["default_decoder"].append(module)
        else:
            targets["default_others"].append(module)
    return targets


def official_vae_targets(vae: nn.Module) -> list[str]:
    """The VAE target list (encoder and quant_conv only), as the authors' training code built it."""
    patterns = ("conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out", "to_k", "to_q", "to_v", "to_out.0")
    return _first_pattern_modules(vae, patterns, lambda n: "encoder" in n or n.startswith("quant_conv."))


def _has_adapters(model: nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(m, BaseTunerLayer) for m in model.modules())


def _inject(model: nn.Module, adapter: str, rank: int, targets: list[str], what: str, source: str) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    modules = dict(model.named_modules())
    unknown = [t for t in targets if not isinstance(modules.get(t), (nn.Linear, nn.Conv2d))]
    if unknown:
        raise WeightsError(
            f"{source}: the {what} LoRA targets {unknown[:5]}{' ...' if len(unknown) > 5 else ''} are not "
            "Linear/Conv2d modules of this network; the checkpoint was made for a different base model "
            "(UltraVSR needs stable-diffusion-2-1-base)."
        )
    if not targets:
        return
    config = LoraConfig(
        r=rank,
        lora_alpha=LORA_ALPHA,
        lora_dropout=0.0,
        init_lora_weights="gaussian",
        target_modules=list(dict.fromkeys(targets)),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*peft_config.*")
        inject_adapter_in_model(config, model, adapter_name=adapter)
    model.train(model.training)  # new LoRA layers start in training mode; follow the model


def _activate(model: nn.Module, adapters: list[str]) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.set_adapter(adapters)


def add_unet_adapters(
    unet: nn.Module, rank: int, targets: Mapping[str, list[str]], *, source: str = "checkpoint"
) -> None:
    """Add the three UNet adapters (``targets`` maps adapter name to module names) and activate all."""
    if _has_adapters(unet):
        raise SuperResError("this UNet already has LoRA adapters; build a fresh one to load a checkpoint into.")
    for adapter in UNET_ADAPTERS:
        _inject(unet, adapter, rank, list(targets.get(adapter, [])), f"UNet {adapter}", source)
    _activate(unet, list(UNET_ADAPTERS))


def add_vae_adapter(vae: nn.Module, rank: int, targets: list[str], *, source: str = "checkpoint") -> None:
    """Add the VAE encoder adapter ``default_encoder`` and activate it."""
    if _has_adapters(vae):
        raise SuperResError("this VAE already has LoRA adapters; build a fresh one to load a checkpoint into.")
    _inject(vae, VAE_ADAPTER, rank, list(targets), "VAE", source)
    _activate(vae, [VAE_ADAPTER])


def _adapter_layout(model: nn.Module) -> tuple[int, dict[str, list[str]]]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    ranks: set[int] = set()
    targets: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            for adapter in module.lora_A.keys():
                targets.setdefault(adapter, []).append(name)
                ranks.add(int(module.r[adapter]))
    if len(ranks) != 1:
        raise SuperResError(f"expected LoRA adapters of one rank, found ranks {sorted(ranks)}.")
    return ranks.pop(), targets


def _trained_state(model: nn.Module, markers: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if any(m in k for m in markers)}


def checkpoint_from_models(unet: nn.Module, vae: nn.Module) -> UltraVSRCheckpoint:
    """Collect the trained tensors and adapter layout of adapted models into a checkpoint."""
    rank_unet, unet_targets = _adapter_layout(unet)
    rank_vae, vae_targets = _adapter_layout(vae)
    return UltraVSRCheckpoint(
        rank_unet=rank_unet,
        unet_lora_encoder_modules=unet_targets.get("default_encoder", []),
        unet_lora_decoder_modules=unet_targets.get("default_decoder", []),
        unet_lora_others_modules=unet_targets.get("default_others", []),
        state_dict_unet=_trained_state(unet, _UNET_TRAINED),
        rank_vae=rank_vae,
        vae_lora_modules=vae_targets.get(VAE_ADAPTER, []),
        state_dict_vae=_trained_state(vae, _VAE_TRAINED),
    )


def _assign(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], markers, what: str, source: str, strict: bool
) -> None:
    own = model.state_dict()
    expected = [k for k in own if any(m in k for m in markers)]
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [f"{k}: file {tuple(tensors[k].shape)}, model {tuple(own[k].shape)}"
             for k in expected if k in tensors and tensors[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys, e.g. {missing[:5]}")
    if unexpected and strict:
        problems.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:5]}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches, e.g. {wrong[:3]}")
    if problems:
        raise WeightsError(
            f"{source} does not fit this UltraVSR {what}: {'; '.join(problems)}. The file is damaged or was "
            "made for a different base model or configuration (UltraVSR needs stable-diffusion-2-1-base). "
            f"{_GET_IT}"
        )
    with torch.no_grad():
        for key in expected:
            own[key].copy_(tensors[key])


def apply_checkpoint(
    unet: UltraVSRUNet,
    vae: UltraVSRAutoencoder,
    checkpoint: UltraVSRCheckpoint,
    *,
    merge_lora: bool = False,
    strict: bool = True,
) -> None:
    """Add the adapters to fresh base models and copy every trained tensor in (in place).

    ``strict=False`` ignores keys in the file that the model does not need (as the released
    loader does); missing keys and wrong shapes always raise :class:`WeightsError`.
    ``merge_lora=True`` folds the adapters into the base weights afterwards.
    """
    source = checkpoint.source
    add_unet_adapters(unet, checkpoint.rank_unet, checkpoint.unet_targets(), source=source)
    add_vae_adapter(vae, checkpoint.rank_vae, checkpoint.vae_lora_modules, source=source)
    _assign(unet, checkpoint.state_dict_unet, _UNET_TRAINED, "UNet (state_dict_unet)", source, strict)
    _assign(vae, checkpoint.state_dict_vae, _VAE_TRAINED, "VAE (state_dict_vae)", source, strict)
    if merge_lora:
        merge_adapters(unet)
        merge_adapters(vae)


def merge_adapters(model: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into its base layer and put the plain layer back (in place)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if not isinstance(module, BaseTunerLayer):
            continue
        module.merge(adapter_names=list(module.lora_A.keys()))
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, module.get_base_layer())
    if hasattr(model, "peft_config"):
        del model.peft_config
    return model


# --------------------------------------------------------------------------- base model


def _download_hint(where: str) -> str:
    return (
        f"Download {DEFAULT_BASE_MODEL} (subfolders {', '.join(BASE_SUBFOLDERS)}), e.g. "
        f"`hf download {DEFAULT_BASE_MODEL} --local-dir {where}`, and pass that folder."
    )


def resolve_base_model(base: str | os.PathLike = DEFAULT_BASE_MODEL, *, allow_download: bool = False) -> Path:
    """Return the local diffusers folder of the SD-2.1-base model.

    ``base`` is a folder, or a hub id resolved from the Hugging Face cache (downloaded only
    with ``allow_download=True``). Raises :class:`SuperResError` naming what is missing.
    """
    path = Path(base).expanduser()
    if not path.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", str(base)):
        try:
            from huggingface_hub import snapshot_download

            patterns = ["model_index.json", "*/*.json", "*/*.txt", "text_encoder/model.safetensors",
                        "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"]
            path = Path(snapshot_download(str(base), allow_patterns=patterns, local_files_only=not allow_download))
        except Exception as exc:
            if allow_download:
                how = "It could not be downloaded"
            else:
                how = f"It is not in the Hugging Face cache, and downloads are off ({option_ref('allow_download', 'True')} turns them on)"
            raise SuperResError(
                f"base model {base!r} is not a local folder. {how} ({type(exc).__name__}). {_download_hint('<folder>')}"
            ) from exc
    if not path.is_dir():
        raise SuperResError(f"base model folder {path} does not exist. {_download_hint(str(path))}")
    missing = [s for s in BASE_SUBFOLDERS if not (path / s).is_dir()]
    missing += [f"{s}/config.json" for s in ("unet", "vae")
                if (path / s).is_dir() and not (path / s / "config.json").is_file()]
    if missing:
        raise SuperResError(f"base model folder {path} lacks {missing}. {_download_hint(str(path))}")
    return path


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


def load_ultravsr(
    checkpoint: str | os.PathLike | UltraVSRCheckpoint,
    base: str | os.PathLike = DEFAULT_BASE_MODEL,
    *,
    merge_lora: bool = False,
    strict: bool = True,
    allow_download: bool = False,
) -> tuple[UltraVSRUNet, UltraVSRAutoencoder]:
    """Build the UltraVSR UNet and VAE: SD-2.1-base weights plus the checkpoint (fp32, CPU, eval).

    The caller moves them to a device and dtype; gradients are off. ``merge_lora`` defaults to
    False here, so the networks keep the checkpoint's layout (``checkpoint_from_models`` can
    read it back); :meth:`~.pipeline.UltraVSRPipeline.from_pretrained` and the ``ultravsr``
    model merge by default.
    """
    ckpt = checkpoint if isinstance(checkpoint, UltraVSRCheckpoint) else read_checkpoint(checkpoint)
    folder = resolve_base_model(base, allow_download=allow_download)
    unet, vae = load_base_unet(folder), load_base_vae(folder)
    apply_checkpoint(unet, vae, ckpt, merge_lora=merge_lora, strict=strict)
    for model in (unet, vae):
        model.eval().requires_grad_(False)
    return unet, vae
