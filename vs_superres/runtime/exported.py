"""Exported graphs: a model's ONNX file, made by its family, described, checked and cached.

A family that can leave PyTorch declares ``export`` (:class:`~vs_superres.contracts.descriptor.ModelFamily`):
its network as ONNX bytes. This module is the one place that turns a model (a registered name
or a checkpoint file) into such a file: it refuses models that cannot be exported (naming
those that can), writes the file's metadata (model, scale, weights sha256, licence, precision,
shape), checks every file with ``onnx.checker`` and strict shape inference, and keeps the
graphs the engine's backends run in the user cache, one per weights sha256, precision and
runtime version (:func:`cached_graph`): the export cost is paid once, and a cache file whose
bytes no longer match the sha256 recorded beside it (cut, corrupt, edited) is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Mapping

from vs_superres.contracts.descriptor import ModelDescriptor, ModelFamily
from vs_superres.contracts.errors import InternalError, InvalidOption, SuperResError
from vs_superres.media.atomic import AtomicFile
from vs_superres.runtime import weights as weights_mod
from vs_superres.runtime.registry import Registry, default_registry

log = logging.getLogger("vs_superres")

#: Bumped whenever the exported graphs of the same weights change (cache files of other
#: formats are never read again).
GRAPH_FORMAT = 1
#: What every exported file takes and gives (vs-mlrt's ``inference()`` convention).
IO_CONVENTION = "input: float32 [1, 3, H, W] RGB in [0, 1]; output: float32 [1, 3, s*H, s*W], not clamped"
PRECISIONS = ("fp32", "fp16")


@dataclasses.dataclass(frozen=True)
class Weights:
    """A model's weights, read once: the state dict and what identifies it (``sha256`` of the
    checkpoint file, or of the tensors when the checkpoint came already read: ``source`` says
    which)."""

    state_dict: Mapping[str, Any]
    sha256: str
    source: str  # "file" or "tensors"


def exportable_models(registry: Registry | None = None) -> list[str]:
    """Registered (non-diagnostic) image models whose family can export its network."""
    registry = registry or default_registry()
    return [d.name for d in registry.models() if d.kind == "image" and not d.diagnostic
            and registry.family(d.family).export is not None]


def exporting_family(desc: ModelDescriptor, registry: Registry | None = None) -> ModelFamily:
    """``desc``'s family, or ``not exportable: ...`` naming what is (video models and
    diffusion pipelines have no single graph to export)."""
    registry = registry or default_registry()
    family = registry.family(desc.family)
    if family.export is None or desc.kind != "image":
        why = ("a video model" if desc.kind == "video"
               else f"a {family.title or family.name} model, whose family declares no single-graph deployment form")
        can = ", ".join(exportable_models(registry)) or "none"
        raise InvalidOption(
            f"not exportable: {desc.name} is {why}; exportable models: {can} (or a checkpoint file of their family)",
            option="model", model=desc.name)
    return family


def tensors_sha256(state_dict: Mapping[str, Any]) -> str:
    """sha256 of a state dict's names, dtypes, shapes and values (for a checkpoint handed over
    already read, whose file is not known here)."""
    import torch  # here: the CLI builds its parser (exportable_models) without torch

    digest = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # any dtype, bf16 too
    return digest.hexdigest()


def read_weights(desc: ModelDescriptor, found: Mapping[str, Path | None], state_dict: Mapping | None) -> Weights:
    """The state dict and its identity, from the runtime's weight search (``found``) or a
    checkpoint already read (``state_dict``)."""
    if state_dict is not None:
        return Weights(state_dict, tensors_sha256(state_dict), "tensors")
    paths = [found.get(wf.relpath) for wf in desc.weights]
    path = next((p for p in paths if p is not None), None)
    if path is None:
        raise InternalError(f"{desc.name}: no weight file to export (the search found none and raised nothing)")
    from vs_superres.numerics.checkpoints import load_state_dict  # torch: only when weights are read

    return Weights(load_state_dict(path), weights_mod.sha256_of(path), "file")


def project_version() -> str:
    try:
        return importlib_metadata.version("vs-superres")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def graph_metadata(desc: ModelDescriptor, weights: Weights, *, precision: str, static: tuple[int, int] | None) -> dict[str, str]:
    """What an exported file says about itself (``metadata_props``)."""
    return {
        "model": desc.name,
        "family": desc.family,
        "scale": str(desc.scale),
        "weights_sha256" if weights.source == "file" else "weights_tensors_sha256": weights.sha256,
        "licence": desc.licence,
        "precision": precision,
        "shape": "dynamic" if static is None else f"{static[0]}x{static[1]}",
        "io": IO_CONVENTION,
        "producer": f"vs-superres {project_version()}",
        "graph_format": str(GRAPH_FORMAT),
    }


def require_onnx() -> None:
    """The ``onnx`` package (writing metadata, the checks), or an error naming the extra."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise InvalidOption("exporting to ONNX needs the onnx package, which is not installed here; install it with "
                            "`pip install vs-superres[onnx]` (or the [openvino] or [tensorrt] extra)", option="model") from None


def check_graph(data: bytes) -> None:
    """``onnx.checker`` (full check) and strict shape inference on an exported file; a graph
    that fails is a bug of its family's export, never the user's."""
    import onnx

    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types
        raise InternalError(f"the exported ONNX graph fails onnx's checks: {type(exc).__name__}: {exc}") from exc


def export_graph(desc: ModelDescriptor, weights: Weights, *, precision: str = "fp32",
                 static: tuple[int, int] | None = None, registry: Registry | None = None) -> bytes:
    """``desc``'s network as a checked ONNX file (bytes) with its metadata.

    ``precision``: ``fp32`` or ``fp16`` (computed in half precision inside the graph; input
    and output stay float32). ``static``: ``(width, height)`` fixed in the graph, else dynamic.
    """
    family = exporting_family(desc, registry)
    require_onnx()
    if precision not in PRECISIONS:
        raise InvalidOption(f"an exported graph computes in fp32 or fp16, not {precision}", option="dtype", model=desc.name)
    if static is not None and min(static) < 1:
        raise InvalidOption(f"a static size must be at least 1x1, got {static[0]}x{static[1]}", model=desc.name)
    assert family.export is not None  # exporting_family checked it
    data = family.export(weights.state_dict, desc.config, fp16=precision == "fp16", static=static,
                         metadata=graph_metadata(desc, weights, precision=precision, static=static))
    check_graph(data)
    return data


def write_graph(data: bytes, path: str | Path) -> Path:
    """Write ``data`` atomically at ``path`` (never a half-written file under that name)."""
    out = AtomicFile(path)
    try:
        with open(out.tmp_path, "wb") as f:
            f.write(data)
        return out.commit()
    except BaseException:
        out.abort()
        raise


def graph_cache_dir() -> Path:
    return weights_mod.cache_dir() / "graphs"


def cached_graph(desc: ModelDescriptor, weights: Weights, *, precision: str, runtime: str, runtime_version: str,
                 registry: Registry | None = None) -> Path:
    """The path of ``desc``'s dynamic-size ONNX graph for ``runtime``, exported on first use.

    The file is named by the family, the weights sha256, the precision, the runtime and its
    version and :data:`GRAPH_FORMAT`; ``NAME.sha256`` beside it records its bytes' sha256.
    A file whose bytes do not match (cut by a crash, corrupted, edited) is exported again.
    """
    folder = graph_cache_dir()
    safe_version = "".join(c if c.isalnum() or c in ".-" else "_" for c in runtime_version)
    path = folder / f"{desc.family}-{weights.sha256[:20]}-{precision}-{runtime}-{safe_version}-g{GRAPH_FORMAT}.onnx"
    seal = path.with_name(path.name + ".sha256")
    if path.is_file():
        recorded = seal.read_text().strip() if seal.is_file() else ""
        if recorded and weights_mod.sha256_of(path) == recorded:
            return path
        log.warning("the cached graph %s does not match its recorded sha256 (cut or corrupt): exporting it again", path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SuperResError(f"cannot create the graph cache folder '{folder}' ({exc.strerror or exc}); "
                            "set XDG_CACHE_HOME to a writable folder") from None
    log.info("exporting %s (%s) to ONNX for %s %s: %s", desc.name, precision, runtime, runtime_version, path)
    data = export_graph(desc, weights, precision=precision, registry=registry)
    write_graph(data, path)
    write_graph(f"{hashlib.sha256(data).hexdigest()}\n".encode(), seal)
    return path
