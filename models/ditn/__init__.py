"""DITN family (yongliuy/DITN, Apache-2.0).

``family`` declares it (config, registered models; no torch); ``arch`` is the network.
Attributes of ``arch`` are available here on first use, so ``import vs_superres.models.ditn``
stays cheap.
"""

from __future__ import annotations

import importlib

_ARCH = ("DITN", "build", "config_from_state_dict", "reflect_pad_to_multiple")
__all__ = ["DITNConfig", *_ARCH]

from vs_superres.models.ditn.family import DITNConfig  # noqa: E402


def __getattr__(name: str):
    if name not in _ARCH:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.arch"), name)
    globals()[name] = value
    return value
