"""Finding, verifying, downloading and safely loading checkpoint files.

Search order for a registered weight file (``WeightFile.relpath``):

1. an explicit path given by the caller;
2. ``$SUPERRES_WEIGHTS/<relpath>`` (CI points this at ``../shared/weights``);
3. the package's own ``models/weights/<relpath>`` folder;
4. the user cache: ``$XDG_CACHE_HOME/vs-superres/<relpath>`` (``~/.cache`` by default).

Nothing is ever downloaded implicitly: ``superres models download NAME`` does that, with a
sha256 check before the file gets its final name. Reading a found file is
``vs_superres.numerics.checkpoints`` (never unpickling code).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import urllib.request
from pathlib import Path
from ..contracts.descriptor import WeightFile
from ..contracts.errors import WeightsError, option_ref
from ..contracts.progress import Progress, ProgressFn

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
