"""What ``superres-ffmpeg`` passes on of its two ffmpeg processes' messages.

By default both run at ffmpeg's ``warning`` level (no banner, no stream dump, no encoder
chatter, no final statistics line whose speed would be the back's, not the pipeline's) and their
stderr comes through :class:`Messages`: each line once (the front and the back read the same
inputs and would both warn about them; a per-frame warning is said once), without the notice
that the back's pipe input is waiting for us ("Thread message queue blocking": it always is, the
engine is the slow stage), and with the temporary output name written as the name the user gave.
With ``-v``/``-loglevel`` or ``-stats`` the user asked for ffmpeg's own output: the processes then
write to our stderr directly.
"""

from __future__ import annotations

import re
import sys
import threading
from typing import IO, Callable

#: lines that describe our own plumbing, not the user's media
PLUMBING = (
    re.compile(r"Thread message queue blocking"),
)
_ADDRESS = re.compile(r" @ 0x[0-9a-fA-F]+\]")


class Messages:
    """Forwards ffmpeg's stderr lines (see the module docstring) to ``say`` (default: stderr)."""

    def __init__(self, replacements: list[tuple[str, str]] = (), say: Callable[[str], None] | None = None):  # type: ignore[assignment]
        self.replacements = [(old, new) for old, new in replacements if old and old != new]
        self.say = say
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def line(self, text: str) -> str | None:
        """The line as shown, or None when it is not shown."""
        text = text.rstrip("\r\n")
        if not text.strip() or any(p.search(text) for p in PLUMBING):
            return None
        key = _ADDRESS.sub("]", text)  # the same message from the other process
        with self._lock:
            if key in self._seen:
                return None
            self._seen.add(key)
        for old, new in self.replacements:
            text = text.replace(old, new)
        return text

    def forward(self, stream: IO[bytes]) -> None:
        """Read ``stream`` (a child's stderr) on a thread of its own until it ends."""
        thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _pump(self, stream: IO[bytes]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                shown = self.line(raw.decode("utf-8", errors="replace"))
                if shown is not None:
                    self._emit(shown + "\n")
        except (OSError, ValueError):
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    def _emit(self, text: str) -> None:
        if self.say is not None:
            self.say(text)
            return
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass

    def join(self, timeout: float = 10.0) -> None:
        """Wait until every forwarded stream has ended (its process has exited)."""
        for thread in self._threads:
            thread.join(timeout)
