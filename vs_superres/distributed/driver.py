"""The driver of a distributed run: read, hand out segments, write in order.

The driver runs through the one run path of the single-process CLI
(:mod:`vs_superres.media.pump`): the input is the one :class:`~vs_superres.media.video.VideoReader`
and the output the one writer (:class:`.output.CodeWriter`), opened before any worker starts,
so a bad input or an output the container refuses fails in milliseconds. The pump's decoding
thread reads frames as a stream; the driver (the pump's ``process``) releases each segment of
the plan (:mod:`.plan`) once it is settled and yields the finished segments' frames in order;
the pump's encoding thread writes them, reports progress, and commits the output or, for a cut
input, commits it and then says so.

Memory is bounded by the number of workers, not by the video: at most ``2 * workers``
segments are out at a time (one computing and one queued per worker), counted from the oldest
one not yet written, so the reorder buffer of finished segments waiting for an earlier one, the
input frames kept for segments not yet sent and the timestamps not yet written all stay within
that many segments.

Faults: Ray restarts a dead worker (``max_restarts``) and re-runs the call it was making
(``max_task_retries``); when Ray gives up (a node gone for good), the driver sends the segment
to another worker, up to ``retries`` times, then stops with an error naming the segment and its
frames. Any exception, ``KeyboardInterrupt`` included, kills the workers and aborts the writer,
which removes its temporary file: nothing appears under the final name.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from vs_superres.contracts.errors import InternalError, SuperResError
from vs_superres.contracts.progress import ProgressFn
from vs_superres.distributed.cluster import (STORE_MINIMUM_BYTES, WORKER_PROCESS_BYTES, LocalInstance, connected,
                                             import_ray, start_workers, worker_slots)
from vs_superres.distributed.inputs import PackedInputs, pack, packs_exactly
from vs_superres.distributed.codes import OutputFormat
from vs_superres.distributed.output import CodeWriter
from vs_superres.distributed.plan import SegmentFeed, SegmentPlan, choose_windows_per_segment, frames_text
from vs_superres.media.budget import ENCODER_BYTES_PER_PIXEL, model_share_bytes
from vs_superres.media.pump import FrameSink, Inputs, Pump, ReaderSource, SinkRequest
from vs_superres.media.streaminfo import StreamInfo
from vs_superres.media.video import VideoReader
from vs_superres.runtime.windows import ClipSegment, SceneStarts, SceneStartsLike

log = logging.getLogger("vs_superres")

TRANSPORTS = ("store", "path")


class SegmentFailed(SuperResError):
    """A segment failed on every attempt (its workers or their nodes kept dying)."""


@dataclasses.dataclass
class WorkerStats:
    """What one worker did: ``seconds`` is time spent computing its segments."""

    worker: int
    node: str
    segments: int = 0
    frames: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"worker {self.worker} on {self.node}: {self.segments} segments, {self.frames} frames "
                f"in {self.seconds:.1f} s ({self.fps:.2f} frames/s)")


@dataclasses.dataclass
class RunSummary:
    """The result of :func:`~vs_superres.distributed.upscale_video`."""

    path: Path | None
    frames: int
    segments: int
    seconds: float
    workers: list[WorkerStats]
    retried: int = 0
    #: driver seconds spent outside waiting for workers (reading, sending, writing)
    driver_seconds: float = 0.0
    #: input frames put in the object store (overlaps counted again), and their bytes
    sent_frames: int = 0
    sent_bytes: int = 0
    #: whether input frames travelled as the decoder's integer planes (else float32 R'G'B')
    sent_as_integers: bool = False

    def lines(self) -> list[str]:
        fps = self.frames / self.seconds if self.seconds else 0.0
        head = (f"{self.frames} frames in {self.segments} segments on {len(self.workers)} workers: "
                f"{self.seconds:.1f} s ({fps:.2f} frames/s)" + (f", {self.retried} segment(s) retried" if self.retried else ""))
        return [head] + [w.line() for w in self.workers]


@dataclasses.dataclass
class _Job:
    index: int
    segment: ClipSegment
    num_frames: int
    inputs: Any  # an object ref of the input frames, or the input's path
    attempts: int = 0
    worker: int = -1


def run(src: Path, dst: Path, *, model: str, options: dict, address: str | None, workers: int | None,
        threads: int = 1, segment_frames: int | None = None, transport: str = "store", retries: int = 3,
        scene_starts: SceneStartsLike | None = None, progress: ProgressFn | None = None,
        startup_timeout: float = 300.0, writer_options: dict | None = None) -> RunSummary:
    """Upscale the video ``src`` into ``dst`` on Ray workers (see the module docstring);
    ``writer_options``: the encoder settings (:class:`~vs_superres.media.writer.VideoWriter`'s keywords)."""
    import_ray()  # before any work: a missing extra is the first thing to hear about

    def open_sink(request: SinkRequest) -> CodeWriter:
        return CodeWriter(dst, request.info, request.width, request.height, packets=request.packets,
                          **(writer_options or {}))

    with VideoReader(src, passthrough=True) as reader:
        return run_reader(reader, src, open_sink, model=model, options=options, address=address, workers=workers,
                          threads=threads, segment_frames=segment_frames, transport=transport, retries=retries,
                          scene_starts=scene_starts, progress=progress, startup_timeout=startup_timeout)


def run_reader(reader: VideoReader, src: Path, open_sink: Callable[[SinkRequest], FrameSink], *, model: str,
               options: dict, address: str | None, workers: int | None, threads: int = 1,
               segment_frames: int | None = None, transport: str = "store", retries: int = 3,
               scene_starts: SceneStartsLike | None = None, progress: ProgressFn | None = None,
               startup_timeout: float = 300.0, kept: Callable[[range], bool] | None = None) -> RunSummary:
    """:func:`run` on an open reader, into the sink ``open_sink`` makes: a :class:`.output.CodeWriter`,
    or a journaled job's sink of segments (:mod:`vs_superres.jobs`), which has the
    ``output_format`` its segment writers encode. Segments whose outputs ``kept(outputs)`` says
    the sink already holds are not sent: their frames are ``None``."""
    from vs_superres.runtime.loading import resolve_model

    import_ray()
    if transport not in TRANSPORTS:
        raise SuperResError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}", option="transport")
    started = time.monotonic()
    runs: list[_Run] = []

    def process(inputs: Inputs) -> Iterator[tuple]:
        device_options = options
        local = local_instance(model, descriptor, options, reader.info, inputs.total, workers or 1, threads, segment_frames)
        with connected(address, local) as ray:
            device = str(options.get("device", "auto"))
            count, need = worker_slots(ray, device, workers, threads)
            if "num_gpus" in need and device.startswith("cuda:"):
                device_options = {**options, "device": "cuda"}  # Ray gives each worker its own GPU
            actors, infos = start_workers(ray, count, need, model, device_options,
                                          threads if "num_cpus" in need else None, retries, startup_timeout)
            try:
                fmt: OutputFormat = getattr(pumped.sink, "output_format")  # a CodeWriter, or a journaled job's SegmentSink
                runs.append(_Run(ray, inputs, reader.info, reader.name, fmt, actors, infos, src,
                                 segment_frames, transport, retries, scene_starts, kept or (lambda outputs: False)))
                yield from runs[0].outputs()
            finally:
                for actor in actors:
                    ray.kill(actor, no_restart=True)

    descriptor = resolve_model(model)[0]
    scale = descriptor.scale
    pumped = Pump(ReaderSource(reader), process, open_sink, output_size=lambda info: (info.width * scale, info.height * scale),
                  on_progress=progress, phase="frames")
    result = pumped.run()
    summary = runs[0].summary
    assert summary is not None
    summary.path, summary.seconds = result.path, time.monotonic() - started
    return summary


def local_instance(model: str, descriptor, options: dict, info: StreamInfo, total: int | None, workers: int, threads: int,
                   segment_frames: int | None) -> LocalInstance:
    """The local Ray instance a run of ``workers`` CPU workers needs on this machine: each
    worker's memory (:data:`~.cluster.WORKER_PROCESS_BYTES`, the model's weights, its working
    memory at a small tile, and one segment: its input frames as float32, its window outputs
    and their codes) and an object store for the segments in flight (``2 x workers``, their
    input planes and output codes, with room to spare)."""
    window = int(options.get("window") or descriptor.window) if descriptor.kind == "video" else 1
    overlap = int(options.get("window_overlap") or descriptor.window_overlap) if descriptor.kind == "video" else 0
    overlap = min(overlap, window - 1)
    in_pixels = int(info.width) * int(info.height)
    out_pixels = in_pixels * descriptor.scale * descriptor.scale
    wps = choose_windows_per_segment(total, workers, window, overlap, 12 * out_pixels, segment_frames)
    frames = wps * (window - overlap) + window  # a segment's inputs, its window of overlap included
    segment = frames * (12 * in_pixels + 12 * out_pixels + ENCODER_BYTES_PER_PIXEL * out_pixels)
    worker = (WORKER_PROCESS_BYTES + model_weights_bytes(model, descriptor, options)
              + model_share_bytes(descriptor.bytes_per_pixel, window) + segment)
    in_flight = 2 * workers * frames * (12 * in_pixels + ENCODER_BYTES_PER_PIXEL * out_pixels)
    store = max(STORE_MINIMUM_BYTES, 2 * in_flight)
    return LocalInstance(workers, threads, worker, store)


def model_weights_bytes(model: str, descriptor, options: dict) -> int:
    """Bytes of the weight files a worker loads, where they can be found here (the rest count
    0: a worker then reports what is missing)."""
    from vs_superres.runtime.weights import resolve

    def size(path: Path) -> int:
        if path.is_dir():
            return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return path.stat().st_size if path.is_file() else 0

    try:
        if Path(model).is_file():
            return size(Path(model))
        total = 0
        for wf in descriptor.weights:
            explicit = (options.get(wf.option) if wf.option else None) or wf.pinned
            if explicit is not None and Path(str(explicit)).exists():
                total += size(Path(str(explicit)))
            elif not wf.folder:
                try:
                    total += size(resolve(wf, None, model_name=descriptor.name, verify=False))
                except SuperResError:
                    pass
        return total
    except OSError:
        return 0


class _Run:
    """One run's state: the input stream, the jobs out, the reorder buffer."""

    def __init__(self, ray, inputs: Inputs, info: StreamInfo, name: str, fmt: OutputFormat, actors: list,
                 infos: list[dict], src: Path, segment_frames: int | None, transport: str, retries: int,
                 scene_starts: SceneStartsLike | None, kept: Callable[[range], bool]):
        self.ray, self.info, self.name, self.fmt, self.actors = ray, info, name, fmt, actors
        self.src, self.transport, self.retries, self.kept = src, transport, retries, kept
        first = infos[0]
        self.kind = first["kind"]
        self.summary: RunSummary | None = None
        out_bytes = 3 * 4 * fmt.width * fmt.height
        wps = choose_windows_per_segment(inputs.total, len(actors), first["window"], first["window_overlap"],
                                         out_bytes, segment_frames)
        self.plan = SegmentPlan(first["window"], first["window_overlap"], wps)
        self.cuts = SceneStarts.of(scene_starts).frames
        self.packed: bool | None = None  # settled at the first frame (inputs.packs_exactly)
        self.feed = SegmentFeed(inputs, self.plan, self.keep if transport == "store" else None)
        self.sent_frames = self.sent_bytes = 0
        self.stats = [WorkerStats(i, info["node"]) for i, info in enumerate(infos)]
        self.alive = set(range(len(actors)))
        self.limit = 2 * len(actors)
        self.retried = 0
        self.waiting = 0.0

    # ------------------------------------------------------------------ input
    def keep(self, decoded) -> Any:
        """What is buffered of a decoded frame: its packed integer planes where they rebuild
        exactly (decided at the first frame), else its float R'G'B'."""
        frame = decoded.frame
        if self.packed is None:
            self.packed = frame is not None and packs_exactly(frame, decoded.rgb, self.info.colour)
            if not self.packed:
                log.info("input frames of %s travel as float32: its %s planes do not rebuild exactly",
                         self.name, self.info.pix_fmt)
        return pack(frame) if self.packed and frame is not None else decoded.rgb

    def clip_state(self) -> Any:
        """The per-clip state, computed once (by the first worker, on the workers' device type,
        so it is the state the single-process run computes) and shared by every segment; the
        frames it reads and the count it is given follow ``Upscaler.stream``."""
        if self.kind != "video":
            return None
        ray, worker = self.ray, self.actors[0]
        needed, num_frames = self.feed.clip_frames(lambda total: ray.get(worker.clip_frames.remote(total)))
        frames: Any
        if self.transport == "path" and needed:
            from vs_superres.distributed.worker import read_inputs

            got = read_inputs(self.src, ClipSegment(range(0), range(0), range(0, max(needed) + 1)))
            frames = np.stack([got[i] for i in needed]) if needed else None
        else:
            frames = self.inputs(needed)
        return ray.put(ray.get(worker.clip_state.remote(num_frames, list(needed), frames)))

    def inputs(self, indices) -> Any:
        """The buffered frames ``indices``, as they travel: :class:`~.inputs.PackedInputs`, or
        float32 ``[T, 3, H, W]`` when the planes do not rebuild exactly."""
        got = [self.feed.buffer[i] for i in indices]
        if not got:
            return None
        batch: Any = PackedInputs(self.info.colour, tuple(got)) if self.packed else np.stack(got)
        self.sent_frames += len(got)
        self.sent_bytes += batch.nbytes
        return batch

    # ------------------------------------------------------------------ the loop
    def outputs(self) -> Iterator[tuple]:
        """Each output frame's code planes, in order (the pump writes them); :attr:`summary`
        is set once the last one was yielded."""
        ray = self.ray
        began = time.monotonic()
        state = self.clip_state()
        fmt = self.fmt
        out: dict[Any, _Job] = {}  # object ref -> job
        done: dict[int, dict] = {}  # the reorder buffer: segment index -> its result
        next_send = next_write = 0
        last: int | None = None  # number of segments, once the clip has ended
        written = 0

        def send(job: _Job) -> None:
            load = collections.Counter(j.worker for j in out.values())
            choices = sorted(self.alive, key=lambda w: (load[w], w))
            if not choices:
                raise SegmentFailed(f"every worker has died; segment {job.index} ({frames_text(job.segment)}) "
                                    "and the ones after it were not computed; check the nodes (`ray status`)")
            job.worker, job.attempts = choices[0], job.attempts + 1
            ref = self.actors[job.worker].render.remote(job.segment, job.num_frames, job.inputs, fmt, self.cuts, state)
            out[ref] = job

        while last is None or next_write < last:
            while last is None and next_send < next_write + self.limit:
                found = self.feed.segment(next_send)
                if found is None:
                    last = next_send
                    break
                segment, num_frames = found
                if self.kept(segment.outputs):  # a resumed job's journal holds these frames
                    done[next_send] = {"codes": [None] * len(segment.outputs)}
                else:
                    inputs: Any = str(self.src)
                    if self.transport == "store":
                        inputs = ray.put(self.inputs(segment.inputs))
                    send(_Job(next_send, segment, num_frames, inputs))
                self.feed.release(segment)
                next_send += 1
            if last is not None and next_write >= last:
                break
            waited = time.monotonic()
            ready, _ = ray.wait(list(out), num_returns=1, timeout=1.0)
            self.waiting += time.monotonic() - waited
            for ref in ready:
                job = out.pop(ref)
                result = self.result(ref, job, send)
                if result is not None:
                    done[job.index] = result
                    stat = self.stats[job.worker]
                    stat.node, stat.segments = result["node"], stat.segments + 1
                    stat.frames += len(result["codes"])
                    stat.seconds += result["seconds"]
            while next_write in done:
                result = done.pop(next_write)
                for planes in result["codes"]:
                    yield planes
                    written += 1
                next_write += 1
        if written != self.feed.read or not self.feed.ended:
            raise InternalError(f"the distributed run wrote {written} frames of {self.feed.read} read")
        busy = time.monotonic() - began - self.waiting
        self.summary = RunSummary(None, written, next_write, 0.0, self.stats, self.retried, busy,
                                  self.sent_frames, self.sent_bytes, bool(self.packed))

    def result(self, ref, job: _Job, send: Callable[[_Job], None]) -> dict | None:
        """The segment's result, or None after sending it again; raises when it cannot be had."""
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, SuperResError):
                raise cause from None
            raise InternalError(
                f"segment {job.index} ({frames_text(job.segment)}) failed on worker {job.worker} "
                f"({self.stats[job.worker].node}): {type(cause).__name__ if cause else 'error'}: {cause or exc}") from exc
        except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.NodeDiedError) as exc:
            self.alive.discard(job.worker)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if job.attempts > self.retries:
                raise SegmentFailed(
                    f"segment {job.index} ({frames_text(job.segment)}) failed {job.attempts} times: its worker "
                    f"or node died each time (last: {reason}); check the nodes (`ray status`, their logs under "
                    "/tmp/ray), or allow more with retries=N") from None
            log.warning("segment %d (%s) is sent to another worker: worker %d died (%s)",
                        job.index, frames_text(job.segment), job.worker, reason)
            self.retried += 1
            send(job)
            return None
