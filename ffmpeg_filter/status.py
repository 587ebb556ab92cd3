"""How the bridge ends and what it says: exit statuses, one-line messages, the progress line.

Everything goes to stderr; stdout is the video. Statuses follow the ``superres`` CLI where
the cases are the same: 0 every frame written, 2 the user's mistake, 3 a bug, 4 a cut input
(every complete frame written), 130 Ctrl-C, 143 SIGTERM, 141 the downstream pipe closed
(``head``, a dead encoder: nothing more can be written, so nothing more is said).
"""

from __future__ import annotations

import os
import signal
import sys
import time

OK, USER_ERROR, INTERNAL_ERROR, INCOMPLETE_INPUT = 0, 2, 3, 4
INTERRUPTED, TERMINATED, BROKEN_PIPE = 130, 143, 141

LOGLEVELS = {"quiet": -8, "panic": 0, "fatal": 8, "error": 16, "warning": 24, "info": 32,
             "verbose": 40, "debug": 48, "trace": 56}


def loglevel(name: str | None) -> int:
    """ffmpeg's ``-loglevel`` as a number (names, numbers, ``repeat+level`` flags)."""
    if not name:
        return LOGLEVELS["info"]
    name = name.split("+")[-1]
    if name.lstrip("-").isdigit():
        return int(name)
    return LOGLEVELS.get(name, LOGLEVELS["info"])


class Terminated(BaseException):
    """SIGTERM arrived: stop like Ctrl-C, end with status 143."""


def raise_on_sigterm() -> None:
    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


def is_broken_pipe(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == 32:
            return True
        if "Broken pipe" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
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


class ProgressLine:
    """ffmpeg-style ``frame=  120 fps= 11 time=00:00:05.00 speed=0.46x`` on stderr, redrawn
    in place on a terminal, one line every ``every`` seconds otherwise."""

    def __init__(self, label: str, fps: float, *, enabled: bool = True, every: float = 5.0,
                 stream=None):
        self.label, self.fps = label, fps
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled, self.every = enabled, every
        self.start = time.monotonic()
        self._last = 0.0
        self.done = 0

    def text(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        seconds = self.done / self.fps if self.fps else 0.0
        h, rem = divmod(seconds, 3600)
        m, s = divmod(rem, 60)
        return (f"{self.label}: frame={self.done:5d} fps={self.done / elapsed:5.2f} "
                f"time={int(h):02d}:{int(m):02d}:{s:05.2f} speed={seconds / elapsed:.3g}x")

    def __call__(self, done: int) -> None:
        self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if now - self._last >= 0.2:
                self._last = now
                self.stream.write("\r" + self.text())
                self.stream.flush()
        elif now - self._last >= self.every:
            self._last = now
            self.stream.write(self.text() + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write(("\r" if self.tty else "") + self.text() + "\n")
            self.stream.flush()
