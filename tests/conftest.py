"""Shared fixtures.

Real checkpoints come from the folder named by ``$SUPERRES_WEIGHTS`` (CI and the README's
test command point it at ``../shared/weights``). Tests that need a file skip with the
variable and the file named when it is absent.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from weights_helpers import weights_file

# The diagnostic models (a video model, an image model that runs out of memory on large
# tiles) live with the tests and are registered by them only, in this process and in every
# subprocess (CLI, vspipe, the ComfyUI server) they start.
TESTS_DIR = Path(__file__).resolve().parent
DIAGNOSTIC_FAMILIES = os.pathsep.join(["families.temporal_mean", "families.oom_probe"])
os.environ["SUPERRES_FAMILIES"] = DIAGNOSTIC_FAMILIES
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH", "")) if p)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@contextlib.contextmanager
def _torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def torch_threads():
    """``with torch_threads(n):`` runs torch on ``n`` threads, then restores the count."""
    return _torch_threads


@pytest.fixture(scope="module", autouse=True)
def _module_torch_threads(request):
    """``pytestmark = pytest.mark.torch_threads(n)``: the module's tests and module fixtures run
    torch on ``n`` threads (one summation order for outputs compared bit for bit)."""
    marker = request.node.get_closest_marker("torch_threads")
    if marker is None:
        yield
        return
    with _torch_threads(marker.args[0]):
        yield


@pytest.fixture
def ditn_x4_path() -> Path:
    return weights_file("ditn/DITN_Real_x4.pth")


@pytest.fixture
def ditn_gan_x4_path() -> Path:
    return weights_file("ditn/DITN_Real_GAN_x4.pth")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real photograph, float32 RGB [H, W, 3] in [0, 1]."""
    from skimage import data

    return data.astronaut().astype(np.float32) / 255.0


@pytest.fixture(scope="session")
def tiny_ditn_path(tmp_path_factory) -> Path:
    """A tiny random-weight DITN checkpoint (dim 8): argument and error tests need no real weights."""
    from vs_superres.models.ditn.arch import build

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ditn") / "tiny_ditn.pth"
    torch.save(build({"dim": 8, "num_itl": 1, "num_sal": 1}).state_dict(), path)
    return path


# The tiny random-weight releases, written once per test run (read-only for the tests: a test
# that needs a damaged or converted file writes its own copy in its tmp_path).

@pytest.fixture(scope="session")
def patchscaler_release(tmp_path_factory) -> tuple[Path, Path]:
    """``(checkpoint, autoencoder_folder)`` of the tiny PatchScaler release (seed 0)."""
    from vs_superres.models.patchscaler.tiny import write_tiny_release

    return write_tiny_release(tmp_path_factory.mktemp("patchscaler"))


@pytest.fixture(scope="session")
def ultravsr_release(tmp_path_factory) -> tuple[Path, Path]:
    """``(base_folder, checkpoint)`` of the tiny UltraVSR release (seed 0)."""
    pytest.importorskip("diffusers")
    from vs_superres.models.ultravsr.tiny import write_tiny_release

    return write_tiny_release(tmp_path_factory.mktemp("ultravsr"), seed=0)


@pytest.fixture(scope="session")
def tiny_autoencoder(tmp_path_factory) -> Path:
    """The tiny random autoencoder folder PatchScaler's training tests encode with."""
    from vs_superres.models.patchscaler.tiny import write_tiny_autoencoder

    return write_tiny_autoencoder(tmp_path_factory.mktemp("vae"))
