"""The journal of a long video job: a hidden work folder beside the output, named after it.

    clip_x4.mkv                      the output, written at the very end (temporary name, rename)
    .clip_x4.mkv.superres-job/       the work folder
        journal.json                 the job's identity and every completed, verified segment
        lock                         held (flock) by the one process writing this output
        seg-00000.mkv ...            completed segments, each in the final codec and container

A segment appears under its name only once complete (written under a temporary name and
renamed), then it is recorded in ``journal.json`` with its size and sha256 (the journal itself
is replaced atomically), so a kill at any point leaves either a recorded, verifiable segment or
nothing that counts. On a rerun the journal's identity (:func:`job_identity`) is compared field
by field with the new job's; any difference sets the old folder aside and starts fresh, saying
which field changed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from vs_superres.contracts.errors import SuperResError
from vs_superres.media.atomic import write_bytes_atomic

JOURNAL_VERSION = 1
WORK_SUFFIX = ".superres-job"
STALE_SUFFIX = ".superres-job.stale"
#: bytes hashed at each of the sampled places of the input (start, middle, end)
_SAMPLE_BYTES = 1 << 20


def work_folder(output: Path) -> Path:
    return output.parent / f".{output.name}{WORK_SUFFIX}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_identity(path: Path) -> dict[str, Any]:
    """Size, modification time and a hash of sampled blocks (start, middle, end): a changed
    input is noticed without reading a whole film."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for offset in sorted({0, max(0, stat.st_size // 2 - _SAMPLE_BYTES // 2), max(0, stat.st_size - _SAMPLE_BYTES)}):
            handle.seek(offset)
            digest.update(handle.read(_SAMPLE_BYTES))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sampled_sha256": digest.hexdigest()}


def job_identity(*, source: Path, output: Path, model: str, weights: list[str], options: dict[str, Any],
                 segment_frames: int, project: str, torch_version: str, device_kind: str,
                 threads: int) -> dict[str, Any]:
    """Everything that changes the output's bytes; a resumed job must match it field by field."""
    return {
        "journal": JOURNAL_VERSION,
        "input": str(source.resolve()),
        "input_identity": input_identity(source),
        "output_format": output.suffix.lower(),
        "model": model,
        "weights_sha256": sorted(weights),
        "options": {k: repr(v) for k, v in sorted(options.items())},
        "segment_frames": segment_frames,
        "project": project,
        "torch": torch_version,
        "device_kind": device_kind,
        "threads": threads,
    }


def identity_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first field that differs, in words, or None."""
    for key in new:
        if old.get(key) != new[key]:
            if key == "input_identity":
                return "the input file changed (size, time or content)"
            if key == "options":
                changed = sorted(set(old.get(key, {}).items()) ^ set(new[key].items()))
                names = sorted({k for k, _ in changed})
                return "options changed: " + ", ".join(names)
            return f"{key.replace('_', ' ')} changed ({old.get(key)!r} -> {new[key]!r})"
    return None


class Journal:
    """The work folder of one output: lock, identity, recorded segments.

    Use as a context manager: entering takes the lock (a second process on the same output
    is refused), leaving releases it; :meth:`finish` removes the folder after the output was
    committed.
    """

    def __init__(self, output: Path):
        self.output = output
        self.folder = work_folder(output)
        self.path = self.folder / "journal.json"
        self._lock_fd: int | None = None
        self.identity: dict[str, Any] = {}
        self.segments: dict[int, dict[str, Any]] = {}

    # ------------------------------------------------------------------ lock
    def __enter__(self) -> "Journal":
        self.folder.mkdir(exist_ok=True)
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SuperResError(
                    f"another superres process is writing '{self.output}' right now (its work folder "
                    f"'{self.folder}' is locked); wait for it to finish, or write to another output") from None
            raise
        self._lock_fd = fd
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------------ state
    def open(self, identity: dict[str, Any], *, resume: bool) -> str | None:
        """Adopt ``identity``: keep the recorded segments that still verify when the old
        journal is this job's and ``resume``; otherwise set the old work aside. Returns a
        one-line reason when old work was set aside, else None."""
        reason = None
        old = self._read()
        if old is not None:
            if not resume:
                reason = "--no-resume was given"
            else:
                reason = identity_difference(old.get("identity", {}), identity)
            if reason is None:
                self.segments = {int(k): v for k, v in old.get("segments", {}).items()}
        elif any(p.name.startswith("seg-") for p in self.folder.iterdir()):
            reason = "its journal is missing or unreadable"
        if reason is not None:
            self._set_aside()
        self.identity = identity
        self._write()
        return reason

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("segments"), dict) else None

    def _write(self) -> None:
        body = {"identity": self.identity, "segments": {str(k): v for k, v in sorted(self.segments.items())}}
        write_bytes_atomic(self.path, json.dumps(body, indent=1).encode())

    def _set_aside(self) -> None:
        """Move the old segments to the stale folder (one kept; ``superres jobs clean`` removes it)."""
        stale = self.output.parent / f".{self.output.name}{STALE_SUFFIX}"
        shutil.rmtree(stale, ignore_errors=True)
        stale.mkdir()
        for item in self.folder.iterdir():
            if item.name != "lock":
                item.replace(stale / item.name)
        self.segments = {}

    def segment_path(self, index: int) -> Path:
        return self.folder / f"seg-{index:05d}{self.output.suffix.lower()}"

    def verified(self) -> tuple[set[int], list[int]]:
        """The recorded segments whose file is there with its size and sha256, and the
        recorded ones that are not (dropped from the journal: they are redone)."""
        good, bad = set(), []
        for index, entry in sorted(self.segments.items()):
            path = self.segment_path(index)
            try:
                ok = path.stat().st_size == entry["size"] and file_sha256(path) == entry["sha256"]
            except (OSError, KeyError):
                ok = False
            (good.add(index) if ok else bad.append(index))
        if bad:
            for index in bad:
                del self.segments[index]
            self._write()
        return good, bad

    def record(self, index: int, frames: int) -> None:
        path = self.segment_path(index)
        self.segments[index] = {"file": path.name, "frames": frames, "size": path.stat().st_size,
                                "sha256": file_sha256(path)}
        self._write()

    def frames_kept(self) -> int:
        return sum(int(entry.get("frames", 0)) for entry in self.segments.values())

    def finish(self) -> None:
        """The output is committed: remove the work folder (the lock goes with it)."""
        self.release()
        shutil.rmtree(self.folder, ignore_errors=True)


def list_jobs(folder: Path) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """Work folders (and set-aside ones) under ``folder``, with their journals."""
    for path in sorted(folder.glob(f".*{WORK_SUFFIX}*")):
        if not path.is_dir():
            continue
        try:
            data = json.loads((path / "journal.json").read_text())
        except (OSError, ValueError):
            data = None
        yield path, data
