"""The engine's facade: one object that runs any registered model on frames.

:class:`Upscaler` puts the runtime's parts together: :mod:`.loading` (model, weights, runner),
:mod:`.devices` (device, precision, the per-device ticket pool), :mod:`.spatial` (tiles and the
out-of-memory fallback) and :mod:`.windows` (the one window scheduler). Hosts only translate
their types to the frame contract (``[T, 3, H, W]`` float RGB in [0, 1]) and call one of:

- :meth:`Upscaler.upscale` -- a whole batch of frames in memory;
- :meth:`Upscaler.stream` -- an iterator of frames, bounded memory (CLI, FFmpeg bridge);
- :meth:`Upscaler.frames_needed` / :meth:`Upscaler.render_frame` -- random access by frame
  number (VapourSynth), with each window computed once and cached;
- :meth:`Upscaler.render_segment` -- one :class:`~.windows.ClipSegment` of a split clip
  (a distributed worker).

Concurrency: an ``Upscaler`` may be called from several threads. Model calls take a ticket of
the device's pool (:func:`.devices.device_slots`), so threads never multiply peak memory;
tile sizes are chosen per call and never written back; the window caches are locked;
``render_frame`` runs on the device's engine thread (:mod:`.engine_threads`), so many callers
share one OpenMP team.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch

from vs_superres.contracts.descriptor import ModelDescriptor
from vs_superres.contracts.errors import Cancelled, InvalidOption, SuperResError, UnsupportedFormat
from vs_superres.contracts.frames import as_frames
from vs_superres.contracts.progress import CancelFn, Progress, ProgressFn
from vs_superres.contracts.runners import ClipRunner, SteppingRunner
from vs_superres.runtime.allocator import keep_freed_memory, release_freed_memory
from vs_superres.runtime.devices import device_slots, free_memory_bytes, resolve_device, resolve_dtype
from vs_superres.runtime.engine_options import ENGINE_OPTIONS, options_help, settle
from vs_superres.runtime.engine_threads import engine_threads
from vs_superres.runtime.loading import load_runner, resolve_model
from vs_superres.runtime.spatial import auto_tile, run_with_oom_fallback
from vs_superres.runtime.windows import ClipSegment, SceneStarts, SceneStartsLike, TemporalWindowPlan, WindowStream

log = logging.getLogger("vs_superres")


class _WindowCache:
    """Bounded LRU of computed windows; concurrent requests for one window wait for it."""

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self._lock = threading.Lock()
        self._done: collections.OrderedDict = collections.OrderedDict()
        self._pending: dict = {}

    def get_or_compute(self, key, compute: Callable[[], Any]) -> Any:
        while True:
            with self._lock:
                if key in self._done:
                    self._done.move_to_end(key)
                    return self._done[key]
                event = self._pending.get(key)
                if event is None:
                    event = self._pending[key] = threading.Event()
                    owner = True
                else:
                    owner = False
            if not owner:
                event.wait()
                continue  # computed (or failed: then this caller computes it again)
            try:
                value = compute()
                with self._lock:
                    self._done[key] = value
                    while len(self._done) > self.capacity:
                        self._done.popitem(last=False)
                return value
            finally:
                with self._lock:
                    self._pending.pop(key, None)
                event.set()

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._done

    def clear(self) -> None:
        with self._lock:
            self._done.clear()


class _FrameIntake:
    """Each frame a caller streams in, put into the frame contract; one clip keeps one size.

    This is where a streamed frame is checked, once: what it yields goes on to the model
    through the trusting internal paths (:meth:`Upscaler._process`).

    A frame of another size would otherwise fail deep inside torch (``torch.stack``) in a
    window that mixes both, and a batch handed in as one item would lose all but its first
    frame; both are the caller's to fix, so they are refused here with the frame's number.
    """

    def __init__(self, bit_depth: int | None):
        self.bit_depth = bit_depth
        self.size: tuple[int, int] | None = None
        self.count = 0

    def __call__(self, frame) -> torch.Tensor:
        t = as_frames(frame, bit_depth=self.bit_depth)
        n, self.count = self.count, self.count + 1
        if t.shape[0] != 1:
            raise UnsupportedFormat(
                f"stream() takes one frame per item, but item {n} holds {t.shape[0]} frames "
                f"(shape {tuple(t.shape)}); iterate over the batch, or pass it to upscale()")
        size = (t.shape[-1], t.shape[-2])
        if self.size is None:
            self.size = size
        elif size != self.size:
            raise UnsupportedFormat(
                f"frame {n} is {size[0]}x{size[1]}, but the clip started with {self.size[0]}x{self.size[1]} "
                "frames; every frame of one clip must have the same size: resize them to one size "
                "first, or upscale each size as a clip of its own")
        return t[0]


def _open_only(method):
    """Refuse calls on a closed :class:`Upscaler` with a message instead of a ``TypeError``."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        self._require_open()
        return method(self, *args, **kwargs)

    return guarded


class _DocumentedOptions(type):
    """``help(Upscaler)`` lists every registered family's options, read from their declarations."""

    @property
    def __doc__(cls) -> str:  # type: ignore[override]
        return getattr(cls, "_doc", "") + "\n    Engine options:\n" + "\n".join(ENGINE_OPTIONS.help_lines("        ")) + \
            "\n\n    Model options, by family:\n" + options_help(indent="        ")


class Upscaler(metaclass=_DocumentedOptions):
    _doc = """Run a super-resolution model on frames.

    Args:
        model: a registered model name (``superres models list``), a descriptor, or a
            checkpoint path.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:<i>`` or ``mps``.
        dtype: ``fp32``, ``fp16`` or ``bf16``; checked against the model and the device.
        tile: tile side in input pixels; ``None`` picks one from free memory, ``0`` disables
            tiling.
        overlap: tile overlap in input pixels (default: the model's).
        window, window_overlap: temporal window length and overlap in frames for video
            models (defaults: the model's).
        weights: explicit weight file path(s), bypassing the search.
        batch: frames per forward pass for image models.
        progress: called with a :class:`~vs_superres.contracts.progress.Progress` between
            tiles and windows.
        cancel: returns True to stop; checked between tiles and windows.
        options: the model family's options (below); unknown ones fail by name.
    """

    def __init__(
        self,
        model: str | Path | ModelDescriptor,
        *,
        device: str = "auto",
        dtype: str = "fp32",
        tile: int | None = None,
        overlap: int | None = None,
        window: int | None = None,
        window_overlap: int | None = None,
        weights: str | Path | Sequence[str | Path] | None = None,
        batch: int = 1,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        cache_windows: int = 3,
        **options,
    ):
        desc, state_dict = resolve_model(model)
        if state_dict is not None:
            weights = None
        keep_freed_memory()  # or every frame's tensors fault in as fresh pages (runtime.allocator)
        self.descriptor = desc
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device, desc.precisions, desc.name)
        settled = settle(desc, tile=tile, overlap=overlap, window=window, window_overlap=window_overlap, batch=batch)
        self.tile, self.overlap, self.batch = settled.tile, settled.overlap, settled.batch
        self.window, self.window_overlap = settled.window, settled.window_overlap
        self.progress = progress
        self.cancel = cancel
        explicit = [weights] if isinstance(weights, (str, os.PathLike)) else list(weights or [])
        self._runner = load_runner(desc, device=self.device, dtype=self.dtype, weights=explicit,
                                   options=options, state_dict=state_dict)
        self._clip_runner = desc.kind == "video" and isinstance(self._runner, ClipRunner)
        self._stepping = (not self._clip_runner and isinstance(self._runner, SteppingRunner)
                          and bool(self._runner.reports_steps))
        self._slots = device_slots(self.device)
        self._cache = _WindowCache(cache_windows)
        self._clip_cache = _WindowCache(2)

    # ----------------------------------------------------------------- running
    @property
    def scale(self) -> int:
        return self.descriptor.scale

    def _require_open(self) -> None:
        if self._runner is None:
            raise SuperResError(
                f"this Upscaler ({self.descriptor.name}) was closed, which released its model; "
                "create a new Upscaler, or use this one only inside its `with` block")

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("cancelled by the caller")

    def _report(self, done: int, total: int | None, phase: str, unit: str = "frames") -> None:
        if self.progress:
            self.progress(Progress(done, total or 0, phase, unit))

    def _tile_for(self, x: torch.Tensor) -> int:
        T, _, H, W = x.shape
        if self.tile == 0:
            return max(H, W)
        if self.tile is not None:
            if self.tile % self.descriptor.alignment:
                raise InvalidOption(
                    f"tile {self.tile} must be a multiple of {self.descriptor.alignment} for {self.descriptor.name}",
                    option="tile", model=self.descriptor.name,
                )
            return self.tile
        return auto_tile(
            H, W, T, self.descriptor.bytes_per_pixel, free_memory_bytes(self.device),
            self.descriptor.alignment, torch.finfo(self.dtype).bits // 8,
        )

    def _forward(self, x: torch.Tensor, **runner_kwargs) -> torch.Tensor:
        with self._slots, torch.no_grad():
            y = self._runner(x.to(self.device, self.dtype), **runner_kwargs)
            return y.float().clamp_(0, 1).cpu()

    @_open_only
    def process(self, frames: torch.Tensor, phase: str = "upscale", runner_kwargs: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Run the model once on ``[T,3,H,W]`` frames (one window, or a batch of images).

        ``runner_kwargs`` go to the runner (a clip runner's ``clip_state`` and ``frame_indices``).
        """
        return self._process(as_frames(frames), phase, runner_kwargs)

    @_open_only  # a stream closed midway stops with the message, not a TypeError
    def _process(self, x: torch.Tensor, phase: str = "upscale", runner_kwargs: Mapping[str, Any] | None = None) -> torch.Tensor:
        """:meth:`process` for frames already in the frame contract (checked where they came in)."""
        self.descriptor.check_size(x.shape[-2], x.shape[-1])
        forward: Callable[[torch.Tensor], torch.Tensor] = functools.partial(self._forward, **(runner_kwargs or {}))
        if not self.descriptor.tileable:
            # The model tiles (and handles its own out-of-memory) inside; splitting its input
            # into pixel tiles here would bypass that.
            self._check_cancel()
            if self._stepping and "on_step" not in (runner_kwargs or {}):
                forward = functools.partial(self._forward, on_step=self._step_reporter(phase), **(runner_kwargs or {}))
            return forward(x)

        def on_tile(p: Progress) -> None:
            self._check_cancel()
            if p.total > 1:
                self._report(p.done, p.total, f"{phase}: tiles", "tiles")

        def on_shrink(t: int) -> None:  # this call only: other threads keep their own tile
            log.warning("out of memory: retrying %s with %dx%d tiles", self.descriptor.name, t, t)

        return run_with_oom_fallback(
            forward, x, scale=self.scale, tile=self._tile_for(x), overlap=self.overlap,
            alignment=self.descriptor.alignment, on_tile=on_tile, on_shrink=on_shrink,
        )

    @_open_only
    def upscale(self, frames, scene_starts: SceneStartsLike | None = None, *, bit_depth: int | None = None) -> torch.Tensor:
        """Upscale frames held in memory; returns ``[T, 3, s*H, s*W]`` float32 on the CPU.

        ``frames``: anything :func:`~vs_superres.contracts.frames.as_frames` takes; integer
        frames other than uint8 need ``bit_depth`` (10 for 10-bit data in uint16, ...).
        ``scene_starts``: where scenes start (:meth:`SceneStarts.of <.windows.SceneStarts.of>`:
        per-frame flags, a set of frame indices, or a ``{frame: flag}`` mapping).
        """
        x = as_frames(frames, bit_depth=bit_depth)
        return torch.stack(list(self._stream(iter(x), None, SceneStarts.of(scene_starts), x.shape[0])))

    def plan(self, num_frames: int) -> TemporalWindowPlan:
        """The clip's window plan; a clip shorter than a window is one window of its own length."""
        return TemporalWindowPlan.for_clip(num_frames, self.window, self.window_overlap)

    # ----------------------------------------------------------------- streaming
    def stream(
        self,
        frames: Iterable,
        *,
        scene_starts: SceneStartsLike | None = None,
        total: int | None = None,
        bit_depth: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Upscale an iterator of frames, yielding ``[3, s*H, s*W]`` frames in order.

        Each item is one frame (``[3, H, W]``, ``[H, W, 3]`` or ``[1, 3, H, W]``), all of one
        size; integer frames other than uint8 need ``bit_depth``. Memory stays bounded by one
        window of input and output frames, whatever the clip length. ``total`` is the clip's
        frame count when known: progress uses it, and a clip runner whose state is computed
        from frames spread over the clip (UltraVSR's CLIP-IQA estimate) needs it to choose them.
        ``scene_starts`` as in :meth:`upscale`.
        """
        self._require_open()
        yield from self._stream(frames, _FrameIntake(bit_depth), SceneStarts.of(scene_starts), total)

    def _stream(self, frames: Iterable, intake: Callable[[Any], torch.Tensor] | None, scene_starts: SceneStarts,
                total: int | None) -> Iterator[torch.Tensor]:
        """:meth:`stream`; ``intake`` checks each frame (None: ``[3,H,W]`` frames of the contract)."""
        if intake is not None:
            frames = map(intake, frames)
        if self.descriptor.kind == "image":
            yield from self._stream_images(frames, total)
            return
        ws = WindowStream(frames, self.window, self.window_overlap)
        state = None
        if self._clip_runner:
            needed = self._runner.clip_frames(total)
            if needed:
                ws.fill(max(needed))  # bounded: the runner names frames near the clip start
                if ws.num_frames is not None and max(needed) >= ws.num_frames:  # shorter than announced
                    needed = self._runner.clip_frames(ws.num_frames)
            state = self._clip_state({i: ws.get(i) for i in needed}, ws.num_frames if ws.num_frames is not None else total)

        def compute(plan: TemporalWindowPlan, k: int, get) -> torch.Tensor:
            return self._compute_window(plan, k, get, scene_starts, state)

        yield from ws.run(compute, on_emitted=lambda n: self._report(n, total, "frames"))

    def _stream_images(self, frames: Iterable, total: int | None) -> Iterator[torch.Tensor]:
        batch: list[torch.Tensor] = []
        done = 0
        for f in frames:
            batch.append(f)
            if len(batch) == self.batch:
                yield from self._emit_batch(batch)
                done += len(batch)
                batch = []
                self._report(done, total, "frames")
        if batch:
            yield from self._emit_batch(batch)
            self._report(done + len(batch), total, "frames")

    def _emit_batch(self, batch: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        self._check_cancel()
        yield from self._process(torch.stack(batch))

    def _clip_state(self, frames: Mapping[int, torch.Tensor], num_frames: int | None) -> Any:
        with self._slots, torch.no_grad():
            return self._runner.clip_state(frames, num_frames)

    def _compute_window(self, plan: TemporalWindowPlan, k: int, get: Callable[[int], torch.Tensor], scene_starts: SceneStarts,
                        state=None) -> torch.Tensor:
        """The model's output for every position of window ``k`` (scene segments merged)."""
        self._check_cancel()
        out = None
        for seg in plan.segments(k, scene_starts):
            x = torch.stack([get(i) for i in seg.inputs])
            kwargs = None
            if self._clip_runner:
                kwargs = {"clip_state": state, "frame_indices": seg.inputs, "on_step": self._step_reporter(f"window {k}")}
            y = self._process(x, phase=f"window {k}", runner_kwargs=kwargs)
            if out is None:
                out = y if (seg.start, seg.stop) == (0, plan.length) else torch.empty_like(y)
            out[seg.start:seg.stop] = y[seg.start:seg.stop]
        assert out is not None  # a window has at least one segment
        return out

    def _step_reporter(self, phase: str) -> ProgressFn:
        """A clip or stepping runner's ``on_step``: cancellation check and progress between
        its tiles or steps."""

        def on_step(p: Progress) -> None:
            self._check_cancel()
            if p.total > 1:
                self._report(p.done, p.total, f"{phase}: {p.phase}", p.unit)

        return on_step

    # ----------------------------------------------------------------- random access
    @_open_only
    def clip_frames(self, num_frames: int) -> list[int]:
        """Source frames the per-clip state is computed from (``[]`` for most models)."""
        return list(self._runner.clip_frames(num_frames)) if self._clip_runner else []

    @_open_only
    def clip_state(self, num_frames: int, frames: Mapping[int, torch.Tensor]) -> Any:
        """The per-clip state from the frames of :meth:`clip_frames` (computed once, cached)."""
        return self._cached_clip_state(num_frames, self._getter(frames, "clip_state", "clip_frames"))

    def _cached_clip_state(self, num_frames: int, get: Callable[[int], torch.Tensor]) -> Any:
        if not self._clip_runner:
            return None
        return self._clip_cache.get_or_compute(
            ("clip", num_frames), lambda: self._clip_state({i: get(i) for i in self.clip_frames(num_frames)}, num_frames))

    @_open_only
    def frames_needed(self, n: int, num_frames: int) -> list[int]:
        """Input frames that output frame ``n`` depends on (what a host must fetch)."""
        if self.descriptor.kind == "image":
            if not 0 <= n < num_frames:
                raise InvalidOption(f"frame {n} is outside the clip (0..{num_frames - 1})", model=self.descriptor.name)
            return [n]
        needed = self.plan(num_frames).frames_needed(n)
        if self._clip_runner and ("clip", num_frames) not in self._clip_cache:
            # Until the clip state exists every request carries its frames, so whichever frame
            # is asked for first can compute it.
            needed = sorted(set(needed).union(self.clip_frames(num_frames)))
        return needed

    @_open_only
    def render_frame(self, n: int, num_frames: int, frames: Mapping[int, torch.Tensor],
                     scene_start: SceneStartsLike | None = None) -> torch.Tensor:
        """Output frame ``n`` from the fetched input ``frames`` (``{index: [3,H,W]}``) and the
        scene starts among them (as in :meth:`upscale`, e.g. ``{index: flag}``).

        Each window is computed once and kept in a bounded cache; threads asking for a
        window that is being computed wait for it. The result never depends on the order in
        which frames are requested. The work runs on the device's engine thread
        (:mod:`.engine_threads`), whichever thread calls: one OpenMP team however many call.
        """
        return engine_threads(self.device).run(self._render_frame, n, num_frames, frames, scene_start)

    def _render_frame(self, n: int, num_frames: int, frames: Mapping[int, torch.Tensor],
                      scene_start: SceneStartsLike | None) -> torch.Tensor:
        if self.descriptor.kind == "image":
            return self._process(as_frames(frames[n]))[0]
        plan = self.plan(num_frames)
        starts = SceneStarts.of(scene_start)
        get = self._getter(frames, f"render_frame({n})", f"frames_needed({n})")
        state = self._cached_clip_state(num_frames, get)
        outputs = {}
        for k in plan.windows_of(n):
            # The key carries the frames' scene flags: a window is only shared by requests
            # that agree on where its cuts are.
            cuts = tuple(i for i in plan.frames_of(k) if starts.starts(i))
            win = self._cache.get_or_compute((num_frames, k, cuts), functools.partial(self._compute_window, plan, k, get, starts, state))
            outputs[k] = win[plan.position(k, n)]
        return plan.crossfade(n, outputs)

    @_open_only
    def render_segment(self, segment: ClipSegment, num_frames: int, frames: Mapping[int, torch.Tensor],
                       scene_starts: SceneStartsLike | None = None,
                       clip_state: Any = None) -> Iterator[torch.Tensor]:
        """The output frames ``segment.outputs`` of a clip split by :meth:`TemporalWindowPlan.split`,
        from its input frames ``{index: [3,H,W]}`` (``segment.inputs``), the clip's scene starts
        (as in :meth:`upscale`) and the clip state (computed once for the clip, e.g. by
        :meth:`clip_state`)."""
        plan = self.plan(num_frames)
        starts = SceneStarts.of(scene_starts)
        get = self._getter(frames, "render_segment", "segment.inputs")
        windows = {k: self._compute_window(plan, k, get, starts, clip_state) for k in segment.windows}
        for n in segment.outputs:
            yield plan.crossfade(n, {k: windows[k][plan.position(k, n)] for k in plan.windows_of(n)})

    @staticmethod
    def _getter(frames: Mapping[int, torch.Tensor], who: str, fetch: str) -> Callable[[int], torch.Tensor]:
        def get(i: int) -> torch.Tensor:
            try:
                return as_frames(frames[i])[0]
            except KeyError:
                raise SuperResError(f"{who} needs input frame {i}; fetch {fetch} first") from None

        return get

    def close(self) -> None:
        """Drop the model and cached windows (hosts call this when freeing the filter).

        Safe to call twice; any later call on this object raises a :class:`SuperResError`.
        """
        self._cache.clear()
        self._clip_cache.clear()
        self._runner = None
        release_freed_memory()  # what was kept for the next frame (runtime.allocator)

    def __enter__(self) -> "Upscaler":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
