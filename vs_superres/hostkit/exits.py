"""Exit statuses and the error ladder of the command-line hosts, written once.

:data:`EXIT_STATUSES` is the table: ``--help`` epilogs (:func:`exit_table`), the docs and the
hosts' docstrings all read it. :func:`classify` is the ladder: an exception becomes an
:class:`Outcome` (status and the one line to print), the same way for every host:

1. :class:`~vs_superres.contracts.errors.IncompleteInput`: the input was cut; the output with
   every complete frame was written (4);
2. :class:`~.signals.Terminated`: SIGTERM or SIGHUP (128 + the signal's number);
3. ``KeyboardInterrupt`` or :class:`~vs_superres.contracts.errors.Cancelled`: Ctrl-C (130);
4. a closed downstream pipe (``| head``, a dead encoder): nothing more can be written, so
   nothing is said (141);
5. :class:`~vs_superres.contracts.errors.SuperResError`: the user's mistake, told with the fix (2);
   so is a write that found no space left (a full disk, ``> /dev/full``, a file size limit);
6. anything else: a bug, said as one and never as the user's mistake; its traceback goes to the
   debug log (``--debug``) (3).
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import io
import logging
import os
import sys
from typing import Callable, Iterable

from vs_superres.contracts.errors import Cancelled, IncompleteInput, SuperResError
from vs_superres.hostkit.signals import Terminated, signals_as_exceptions


class ExitStatus(enum.IntEnum):
    OK = 0
    USER_ERROR = 2
    INTERNAL_ERROR = 3
    INCOMPLETE_INPUT = 4
    HANGUP = 129
    INTERRUPTED = 130
    BROKEN_PIPE = 141
    TERMINATED = 143


#: every status a command-line host ends with, and what it means
EXIT_STATUSES: tuple[tuple[str, str], ...] = (
    ("0", "success"),
    ("2", "user error (bad option or input, unwritable or full disk, output exists with -n, "
          "missing weights); one line on stderr says what and how to fix it"),
    ("3", "internal error (a bug); --debug shows its traceback"),
    ("4", "the input ended early: every complete frame was upscaled and written"),
    ("129", "interrupted by SIGHUP"),
    ("130", "interrupted by Ctrl-C (SIGINT)"),
    ("141", "the output pipe was closed by the reader (| head, a dead encoder); nothing said"),
    ("143", "interrupted by SIGTERM"),
)


def exit_table(extra: Iterable[tuple[str, str]] = (), *, indent: str = "  ") -> str:
    """The table as ``--help`` shows it (``extra`` rows for a host's own statuses)."""
    rows = [*EXIT_STATUSES, *extra]
    lines = ["exit status:"]
    for code, text in rows:
        lines.append(f"{indent}{code:<5}{text}")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a host ends with: its exit ``status`` and the ``message`` to print (None: quiet)."""

    status: int
    message: str | None
    interrupted: bool = False


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def no_space_error(exc: BaseException | None) -> OSError | None:
    """The "no space left" (ENOSPC, EDQUOT, EFBIG) error behind ``exc``, or None: a full disk or
    ``> /dev/full`` is the environment's fault, not a bug."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class TolerantText(io.TextIOBase):
    """A text stream for messages that never raises: what cannot be written (stderr closed,
    ``2> /dev/full``, a reader gone) is dropped, so a message or a progress line can never
    stop a run; the exit status still tells. Wraps ``sys.stderr`` (:func:`guard_std_streams`)."""

    def __init__(self, raw) -> None:
        super().__init__()
        self.raw = raw
        self.failed = raw is None

    def write(self, text: str) -> int:
        if not self.failed:
            try:
                self.raw.write(text)
                if "\n" in text or "\r" in text:
                    self.raw.flush()
            except (OSError, ValueError, AttributeError):
                self.failed = True
        return len(text)

    def flush(self) -> None:
        if not self.failed:
            try:
                self.raw.flush()
            except (OSError, ValueError, AttributeError):
                self.failed = True

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        try:
            return not self.failed and bool(self.raw.isatty())
        except (OSError, ValueError, AttributeError):
            return False

    def fileno(self) -> int:
        if self.raw is None:
            raise io.UnsupportedOperation("stderr has no file descriptor")
        return self.raw.fileno()

    @property
    def encoding(self):  # type: ignore[override]
        return getattr(self.raw, "encoding", "utf-8")


#: the standard streams ("stdin", "stdout", "stderr") that were closed when the host started
CLOSED_AT_START: frozenset[str] = frozenset()


def guard_std_streams() -> frozenset[str]:
    """Make the standard streams safe for a daemon, a cron job or ``2>&-`` (call first thing;
    safe to call again). A closed fd 0, 1 or 2 is opened on ``/dev/null``, so that no file or
    pipe opened later takes its number (a child ffmpeg would write its messages into our
    video); ``sys.stderr`` becomes a :class:`TolerantText`, so a closed or full stderr drops
    messages instead of stopping the run. Returns (and keeps in :data:`CLOSED_AT_START`) the
    names of the streams that were closed: a host that reads stdin or writes stdout refuses
    with a message that says so (:func:`closed_stream_error`)."""
    global CLOSED_AT_START
    closed = set(CLOSED_AT_START)
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
                if null != fd:
                    os.dup2(null, fd)
                    os.close(null)
                os.set_inheritable(fd, True)  # os.open's are not: the children need it
            except OSError:
                continue
            closed.add(name)
    if not isinstance(sys.stderr, TolerantText):
        raw = sys.stderr
        if raw is None and "stderr" in closed:
            raw = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        sys.stderr = TolerantText(raw)
    CLOSED_AT_START = frozenset(closed)
    return CLOSED_AT_START


def closed_stream_error(name: str, prog: str, fix: str) -> "SuperResError | None":
    """The user error for a standard stream ``name`` that was closed at start and that this
    host needs (``fix`` says how to give it one), or None when it is open."""
    if name not in CLOSED_AT_START:
        return None
    return SuperResError(f"{prog}'s {name} is closed (started with {'<&-' if name == 'stdin' else '>&-'} or "
                         f"by a daemon without one); {fix}")


def is_broken_pipe(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) is a write to a pipe whose reader has gone."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == 32:
            return True
        if "Broken pipe" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def silence_stdout() -> None:
    """After a broken pipe, point fd 1 at /dev/null so that the interpreter's final flush
    cannot print a second error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def classify(exc: BaseException, prog: str, *, aftermath: str,
             spelling: Callable[[str, str | None], str] | None = None, debug: bool = False,
             log: logging.Logger | None = None) -> Outcome:
    """The ladder (see the module docstring). ``aftermath`` says what became of the output
    when the run stopped early ("no output file was written"); ``spelling`` renders option
    names in this host's syntax (:meth:`SuperResError.render`)."""
    def text(error: SuperResError) -> str:
        return error.render(spelling) if spelling is not None else str(error)

    if isinstance(exc, IncompleteInput):  # before SuperResError: it is one, but output was written
        return Outcome(ExitStatus.INCOMPLETE_INPUT, f"{prog}: error: {text(exc)}")
    if isinstance(exc, Terminated):
        return Outcome(exc.exit_status, f"{prog}: interrupted by {exc.signal_name}; {aftermath}", True)
    if isinstance(exc, (KeyboardInterrupt, Cancelled)):
        return Outcome(ExitStatus.INTERRUPTED, f"{prog}: interrupted; {aftermath}", True)
    if is_broken_pipe(exc):  # before SuperResError: the writer reports it as an encoding failure
        return Outcome(ExitStatus.BROKEN_PIPE, None)
    if isinstance(exc, SuperResError):
        return Outcome(ExitStatus.USER_ERROR, f"{prog}: error: {text(exc)}")
    full = no_space_error(exc)
    if full is not None:  # the environment's fault: a full disk, > /dev/full, a size limit
        return Outcome(ExitStatus.USER_ERROR,
                       f"{prog}: error: the output could not be written: {full.strerror or full} "
                       "(the disk or device it goes to is full, or a file size limit was reached); "
                       f"free space or write it elsewhere; {aftermath}")
    if log is not None:  # --debug shows it; otherwise it waits in the debug log
        (log.error if debug else log.debug)("internal error", exc_info=exc)
    how = "" if debug else " (run with --debug for the traceback)"
    return Outcome(ExitStatus.INTERNAL_ERROR,
                   f"{prog}: internal error: {type(exc).__name__}: {exc}; this is a bug in vs-superres, "
                   f"please report it{how}; {aftermath}")


def report(outcome: Outcome, *, quiet: bool = False, before: Callable[[], bool] | None = None) -> int:
    """Print the outcome's line on stderr (unless ``quiet`` or it has none) and return its
    status. ``before`` ends an open progress line first; when it had none and the run was
    interrupted on a terminal (which echoed ``^C`` without a newline), the message starts on a
    line of its own."""
    if outcome.status == ExitStatus.BROKEN_PIPE:
        silence_stdout()
    if outcome.message is not None and not quiet:
        ended = before() if before is not None else False
        if outcome.interrupted and not ended and _isatty(sys.stderr):
            print(file=sys.stderr)
        _say(outcome.message)
    return int(outcome.status)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed or full: the status still tells
        pass


def run_guarded(body: Callable[[], int], prog: str, *, aftermath: str,
                spelling: Callable[[str, str | None], str] | None = None, debug: bool = False,
                quiet: bool = False, log: logging.Logger | None = None,
                before: Callable[[], bool] | None = None) -> int:
    """Run ``body`` under the kit's signal policy; any exception goes down the ladder. The
    message is printed while a repeated signal is still absorbed, so it is always said. The
    standard streams are guarded first (:func:`guard_std_streams`)."""
    guard_std_streams()
    with signals_as_exceptions():
        try:
            return body()
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - the ladder decides, nothing escapes as a traceback
            return report(classify(exc, prog, aftermath=aftermath, spelling=spelling, debug=debug, log=log),
                          quiet=quiet, before=before)
