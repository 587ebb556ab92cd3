"""Errors the engine raises towards users.

Every message says what was wrong, what was expected, and how to fix it. Hosts translate
:class:`SuperResError` into their own error type (``vs.Error``, a ComfyUI exception, a CLI
exit code) and show the message without a traceback.
"""


class SuperResError(ValueError):
    """A problem the user can fix: bad input, bad argument, missing or corrupt weights."""


class WeightsError(SuperResError):
    """Weights are missing, fail their sha256 check, or are not a readable checkpoint."""


class Cancelled(RuntimeError):
    """Work was stopped by the caller's cancellation check (Ctrl-C, host interrupt)."""
