"""UltraVSR's LoRA adapters: put a checkpoint into networks, read one back, fold adapters in.

One job: the adapter layout on the UNet and VAE. Applying a checkpoint follows the released
loader: peft LoRA adapters ``default_encoder``, ``default_decoder`` and ``default_others`` on
the UNet and ``default_encoder`` on the VAE encoder (rank from the file, ``lora_alpha`` 8 so
the scale is ``8 / rank``, no dropout), all active together; then every UNet tensor whose name
contains ``lora``, ``conv_in`` or ``RTS`` and every VAE tensor whose name contains ``lora`` or
``RTS`` is taken from the file. All other weights are SD-2.1-base's (:mod:`.base`). Unlike the
released loader this one is strict: every expected key must be present and (by default) every
key in the file must be used.
"""

from __future__ import annotations

import warnings
from typing import Iterable, Mapping

import torch
from torch import nn

from vs_superres.contracts.errors import SuperResError, WeightsError

from vs_superres.models.ultravsr.checkpoint import GET_IT, UNET_ADAPTERS, VAE_ADAPTER, UltraVSRCheckpoint
from vs_superres.models.ultravsr.unet import UltraVSRUNet
from vs_superres.models.ultravsr.vae import UltraVSRAutoencoder

__all__ = [
    "LORA_ALPHA", "add_unet_adapters", "add_vae_adapter", "apply_checkpoint", "checkpoint_from_models",
    "merge_adapters", "official_unet_targets", "official_vae_targets",
]

LORA_ALPHA = 8  # peft's default, which the released code relied on
_UNET_TRAINED = ("lora", "conv_in", "RTS")
_VAE_TRAINED = ("lora", "RTS")


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
            f"{GET_IT}"
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

