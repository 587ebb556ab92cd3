"""The one engine of a ``superres upscale`` command, whatever number of inputs it runs.

A folder, a glob or an image sequence is upscaled with one model load: :class:`SharedEngine`
resolves the model once (a checkpoint file is read once) when it is first asked for, builds the
:class:`~vs_superres.runtime.upscaler.Upscaler` once, and hands the same one to every input with
that input's progress bar and cancellation. A model that fails to load fails every later input
with the same error, without trying again.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from vs_superres.hostkit.flags import engine_options, model_options

log = logging.getLogger("vs_superres")


class SharedEngine:
    """The model and engine the flags in ``args`` ask for, made once (module docstring).
    ``loads`` counts the engines built (1 after any run that computed something)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.loads = 0
        self._resolved: Any = None
        self._engine: Any = None
        self._failure: BaseException | None = None

    def model(self) -> Any:
        """The resolved model (its ``descriptor``: scale, kind, windows), resolved once."""
        if self._resolved is None:
            from vs_superres.runtime.loading import resolve_model

            self._resolved = resolve_model(self.args.model)
        return self._resolved

    def get(self, progress=None, cancel=None) -> Any:
        """The engine, reporting to ``progress`` and watching ``cancel`` from now on."""
        if self._failure is not None:
            raise self._failure
        if self._engine is None:
            from vs_superres.runtime.upscaler import Upscaler

            try:
                model = self.model()
                log.debug("loading the model %s", model.descriptor.name)
                self._engine = Upscaler(model, **engine_options(self.args), **model_options(self.args))
            except Exception as exc:
                self._failure = exc
                raise
            self.loads += 1
        self._engine.progress, self._engine.cancel = progress, cancel
        return self._engine

    @property
    def name(self) -> str:
        """The model's name (the flag's text before the model was resolved)."""
        return self._resolved.descriptor.name if self._resolved is not None else str(self.args.model)
