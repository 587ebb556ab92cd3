"""Errors the engine raises towards users, with fields hosts can read without parsing text.

Every message says what was wrong, what was expected, and how to fix it. Hosts translate
:class:`SuperResError` into their own error type (``vs.Error``, a ComfyUI exception, a CLI
exit code) and show the message without a traceback. Anything else that escapes the engine is
a bug: hosts show it as an internal error and put its traceback in their debug log, never
dressed up as the user's mistake.
"""

from __future__ import annotations

import copy
import re
from typing import Callable, Optional

#: how a host writes a reference to an option: ``(name, value or None) -> text``
Spelling = Callable[[str, Optional[str]], str]
_OPTION_REF = re.compile(r"\{opt:(\w+)(?:=([^{}]*))?\}")


def option_ref(name: str, value: object = None) -> str:
    """A reference to option ``name`` (with an example ``value``) inside an error message.

    The engine does not know which host it runs under, so a message never spells an option
    itself: ``str(error)`` writes the reference as the Python API and VapourSynth do
    (``strength=D``), :meth:`SuperResError.render` as the host asks (the CLI: ``--strength D``).
    """
    return f"{{opt:{name}}}" if value is None else f"{{opt:{name}={value}}}"


def api_spelling(name: str, value: Optional[str]) -> str:
    """Keyword-argument spelling (Python API, VapourSynth, filter strings): ``strength=D``."""
    return name if value is None else f"{name}={value}"


def render_refs(text: str, spelling: Spelling = api_spelling) -> str:
    """``text`` with every :func:`option_ref` written by ``spelling``."""
    return _OPTION_REF.sub(lambda m: spelling(m.group(1), m.group(2)), text)


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

    def render(self, spelling: Spelling = api_spelling) -> str:
        """The message and hint, with option references (:func:`option_ref`) in ``spelling``."""
        text = f"{self.message}; {self.hint}" if self.hint else self.message
        return render_refs(text, spelling)

    def __str__(self) -> str:
        return self.render()

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


class OutOfRangeFrames(UnsupportedFormat):
    """Float frames far outside [0, 1]: unscaled integer codes, most likely. Hosts replace the
    generic ``hint`` with the conversion in their own terms (a VapourSynth expression, ...)."""


class IncompleteInput(UnsupportedFormat):
    """The input ended early (a cut or truncated file or stream): fewer frames were decoded than
    the container announced, or the decoder met a damaged tail.

    Raised *after* the complete frames were processed and written: ``output`` is what was written
    (a path, or None for a pipe), ``frames_read`` how many frames it holds, ``frames_expected`` what
    the container announced (None when it announced nothing). Hosts report it as a failure (the
    CLI exits with status 4) and keep the output, which holds every complete frame.
    """

    def __init__(self, message: str, *, frames_read: int, frames_expected: int | None = None,
                 output: object = None, **fields):
        super().__init__(message, **fields)
        self.frames_read = frames_read
        self.frames_expected = frames_expected
        self.output = output


class Cancelled(RuntimeError):
    """Work was stopped by the caller's cancellation check (Ctrl-C, host interrupt)."""


class InternalError(RuntimeError):
    """An invariant of a network or of the engine broke: a bug, never the user's mistake."""
