"""The engine running DITN's exported graph: ``backend=onnxruntime`` and ``backend=openvino``.

Equal to the PyTorch path within 1e-4 through the Python API (tiled, with progress and
cancellation), the ``superres`` command line, and the option derived by every host from its one
declaration; graphs cached per weights and rebuilt when corrupt; a missing runtime names its
pip extra; TensorRT without an NVIDIA GPU says so; the package works without any runtime.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from vs_superres import Upscaler  # noqa: E402
from vs_superres.contracts.errors import Cancelled, InvalidOption  # noqa: E402
from vs_superres.media.images import read_image, write_image  # noqa: E402
from vs_superres.runtime import backends  # noqa: E402
from vs_superres.runtime.exported import graph_cache_dir  # noqa: E402

pytestmark = pytest.mark.torch_threads(2)
REPO = Path(__file__).resolve().parents[1]
BACKENDS = ["onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory):
    """One graph cache for the module (each backend exports once), in the user cache's place."""
    cache = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache))
        yield cache


@pytest.fixture(scope="module")
def photo(astronaut) -> np.ndarray:
    """A 61x83 crop of a real photo (odd sizes: the edge tiles and the in-graph padding)."""
    return np.ascontiguousarray(astronaut[100:161, 170:253])


@pytest.fixture(scope="module")
def torch_output(photo, graph_cache):
    with Upscaler("ditn-real-x4", device="cpu", tile=32, overlap=16) as up:
        return up.upscale(photo)


@pytest.mark.parametrize("backend", BACKENDS)
def test_engine_with_a_backend_equals_torch_tiled_with_progress(backend, photo, torch_output, graph_cache):
    seen = []
    with Upscaler("ditn-real-x4", device="cpu", tile=32, overlap=16, backend=backend, progress=seen.append) as up:
        out = up.upscale(photo)
    assert out.shape == torch_output.shape == (1, 3, 244, 332)
    assert (out - torch_output).abs().max() < 1e-4
    tiles = [p for p in seen if p.unit == "tiles"]
    assert tiles and tiles[-1].done == tiles[-1].total > 1  # the engine's own tiles, reported


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancellation_between_tiles(backend, photo, graph_cache):
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    with Upscaler("ditn-real-x4", device="cpu", tile=32, overlap=16, backend=backend, cancel=cancel) as up:
        with pytest.raises(Cancelled):
            up.upscale(photo)


def test_graphs_are_cached_per_weights_precision_and_runtime(graph_cache, photo, caplog):
    Upscaler("ditn-real-x4", device="cpu", backend="onnxruntime").close()
    files = sorted(p.name for p in graph_cache_dir().glob("*.onnx"))
    version = backends.runtime_version("onnxruntime")
    sha = "989dc21e2379c6924a6b"  # the registered DITN_Real_x4.pth, first 20 hex digits
    assert f"ditn-{sha}-fp32-onnxruntime-{version}-g1.onnx" in files
    with caplog.at_level(logging.INFO, logger="vs_superres"):
        Upscaler("ditn-real-x4", device="cpu", backend="onnxruntime").close()
    assert "exporting" not in caplog.text  # the second engine reuses the file


def test_a_corrupt_cached_graph_is_rebuilt(tmp_path, monkeypatch, photo, torch_output, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    Upscaler("ditn-real-x4", device="cpu", backend="onnxruntime").close()
    (graph,) = graph_cache_dir().glob("*.onnx")
    good = graph.read_bytes()
    graph.write_bytes(good[: len(good) // 2])  # cut, as a crash or a full disk leaves it
    with caplog.at_level(logging.WARNING, logger="vs_superres"):
        with Upscaler("ditn-real-x4", device="cpu", tile=32, overlap=16, backend="onnxruntime") as up:
            out = up.upscale(photo)
    assert "does not match its recorded sha256 (cut or corrupt): exporting it again" in caplog.text
    assert graph.read_bytes() == good
    assert (out - torch_output).abs().max() < 1e-4


@pytest.mark.parametrize("backend, module, extra", [
    ("onnxruntime", "onnxruntime", "onnx"),
    ("openvino", "openvino", "openvino"),
    ("onnxruntime", "onnx", "onnx"),
])
def test_a_missing_runtime_names_its_pip_extra(backend, module, extra, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, module, None)  # what `import` sees when it is not installed
    with pytest.raises(InvalidOption) as err:
        Upscaler("ditn-real-x4", device="cpu", backend=backend)
    assert f"install it with `pip install vs-superres[{extra}]`, or use backend=torch" in str(err.value)
    assert f"missing Python module {module}" in str(err.value) and err.value.option == "backend"
    assert not (tmp_path / "vs-superres").exists()  # refused before any export


def test_tensorrt_without_an_nvidia_gpu_says_so(tmp_path, monkeypatch):
    if backends.nvidia_gpu_count():
        pytest.skip("this machine has an NVIDIA GPU")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(InvalidOption, match="^TensorRT needs an NVIDIA GPU, and this machine has none"):
        Upscaler("ditn-real-x4", device="cpu", backend="tensorrt")
    assert not (tmp_path / "vs-superres").exists()  # no silent fallback, nothing exported


def test_bf16_is_refused_with_the_backends_precisions(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(InvalidOption, match=r"backend=openvino computes in fp32 or fp16, not bfloat16; use dtype=fp32"):
        Upscaler("ditn-real-x4", device="cpu", dtype="bf16", backend="openvino")


def test_an_unknown_backend_lists_the_declared_ones():
    with pytest.raises(InvalidOption, match=r"backend must be one of torch, onnxruntime, openvino, tensorrt, got 'onnx'"):
        Upscaler("ditn-real-x4", device="cpu", backend="onnx")


def test_a_checkpoint_file_runs_through_a_backend(ditn_gan_x4_path, photo, graph_cache):
    with Upscaler(str(ditn_gan_x4_path), device="cpu", tile=0) as up:
        want = up.upscale(photo)
    with Upscaler(str(ditn_gan_x4_path), device="cpu", tile=0, backend="openvino") as up:
        got = up.upscale(photo)
    assert (got - want).abs().max() < 1e-4


def test_the_cli_runs_a_backend(photo, tmp_path, graph_cache, torch_output):
    write_image(tmp_path / "in.png", photo, bit_depth=16)
    outs = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.png"
        run = subprocess.run([sys.executable, "-m", "vs_superres.cli", "upscale", tmp_path / "in.png", out, "--device", "cpu",
                              "--tile", "32", "--overlap", "16", "--backend", backend, "--bit-depth", "16", "-q"],
                             capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "2"})
        assert run.returncode == 0, run.stderr
        outs[backend] = read_image(out)[0]
    assert outs["torch"].shape == outs["onnxruntime"].shape == (244, 332, 3)
    assert np.abs(outs["torch"] - outs["onnxruntime"]).max() <= 1e-4 + 1 / 65535  # 16-bit PNG rounding


def test_every_host_derives_the_option_from_its_one_declaration():
    from vs_superres.cli.app import build_parser
    from vs_superres.comfy_nodes.inputs import family_ports
    from vs_superres.ffmpeg_filter.options import engine_arguments, parse_filter
    from vs_superres.runtime.registry import family
    from vs_superres.vapoursynth.signatures import signature

    declared = family("ditn").options.get("backend")
    assert declared.choices == ("torch", "onnxruntime", "openvino", "tensorrt") and declared.default == "torch"
    args = build_parser(["upscale"]).parse_args(["upscale", "a.png", "b.png", "--backend", "openvino"])
    assert args.backend == "openvino"
    assert "backend:data:opt;" in signature("DITN") and "backend:data:opt;" in signature("Upscale")
    port = next(p for p in family_ports() if p.name == "backend")
    assert port.kind == "COMBO" and tuple(port.choices) == declared.choices
    assert engine_arguments(parse_filter("superres=ditn-real-x4:backend=onnxruntime")) == (
        "ditn-real-x4", {"backend": "onnxruntime"})
    # ... and no host lists it by hand: the word appears in none of their sources.
    hosts = [REPO / "vs_superres" / "cli", REPO / "vs_superres" / "vapoursynth", REPO / "comfy_nodes", REPO / "ffmpeg_filter",
             REPO / "vs_superres" / "hostkit"]
    named = [str(p.relative_to(REPO)) for folder in hosts for p in folder.rglob("*") if p.suffix in (".py", ".c")
             and p.name != "export.py" and any(w in p.read_text() for w in ("onnxruntime", "openvino", "tensorrt"))]
    assert named == []


def test_the_package_works_without_any_runtime(tmp_path):
    """Every runtime module made unimportable: the package imports, the torch path runs, and a
    backend is refused with its extra."""
    code = (
        "import sys\n"
        "for m in ('onnx', 'onnxruntime', 'openvino', 'tensorrt'): sys.modules[m] = None\n"
        "import numpy as np\n"
        "from vs_superres import Upscaler\n"
        "from vs_superres.contracts.errors import InvalidOption\n"
        "with Upscaler('ditn-real-x4', device='cpu') as up: out = up.upscale(np.zeros((8, 8, 3), np.float32))\n"
        "assert tuple(out.shape) == (1, 3, 32, 32)\n"
        "try: Upscaler('ditn-real-x4', device='cpu', backend='openvino')\n"
        "except InvalidOption as e: print(e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert "pip install vs-superres[openvino]" in run.stdout


def test_mirror_pad_is_the_networks_padding():
    """TensorRT's edge-tile padding (runnable without a GPU) repeats DITN's own periodic mirror."""
    from vs_superres.models.ditn.arch import reflect_pad_to_multiple

    for h, w in [(1, 1), (3, 5), (7, 9), (8, 8)]:
        x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
        mine = backends.mirror_pad(x, -(-h // 8) * 8, -(-w // 8) * 8)
        assert torch.equal(mine, reflect_pad_to_multiple(x, 8)), (h, w)
