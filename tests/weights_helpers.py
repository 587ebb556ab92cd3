"""The real checkpoints the tests read, found through ``$SUPERRES_WEIGHTS`` (a module, not the
conftest: ``from conftest import`` names whichever folder's conftest was imported first)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def weights_file(relpath: str) -> Path:
    """``$SUPERRES_WEIGHTS/relpath``, or a skip naming what is missing."""
    root = os.environ.get("SUPERRES_WEIGHTS")
    if not root:
        pytest.skip(f"SUPERRES_WEIGHTS is not set; point it at a folder holding {relpath}")
    path = Path(root) / relpath
    if not path.is_file():
        pytest.skip(f"{relpath} not found under SUPERRES_WEIGHTS={root}")
    return path
