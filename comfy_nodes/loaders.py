"""The loaders: one per model family (SuperRes Load DITN, ... UltraVSR, ... PatchScaler), and
the legacy SuperRes Model Loader that saved workflows name.

A family's loader shows its installed models (:mod:`.model_list`), the device and precision,
and that family's declared options only (``options.for_hosts()``), so DITN's has four widgets
where the legacy loader had every family's. The loaders are made from the registry's families:
a family a plugin adds gets its own loader without a line here.

The legacy loader (``SuperResModelLoader``) keeps today's widgets in today's order (every
family's options, :func:`~.inputs.family_ports`), because ComfyUI restores widget values by
position; it is marked deprecated, so the frontend hides it from search and the node library
while workflows saved with it keep loading and running. It also lists files in
``models/superres/`` that no family recognises (the generic loader for unknown files).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from vs_superres.contracts.errors import InvalidOption, WeightsError
from vs_superres.contracts.options import OptionSet
from vs_superres.runtime.engine_options import ENGINE_OPTIONS
from vs_superres.runtime.registry import Registry, default_registry

from vs_superres.comfy_nodes import host, model_list
from vs_superres.comfy_nodes.handle import ModelHandle, follow_comfy_unloads, replace_for_loader
from vs_superres.comfy_nodes.inputs import LOADER_ENGINE_OPTIONS, family_ports, family_values, one_family_ports, port_for
from vs_superres.comfy_nodes.spec import MODEL_TYPE, NodeSpec, Port

LEGACY_LOADER = "SuperResModelLoader"
LEGACY_TITLE = "SuperRes Model Loader"
#: What the engine's missing-file messages get in front of them in ComfyUI.
FOLDERS_HINT = (f"model files go into ComfyUI's models/{host.UPSCALE_MODELS}/ or models/{host.FOLDER}/ "
                f"(a path widget is relative to models/{host.FOLDER}/)")


def loader_id(family) -> str:
    """``SuperResLoadDITN``, ``SuperResLoadUltraVSR``, ``SuperResLoadTemporalMean``."""
    words = re.split(r"[^0-9A-Za-z]+", family.title or family.name)
    return "SuperResLoad" + "".join(w[:1].upper() + w[1:] for w in words if w)


def loader_title(family) -> str:
    return f"SuperRes Load {family.title or family.name}"


def device_choices() -> list[str]:
    import torch

    choices = ["auto", "cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        choices.append("mps")
    return choices


def _head_ports(models: tuple[str, ...], devices: tuple[str, ...], what: str) -> list[Port]:
    ports = [
        Port("model", "COMBO", default=models[0] if models else None, choices=models,
             tooltip=f"an installed {what} model: registered models whose files are found, and checkpoints in "
                     f"ComfyUI's models/{host.UPSCALE_MODELS}/ and models/{host.FOLDER}/"),
        Port("device", "COMBO", default="auto", choices=devices, tooltip=ENGINE_OPTIONS.get("device").help),
        port_for(ENGINE_OPTIONS.get("dtype")),
    ]
    assert [p.name for p in ports[1:]] == list(LOADER_ENGINE_OPTIONS)
    return ports


def family_loader_ports(family, models: tuple[str, ...], devices: tuple[str, ...]) -> tuple[Port, ...]:
    """A family loader's inputs for these model and device choices (the example workflows are
    generated from this: tools/comfy_workflows.py)."""
    return (*_head_ports(models, devices, family.title or family.name), *one_family_ports(family))


def legacy_loader_ports(models: tuple[str, ...], devices: tuple[str, ...], registry: Registry | None = None) -> tuple[Port, ...]:
    return (*_head_ports(models, devices, "vs-superres"), *family_ports(registry))


def _confine_paths(options: OptionSet, values: dict[str, Any]) -> dict[str, Any]:
    """Every value of a path-typed option (as declared: ``checkpoint``, ``base``, ``clip_iqa``,
    ``autoencoder``, any a family adds) resolved inside ComfyUI's model folders, or refused
    (:func:`host.confined_path`): a prompt may come from anyone who reaches the server."""
    return {k: (host.confined_path(v, k) if isinstance(v, str) and options.get(k).type == "path" else v)
            for k, v in values.items()}


def load(family: str | None, title: str, node: str, model: str, device: str, dtype: str, unique_id=None,
         **widgets) -> tuple:
    """The loader's run: the entry ``model`` names, its family's options from the widgets (other
    families' widgets of the legacy loader are ignored), loaded now so that a missing file or a
    bad option shows on this node."""
    with host.engine_errors(node):
        choice = model_list.resolve(model, family, title)
        if choice.family is None:
            raise InvalidOption(f"no model family reads {model!r}; put a DITN, UltraVSR or PatchScaler checkpoint "
                                f"into {model_list.FOLDERS_TEXT}", option="model")
        fam = default_registry().family(choice.family)
        options = _confine_paths(fam.options, family_values(fam.options, widgets, model=model))
        handle = ModelHandle(choice.model, model, device=device, dtype=dtype, options=options, weights=choice.weights)
        try:
            handle.upscaler()
        except WeightsError as e:
            raise WeightsError(f"{FOLDERS_HINT}; {e.message}", option=e.option, model=e.model) from None
    follow_comfy_unloads()
    return (replace_for_loader(unique_id, handle),)


def _runner(family: str | None, title: str, node: str) -> Callable[..., tuple]:
    def run(model: str, device: str, dtype: str, unique_id=None, **widgets) -> tuple:
        return load(family, title, node, model, device, dtype, unique_id, **widgets)

    return run


def family_loader(family) -> NodeSpec:
    title = family.title or family.name

    def inputs() -> tuple[Port, ...]:
        return family_loader_ports(family, tuple(model_list.labels(family.name, title)), tuple(device_choices()))

    return NodeSpec(loader_id(family), loader_title(family),
                    f"Loads a {title} model with its options; the model stays loaded between runs.",
                    inputs, ((MODEL_TYPE, "model"),), _runner(family.name, title, loader_title(family)),
                    validate=model_list.validation(family.name, title))


def legacy_loader() -> NodeSpec:
    def inputs() -> tuple[Port, ...]:
        return legacy_loader_ports(tuple(model_list.labels(None, "vs-superres")), tuple(device_choices()))

    return NodeSpec(LEGACY_LOADER, LEGACY_TITLE,
                    "Every family's options in one node, kept so that saved workflows load: use the loader of the "
                    "model's family (SuperRes Load DITN, ...) instead.",
                    inputs, ((MODEL_TYPE, "model"),), _runner(None, "vs-superres", LEGACY_TITLE),
                    validate=model_list.validation(None, "vs-superres"), deprecated=True)


def loaders(registry: Registry | None = None) -> tuple[NodeSpec, ...]:
    """One loader per registered family, then the legacy loader."""
    registry = registry or default_registry()
    return (*(family_loader(f) for f in registry.families()), legacy_loader())
