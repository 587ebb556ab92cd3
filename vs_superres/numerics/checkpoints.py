"""Safe checkpoint loading: the one loader every family and the runtime use.

Loading never unpickles code: safetensors, or ``torch.load(..., weights_only=True)`` (plain
tensors, numbers, strings and containers only). Errors name the file and say what to do;
callers add what only they know (where the file comes from) as ``hint``, appended to the
message.

* :func:`load_checkpoint`: whatever the file holds (a dict of tensors for safetensors; any
  plain containers for a torch file), for formats with more than tensors in them.
* :func:`read_safetensors`: a safetensors file's tensors and its metadata (``str -> str``).
* :func:`load_tensors`: a flat ``name -> tensor`` mapping, as stored (diffusers weights).
* :func:`load_state_dict`: a model state dict, training wrappers stripped
  (:func:`unwrap_state_dict`).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from vs_superres.contracts.errors import WeightsError

__all__ = ["load_checkpoint", "load_state_dict", "load_tensors", "read_safetensors", "unwrap_state_dict"]

_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net", "generator")


def _error(message: str, hint: str = "") -> WeightsError:
    return WeightsError(f"{message} {hint}" if hint else message)


def _detail(err: BaseException) -> str:
    """``Type: first line`` of an exception, at most 200 characters of text."""
    text = str(err).splitlines()[0][:200] if str(err).strip() else "no detail"
    return f"{type(err).__name__}: {text}"


def _existing_file(path: str | os.PathLike, hint: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise _error(f"checkpoint {str(path)!r} is a folder, not a checkpoint file.", hint)
    if not path.is_file():
        raise _error(f"checkpoint {str(path)!r} does not exist.", hint)
    return path


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


def read_safetensors(path: str | os.PathLike, *, hint: str = "") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file, on the CPU (metadata ``{}`` when absent)."""
    path = _existing_file(path, hint)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _error(f"{str(path)!r} is not a readable safetensors file ({_detail(e)}).", hint) from None
    return tensors, metadata


#: safetensors' own limit on the length of its JSON header; a larger length is not safetensors.
MAX_SAFETENSORS_HEADER = 100_000_000
#: Nesting a safetensors header may have: the format needs 3 (``{name: {"shape": [...]}}``);
#: deeper JSON is refused before it is parsed (a deeply nested header would exhaust the
#: parser's recursion: a listing that reads it must never fail on it).
MAX_SAFETENSORS_DEPTH = 16
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _json_nesting_within(data: bytes, limit: int) -> bool:
    """Whether the JSON text ``data`` nests at most about ``limit`` levels (at least ``limit``
    are always let through; never more than ``2 * limit``), told without parsing it: strings
    are dropped, then the innermost bracket pairs are removed, one or two levels a pass."""
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return True
        inner = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if inner == brackets:
            return False  # unbalanced: not JSON
        brackets = inner
    return not brackets


def safetensors_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor entries and ``__metadata__``), read with
    bounds: at most :data:`MAX_SAFETENSORS_HEADER` bytes, nested at most
    :data:`MAX_SAFETENSORS_DEPTH` levels; no tensor is read. Raises :class:`WeightsError` naming
    the file when it cannot be read or is not a safetensors header."""
    import json
    import struct

    def bad(why: str) -> WeightsError:
        return WeightsError(f"{str(path)!r} is not a readable safetensors file ({why}).")

    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if not 0 < size <= MAX_SAFETENSORS_HEADER:
                raise bad(f"its header length {size} is outside 1..{MAX_SAFETENSORS_HEADER} bytes")
            data = f.read(size)
    except (OSError, struct.error) as e:
        raise bad(_detail(e)) from None
    if len(data) < size:
        raise bad(f"the file ends inside its {size}-byte header")
    if not _json_nesting_within(data, MAX_SAFETENSORS_DEPTH):
        raise bad(f"its header is not JSON nested at most {MAX_SAFETENSORS_DEPTH} levels")
    try:
        header = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise bad(f"its header is not JSON: {_detail(e)}") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    return header


def safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file, read from its bounded header alone
    (:func:`safetensors_header`; ``{}`` when the file has none or is not a safetensors file:
    the caller decides what that means)."""
    try:
        metadata = safetensors_header(path).get("__metadata__")
    except WeightsError:
        return {}
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def _first_foreign_global(path: Path) -> str | None:
    """The first callable a pickle imports beyond torch's tensor rebuilders, read from its
    opcodes with :mod:`pickletools` (which decodes, never executes)."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                data = archive.read(name)
        else:
            data = path.read_bytes()
        strings: list[str] = []
        for op, arg, _pos in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(str(arg))
            found = str(arg).replace(" ", ".") if op.name in ("GLOBAL", "INST") else (
                ".".join(strings[-2:]) if op.name == "STACK_GLOBAL" and len(strings) >= 2 else None)
            if found and not found.startswith(("torch.", "collections.OrderedDict", "_codecs.encode", "numpy.")):
                return found
    except Exception:  # noqa: BLE001 - a damaged pickle: the message then names nothing
        return None
    return None


def _code_refusal(path: Path, torch_message: str) -> str:
    """Our own words for a pickle that asks to run code. PyTorch's message ends by suggesting
    ``weights_only=False``, which would run that code; it is never quoted."""
    wanted = re.search(r"GLOBAL ([\w.]+)", torch_message)
    what = wanted.group(1) if wanted else _first_foreign_global(path)
    asked = f" (it asks for `{what}`)" if what else ""
    return (
        f"{str(path)!r} was refused and nothing in it was run: it is a pickle that contains code "
        f"to execute while loading{asked}, not only tensors. vs-superres never runs code from "
        "checkpoints: it reads them weights-only, as data. A safe checkpoint holds only tensors, numbers, "
        "strings, lists and dicts: a .safetensors file, or a .pth/.ckpt written with "
        "torch.save(model.state_dict()). Get such a file from the model's publisher; if you "
        "trust this one, re-save its state dict as safetensors in an isolated environment."
    )


#: how many times its own size a torch checkpoint's zip entries may declare once inflated:
#: ``torch.save`` stores them uncompressed (about 1:1), while deflate inflates up to ~1000:1
MAX_INFLATION = 4
#: declared bytes always let through, whatever the ratio (a zip's own overhead on a tiny file)
INFLATION_SLACK = 1 << 20
#: declared bytes never let through, whatever the file's size (zip64 sizes are 64-bit)
MAX_INFLATED_BYTES = 1 << 40


def check_zip_inflation(path: Path, hint: str = "") -> None:
    """Refuse a zip (a torch checkpoint, as ``torch.save`` writes them) whose entries declare
    more bytes once inflated than :data:`MAX_INFLATION` times the file's size (plus
    :data:`INFLATION_SLACK`) or :data:`MAX_INFLATED_BYTES`, read from the central directory
    before anything is inflated (the reader then holds every entry to its declared size)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise _error(f"{str(path)!r} is not a readable PyTorch checkpoint (a damaged zip: {_detail(e)}).", hint) from None
    size = path.stat().st_size
    declared = sum(entry.file_size for entry in entries)
    if declared <= min(MAX_INFLATION * size + INFLATION_SLACK, MAX_INFLATED_BYTES):
        return
    packed = [entry.filename for entry in entries if entry.compress_type != zipfile.ZIP_STORED]
    how = (f"{len(packed)} compressed entries (e.g. {packed[0]!r})" if packed else "its entries")
    raise _error(
        f"{str(path)!r} was refused before loading: {how} declare {declared / 1e9:.2f} GB once "
        f"inflated, {declared / max(size, 1):.0f} times the file's {size / 1e6:.2f} MB, over the bound of "
        f"{MAX_INFLATION}x that guards against decompression bombs (torch.save stores tensors "
        "uncompressed, about 1:1). Use the checkpoint as torch.save wrote it (not re-zipped with "
        "compression), or a .safetensors file.", hint)


def load_checkpoint(path: str | os.PathLike, *, hint: str = "") -> Any:
    """Load a checkpoint without executing code: safetensors (a dict of tensors) or a
    ``weights_only`` torch file (whatever plain containers it holds)."""
    path = _existing_file(path, hint)
    if path.suffix == ".safetensors":
        return read_safetensors(path, hint=hint)[0]
    check_zip_inflation(path, hint)  # bounded in bytes inflated, before torch.load inflates
    try:
        with warnings.catch_warnings():
            # Files written with a newer pickle protocol load fine; torch warns that it might not.
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise _error(f"{str(path)!r} is not a readable PyTorch checkpoint (corrupt or truncated?): {_detail(e)}.", hint) from None
        raise _error(_code_refusal(path, str(e)), hint) from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        raise _error(f"{str(path)!r} is not a readable PyTorch checkpoint (corrupt or truncated?): {_detail(e)}.", hint) from None


def load_tensors(path: str | os.PathLike, *, hint: str = "") -> dict[str, torch.Tensor]:
    """A flat ``name -> tensor`` mapping, keys as stored (no wrappers stripped)."""
    obj = load_checkpoint(path, hint=hint)
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise _error(f"{str(Path(path))!r} does not hold a flat mapping of names to tensors (found {type(obj).__name__}).", hint)
    return dict(obj)


def load_state_dict(path: str | os.PathLike, *, hint: str = "") -> dict[str, torch.Tensor]:
    """A model state dict: :func:`load_checkpoint`, then :func:`unwrap_state_dict`."""
    obj = load_checkpoint(path, hint=hint)
    try:
        return unwrap_state_dict(obj)
    except WeightsError as e:
        raise _error(f"{str(Path(path))!r}: {e.message}.", hint) from None
