"""A dependency-free terminal progress bar for the CLI (stderr only), fed :class:`Progress` reports."""

from __future__ import annotations

import sys
import time
import weakref

from .contracts.progress import Progress

# Bars whose last line has no newline yet: a message printed while one is open (an error, an
# interrupt) must start on a line of its own, not after the bar's text.
_open: "weakref.WeakSet[ProgressBar]" = weakref.WeakSet()


def end_open_lines() -> bool:
    """End the line of every bar left mid-line (call before printing a message to stderr);
    True if there was one."""
    bars = list(_open)
    for bar in bars:
        bar.close()
    return bool(bars)


class ProgressBar:
    """Renders ``done/total`` with rate and ETA on one stderr line; silent when not a TTY
    unless ``force`` (then it prints a line every ``every`` seconds)."""

    def __init__(self, label: str, *, stream=None, force: bool = False, every: float = 5.0):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
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
        self.stream.write(("\r" if self.tty else "") + text.ljust(78) + end)
        self.stream.flush()
        if end == "\r":
            _open.add(self)
        else:
            _open.discard(self)

    def close(self) -> None:
        """End the bar's line if it is open (safe to call more than once)."""
        if self in _open:
            _open.discard(self)
            self.stream.write("\n")
            self.stream.flush()
