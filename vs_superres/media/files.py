"""Opening media for PyAV: local paths as plain files, or caller's binary file objects (pipes).

FFmpeg reads a string as a URL: ``concat:a.mp4|b.mp4``, ``pipe:1`` or ``http://...`` would
name a protocol, not a file. A local path is therefore always handed to FFmpeg as an absolute
``file:`` URL, which the file protocol opens literally whatever the name looks like. A file
object (``sys.stdin.buffer``, ``io.BytesIO``, a socket file) is read or written through
PyAV's Python I/O; it is seeked only when its ``seekable()`` says so, is never closed here,
and its ``name`` is never shown to FFmpeg.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Any, Callable, Union

import av

from vs_superres.contracts.errors import SuperResError, UnsupportedFormat
from vs_superres.media.atomic import AtomicFile

#: a local path, or a binary file object PyAV can read or write
MediaFile = Union[str, "os.PathLike[str]", IO[bytes]]

#: container format for a file object's name suffix (FFmpeg guesses paths by itself)
FORMAT_OF_SUFFIX = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
    ".nut": "nut", ".ts": "mpegts", ".avi": "avi", ".y4m": "yuv4mpegpipe",
}
_SUFFIX_OF_FORMAT = {"matroska": ".mkv", "mpegts": ".ts", "ipod": ".m4v", "yuv4mpegpipe": ".y4m"}
_MP4_FAMILY = {"mp4", "mov", "ipod", "ismv", "3gp", "3g2"}
_STREAMABLE_HINT = ("a pipe needs a streamable container: mkv, nut, mpegts, or an MP4 whose "
                    "index comes first (`-movflags +faststart`; ffmpeg can send `-f nut -` "
                    "or `-f matroska -`)")


def file_url(path: str | os.PathLike[str]) -> str:
    """The absolute ``file:`` URL FFmpeg opens as exactly this local file."""
    return "file:" + os.path.abspath(os.fspath(path))


def is_path(source: object) -> bool:
    return isinstance(source, (str, os.PathLike))


def _seekable(handle) -> bool:
    probe = getattr(handle, "seekable", None)
    if probe is None:
        return callable(getattr(handle, "seek", None)) and callable(getattr(handle, "tell", None))
    try:
        return bool(probe())
    except (OSError, ValueError):
        return False


class _Borrowed:
    """A caller's file object as PyAV sees it: I/O forwarded, ``close`` withheld, no name."""

    def __init__(self, raw, writing: bool):
        self._raw, self._writing = raw, writing
        self._can_seek = _seekable(raw)
        #: bytes handed to FFmpeg so far: a pipe's only "file size" (see InputSource.size)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.bytes_read += len(data or b"")
        return data

    def write(self, data: bytes) -> int:
        written = self._raw.write(data)
        return len(data) if written is None else written

    def readable(self) -> bool:
        return not self._writing

    def writable(self) -> bool:
        return self._writing

    def seekable(self) -> bool:
        return self._can_seek

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def flush(self) -> None:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self._raw.flush()


def _label(handle) -> str:
    name = getattr(handle, "name", None)
    return f"the input stream '{name}'" if isinstance(name, str) and name else "the input stream"


def _identity(path: Path) -> tuple[int, ...] | None:
    """What tells a file's version apart: device, inode, size, modification time (ns)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class InputSource:
    """Where a video is read from: a local file (``str``/``PathLike``) or a readable binary
    file object. :meth:`open` gives a PyAV input container; a second :meth:`open` rereads
    from the start, which a pipe (non-seekable object) refuses."""

    def __init__(self, source: MediaFile, format: str | None = None):
        self.format = format
        self._opened = False
        self._borrowed: _Borrowed | None = None
        self._identity: tuple[int, ...] | None = None
        if is_path(source):
            path = Path(source)  # type: ignore[arg-type]
            if not path.exists():
                raise SuperResError(f"cannot read '{path}': no such file; check the path")
            if not path.is_file():
                raise SuperResError(f"cannot read '{path}': it is not a file; give a video file path")
            self.path: Path | None = path
            self.name = f"'{path}'"
            self._handle = None
            self._start = 0
        elif callable(getattr(source, "read", None)):
            readable = getattr(source, "readable", None)
            if readable is not None and not readable():
                raise SuperResError(f"cannot read {_label(source)}: it is not open for reading")
            self.path = None
            self.name = _label(source)
            self._handle = source
            self._start = source.tell() if _seekable(source) else 0  # type: ignore[union-attr]
        else:
            raise TypeError(f"expected a path or a readable binary file object, got {type(source).__name__}")

    @property
    def rereadable(self) -> bool:
        """Whether :meth:`open` may be called again (a file, or a seekable file object)."""
        return self._handle is None or _seekable(self._handle)

    @property
    def is_pipe(self) -> bool:
        return self._handle is not None and not _seekable(self._handle)

    def open(self):
        if self._opened:
            if not self.rereadable:
                raise SuperResError(
                    f"cannot read {self.name} again: a pipe can be read only once; read it "
                    "in one pass, or give a file or a seekable file object")
            if self._handle is not None:
                self._handle.seek(self._start)
        self._opened = True
        if self.path is not None:
            self._identity = self._identity or _identity(self.path)
            target: object = file_url(self.path)
        else:
            target = self._borrowed = _Borrowed(self._handle, writing=False)
        try:
            return av.open(target, "r", format=self.format)
        except (av.FFmpegError, ValueError, OSError) as exc:
            if self.path is not None:
                hint = ("check that the file is complete and is a video (mp4, mkv, mov, "
                        "webm, ...)")
            else:
                hint = _STREAMABLE_HINT if self.is_pipe else "check that it holds a complete video"
            raise UnsupportedFormat(
                f"cannot read {self.name}: FFmpeg does not recognise it as a video ({exc}); "
                + hint) from exc

    def size(self) -> int | None:
        """Bytes in the source: a file's size, or what a file object has delivered so far (its
        size once FFmpeg has read it to the end); None before :meth:`open`."""
        if self.path is not None:
            try:
                return self.path.stat().st_size
            except OSError:
                return None
        if self._borrowed is None:
            return None
        if not self._borrowed.seekable():
            return self._borrowed.bytes_read
        with contextlib.suppress(AttributeError, OSError, ValueError):
            return os.fstat(self._handle.fileno()).st_size - self._start  # type: ignore[union-attr]
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            return self._handle.getbuffer().nbytes - self._start  # type: ignore[union-attr]
        return None  # seekable, size unknown: reads may skip around, so counting proves nothing

    def check_unchanged(self) -> None:
        """Raise when the file was rewritten in place since it was first opened (same device
        and inode, another size or modification time): the frames read may mix its old and new
        contents, which must never pass for an upscale of either. A file replaced by another
        (renamed over, deleted) is not: the open file still reads the old one whole. Call it
        after a pass has read to the end; a file object is the caller's and is not checked."""
        if self.path is None or self._identity is None:
            return
        now = _identity(self.path)
        if now is None or now[:2] != self._identity[:2] or now == self._identity:
            return
        raise SuperResError(
            f"{self.name} changed while it was being read (its size or modification time is not "
            "what it was when it was opened): the frames read may mix its old and new contents, so "
            "the output is not kept; run again once nothing writes to the input (let the program "
            "writing it finish, or upscale a copy)")

    def unreadable_hint(self) -> str:
        """Advice for a source that opened but yields no frames."""
        if self.is_pipe:
            return _STREAMABLE_HINT
        return "check that the file is complete"


class OutputTarget:
    """Where a video is written: a local path, filled under a temporary name and renamed on
    :meth:`commit` (see :class:`AtomicFile`), or a writable binary file object (a pipe),
    which then needs ``format`` unless its name ends in a known suffix."""

    def __init__(self, target: MediaFile, format: str | None = None):
        if is_path(target):
            self.path: Path | None = Path(target)  # type: ignore[arg-type]
            self._atomic: AtomicFile | None = AtomicFile(self.path)
            self._handle = None
            self.name = f"'{self.path}'"
            self.format = format
            self.suffix = self.path.suffix.lower()
        elif callable(getattr(target, "write", None)):
            writable = getattr(target, "writable", None)
            if writable is not None and not writable():
                raise SuperResError("cannot write to the output stream: it is not open for writing")
            self.path, self._atomic, self._handle = None, None, target
            self.name = "the output stream"
            name = getattr(target, "name", None)
            guessed = FORMAT_OF_SUFFIX.get(Path(name).suffix.lower()) if isinstance(name, str) else None
            self.format = format or guessed
            if self.format is None:
                raise SuperResError(
                    "writing a video to a file object needs its container format; pass "
                    "format='matroska' (or 'nut', 'mp4', 'mpegts', ...)")
            self.suffix = _SUFFIX_OF_FORMAT.get(self.format, "." + self.format)
        else:
            raise TypeError(f"expected a path or a writable binary file object, got {type(target).__name__}")

    def route_writes(self, through: Callable[[Any], Any]) -> Any:
        """Send a file object's bytes through ``through(handle)`` (a file object that may
        rewrite them on their way), from :meth:`open` on; returns it. A path: None, nothing
        changes (FFmpeg writes the file itself)."""
        if self._handle is None:
            return None
        self._handle = through(self._handle)
        return self._handle

    def _options(self) -> dict:
        if self.format == "yuv4mpegpipe" or (self.format is None and self.suffix == ".y4m"):
            # y4m above 8 bits is FFmpeg's own extension of the format: its muxer writes it
            # only when told that non-standard output is wanted
            return {"strict": "-1"}
        mp4 = self.suffix in (".mp4", ".mov", ".m4v") or self.format in _MP4_FAMILY
        if not mp4:
            return {}
        if self._handle is None:
            return {"movflags": "+faststart"}
        if not _seekable(self._handle):  # a pipe: fragmented MP4, index first
            return {"movflags": "+frag_keyframe+empty_moov+default_base_moof"}
        return {}

    def open(self):
        """The PyAV output container (raises :class:`SuperResError` for unknown formats)."""
        if self._atomic is not None:
            target = file_url(self._atomic.tmp_path)
        else:
            target = _Borrowed(self._handle, writing=True)
        try:
            return av.open(target, "w", format=self.format, options=self._options())
        except (av.FFmpegError, ValueError) as exc:
            self.abort()
            what = f"'{self.suffix}'" if self.format is None else f"the format '{self.format}'"
            raise SuperResError(
                f"cannot write {self.name}: FFmpeg has no muxer for {what} ({exc}); use .mp4, "
                ".mkv, .mov or .webm") from exc

    def commit(self) -> Path | None:
        """Move a file into place (returns its path); a file object is only flushed (None)."""
        if self._atomic is not None:
            return self._atomic.commit()
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self._handle.flush()  # type: ignore[union-attr]
        return None

    def abort(self) -> None:
        """Delete the temporary file (a file object keeps what was already written)."""
        if self._atomic is not None:
            self._atomic.abort()
