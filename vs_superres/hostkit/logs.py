"""The command-line hosts' log on stderr: ``prog: message``, each warning once per run, and
``--debug`` for our own logger only.

Our modules log to ``vs_superres`` (and its children). ``--debug`` lowers that logger alone to
debug: libraries keep theirs (Pillow's ``STREAM b'IHDR'`` lines, a debug flood, never reach the
user). A warning raised for every frame or tile (the same text) is said once: the first time
is news, the hundredth is noise; so is a notice (info) repeated for the same input.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from typing import Iterator

OURS = "vs_superres"


class OncePerRun(logging.Filter):
    """Lets a notice (info or worse) through the first time its text is seen; debug passes.
    Notices about an input (its missing colour tags, say) repeat with every writer a job opens
    (a journaled job opens one per segment): said once per input (:func:`new_input`)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, int, str]] = set()
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        key = (record.name, record.levelno, record.getMessage())
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
        return True


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (the host kit replaces it with a
    tolerant stream once the host starts; a test captures it)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


_once = OncePerRun()


def new_input() -> None:
    """A host moves on to another input (a batch's next file): its notices are news again."""
    _once.reset()


@contextlib.contextmanager
def logging_to_stderr(prog: str, *, debug: bool = False, level: int = logging.INFO) -> Iterator[logging.Handler]:
    """For one run of a host: the log on stderr as ``prog: message``, our logger from ``level``
    (``debug``: from debug), other loggers at the root's level (warnings), each warning once.
    Everything is put back afterwards (a test may run several hosts in one process)."""
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter(f"{prog}: %(message)s"))
    handler.addFilter(_once)
    _once.reset()
    ours = logging.getLogger(OURS)
    saved = ours.level
    ours.setLevel(logging.DEBUG if debug else level)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        ours.setLevel(saved)
