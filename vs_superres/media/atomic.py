"""Atomic file creation: never leave a truncated file under the final name.

Output goes to a hidden temporary name in the destination folder (same file system, so the
final ``os.replace`` is atomic), is fsynced, then renamed. On any exception -- including
``KeyboardInterrupt`` -- the temporary file is deleted and the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

from ..contracts.errors import SuperResError


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a read-only descriptor or a folder
        pass
    finally:
        os.close(fd)


class AtomicFile:
    """A temporary path that becomes ``path`` on :meth:`commit`, or vanishes on :meth:`abort`.

    The temporary name keeps the destination's extension, so libraries that pick a format
    from the name (FFmpeg muxers) see the right one.
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
        token = secrets.token_hex(4)
        self.tmp_path = folder / f".{self.path.stem}.partial-{token}{self.path.suffix}"
        self.done = False

    def commit(self) -> Path:
        """fsync the temporary file and rename it to the final path; returns the final path."""
        if self.done:
            return self.path
        try:
            _fsync_path(self.tmp_path)
            os.replace(self.tmp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self.done = True
        with contextlib.suppress(OSError):
            _fsync_path(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Delete the temporary file if it exists (safe to call more than once)."""
        self.done = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp_path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Context manager yielding a temporary path; renamed to ``path`` on a clean exit.

    >>> with atomic_output("out.png") as tmp:
    ...     tmp.write_bytes(data)
    """
    target = AtomicFile(path)
    try:
        yield target.tmp_path
    except BaseException:
        target.abort()
        raise
    target.commit()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the final path."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
    return Path(path)
