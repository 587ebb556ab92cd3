"""The loaders' model lists: what is installed, and what each entry loads.

An entry is

- a registered model whose required files are found: by the weight search
  (``$SUPERRES_WEIGHTS``, the user cache, ...) or in ComfyUI's ``models/upscale_models/`` and
  ``models/superres/`` under any name, recognised by the registered sha256 (the file is then
  given to the engine as the model's weights);
- any other checkpoint in those folders that a family reads (its shapes, or our own formats'
  metadata), listed by its file name (``upscale_models/x.pth``, ``superres/y.pth``); the legacy
  loader also lists files in ``models/superres/`` that no family recognises, as it always did;
- with nothing installed, one entry saying so, whose error says where to put files.

The engine answers every question (:mod:`vs_superres.runtime.installed`); nothing here hashes
or reads a checkpoint by itself.
"""

from __future__ import annotations

import dataclasses

from vs_superres.contracts.descriptor import ModelDescriptor, WeightFile
from vs_superres.contracts.errors import SuperResError, WeightsError, option_ref
from vs_superres.runtime import weights as weights_mod
from vs_superres.runtime.installed import identify, missing_files
from vs_superres.runtime.registry import default_model, default_registry

from vs_superres.comfy_nodes import host

#: ComfyUI's own folders, named first in every message about missing files
FOLDERS_TEXT = f"ComfyUI's models/{host.UPSCALE_MODELS}/ or models/{host.FOLDER}/"


@dataclasses.dataclass(frozen=True)
class Choice:
    """One entry: ``label`` (what the widget shows), ``model`` (a registered name or a file's
    full path, as the engine takes it), ``weights`` (files found in ComfyUI's folders for a
    registered model), ``family`` (None: no family reads the file)."""

    label: str
    model: str
    family: str | None
    weights: tuple[str, ...] = ()


def nothing_installed_label(title: str) -> str:
    return f"(no {title} model installed: see the error when run)"


def _folder_files() -> list[tuple[str, str, str]]:
    """``(kind, name, full path)`` of every model file in ComfyUI's two folders."""
    out = []
    for kind in (host.FOLDER, host.UPSCALE_MODELS):
        for name in host.folder_files(kind):
            try:
                out.append((kind, name, host.folder_file(kind, name)))
            except SuperResError:
                continue  # removed since it was listed
    return out


def _identified(files):
    """``identify`` for each file; a file it fails on is left out with one logged warning."""
    for kind, name, path in files:
        try:
            yield kind, name, path, identify(path)
        except Exception as e:  # noqa: BLE001 - one unreadable file must not hide the others
            host.skip_warning(path, e)


def _installed_weights(desc: ModelDescriptor, in_folders: dict[str, str]) -> tuple[str, ...] | None:
    """The weights to hand the engine when ``desc``'s missing required files are all in
    ComfyUI's folders (``()`` when the search finds everything); None when it is not installed."""
    missing = missing_files(desc)
    if not missing:
        return ()
    if any(wf.relpath not in in_folders or wf.option for wf in missing):
        return None
    paths = []
    for wf in desc.weights:
        if wf.required and wf.hub is None:
            paths.append(in_folders.get(wf.relpath) or str(weights_mod.resolve(wf, verify=False)))
    return tuple(paths)


def choices(family: str | None = None) -> list[Choice]:
    """The installed models of ``family`` (every family for None: the legacy loader), the
    family's default model first."""
    registry = default_registry()
    found = list(_identified(_folder_files()))
    by_model: dict[str, dict[str, str]] = {}
    for _, _, path, ident in found:
        for name, wf in ident.registered:
            by_model.setdefault(name, {}).setdefault(wf.relpath, path)
    first = registry.family(family).default_model if family else default_model()
    models = sorted(registry.models(include_diagnostic=True), key=lambda d: (d.name != first, d.name))
    out = []
    for desc in models:
        if family is not None and desc.family != family:
            continue
        weights = _installed_weights(desc, by_model.get(desc.name, {}))
        if weights is not None:
            out.append(Choice(desc.name, desc.name, desc.family, weights))
    for kind, name, path, ident in found:
        if ident.registered:
            continue  # under its registered name
        if ident.family is not None and (family is None or ident.family == family):
            out.append(Choice(f"{kind}/{name}", path, ident.family))
        elif family is None and ident.family is None and kind == host.FOLDER:
            out.append(Choice(f"{kind}/{name}", path, None))
    return out


def labels(family: str | None, title: str) -> list[str]:
    return [c.label for c in choices(family)] or [nothing_installed_label(title)]


def _where_to_put(desc: ModelDescriptor, missing: list[WeightFile]) -> str:
    """What to do about ``desc``'s missing files, ComfyUI's folders first."""
    parts = []
    for wf in missing:
        what = "its file" if len(missing) == 1 else "the file"
        where = []
        if wf.sha256 and wf.size:
            where.append(f"put {what} into {FOLDERS_TEXT} ({wf.filename}, sha256 {wf.sha256}, under any name) "
                         "and refresh the page (R)")
        if wf.option:
            where.append(f"put {what} into ComfyUI's models/{host.FOLDER}/ and name it in {option_ref(wf.option)} "
                         f"(relative to that folder; it is {wf.relpath} in the release)")
        roots = ", ".join(str(root / wf.relpath) for root in weights_mod.search_roots())
        where.append(f"or put {wf.filename} at one of {roots}")
        if wf.url:
            where.append(f"(`superres models download {desc.name}` fetches it)")
        elif wf.upstream:
            where.append(f"(from {wf.upstream})")
        parts.append(" ".join(where))
    return f"{desc.name} is not installed: " + "; ".join(parts)


def not_installed_error(family: str | None, title: str) -> WeightsError:
    """Where to put files when nothing of ``family`` is installed."""
    registry = default_registry()
    models = [d for d in registry.models() if family is None or d.family == family]
    lines = [_where_to_put(d, missing_files(d)) for d in models if missing_files(d)]
    return WeightsError(
        f"no {title} model is installed. Put a {title} checkpoint into {FOLDERS_TEXT} and refresh the page "
        "(R)" + (": " + " | ".join(lines) if lines else ""), option="model")


def resolve(label: str, family: str | None, title: str) -> Choice:
    """The entry ``label`` names, or the error that says why it cannot run.

    Besides the listed entries, a registered model of the family whose missing files can all be
    given through options (UltraVSR's and PatchScaler's ``checkpoint``) is taken: its load then
    says which widget is empty."""
    for choice in choices(family):
        if choice.label == label:
            return choice
    registry = default_registry()
    if label in registry:
        desc = registry.get(label)
        if family is not None and desc.family != family:
            raise SuperResError(f"{label} is a {desc.family} model: load it with its own loader "
                                f"(SuperRes Load {registry.family(desc.family).title or desc.family})", option="model")
        missing = missing_files(desc)
        if all(wf.option for wf in missing):
            return Choice(label, label, desc.family)
        raise WeightsError(_where_to_put(desc, [wf for wf in missing if not wf.option]), option="model", model=label)
    if label == nothing_installed_label(title):
        raise not_installed_error(family, title)
    kind, _, name = label.partition("/")
    if kind in host.MODEL_KINDS and name:
        raise SuperResError(f"{name!r} is not in ComfyUI's models/{kind}/ folder any more, or no {title} model reads "
                            f"it; put the file back, or pick another model and refresh the page (R)", option="model")
    listed = [c.label for c in choices(family)]
    raise SuperResError(f"{label!r} is not an installed {title} model; installed: "
                        f"{', '.join(listed) or 'none'}; put checkpoints into {FOLDERS_TEXT}", option="model")


def validation(family: str | None, title: str):
    """ComfyUI's check of the ``model`` input (:attr:`NodeSpec.validate`): True, or the message."""
    def validate(model: str) -> bool | str:
        try:
            resolve(model, family, title)
        except SuperResError as e:
            return e.render(host.comfy_spelling)
        return True

    return validate
