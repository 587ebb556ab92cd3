"""Finding, verifying, downloading and safely loading checkpoint files.

Search order for a registered weight file (``WeightFile.relpath``):

1. an explicit path given by the caller;
2. ``$SUPERRES_WEIGHTS/<relpath>`` (CI points this at ``../shared/weights``);
3. the package's own ``models/weights/<relpath>`` folder;
4. the user cache: ``$XDG_CACHE_HOME/vs-superres/<relpath>`` (``~/.cache`` by default).

Nothing is ever downloaded implicitly: ``superres models download NAME`` does that, with a
sha256 check before the file gets its final name. Reading a found file is
``vs_superres.numerics.checkpoints`` (never unpickling code).

A folder weight that declares a :class:`~vs_superres.contracts.descriptor.HubSnapshot` (the
SD-2.1-base folder UltraVSR needs) is found by :func:`resolve_snapshot`: the folder or hub id
given through its option, else the search above, else the declared repository in the
Hugging Face cache; downloaded from the Hub only when the declared option allows it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tempfile
import urllib.request
from pathlib import Path

from vs_superres.contracts.descriptor import HubSnapshot, WeightFile
from vs_superres.contracts.errors import WeightsError, option_ref
from vs_superres.contracts.progress import Progress, ProgressFn

ENV_VAR = "SUPERRES_WEIGHTS"


def package_weights_dir() -> Path:
    """``models/weights/`` of the installed package (found without importing the families)."""
    spec = importlib.util.find_spec("vs_superres.models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]).resolve() / "weights" if locations else Path(__file__).resolve().parents[2] / "models" / "weights"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vs-superres"


def search_roots() -> list[Path]:
    roots: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        roots.extend(Path(p) for p in env.split(os.pathsep) if p)
    roots.append(package_weights_dir())
    roots.append(cache_dir())
    return roots


def _env_notes(relpath: str) -> str:
    """What is wrong with ``$SUPERRES_WEIGHTS`` itself, in words (empty when nothing is): an
    entry naming a file (it must name a folder holding ``relpath``), or no such folder."""
    notes = []
    for entry in (p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p):
        path = Path(entry)
        if path.is_file():
            folder = (str(path.parents[len(Path(relpath).parts) - 1])
                      if path.as_posix().endswith("/" + relpath) else "FOLDER")
            notes.append(
                f"${ENV_VAR} names the file {entry!r}, not a folder: it must name a folder that holds "
                f"the weights under their relative paths, here {ENV_VAR}={folder} for "
                f"{folder}/{relpath}; or give a file itself as the model or with "
                f"{option_ref('weights', 'PATH')}")
        elif not path.exists():
            notes.append(f"${ENV_VAR} names {entry!r}, which does not exist")
    return "\n" + "\n".join(notes) if notes else ""


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _missing_message(wf: WeightFile, looked: list[Path], model_name: str | None) -> str:
    places = "\n".join(f"  - {p}" for p in looked)
    get = (
        f"Run `superres models download {model_name}`"
        if model_name and wf.url
        else "Download it"
    )
    src = f" from {wf.upstream}" if wf.upstream else ""
    return (
        f"weight file {wf.relpath!r} was not found (expected sha256 {wf.sha256 or 'unknown'}).\n"
        f"Looked in:\n{places}\n"
        f"{get}{src}, or put the file at one of those places, or point ${ENV_VAR} at a folder "
        f"holding {wf.relpath}" + (f", or give its path with {option_ref(wf.option, 'PATH')}." if wf.option else ".")
        + _env_notes(wf.relpath)
    )


def resolve(wf: WeightFile, explicit: str | os.PathLike | None = None, *, model_name: str | None = None, verify: bool = True) -> Path:
    """Return the path of ``wf``; searched files are checked against the registry's sha256."""
    exists = Path.is_dir if wf.folder else Path.is_file
    if explicit is not None:
        path = Path(explicit)
        if not exists(path):
            what = "a folder" if wf.folder else "a file"
            raise WeightsError(f"weights path {str(path)!r} does not exist or is not {what}", option=wf.option, model=model_name)
        candidates = [path]
    else:
        candidates = [root / wf.relpath for root in search_roots()]
    for path in candidates:
        if exists(path):
            # An explicit path is the user's own choice (a fine-tune, a conversion): its keys
            # and shapes are checked when it loads, its hash is not held to the registry's.
            if verify and explicit is None:
                verify_file(path, wf)
            return path
    raise WeightsError(_missing_message(wf, candidates, model_name), option=wf.option, model=model_name)


_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def resolve_snapshot(wf: WeightFile, explicit: str | os.PathLike | None = None, *,
                     allow_download: bool = False, model_name: str | None = None) -> Path:
    """The local folder of a folder weight with a :class:`HubSnapshot` (``wf.hub``).

    ``explicit`` (the value of the weight's option) is a folder, or a hub id looked up in the
    Hugging Face cache; without it the search roots are tried, then ``wf.hub.repo`` in the cache.
    The Hub is asked only with ``allow_download``. The folder's declared subfolders and files
    are checked; every failure raises :class:`WeightsError` saying how to get the folder.
    """
    hub = wf.hub
    if hub is None:
        raise ValueError(f"{wf.relpath} declares no hub snapshot")
    path = None
    if explicit is None:
        path = next((root / wf.relpath for root in search_roots() if (root / wf.relpath).is_dir()), None)
        explicit = hub.repo
    if path is None:
        path = Path(explicit).expanduser()
        if not path.exists() and _HUB_ID.fullmatch(str(explicit)):
            path = _from_hub(wf, str(explicit), allow_download, model_name)
    if not path.is_dir():
        raise WeightsError(f"{hub.what} folder {path} does not exist. {hub.download_hint(str(path))}"
                           + _env_notes(wf.relpath), option=wf.option, model=model_name)
    missing = [s for s in hub.subfolders if not (path / s).is_dir()]
    missing += [f for f in hub.files if (path / f).parent.is_dir() and not (path / f).is_file()]
    if missing:
        raise WeightsError(f"{hub.what} folder {path} lacks {missing}. {hub.download_hint(str(path))}",
                           option=wf.option, model=model_name)
    return path


def _from_hub(wf: WeightFile, repo: str, allow_download: bool, model_name: str | None) -> Path:
    """``repo``'s snapshot (the declared patterns) from the Hugging Face cache, or the Hub."""
    hub: HubSnapshot = wf.hub  # type: ignore[assignment]  # checked by the caller
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, allow_patterns=list(hub.patterns) or None,
                                      local_files_only=not allow_download))
    except Exception as exc:
        if allow_download:
            how = "It could not be downloaded"
        else:
            turn_on = f" ({option_ref(hub.download_option, 'True')} turns them on)" if hub.download_option else ""
            how = f"It is not in the Hugging Face cache, and downloads are off{turn_on}"
        raise WeightsError(
            f"{hub.what} {repo!r} is not a local folder. {how} ({type(exc).__name__}). {hub.download_hint('<folder>')}",
            option=wf.option, model=model_name,
        ) from exc


def verify_file(path: Path, wf: WeightFile) -> None:
    if not wf.sha256 or wf.folder:
        return
    actual = sha256_of(path)
    if actual != wf.sha256:
        raise WeightsError(
            f"weight file {str(path)!r} has sha256 {actual}, but {wf.relpath} should have "
            f"{wf.sha256}; the file is corrupt, truncated or a different checkpoint. Delete it "
            "and download it again."
        )


def download(wf: WeightFile, dest_root: Path | None = None, *, progress: ProgressFn | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``wf.url`` into ``dest_root/<relpath>`` (the user cache by default).

    The data goes to a temporary file beside the destination; only a file whose sha256
    matches is renamed to the final name.
    """
    if not wf.url:
        raise WeightsError(f"{wf.relpath} has no download location; get it from {wf.upstream or 'its authors'}")
    dest = (dest_root or cache_dir()) / wf.relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(wf.url, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0)
                done = 0
                while block := resp.read(1 << 20):
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    if progress:
                        progress(Progress(done, total, "download", "bytes"))
        except OSError as e:
            raise WeightsError(
                f"could not download {wf.relpath} from {wf.url}: {e}. If this machine is "
                f"offline, fetch the file elsewhere (sha256 {wf.sha256}) and put it at {dest}"
            ) from None
        if wf.sha256 and h.hexdigest() != wf.sha256:
            raise WeightsError(
                f"downloaded {wf.relpath} has sha256 {h.hexdigest()}, expected {wf.sha256}; "
                "the upstream file changed or the download was damaged. Nothing was saved."
            )
        os.replace(tmp_name, dest)
        return dest
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
