"""Atomic file creation: never leave a truncated file under the final name.

Output goes to a hidden temporary name in the destination folder (same file system, so the
final ``os.replace`` is atomic), is fsynced, then renamed. On any exception -- including
``KeyboardInterrupt`` and the termination signals the CLI turns into exceptions -- the
temporary file is deleted and the destination is left as it was.

The temporary file is created (``O_CREAT | O_EXCL``) when :class:`AtomicFile` is made, so an
unwritable folder, a read-only file system or a folder out of inodes is reported before any
work is done (:func:`check_writable` does only that). Its name says who owns it,
``.{stem}.partial-{host}-{pid}-{token}{suffix}``: a process killed outright (SIGKILL, power
loss) cannot clean up, so the next :class:`AtomicFile` for the same path deletes the partial
files of that path whose process is gone on this host, never those of a live process (which
may be another run writing the same name).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Iterator

from vs_superres.contracts.errors import SuperResError

#: errno values meaning "the disk (or the allowance on it) is full"
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_NO_PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot fsync a read-only descriptor or a folder (EINVAL, EBADF);
        # running out of space at fsync is real (delayed allocation, NFS) and must be raised.
        if exc.errno in DISK_FULL_ERRNOS or exc.errno == errno.EIO:
            raise
    finally:
        os.close(fd)


def _host_tag() -> str:
    """Six hex digits naming this machine: a pid means something only on the host that made it
    (a folder shared over the network is written by processes of several machines)."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a pid we could have written: leave the file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    except OSError:
        return True
    return True


def _size_text(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def disk_full_error(exc: BaseException, path: str | os.PathLike, *, size: int | None = None,
                    written: int | None = None) -> SuperResError | None:
    """The user-facing error for ``exc`` if it (or an exception it was raised from) is an
    out-of-space error (ENOSPC, EDQUOT, EFBIG) while writing ``path``; None otherwise.

    ``size``: how many bytes were being written, ``written``: how many were written before it
    failed, when known (either makes the message say how much room is needed).
    """
    if isinstance(exc, SuperResError) and getattr(exc, "errno", None) in DISK_FULL_ERRNOS:
        return exc  # already said in these terms
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in DISK_FULL_ERRNOS:
            break
        cause = cause.__cause__ or cause.__context__
    else:
        return None
    assert isinstance(cause, OSError)
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    amount = ""
    if size is not None:
        amount = f" ({_size_text(size)} to write)"
    elif written:
        amount = f" (it failed after {_size_text(written)} were written)"
    if cause.errno == errno.EFBIG:
        what = ("the file is larger than this file system or this process's file size limit "
                "(`ulimit -f`) allows: no room is left for it")
        fix = "raise the limit, or write to a file system that takes larger files"
    elif cause.errno == errno.EDQUOT:
        what = f"the disk quota of the file system holding '{folder}' is used up: the disk is full"
        fix = "free space within your quota or choose an output folder elsewhere"
    else:
        what = f"no space left on the disk holding '{folder}': the disk is full"
        fix = "free some space or choose an output folder on another disk"
    err = SuperResError(f"cannot write '{path}'{amount}: {what}; {fix}; no output file was written "
                        "and an existing file of that name was left as it was")
    # OSError's own field names, so a host can tell this case apart without parsing text.
    err.errno, err.filename = cause.errno, str(path)  # type: ignore[attr-defined]
    return err


@contextlib.contextmanager
def reporting_full_disk(path: str | os.PathLike | None) -> Iterator[None]:
    """Re-raise an out-of-space error (ENOSPC, EDQUOT, EFBIG, or an error raised from one) met
    inside the block while writing ``path`` as the :class:`SuperResError` of
    :func:`disk_full_error`, chained to it; other errors, and a :class:`SuperResError` (already
    said in the user's terms), pass unchanged. ``path=None`` (a file object, whose disk, if
    any, is the caller's) changes nothing.

    >>> with reporting_full_disk(path):
    ...     container.mux(packet)
    """
    try:
        yield
    except SuperResError:
        raise
    except BaseException as exc:
        full = disk_full_error(exc, path) if path is not None else None
        if full is None:
            raise
        raise full from exc


class AtomicFile:
    """A temporary path that becomes ``path`` on :meth:`commit`, or vanishes on :meth:`abort`.

    The temporary name keeps the destination's extension, so libraries that pick a format
    from the name (FFmpeg muxers) see the right one. The temporary file exists (empty) from
    the constructor on: permission and read-only errors surface here, before any work.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        folder = self.path.parent
        if not folder.is_dir():
            raise SuperResError(
                f"cannot write '{self.path}': the folder '{folder}' does not exist; "
                "create it first or choose another output path")
        if self.path.is_dir():
            raise SuperResError(
                f"cannot write '{self.path}': it is a folder; give a file name instead")
        self.done = False
        self.written = 0
        remove_stale_partials(self.path)
        while True:
            name = (f".{self.path.stem}.partial-{_host_tag()}-{os.getpid()}-"
                    f"{secrets.token_hex(4)}{self.path.suffix}")
            self.tmp_path = folder / name
            try:
                fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue  # a token collision: draw another
            except OSError as exc:
                self.done = True
                raise self._creation_error(exc) from None
            os.close(fd)
            return

    def _creation_error(self, exc: OSError) -> SuperResError:
        folder = self.path.parent
        shown = f"'{folder}'" if str(folder) != "." else "the current folder"
        if exc.errno in _NO_PERMISSION_ERRNOS:
            return SuperResError(
                f"cannot write '{self.path}': no permission to create files in {shown}; "
                "choose an output folder you can write to, or make this one writable "
                "(chmod u+w, or ask its owner)")
        if exc.errno == errno.EROFS:
            return SuperResError(
                f"cannot write '{self.path}': {shown} is on a read-only file system; "
                "choose an output folder on a writable disk (or remount it read-write)")
        full = disk_full_error(exc, self.path)
        if full is not None:
            return full
        if exc.errno == errno.ENAMETOOLONG:
            return SuperResError(
                f"cannot write '{self.path}': the file name is too long for this file system; "
                "choose a shorter output name")
        return SuperResError(
            f"cannot write '{self.path}': creating a file in {shown} failed "
            f"({exc.strerror or exc}); choose another output folder")

    def commit(self) -> Path:
        """fsync the temporary file and rename it to the final path; returns the final path."""
        if self.done:
            return self.path
        try:
            _fsync_path(self.tmp_path)
            os.replace(self.tmp_path, self.path)
        except BaseException as exc:
            self.abort()
            full = disk_full_error(exc, self.path, written=self.written or None) if isinstance(exc, Exception) else None
            if full is not None:
                raise full from None
            raise
        self.done = True
        with contextlib.suppress(OSError):
            _fsync_path(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Delete the temporary file if it exists (safe to call more than once). ``written``
        keeps its size, for messages."""
        self.done = True
        with contextlib.suppress(OSError):
            self.written = max(self.written, os.stat(self.tmp_path).st_size)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp_path)


def check_writable(path: str | os.PathLike) -> None:
    """Raise :class:`SuperResError` now if ``path`` could not be created later (missing or
    unwritable folder, read-only file system, no inodes left); leaves nothing behind."""
    AtomicFile(path).abort()


def remove_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Delete the partial files of ``path`` left by processes of this host that are gone;
    returns what was deleted. Partials of live processes and of other hosts are kept."""
    path = Path(path)
    folder = path.parent
    pattern = re.compile(re.escape(f".{path.stem}.partial-") + r"([0-9a-f]{6})-([0-9]+)-[0-9a-f]{8}"
                         + re.escape(path.suffix) + r"\Z")
    here = _host_tag()
    removed: list[Path] = []
    try:
        candidates = glob.glob(glob.escape(str(folder / f".{path.stem}.partial-")) + "*")
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.match(os.path.basename(candidate))
        if not match or match.group(1) != here or _pid_alive(int(match.group(2))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(candidate)
            removed.append(Path(candidate))
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, size: int | None = None) -> Iterator[Path]:
    """Context manager yielding a temporary path; renamed to ``path`` on a clean exit.

    An out-of-space error raised inside or while committing is turned into a
    :class:`SuperResError` saying so (``size``: the bytes being written, when known, so the
    message says how much room is needed).

    >>> with atomic_output("out.png") as tmp:
    ...     tmp.write_bytes(data)
    """
    target = AtomicFile(path)
    try:
        yield target.tmp_path
        target.commit()
    except Exception as exc:
        target.abort()
        full = disk_full_error(exc, target.path, size=size, written=None if size else (target.written or None))
        if full is not None:
            raise full from None
        raise
    except BaseException:
        target.abort()
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the final path."""
    with atomic_output(path, size=len(data)) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
    return Path(path)
