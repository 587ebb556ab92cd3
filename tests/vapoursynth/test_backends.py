"""``core.superres.DITN(..., backend="onnxruntime")`` (issue 26): the argument comes from DITN's
declaration, and the frames equal the PyTorch path's within 1e-4. The VapourSynth root
(tools/vs_env.sh) installs the ``[onnx]`` extra's packages for this test."""

from __future__ import annotations

import numpy as np
import pytest
import vapoursynth as vs

pytest.importorskip("onnxruntime")


def test_ditn_with_onnxruntime_equals_torch(ditn_model, photo, clip_from_frames, to_array, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the exported graph's cache
    frames = photo(2, 40, 56)
    clip = clip_from_frames(frames)
    want = to_array(vs.core.superres.DITN(clip, model=ditn_model, device="cpu", tile=32, overlap=16))
    got = to_array(vs.core.superres.DITN(clip, model=ditn_model, device="cpu", tile=32, overlap=16, backend="onnxruntime"))
    assert got.shape == want.shape == (2, 3, 160, 224)
    assert np.abs(got - want).max() < 1e-4
    assert list((tmp_path / "vs-superres" / "graphs").glob("ditn-*-fp32-onnxruntime-*.onnx"))


def test_an_unknown_backend_is_refused_by_its_declaration(ditn_model, photo, clip_from_frames):
    with pytest.raises(vs.Error, match="backend must be one of torch, onnxruntime, openvino, tensorrt, got 'cuda'"):
        vs.core.superres.DITN(clip_from_frames(photo(1, 16, 16)), model=ditn_model, device="cpu", backend="cuda")
