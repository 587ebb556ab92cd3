"""Loading a model: name or checkpoint -> descriptor, weight files -> paths, family -> runner.

The one place that searches for weights and reads a checkpoint for a family that has no
loader of its own. Families receive a :class:`~vs_superres.contracts.runners.LoadRequest` with
every file already found and every option already checked.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

from vs_superres.contracts.descriptor import ModelDescriptor, WeightFile
from vs_superres.contracts.errors import InvalidOption, WeightsError, option_ref
from vs_superres.contracts.runners import LoadRequest
from vs_superres.numerics.checkpoints import load_state_dict, safetensors_metadata
from vs_superres.runtime import weights as weights_mod
from vs_superres.runtime.registry import Registry, default_registry

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")


class ResolvedModel(NamedTuple):
    """A model resolved once: its descriptor and, for a checkpoint read by its shapes, the
    state dict already read (a host that needs the scale before building the engine hands this
    to ``Upscaler``, so the file is read once)."""

    descriptor: ModelDescriptor
    state_dict: dict | None


def resolve_model(model: str | os.PathLike | ModelDescriptor | ResolvedModel,
                  registry: Registry | None = None) -> ResolvedModel:
    """A registered name, a descriptor, or a checkpoint path -> ``(descriptor, state_dict or None)``."""
    registry = registry or default_registry()
    if isinstance(model, ResolvedModel):
        return model
    if isinstance(model, ModelDescriptor):
        return ResolvedModel(model, None)
    text = os.fspath(model) if isinstance(model, os.PathLike) else str(model)
    path = Path(text)
    if text not in registry and (path.suffix in CHECKPOINT_SUFFIXES or path.is_file()):
        if not path.is_file():
            raise InvalidOption(f"model file {text!r} does not exist", option="model")
        return ResolvedModel(*descriptor_from_checkpoint(path, registry))
    return ResolvedModel(registry.get(text), None)


def descriptor_from_own_format(path: Path, registry: Registry) -> ModelDescriptor | None:
    """The descriptor of one of our own safetensors checkpoints (its ``format`` metadata names
    a family's :attr:`~.descriptor.ModelFamily.checkpoint_format`): the family's default model
    with ``path`` pinned as its ``checkpoint`` weight; None for any other file."""
    if path.suffix.lower() != ".safetensors":
        return None
    fmt = safetensors_metadata(path).get("format")
    family = next((f for f in registry.families() if fmt and f.checkpoint_format == fmt), None)
    if family is None or family.default_model is None:
        return None
    base = registry.get(family.default_model)
    weights = tuple(dataclasses.replace(wf, pinned=str(path)) if wf.option == "checkpoint" else wf
                    for wf in base.weights)
    return dataclasses.replace(base, name=path.stem, weights=weights,
                               description=f"{base.name} with the checkpoint {path.name}")


def descriptor_from_checkpoint(path: Path, registry: Registry | None = None) -> tuple[ModelDescriptor, dict | None]:
    """A descriptor for an unregistered checkpoint: one of our own formats by its metadata
    (weights loaded by the family, so no state dict), any other by reading its shapes."""
    registry = registry or default_registry()
    own = descriptor_from_own_format(path, registry)
    if own is not None:
        return own, None
    sd = load_state_dict(path)
    tried = []
    for family in registry.families():
        if family.config_from_state_dict is None:
            continue
        try:
            config = family.config_from_state_dict(sd)
        except (KeyError, ValueError, IndexError) as e:
            tried.append(f"{family.name}: {e}")
            continue
        template = family.template or ModelDescriptor(name=family.name, family=family.name, config=config)
        desc = dataclasses.replace(
            template, name=path.stem, config=config,
            weights=(WeightFile(relpath=path.name, sha256=None),),
            description=f"{family.name} checkpoint {path.name}",
        )
        return desc, sd
    raise InvalidOption(
        f"{str(path)!r} does not match any known architecture "
        f"({'; '.join(tried) or 'none can read state dicts'}); pass a registered model name "
        "(see `superres models list`)",
        option="model",
    )


def resolve_weights(desc: ModelDescriptor, explicit: Sequence[str | os.PathLike], options: Mapping[str, Any]) -> dict[str, Path | None]:
    """Find every weight file of ``desc``: explicit ``weights=`` paths go to its required files in
    order; a file whose option the user gave is left to the family (the option is its path),
    except a folder with a hub snapshot (``WeightFile.hub``), which is always resolved here
    (its option's folder or hub id, the search, the Hugging Face cache;
    :func:`~.weights.resolve_snapshot`); the rest is searched. Missing required files raise one
    error naming every place looked at."""
    required = [wf for wf in desc.weights if wf.required]
    if explicit and len(explicit) != len(required):
        raise InvalidOption(
            f"{desc.name} needs {len(required)} weight file(s) "
            f"({', '.join(w.relpath for w in required)}) in {option_ref('weights')}, got {len(explicit)}",
            option="weights", model=desc.name,
        )
    given = dict(zip((wf.relpath for wf in required), explicit))
    found: dict[str, Path | None] = {}
    for wf in desc.weights:
        if wf.pinned and wf.option and options.get(wf.option) is not None:
            raise InvalidOption(
                f"the model file {wf.pinned!r} is the {desc.family} {wf.option} already; drop "
                f"{option_ref(wf.option, 'PATH')} or name the registered model instead of the file",
                option=wf.option, model=desc.name,
            )
        value = options.get(wf.option) if wf.option else None
        if wf.option and value is not None and wf.relpath in given:
            raise InvalidOption(
                f"give the {desc.name} {wf.option} once: {option_ref(wf.option, 'PATH')} or {option_ref('weights', 'PATH')}, not both",
                option=wf.option, model=desc.name,
            )
        if wf.hub is not None:
            allow = bool(options.get(wf.hub.download_option)) if wf.hub.download_option else False
            found[wf.relpath] = weights_mod.resolve_snapshot(
                wf, value if value is not None else given.get(wf.relpath), allow_download=allow, model_name=desc.name)
            continue
        if value is not None:
            found[wf.relpath] = None
            continue
        try:
            found[wf.relpath] = weights_mod.resolve(wf, given.get(wf.relpath) or wf.pinned, model_name=desc.name)
        except WeightsError:
            if wf.required or wf.relpath in given:
                raise
            found[wf.relpath] = None
    return found


def check_options(desc: ModelDescriptor, options: Mapping[str, Any], registry: Registry | None = None) -> dict[str, Any]:
    family = (registry or default_registry()).family(desc.family)
    if options and not len(family.options):
        raise InvalidOption(
            f"{desc.name} takes no model options; got {', '.join(option_ref(o) for o in sorted(options))}",
            option=sorted(options)[0], model=desc.name,
        )
    return family.options.validate(options, model=desc.name)


def load_runner(desc: ModelDescriptor, *, device, dtype, weights: Sequence[str | os.PathLike] = (),
                options: Mapping[str, Any] | None = None, state_dict: Mapping | None = None,
                registry: Registry | None = None) -> Any:
    """The runner of ``desc`` on ``device``/``dtype`` with its weights loaded."""
    registry = registry or default_registry()
    family = registry.family(desc.family)
    options = check_options(desc, dict(options or {}), registry)
    if state_dict is not None:
        found: dict[str, Path | None] = {}
    else:
        found = resolve_weights(desc, list(weights), options)
    backend = options.get("backend", "torch")  # declared by families whose graphs other runtimes run
    if backend != "torch":
        from vs_superres.runtime.backends import load_backend  # the runtimes' imports only when asked for

        return load_backend(desc, backend, device=device, dtype=dtype, found=found, state_dict=state_dict, registry=registry)
    if family.load is not None:
        request = LoadRequest(descriptor=desc, device=device, dtype=dtype, weights=found, options=options,
                              search_roots=tuple(weights_mod.search_roots()))
        return family.load(request)
    if state_dict is None:
        paths = [p for p in (found.get(wf.relpath) for wf in desc.weights) if p is not None]
        state_dict = load_state_dict(paths[0]) if paths else None
    net = family.build(desc.config)
    if state_dict is not None:
        _load_into(net, state_dict, desc)
    net = net.eval().to(device, dtype)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _load_into(net, state_dict: Mapping, desc: ModelDescriptor) -> None:
    expected = net.state_dict()
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"the checkpoint does not fit {desc.name} ({desc.family}): "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}",
            model=desc.name,
        )
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise WeightsError(
            f"the checkpoint's tensor shapes do not fit {desc.name}: {str(e).splitlines()[-1].strip()}",
            model=desc.name,
        ) from None


