"""Backends: a model's exported ONNX graph run by ONNX Runtime, OpenVINO or TensorRT.

A family that declares a ``backend`` option (DITN: ``torch | onnxruntime | openvino |
tensorrt``) runs through :func:`load_backend` when the option names a runtime: the graph
comes from :func:`~.exported.cached_graph` (exported once per weights sha256, precision and
runtime version), and the runner returned here is called by the engine exactly like a
PyTorch network, ``runner(x [N, 3, h, w]) -> [N, 3, s*h, s*w]``, so the engine's own tiling,
progress, cancellation and ticket pool apply unchanged. Frames are run one at a time (the
graphs take batch 1, vs-mlrt's convention).

- ONNX Runtime: the CPU execution provider on ``device=cpu``; the CUDA (or ROCm) provider on a
  ``cuda`` device, when the installed onnxruntime has one.
- OpenVINO: its CPU device, told to compute in f32 (on CPUs with bf16 units its default hint
  computes in bf16: 1e-2 away from the PyTorch output).
- TensorRT: engines built from the graph for static shapes (the first tile's size rounded up
  to :data:`TRT_SHAPE_MULTIPLE`, smaller tiles padded by the same mirror the network uses,
  outputs cropped), with a timing cache, serialised per GPU, TensorRT version, precision and
  shape. It needs an NVIDIA GPU and a CUDA build of PyTorch (its buffers are CUDA tensors).

Never a silent fallback: a runtime that is not installed, a GPU that is not there or a provider
that is missing raises a :class:`~vs_superres.contracts.errors.InvalidOption` saying how to get
it (the pip extra) or what to choose instead.
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib
import logging
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

import numpy as np
import torch

from vs_superres.contracts.descriptor import ModelDescriptor
from vs_superres.contracts.errors import InternalError, InvalidOption, option_ref
from vs_superres.runtime.exported import (Weights, cached_graph, exporting_family, graph_cache_dir, read_weights,
                                          write_graph)
from vs_superres.runtime.registry import Registry

log = logging.getLogger("vs_superres")

INPUT, OUTPUT = "input", "output"
TRT_SHAPE_MULTIPLE = 64


@dataclasses.dataclass(frozen=True)
class Runtime:
    """A runtime a ``backend`` option may name: its Python module, title and pip extra."""

    name: str
    module: str
    title: str
    extra: str


RUNTIMES = {
    r.name: r for r in (
        Runtime("onnxruntime", "onnxruntime", "ONNX Runtime", "onnx"),
        Runtime("openvino", "openvino", "OpenVINO", "openvino"),
        Runtime("tensorrt", "tensorrt", "TensorRT", "tensorrt"),
    )
}


def require(name: str) -> ModuleType:
    """The runtime's module, or an error naming the pip extra that installs it (with ``onnx``,
    which every backend needs to export and check the graph)."""
    runtime = RUNTIMES[name]
    missing = []
    module = None
    for mod in (runtime.module, "onnx"):
        try:
            imported = importlib.import_module(mod)
        except ImportError:
            missing.append(mod)
        else:
            module = imported if mod == runtime.module else module
    if missing or module is None:
        raise InvalidOption(
            f"{option_ref('backend', name)} needs {runtime.title}, which is not installed here (missing Python "
            f"module{'s' if len(missing) > 1 else ''} {', '.join(missing)}); install it with "
            f"`pip install vs-superres[{runtime.extra}]`, or use {option_ref('backend', 'torch')}",
            option="backend")
    return module


def runtime_version(name: str) -> str:
    """The runtime's release (OpenVINO's ``2026.4.1-22982-<hash>-releases/...`` up to its build number)."""
    return "-".join(str(getattr(require(name), "__version__", "unknown")).split("-")[:2])


def nvidia_gpu_count() -> int:
    """NVIDIA GPUs the driver sees (0 without a driver), asked of the CUDA driver itself, so a
    CPU-only PyTorch does not hide a GPU TensorRT could use."""
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so", "libcuda.dylib")
    for lib_name in names:
        try:
            lib = ctypes.CDLL(lib_name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


def _precision(dtype: torch.dtype, backend: str, model: str) -> str:
    if dtype == torch.float32:
        return "fp32"
    if dtype == torch.float16:
        return "fp16"
    raise InvalidOption(f"{option_ref('backend', backend)} computes in fp32 or fp16, not {str(dtype).replace('torch.', '')}; "
                        f"use {option_ref('dtype', 'fp32')}", option="dtype", model=model)


class _GraphRunner:
    """Runs a graph frame by frame on numpy arrays: ``[N, 3, h, w] -> [N, 3, s*h, s*w]`` float32."""

    backend = ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float32).contiguous()
        outs = [self.run(x[i:i + 1].numpy()) for i in range(x.shape[0])]
        return torch.from_numpy(outs[0] if len(outs) == 1 else np.concatenate(outs))

    def run(self, frame: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OnnxRuntimeRunner(_GraphRunner):
    backend = "onnxruntime"

    @staticmethod
    def providers(device: torch.device) -> list[Any]:
        """The execution provider for ``device``: the CPU's, or a GPU's when onnxruntime has one."""
        if device.type == "cpu":
            return ["CPUExecutionProvider"]
        available = require("onnxruntime").get_available_providers()
        gpu = next((p for p in ("CUDAExecutionProvider", "ROCMExecutionProvider") if p in available), None)
        if gpu is None:
            raise InvalidOption(
                f"ONNX Runtime has no GPU execution provider here (it has {', '.join(available)}) for device {device}; "
                f"install onnxruntime-gpu (CUDA) or onnxruntime-rocm, or use {option_ref('device', 'cpu')}",
                option="device")
        return [(gpu, {"device_id": device.index or 0})]

    def __init__(self, path: Path, device: torch.device, threads: int) -> None:
        ort = require("onnxruntime")
        providers = self.providers(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=providers)

    def run(self, frame: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT], {INPUT: frame})[0]


class OpenVINORunner(_GraphRunner):
    backend = "openvino"

    @staticmethod
    def check_device(device: torch.device) -> None:
        if device.type != "cpu":
            raise InvalidOption(f"{option_ref('backend', 'openvino')} runs on the CPU here; use {option_ref('device', 'cpu')}, "
                                f"or {option_ref('backend', 'onnxruntime')} or {option_ref('backend', 'tensorrt')} on a GPU",
                                option="device")

    def __init__(self, path: Path, device: torch.device, threads: int) -> None:
        ov = require("openvino")
        self.check_device(device)
        core = ov.Core()
        self.model = core.compile_model(core.read_model(str(path)), "CPU", {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "f32",  # the graph's own precision (fp16 graphs compute in f16 inside)
        })
        self._local = threading.local()  # an infer request is not shared between threads

    def run(self, frame: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.model.create_infer_request()
        return request.infer({INPUT: frame})[OUTPUT].copy()


def mirror_pad(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``x`` ``[N, C, h, w]`` padded at the bottom and right to ``height x width`` by the
    periodic mirror DITN's own padding uses (a side of one pixel is repeated)."""
    for axis, size in ((2, height), (3, width)):
        n = x.shape[axis]
        period = max(2 * n - 2, 1)
        j = torch.arange(size, device=x.device) % period
        x = x.index_select(axis, torch.minimum(j, period - j))
    return x


class TensorRTRunner:
    """TensorRT engines built from the graph, one per static shape (see the module docstring).

    Not verified on a GPU in this project's CI (none is available there); the code path is
    the documented TensorRT 10 Python API.
    """

    backend = "tensorrt"

    def __init__(self, path: Path, device: torch.device, fp16: bool, scale: int) -> None:
        self.trt = require("tensorrt")
        self.onnx_path, self.device, self.fp16, self.scale = path, device, fp16, scale
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self.runtime = self.trt.Runtime(self.logger)
        self.engines: dict[tuple[int, int], Any] = {}
        self.lock = threading.Lock()
        gpu = torch.cuda.get_device_name(device).replace(" ", "_").replace("/", "_")
        self.folder = graph_cache_dir() / "tensorrt" / f"{gpu}-trt{self.trt.__version__}"

    def _engine_path(self, shape: tuple[int, int]) -> Path:
        return self.folder / f"{self.onnx_path.stem}-{'fp16' if self.fp16 else 'fp32'}-{shape[1]}x{shape[0]}.engine"

    def _build(self, shape: tuple[int, int]) -> bytes:
        trt = self.trt
        log.warning("building a TensorRT engine for %dx%d tiles (once per GPU, TensorRT version and shape; minutes)",
                    shape[1], shape[0])
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(self.onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise InternalError(f"TensorRT could not parse {self.onnx_path}: {errors}")
        config = builder.create_builder_config()
        if self.fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        fixed = (1, 3, *shape)
        profile.set_shape(INPUT, fixed, fixed, fixed)
        config.add_optimization_profile(profile)
        timing_path = self.folder / "timing.cache"
        cache = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise InternalError(f"TensorRT failed to build an engine for {shape[1]}x{shape[0]} from {self.onnx_path}")
        write_graph(bytes(memoryview(config.get_timing_cache().serialize())), timing_path)
        return bytes(memoryview(serialized))

    def _engine(self, shape: tuple[int, int]) -> Any:
        with self.lock:
            if shape not in self.engines:
                self.folder.mkdir(parents=True, exist_ok=True)
                path = self._engine_path(shape)
                engine = self.runtime.deserialize_cuda_engine(path.read_bytes()) if path.is_file() else None
                if engine is None:  # absent, or stale/corrupt: rebuilt
                    data = self._build(shape)
                    write_graph(data, path)
                    engine = self.runtime.deserialize_cuda_engine(data)
                self.engines[shape] = (engine, engine.create_execution_context())
            return self.engines[shape]

    def _shape_for(self, h: int, w: int) -> tuple[int, int]:
        known = [s for s in self.engines if s[0] >= h and s[1] >= w]
        if known:
            return min(known, key=lambda s: s[0] * s[1])
        m = TRT_SHAPE_MULTIPLE
        return (-(-h // m) * m, -(-w // m) * m)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        shape = self._shape_for(h, w)
        engine, context = self._engine(shape)
        x = mirror_pad(x.detach().to(self.device, torch.float32), *shape).contiguous()
        outs = []
        stream = torch.cuda.current_stream(self.device)
        with self.lock:  # one execution context per engine
            for i in range(x.shape[0]):
                frame = x[i:i + 1].contiguous()
                out = torch.empty(1, 3, shape[0] * self.scale, shape[1] * self.scale, device=self.device)
                context.set_input_shape(INPUT, tuple(frame.shape))
                context.set_tensor_address(INPUT, frame.data_ptr())
                context.set_tensor_address(OUTPUT, out.data_ptr())
                if not context.execute_async_v3(stream.cuda_stream):
                    raise InternalError("TensorRT failed to run its engine")
                outs.append(out)
            stream.synchronize()
        y = torch.cat(outs) if len(outs) > 1 else outs[0]
        return y[:, :, : h * self.scale, : w * self.scale]


def _tensorrt_runner(path_of: Any, device: torch.device, precision: str, scale: int) -> TensorRTRunner:
    if nvidia_gpu_count() == 0:
        raise InvalidOption(f"TensorRT needs an NVIDIA GPU, and this machine has none (no CUDA driver sees one); "
                            f"use {option_ref('backend', 'onnxruntime')} or {option_ref('backend', 'openvino')} on the CPU",
                            option="backend")
    if device.type != "cuda":
        raise InvalidOption(f"TensorRT runs on the GPU: use {option_ref('device', 'cuda')} (with a CUDA build of PyTorch, "
                            "whose tensors hold TensorRT's buffers)", option="device")
    require("tensorrt")
    # TensorRT's fp16 is a builder flag on the fp32 graph: it keeps fp32 where fp16 would overflow.
    return TensorRTRunner(path_of("fp32"), device, precision == "fp16", scale)


def load_backend(desc: ModelDescriptor, backend: str, *, device: torch.device, dtype: torch.dtype,
                 found: Mapping[str, Path | None], state_dict: Mapping | None, registry: Registry | None = None) -> Any:
    """The runner of ``desc``'s exported graph in ``backend`` (a :data:`RUNTIMES` name)."""
    if backend not in RUNTIMES:
        raise InternalError(f"{desc.family} declares backend {backend!r}, which the runtime does not know ({', '.join(RUNTIMES)})")
    exporting_family(desc, registry)
    precision = _precision(dtype, backend, desc.name)
    threads = torch.get_num_threads()
    loaded: list[Weights] = []

    def path_of(prec: str) -> Path:
        if not loaded:
            loaded.append(read_weights(desc, found, state_dict))
        return cached_graph(desc, loaded[0], precision=prec, runtime=backend, runtime_version=runtime_version(backend),
                            registry=registry)

    if backend == "tensorrt":
        return _tensorrt_runner(path_of, device, precision, desc.scale)
    # Everything that can be refused is refused before the export: the extra, the device.
    require(backend)
    if backend == "onnxruntime":
        OnnxRuntimeRunner.providers(device)
        return OnnxRuntimeRunner(path_of(precision), device, threads)
    OpenVINORunner.check_device(device)
    return OpenVINORunner(path_of(precision), device, threads)
