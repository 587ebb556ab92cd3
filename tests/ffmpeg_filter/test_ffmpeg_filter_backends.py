"""The pipe bridge with DITN's ``backend`` option (issue 26): ``superres-filter --backend
onnxruntime`` gives the frames ``--backend torch`` gives, within 1e-4, through 16-bit RGB raw
frames (a carrier whose rounding, 1/65535, is below the tolerance)."""

from __future__ import annotations

import numpy as np
import pytest

from bridge_helpers import run_filter

pytest.importorskip("onnxruntime")


def test_filter_with_onnxruntime_equals_torch(astronaut, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    frames = [astronaut[100:124, 170:202], astronaut[200:224, 250:282]]  # two 32x24 crops of a real photo
    # gbrp16le: planes G, B, R of 16-bit samples
    raw = b"".join(np.round(np.stack([f[..., 1], f[..., 2], f[..., 0]]) * 65535).astype("<u2").tobytes() for f in frames)
    outs = {}
    for backend in ("torch", "onnxruntime"):
        run = run_filter("-f", "rawvideo", "-s", "32x24", "-pix_fmt", "gbrp16le", "-r", "24", "-i", "-",
                         "superres=model=ditn-real-x4:device=cpu:tile=0:backend=" + backend, input=raw)
        assert run.returncode == 0, run.stderr.decode()
        outs[backend] = np.frombuffer(run.stdout, "<u2").reshape(2, 3, 96, 128).astype(np.float64) / 65535
    assert np.abs(outs["torch"] - outs["onnxruntime"]).max() <= 1e-4 + 1 / 65535
    # a real upscale of the photo: 4x4 means of the output are the input
    small = outs["torch"][0].reshape(3, 24, 4, 32, 4).mean(axis=(2, 4))
    want = np.stack([frames[0][..., 1], frames[0][..., 2], frames[0][..., 0]])
    assert np.abs(small - want).mean() < 0.03
