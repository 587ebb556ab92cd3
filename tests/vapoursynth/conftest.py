"""Fixtures for the VapourSynth host tests.

These tests need a Python with the ``vapoursynth`` wheel (Python >= 3.12) and vs-superres
installed into it (so the native plugin sits in VapourSynth's autoload folder). On other
Pythons they are not collected (except ``test_signatures.py``, which needs no VapourSynth);
``tests/test_vapoursynth_host.py`` runs them inside the Debian root that ``tools/vs_env.sh``
builds.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("vapoursynth") is None or sys.version_info < (3, 12):
    # test_signatures.py needs no VapourSynth (what the plugin registers, from the declarations).
    collect_ignore = [str(p) for p in Path(__file__).parent.glob("test_*.py") if p.name != "test_signatures.py"]
else:
    # One torch (OpenMP) thread unless the caller chose (tools/vs_env.sh passes OMP_NUM_THREADS
    # in). On a small shared machine OpenMP's barriers stall whenever another process holds a
    # core: 9 tiny UltraVSR frames took 1.5 s with one thread and 20-50 s with two while another
    # job ran. Set before torch is imported, here and in the vspipe processes that inherit it;
    # the vspipe test with 4 requests in flight runs two threads on purpose. Only where these
    # tests run, so that no other suite's subprocesses are affected.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

VIDEO_MODEL = "temporal-mean-x2"  # tiny weightless video model registered for host tests

# Builds a clip from frames saved with np.save: [T, H, W, 3] float32 in [0, 1] plus optional
# scene-cut frame numbers. Used both in-process and in scripts run by vspipe.
CLIP_FROM_NPY = textwrap.dedent(
    '''
    import numpy as np
    import vapoursynth as vs

    def clip_from_frames(frames, fmt=vs.RGBS, cuts=(), core=None):
        core = core or vs.core
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        t, h, w, _ = frames.shape
        blank = core.std.BlankClip(width=w, height=h, format=fmt, length=t, fpsnum=24, fpsden=1)
        cuts = set(int(c) for c in cuts)
        dtype = np.float16 if fmt == vs.RGBH else np.float32

        def fill(n, f):
            out = f.copy()
            for p in range(3):
                np.asarray(out[p])[...] = frames[n, :, :, p].astype(dtype)
            if n in cuts:
                out.props["_SceneChangePrev"] = 1
            return out

        return core.std.ModifyFrame(blank, blank, fill)
    '''
)


@pytest.fixture(scope="session")
def clip_module():
    namespace: dict = {}
    exec(CLIP_FROM_NPY, namespace)
    return namespace


@pytest.fixture
def clip_from_frames(clip_module):
    return clip_module["clip_from_frames"]


def photo_frames(count: int, height: int, width: int, step: int = 5) -> np.ndarray:
    """``count`` crops of a real photograph, panning ``step`` pixels per frame."""
    from skimage import data

    img = data.astronaut().astype(np.float32) / 255.0
    y0, x0 = 120, 150
    return np.stack([img[y0 + i: y0 + i + height, x0 + step * i: x0 + step * i + width] for i in range(count)])


@pytest.fixture
def photo():
    return photo_frames


def clip_to_array(clip) -> np.ndarray:
    """All frames of an RGB clip as ``[T, 3, H, W]`` float32, fetched in order."""
    return np.stack([frame_to_array(clip.get_frame(n)) for n in range(clip.num_frames)])


def frame_to_array(frame) -> np.ndarray:
    return np.stack([np.asarray(frame[p]) for p in range(3)]).astype(np.float32)


@pytest.fixture
def to_array():
    return clip_to_array


@pytest.fixture
def frame_array():
    return frame_to_array


@pytest.fixture(scope="session")
def ditn_weights() -> Path:
    root = os.environ.get("SUPERRES_WEIGHTS")
    if not root:
        pytest.skip("SUPERRES_WEIGHTS is not set; point it at a folder holding ditn/DITN_Real_x4.pth")
    path = Path(root) / "ditn" / "DITN_Real_x4.pth"
    if not path.is_file():
        pytest.skip(f"ditn/DITN_Real_x4.pth not found under SUPERRES_WEIGHTS={root}")
    return path


@pytest.fixture(scope="session")
def ditn_model(ditn_weights) -> str:
    """The registered DITN name, or the checkpoint path while none is registered."""
    from vs_superres.runtime import registry
    from vs_superres import Upscaler
    from vs_superres.contracts.errors import SuperResError

    names = [m.name for m in registry.list_models() if m.name == "ditn-real-x4"]
    model = names[0] if names else str(ditn_weights)
    try:
        Upscaler(model, device="cpu")
    except SuperResError as e:
        pytest.skip(f"DITN cannot be loaded by this engine: {e}")
    return model


@pytest.fixture(scope="session")
def ultravsr_release(tmp_path_factory) -> dict[str, str]:
    """A tiny UltraVSR release written from a fixed seed: ``{"base": folder, "checkpoint": .pkl}``.

    Structurally the real thing (diffusers SD-2.1 folder, official checkpoint layout), loaded
    through the same code; random weights, so tests check the host's machinery, not quality.
    """
    from vs_superres.models.ultravsr.tiny import write_tiny_release

    base, checkpoint = write_tiny_release(tmp_path_factory.mktemp("ultravsr"), seed=0)
    return {"base": str(base), "checkpoint": str(checkpoint)}


@pytest.fixture(scope="session")
def clip_iqa_weights(tmp_path_factory) -> str:
    """Tiny CLIP RN50-structured weights (fixed seed) for UltraVSR's CLIP-IQA estimate."""
    from vs_superres.models.ultravsr.tiny import write_tiny_clip

    return str(write_tiny_clip(tmp_path_factory.mktemp("clip") / "RN50-tiny.safetensors"))


@pytest.fixture(scope="session")
def vspipe() -> str:
    exe = shutil.which("vspipe")
    if exe is None:
        pytest.skip("vspipe is not on PATH")
    return exe


@pytest.fixture
def write_script(tmp_path, clip_module):
    """Write a .vpy script whose body can call clip_from_frames(np.load(...))."""

    def write(body: str, name: str = "script.vpy") -> Path:
        path = tmp_path / name
        path.write_text(CLIP_FROM_NPY + "\ncore = vs.core\n" + textwrap.dedent(body))
        return path

    return write


def parse_y4m(data: bytes) -> tuple[dict, list[bytes]]:
    """``({field letter: value}, [frame payloads])``; fails unless the stream starts with a y4m
    header, i.e. nothing else was written to the output before the video."""
    header, _, rest = data.partition(b"\n")
    assert header.startswith(b"YUV4MPEG2 "), header[:40]
    fields = {tok[:1].decode(): tok[1:].decode() for tok in header.split()[1:]}
    frames = rest.split(b"FRAME\n")
    assert frames[0] == b""
    return fields, frames[1:]


@pytest.fixture
def read_y4m():
    return parse_y4m


def run(cmd, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)


@pytest.fixture
def run_cmd():
    return run
