"""What runs on each Ray worker: one model, loaded once, rendering segments.

:class:`SegmentWorker` is a plain class; :mod:`.cluster` makes it a Ray actor (``num_gpus=1``
per GPU, or ``num_cpus`` per CPU slot). It never raises from ``__init__``: a model that cannot
load on this node (weights missing there, an option its family refuses) is kept and reported by
:meth:`SegmentWorker.describe`, so the driver can say which node failed and why instead of Ray
restarting an actor that can never start.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vs_superres.contracts.errors import SuperResError
from vs_superres.runtime.windows import ClipSegment, SceneStarts
from vs_superres.distributed.codes import OutputFormat, to_codes
from vs_superres.distributed.inputs import PackedInputs, rgb_of


def node_name() -> str:
    """``host (ip)`` of this machine, for messages and the throughput summary."""
    host = socket.gethostname()
    try:
        import ray

        ip = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 (outside Ray, or no address yet: the host name is enough)
        return host
    return f"{host} ({ip})"


class SegmentWorker:
    """Loads ``model`` with the engine and model ``options`` once; renders segments on demand."""

    def __init__(self, model: str, options: Mapping[str, Any], threads: int | None = None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.node = node_name()
        self.error: tuple[str, str] | None = None
        self.up = None
        try:
            from vs_superres.runtime.upscaler import Upscaler

            self.up = Upscaler(model, **dict(options))
        except SuperResError as exc:
            self.error = (type(exc).__name__, str(exc))

    def describe(self) -> dict:
        """Where this worker runs and what its model needs, or the error that stopped it."""
        info: dict[str, Any] = {"node": self.node, "pid": os.getpid(), "error": self.error}
        if self.up is not None:
            info.update(name=self.up.descriptor.name, kind=self.up.descriptor.kind, scale=self.up.scale,
                        window=self.up.window, window_overlap=self.up.window_overlap, device=str(self.up.device))
        return info

    def clip_frames(self, total: int | None) -> list[int]:
        return self._up().clip_frames(total)

    def clip_state(self, num_frames: int, indices: list[int], frames: PackedInputs | np.ndarray | None) -> Any:
        """The per-clip state from the input frames ``indices`` (``frames``, in that order)."""
        import torch

        rgb = rgb_of(frames) if frames is not None else ()
        return self._up().clip_state(num_frames, {i: torch.from_numpy(f) for i, f in zip(indices, rgb)})

    def render(self, segment: ClipSegment, num_frames: int, frames: PackedInputs | np.ndarray | str,
               fmt: OutputFormat, cuts: frozenset[int], clip_state: Any) -> dict:
        """Segment ``segment``'s output frames as integer codes (:mod:`.codes`).

        ``frames``: its input frames (``segment.inputs`` in order) as the decoder's integer
        planes (:class:`~.inputs.PackedInputs`, converted here as the reader converts them) or
        float32 ``[T, 3, H, W]``, or the path of the input video, which this worker then
        decodes itself.
        """
        import torch

        started = time.monotonic()
        up = self._up()
        if isinstance(frames, str):
            frames = read_inputs(Path(frames), segment)
        rgb = rgb_of(frames)
        inputs = {i: torch.from_numpy(rgb[i - segment.inputs.start]) for i in segment.inputs}
        codes = [to_codes(out.numpy(), fmt) for out in up.render_segment(segment, num_frames, inputs, SceneStarts(cuts), clip_state)]
        return {"codes": codes, "node": self.node, "pid": os.getpid(), "seconds": time.monotonic() - started}

    def pid(self) -> int:
        return os.getpid()

    def _up(self):
        if self.up is None:
            assert self.error is not None
            raise SuperResError(self.error[1])
        return self.up


def read_inputs(path: Path, segment: ClipSegment) -> np.ndarray:
    """Decode ``segment.inputs`` of the video at ``path`` with the one reader (from its start:
    the reader has no exact seek, and a frame-exact seek is what bit-identical output needs)."""
    from vs_superres.media.video import VideoReader

    wanted = segment.inputs
    got = []
    with VideoReader(path) as reader:
        for index, decoded in enumerate(reader):
            if index >= wanted.stop:
                break
            if index >= wanted.start:
                got.append(decoded.rgb)
    if len(got) != len(wanted):
        raise SuperResError(f"{path} holds {wanted.start + len(got)} frames on node {node_name()}, but frames "
                            f"{wanted.start}-{wanted.stop - 1} were planned; every node must see the same input file")
    return np.stack(got)
