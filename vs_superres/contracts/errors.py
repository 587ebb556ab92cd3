"""Errors the engine raises towards users, with fields hosts can read without parsing text.

Every message says what was wrong, what was expected, and how to fix it. Hosts translate
:class:`SuperResError` into their own error type (``vs.Error``, a ComfyUI exception, a CLI
exit code) and show the message without a traceback. Anything else that escapes the engine is
a bug: hosts show it as an internal error and put its traceback in their debug log, never
dressed up as the user's mistake.
"""

from __future__ import annotations

import copy


class SuperResError(ValueError):
    """A problem the user can fix: bad input, bad argument, missing or corrupt weights.

    ``option`` names the argument at fault (as the user wrote it, e.g. ``"tile"``), ``model``
    the model it was given for, ``hint`` the way out when the message alone does not say it.
    """

    def __init__(self, message: str, *, option: str | None = None, model: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.option = option
        self.model = model
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message

    def with_prefix(self, prefix: str) -> "SuperResError":
        """The same error (same type and fields) with ``prefix: `` before its message."""
        if self.message.startswith(prefix):
            return self
        err = copy.copy(self)
        err.message = f"{prefix}: {self.message}"
        err.args = (err.message,)
        return err


class WeightsError(SuperResError):
    """Weights are missing, fail their sha256 check, or are not a readable checkpoint."""


class InvalidOption(SuperResError):
    """An option has the wrong type or value, does not apply to the model, or is unknown."""


class UnsupportedFormat(SuperResError):
    """Input frames, files or clips in a layout, format or size the engine cannot take."""


class Cancelled(RuntimeError):
    """Work was stopped by the caller's cancellation check (Ctrl-C, host interrupt)."""


class InternalError(RuntimeError):
    """An invariant of a network or of the engine broke: a bug, never the user's mistake."""
