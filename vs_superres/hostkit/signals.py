"""Termination signals as exceptions, so a stopped run unwinds like Ctrl-C does: the one
signal policy of every command-line host (``superres``, ``superres-filter``, ``superres-ffmpeg``).

Python turns SIGINT into ``KeyboardInterrupt``, which unwinds through every ``with`` and
``except BaseException`` (the atomic writers delete their temporary files there). SIGTERM
(``timeout``, service managers, ``docker stop``) and SIGHUP (a closed terminal) kill the
process by default, mid-write, leaving a partial file. :func:`signals_as_exceptions` makes
them raise :class:`Terminated` instead: a ``KeyboardInterrupt`` subclass, so code that
already cleans up on Ctrl-C cleans up on these too.

Only the first signal raises: a second one (an impatient ``kill``, a service manager's
repeat) arriving while the first unwinds would otherwise cut the clean-up short. SIGKILL
cannot be caught; the stale partial files it leaves are removed by the next run
(:func:`vs_superres.media.atomic.remove_stale_partials`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

#: signals handled like Ctrl-C (those that exist on this platform)
TERMINATION_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """The process received a termination signal; ``exit_status`` is the shell's ``128 + n``."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.signal_name = signal.Signals(self.signum).name
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def signals_as_exceptions(signals: tuple[int, ...] = TERMINATION_SIGNALS) -> Iterator[None]:
    """Within the block, the first of ``signals`` raises :class:`Terminated` in the main
    thread (SIGINT keeps raising ``KeyboardInterrupt``); later ones are absorbed until the
    block exits. Signals set to be ignored (``nohup``) stay ignored. Previous handlers are
    restored on exit. Outside the main thread (where
    Python cannot install handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = {"raised": False}

    def handler(signum, _frame):
        if state["raised"]:
            return
        state["raised"] = True
        raise Terminated(signum)

    def sigint(signum, frame):
        if state["raised"]:
            return
        state["raised"] = True
        raise KeyboardInterrupt

    previous = {}
    try:
        for signum in signals:
            # An ignored signal stays ignored: `nohup superres ...` means "survive SIGHUP".
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, handler)
        # A second Ctrl-C during the clean-up must not cut it short either; leave a custom
        # SIGINT handler (a host embedding us) alone.
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, sigint)
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
        forget_interrupts_seen_by_string_eval()


def forget_interrupts_seen_by_string_eval() -> None:
    """Clear CPython's "unhandled KeyboardInterrupt" mark, set by an interrupt handled here.

    When a ``KeyboardInterrupt`` ends a string ``exec``/``eval`` (``dataclasses`` and
    ``namedtuple`` build their methods that way, and torch makes many while it imports lazily),
    CPython marks the interrupt as unhandled even when a caller catches it; under
    ``python -m`` it then kills the process with SIGINT at exit, so the status the ladder
    chose (130, "no output file was written") reads as -2. Every string eval clears the mark
    as it starts, so evaluating an empty one after the ladder has spoken is the cure.
    """
    eval("None")  # noqa: S307 - a constant: its only effect is resetting the mark
