"""``superres export``: DITN's deployment graph, run by ONNX Runtime and OpenVINO at any size.

The two released checkpoints are exported once per module (the x4 by its registered name, the
GAN by its checkpoint file, both through the real CLI); each file is run by both runtimes at
the trace size and at odd, tiny, wide and non-multiple-of-8 sizes on crops of a real photo,
and compared with the engine's own PyTorch output. Bad input: a video or diffusion model, an
output that cannot be written, a bad --static, an existing output with -n.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
ov = pytest.importorskip("openvino")

from vs_superres import Upscaler  # noqa: E402
from vs_superres.runtime.registry import get_model  # noqa: E402
from weights_helpers import weights_file  # noqa: E402

pytestmark = pytest.mark.torch_threads(2)

#: (height, width): the trace's own size, odd, tiny, one pixel, wide, not a multiple of 8, square
SIZES = [(20, 28), (37, 29), (5, 7), (1, 1), (16, 190), (45, 67), (64, 64)]


def superres(*args, timeout=300):
    """The real command line in a process of its own (exit status, stderr)."""
    return subprocess.run([sys.executable, "-m", "vs_superres.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


class Ran:
    def __init__(self, returncode: int, stderr: str):
        self.returncode, self.stderr = returncode, stderr


def superres_here(*args) -> Ran:
    """The same command line in this process (``vs_superres.cli.app.main``): no interpreter and
    torch start-up per call, which would dominate these tests."""
    from vs_superres.cli.app import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return Ran(status, err.getvalue())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, ditn_x4_path_module, ditn_gan_path_module) -> dict[str, Path]:
    """One exported file per checkpoint for the whole module (plus an fp16 and a static one)."""
    folder = tmp_path_factory.mktemp("onnx")
    jobs = {
        "x4": ("ditn-real-x4", folder / "ditn_real_x4.onnx"),
        "gan": (ditn_gan_path_module, folder / "ditn_real_gan_x4.onnx"),
        "x4-fp16": ("ditn-real-x4", folder / "ditn_real_x4_fp16.onnx", "--fp16"),
        "x4-static": ("ditn-real-x4", folder / "ditn_real_x4_64x48.onnx", "--static", "64x48"),
    }
    out = {}
    for key, (model, path, *flags) in jobs.items():
        # the first in a process of its own (the command as users run it), the others in this one
        run = superres("export", model, path, *flags) if key == "x4" else superres_here("export", model, path, *flags)
        assert run.returncode == 0, run.stderr
        assert f"superres: wrote {path}" in run.stderr
        out[key] = path
    return out


@pytest.fixture(scope="module")
def ditn_x4_path_module():
    return weights_file("ditn/DITN_Real_x4.pth")


@pytest.fixture(scope="module")
def ditn_gan_path_module():
    return weights_file("ditn/DITN_Real_GAN_x4.pth")


@pytest.fixture(scope="module")
def engines():
    """The engine's own PyTorch path (the default backend), untiled."""
    ups = {"x4": Upscaler("ditn-real-x4", device="cpu", tile=0), "gan": Upscaler("ditn-real-gan-x4", device="cpu", tile=0)}
    yield ups
    for up in ups.values():
        up.close()


@pytest.fixture(scope="module")
def references(engines, astronaut):
    """``want(checkpoint, h, w)``: the engine's output on the crop, computed once per module."""
    memo: dict = {}

    def want(checkpoint: str, h: int, w: int) -> np.ndarray:
        if (checkpoint, h, w) not in memo:
            memo[checkpoint, h, w] = engines[checkpoint].upscale(torch.from_numpy(crop(astronaut, h, w))).numpy()
        return memo[checkpoint, h, w]

    return want


def crop(astronaut: np.ndarray, h: int, w: int) -> np.ndarray:
    """``[1, 3, h, w]`` float32 from a real photo (a textured part: face and suit)."""
    return np.ascontiguousarray(astronaut[60:60 + h, 150:150 + w].transpose(2, 0, 1)[None])


def ort_session(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ov_model(path: Path):
    core = ov.Core()
    return core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2})


RUNTIMES = {
    "onnxruntime": lambda path: (lambda s: lambda x: s.run(None, {"input": x})[0])(ort_session(path)),
    "openvino": lambda path: (lambda m: lambda x: m(x)[0])(ov_model(path)),
}


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
@pytest.mark.parametrize("checkpoint", ["x4", "gan"])
def test_runtimes_equal_the_engine_at_any_size(runtime, checkpoint, exported, references, astronaut):
    run = RUNTIMES[runtime](exported[checkpoint])
    for h, w in SIZES:
        x = crop(astronaut, h, w)
        got = run(x)
        assert got.shape == (1, 3, 4 * h, 4 * w), (h, w)
        want = references(checkpoint, h, w)
        # the engine clamps to [0, 1]; the graph's output is the network's, unclamped
        diff = np.abs(np.clip(got, 0, 1) - want).max()
        assert diff < 1e-4, f"{runtime} {checkpoint} at {w}x{h}: {diff}"
        assert np.abs(want - np.repeat(np.repeat(x, 4, 2), 4, 3)).mean() < 0.1  # a real upscale


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_fp16_export_is_within_1e2(runtime, exported, references, astronaut):
    run = RUNTIMES[runtime](exported["x4-fp16"])
    for h, w in [(37, 29), (45, 67)]:
        x = crop(astronaut, h, w)
        diff = np.abs(np.clip(run(x), 0, 1) - references("x4", h, w)).max()
        assert diff < 1e-2, f"{runtime} fp16 at {w}x{h}: {diff}"
    graph = onnx.load(str(exported["x4-fp16"]))
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 in and out
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)


def test_static_export_runs_at_its_size_only(exported, references, astronaut):
    session = ort_session(exported["x4-static"])
    dims = [d.dim_value for d in onnx.load(str(exported["x4-static"])).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 48, 64]
    x = crop(astronaut, 48, 64)
    want = references("x4", 48, 64)
    assert np.abs(np.clip(session.run(None, {"input": x})[0], 0, 1) - want).max() < 1e-4
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"input": crop(astronaut, 40, 64)})


def test_the_file_is_the_deployment_form_with_its_metadata(exported):
    model = onnx.load(str(exported["x4"]))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert [i.name for i in model.graph.input] == ["input"] and len(model.graph.output) == 1
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims] == [1, 3, "height", "width"]
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    ops = [n.op_type for n in model.graph.node]
    # No normalisation op; the 71 linear maps of the release (sft, per ITL 6 convs and the qkv
    # Linear, per SAL 10 convs, conv_after_body, upsample) less the 16 folded pairs: 55 convs.
    assert not {"LayerNormalization", "InstanceNormalization", "BatchNormalization", "ReduceMean"} & set(ops)
    assert ops.count("Conv") == 55 and "Gemm" not in ops
    assert ops.count("MatMul") == 8  # the two attention products of each ITL, nothing else
    assert ops.count("Tanh") == 16  # the release's LayerNorm substitute, before each branch
    meta = {p.key: p.value for p in model.metadata_props}
    release = get_model("ditn-real-x4")
    assert meta["model"] == "ditn-real-x4" and meta["scale"] == "4" and meta["licence"] == "Apache-2.0"
    assert meta["weights_sha256"] == release.weights[0].sha256
    assert meta["precision"] == "fp32" and meta["shape"] == "dynamic"


def test_a_checkpoint_file_carries_its_own_sha256(exported, ditn_gan_path_module):
    meta = {p.key: p.value for p in onnx.load(str(exported["gan"])).metadata_props}
    assert meta["weights_sha256"] == sha256(ditn_gan_path_module) and meta["model"] == "DITN_Real_GAN_x4"
    static = {p.key: p.value for p in onnx.load(str(exported["x4-static"])).metadata_props}
    assert static["shape"] == "64x48"


@pytest.mark.parametrize("model, words", [
    ("ultravsr", "not exportable: ultravsr is a video model; exportable models: ditn-real-gan-x4, ditn-real-x4"),
    ("patchscaler-x4", "not exportable: patchscaler-x4 is a PatchScaler model, whose family declares no single-graph "
                       "deployment form; exportable models: ditn-real-gan-x4, ditn-real-x4"),
])
def test_video_and_diffusion_models_are_not_exportable(model, words, tmp_path):
    run = superres_here("export", model, tmp_path / "x.onnx")
    assert run.returncode == 2 and words in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_outputs_and_sizes_fail_before_any_work(tmp_path):
    cases = [
        (("ditn-real-x4", tmp_path / "missing" / "x.onnx"), f"cannot write '{tmp_path / 'missing' / 'x.onnx'}': the folder"),
        (("ditn-real-x4", tmp_path), "is a folder; give a file name"),
        (("ditn-real-x4", tmp_path / "x.onnx", "--static", "64"), "--static must be WIDTHxHEIGHT in pixels, e.g. 640x360, got '64'"),
        (("ditn-real-x4", tmp_path / "x.onnx", "--static", "0x8"), "--static must be WIDTHxHEIGHT"),
    ]
    for args, words in cases:
        run = superres_here("export", *args)
        assert run.returncode == 2 and words in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)
    kept = tmp_path / "kept.onnx"
    kept.write_bytes(b"mine")
    run = superres_here("export", "ditn-real-x4", kept, "-n")
    assert run.returncode == 2 and "already exists and -n/--no-overwrite was given" in run.stderr
    assert kept.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.onnx"]  # no partial file left anywhere


def test_export_without_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # what `import onnx` sees when it is not installed
    run = superres_here("export", "ditn-real-x4", tmp_path / "x.onnx")
    assert run.returncode == 2 and "exporting to ONNX needs the onnx package" in run.stderr
    assert "pip install vs-superres[onnx]" in run.stderr and list(tmp_path.iterdir()) == []
