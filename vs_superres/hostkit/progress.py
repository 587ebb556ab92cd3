"""Progress on stderr for the command-line hosts: :class:`ProgressBar` (``superres``, fed
:class:`Progress` reports) and :class:`ProgressLine` (ffmpeg's ``frame= fps= time= speed=``
line, for the bridge, fed frame counts)."""

from __future__ import annotations

import sys
import threading
import time
import weakref

from vs_superres.contracts.progress import Progress

# Bars whose last line has no newline yet: a message printed while one is open (an error, an
# interrupt) must start on a line of its own, not after the bar's text.
_open: "weakref.WeakSet[ProgressBar]" = weakref.WeakSet()


def _emit(stream, text: str) -> bool:
    """Write and flush ``text``; False when the stream cannot take it (closed, full, gone):
    progress is never worth stopping a run for."""
    try:
        stream.write(text)
        stream.flush()
        return True
    except (OSError, ValueError, AttributeError):
        return False


def end_open_lines() -> bool:
    """End the line of every bar left mid-line (call before printing a message to stderr);
    True if there was one."""
    bars = list(_open)
    for bar in bars:
        bar.close()
    return bool(bars)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (OSError, ValueError, AttributeError):
        return False


class ProgressBar:
    """Renders ``done/total`` with rate and ETA on one stderr line; silent when not a TTY
    unless ``force`` (then it prints a line every ``every`` seconds)."""

    def __init__(self, label: str, *, stream=None, force: bool = False, every: float = 5.0):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = _isatty(self.stream)
        self.enabled = self.tty or force
        self.every = every
        self.start = time.monotonic()
        self._last = 0.0
        self._phase = ""

    def __call__(self, report: Progress) -> None:
        if not self.enabled:
            return
        done, total, phase = report.done, report.total, report.phase
        now = time.monotonic()
        final = total and done >= total
        if not self.tty and not final and now - self._last < self.every:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        if total:
            frac = min(done / total, 1.0)
            bar = "#" * int(frac * 24) + "-" * (24 - int(frac * 24))
            eta = (total - done) / rate if rate > 0 else 0.0
            text = f"{self.label} [{bar}] {done}/{total} {phase} {rate:.2f}/s eta {eta:.0f}s"
        else:
            text = f"{self.label} {done} {phase} {rate:.2f}/s"
        end = "\r" if self.tty and not final else "\n"
        if not _emit(self.stream, ("\r" if self.tty else "") + text.ljust(78) + end):
            self.enabled = False
            return
        if end == "\r":
            _open.add(self)
        else:
            _open.discard(self)

    def close(self) -> None:
        """End the bar's line if it is open (safe to call more than once)."""
        if self in _open:
            _open.discard(self)
            _emit(self.stream, "\n")


class ProgressLine:
    """ffmpeg-style ``frame=  120 fps= 11 time=00:00:05.00 speed=0.46x`` on stderr, redrawn
    in place on a terminal, one line every ``every`` seconds otherwise."""

    def __init__(self, label: str, fps: float, *, enabled: bool = True, every: float = 5.0,
                 stream=None):
        self.label, self.fps = label, fps
        self.stream = stream or sys.stderr
        self.tty = _isatty(self.stream)
        self.enabled, self.every = enabled, every
        self.start = time.monotonic()
        self._last = 0.0
        self.done = 0
        self._open = False  # a line redrawn in place (a terminal) is on screen without its newline
        self._lock = threading.Lock()  # messages come from other threads (the ffmpeg processes' stderr)

    def say(self, text: str) -> None:
        """Print a message line (``text`` ends with a newline) without breaking the progress
        line: on a terminal the line in progress is ended first and redrawn by the next report."""
        with self._lock:
            if self._open:
                _emit(self.stream, "\n")
                self._open = False
            _emit(self.stream, text)

    def text(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        seconds = self.done / self.fps if self.fps else 0.0
        h, rem = divmod(seconds, 3600)
        m, s = divmod(rem, 60)
        return (f"{self.label}: frame={self.done:5d} fps={self.done / elapsed:5.2f} "
                f"time={int(h):02d}:{int(m):02d}:{s:05.2f} speed={seconds / elapsed:.3g}x")

    def __call__(self, report: Progress) -> None:
        self.done = report.done
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            if self.tty:
                if now - self._last >= 0.2:
                    self._last = now
                    self.enabled = _emit(self.stream, "\r" + self.text())
                    self._open = self.enabled
            elif now - self._last >= self.every:
                self._last = now
                self.enabled = _emit(self.stream, self.text() + "\n")

    def finish(self) -> None:
        with self._lock:
            if self.enabled:
                self.enabled = _emit(self.stream, ("\r" if self.tty else "") + self.text() + "\n")
            self._open = False
