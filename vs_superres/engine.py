"""The engine: one object that runs any registered model on frames.

:class:`Upscaler` resolves the model (registry name or checkpoint path), its weights, the
device and precision, then runs frames through spatial tiling and, for video models, through
temporal windows. Hosts only translate their types to the frame contract
(``[T, 3, H, W]`` float RGB in [0, 1]) and call one of:

- :meth:`Upscaler.upscale` -- a whole batch of frames in memory;
- :meth:`Upscaler.stream` -- an iterator of frames, bounded memory (CLI, FFmpeg bridge);
- :meth:`Upscaler.frames_needed` / :meth:`Upscaler.render_frame` -- random access by frame
  number (VapourSynth), with each window computed once and cached.

Video models whose runner is a *clip runner* (see :class:`ClipRunner`) also get per-clip state
(UltraVSR's degradation factor and prompt), computed once per clip from the frames the runner
names and handed to every window, so no window border changes it.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import torch

from . import registry, weights as weights_mod
from .devices import resolve_device, resolve_dtype, free_memory_bytes
from .errors import Cancelled, SuperResError
from .frames import as_frames
from .registry import ModelDescriptor
from .temporal import TemporalWindowPlan
from .tiling import auto_tile, run_with_oom_fallback

log = logging.getLogger("vs_superres")

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]


def descriptor_from_checkpoint(path: Path) -> tuple[ModelDescriptor, dict]:
    """Build a descriptor for an unregistered checkpoint by reading its shapes."""
    sd = weights_mod.load_state_dict(path)
    tried = []
    registry._ensure_builtin()
    for arch in registry._ARCHITECTURES.values():
        if arch.config_from_state_dict is None:
            continue
        try:
            config = arch.config_from_state_dict(sd)
        except (KeyError, ValueError, IndexError) as e:
            tried.append(f"{arch.name}: {e}")
            continue
        base = next(
            (m for m in registry.list_models() if m.architecture == arch.name), None
        )
        fields = dict(
            name=path.stem,
            architecture=arch.name,
            config=config,
            scale=int(config.get("upscale", config.get("scale", 1))),
            weights=(registry.WeightFile(relpath=path.name, sha256=None),),
            description=f"{arch.name} checkpoint {path.name}",
        )
        if base is not None:
            for f in ("kind", "alignment", "precisions", "tileable", "default_overlap", "bytes_per_pixel", "window", "window_overlap", "licence", "tiling_options", "min_size"):
                fields.setdefault(f, getattr(base, f))
        return ModelDescriptor(**fields), sd
    raise SuperResError(
        f"{str(path)!r} does not match any known architecture "
        f"({'; '.join(tried) or 'none can read state dicts'}); pass a registered model name "
        "(see `superres models list`)"
    )


@runtime_checkable
class ClipRunner(Protocol):
    """A video runner with per-clip state (see ``docs/design.md``).

    ``clip_frames(num_frames)`` lists the source frames the state is computed from (``[]`` when
    none are needed; ``num_frames`` may be ``None`` when the length is unknown, and a runner
    that then cannot choose raises a :class:`SuperResError` saying what to pass instead).
    ``clip_state(frames, num_frames)`` computes the state from ``{index: [3, H, W]}``.
    The runner is then called as ``runner(x, clip_state=state, frame_indices=indices,
    on_step=fn)``, with the source index of every frame of the window; it calls
    ``on_step(done, total, what)`` between its own tiles (cancellation and progress).
    """

    def clip_frames(self, num_frames: int | None) -> list[int]: ...

    def clip_state(self, frames: Mapping[int, torch.Tensor], num_frames: int) -> Any: ...

    def __call__(
        self, x: torch.Tensor, *, clip_state: Any, frame_indices: Sequence[int], on_step: Callable[[int, int, str], None]
    ) -> torch.Tensor: ...


class _WindowCache:
    """Bounded LRU of computed windows; concurrent requests for one window wait for it."""

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self._lock = threading.Lock()
        self._done: collections.OrderedDict = collections.OrderedDict()
        self._pending: dict = {}

    def get_or_compute(self, key, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
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


class Upscaler:
    """Run a super-resolution model on frames.

    Args:
        model: a registered model name (``superres models list``) or a checkpoint path.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:<i>`` or ``mps``.
        dtype: ``fp32``, ``fp16`` or ``bf16``; checked against the model and the device.
        tile: tile side in input pixels; ``None`` picks one from free memory, ``0`` disables
            tiling.
        overlap: tile overlap in input pixels (default: the model's).
        window, window_overlap: temporal window length and overlap in frames for video
            models (defaults: the model's).
        weights: explicit weight file path(s), bypassing the search.
        batch: frames per forward pass for image models.
        progress: ``progress(done, total, phase)`` called between tiles and windows.
        cancel: returns True to stop; checked between tiles and windows.
        options: model-specific options (e.g. UltraVSR's ``strength``); unknown ones fail.
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
        state_dict = None
        if isinstance(model, ModelDescriptor):
            desc = model
        else:
            text = str(model)
            as_path = Path(text)
            if as_path.suffix in (".pth", ".pt", ".ckpt", ".safetensors", ".bin") or as_path.is_file():
                if not as_path.is_file():
                    raise SuperResError(f"model file {text!r} does not exist")
                desc, state_dict = descriptor_from_checkpoint(as_path)
                weights = [as_path]
            else:
                desc = registry.get_model(text)
        self.descriptor = desc
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device, desc.precisions, desc.name)
        if not desc.tileable and (tile not in (None, 0) or overlap is not None):
            own = f"; set its own tiling options instead ({', '.join(desc.tiling_options)})" if desc.tiling_options else ""
            raise SuperResError(f"tile and overlap do not apply to {desc.name}: it tiles by itself{own}")
        self.tile = self._check_int("tile", tile, 0, None) if tile is not None else None
        self.overlap = self._check_int("overlap", desc.default_overlap if overlap is None else overlap, 0, None)
        self.batch = self._check_int("batch", batch, 1, None)
        if desc.kind == "video":
            length = self._check_int("window", desc.window if window is None else window, 1, None)
            ov = desc.window_overlap if window_overlap is None else window_overlap
            self.window = length
            self.window_overlap = self._check_int("window_overlap", min(ov, length - 1) if window_overlap is None else ov, 0, length - 1)
        else:
            for name, val in (("window", window), ("window_overlap", window_overlap)):
                if val not in (None, 0, 1) or (name == "window_overlap" and val not in (None, 0)):
                    raise SuperResError(f"{name} applies to video models only; {desc.name} is an image model")
            self.window, self.window_overlap = 1, 0
        self.progress = progress
        self.cancel = cancel
        self._runner = self._load(desc, weights, state_dict, options)
        self._clip_runner = desc.kind == "video" and isinstance(self._runner, ClipRunner)
        self._cache = _WindowCache(cache_windows)
        self._clip_cache = _WindowCache(2)
        self._run_lock = threading.Lock()

    # ----------------------------------------------------------------- set-up helpers
    @staticmethod
    def _check_int(name: str, value, lo: int, hi: int | None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SuperResError(f"{name} must be an integer, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise SuperResError(f"{name} must be {rng}, got {value}")
        return value

    def _weight_paths(self, desc: ModelDescriptor, weights) -> list[Path]:
        explicit = [weights] if isinstance(weights, (str, Path)) else list(weights or [])
        if explicit and len(explicit) != len(desc.weights):
            raise SuperResError(
                f"{desc.name} needs {len(desc.weights)} weight file(s) "
                f"({', '.join(w.relpath for w in desc.weights)}), got {len(explicit)}"
            )
        return [
            weights_mod.resolve(wf, explicit[i] if explicit else None, model_name=desc.name)
            for i, wf in enumerate(desc.weights)
        ]

    def _load(self, desc: ModelDescriptor, weights, state_dict, options) -> Callable[[torch.Tensor], torch.Tensor]:
        arch = registry.architecture(desc.architecture)
        if arch.load is not None:
            return arch.load(desc, self.device, self.dtype, weights, **options)
        if options:
            raise SuperResError(
                f"{desc.name} takes no model options; got {', '.join(sorted(options))}"
            )
        if state_dict is None:
            paths = self._weight_paths(desc, weights)
            state_dict = weights_mod.load_state_dict(paths[0]) if paths else None
        net = arch.build(desc.config)
        if state_dict is not None:
            missing, unexpected = _compare_keys(net.state_dict(), state_dict)
            if missing or unexpected:
                raise SuperResError(
                    f"the checkpoint does not fit {desc.name} ({desc.architecture}): "
                    f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                    f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
                )
            try:
                net.load_state_dict(state_dict, strict=True)
            except RuntimeError as e:
                raise SuperResError(
                    f"the checkpoint's tensor shapes do not fit {desc.name}: {str(e).splitlines()[-1].strip()}"
                ) from None
        net = net.eval().to(self.device, self.dtype)
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    # ----------------------------------------------------------------- running
    @property
    def scale(self) -> int:
        return self.descriptor.scale

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("cancelled by the caller")

    def _tile_for(self, x: torch.Tensor) -> int:
        T, _, H, W = x.shape
        if self.tile == 0:
            return max(H, W)
        if self.tile is not None:
            if self.tile % self.descriptor.alignment:
                raise SuperResError(
                    f"tile {self.tile} must be a multiple of {self.descriptor.alignment} for {self.descriptor.name}"
                )
            return self.tile
        return auto_tile(
            H, W, T, self.descriptor.bytes_per_pixel, free_memory_bytes(self.device),
            self.descriptor.alignment, torch.finfo(self.dtype).bits // 8,
        )

    def _forward(self, x: torch.Tensor, **runner_kwargs) -> torch.Tensor:
        with torch.no_grad():
            y = self._runner(x.to(self.device, self.dtype), **runner_kwargs)
            return y.float().clamp_(0, 1).cpu()

    def process(self, frames: torch.Tensor, phase: str = "upscale", runner_kwargs: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Run the model once on ``[T,3,H,W]`` frames (one window, or a batch of images).

        ``runner_kwargs`` go to the runner (a clip runner's ``clip_state`` and ``frame_indices``).
        """
        x = as_frames(frames)
        self.descriptor.check_size(x.shape[-2], x.shape[-1])
        forward = functools.partial(self._forward, **(runner_kwargs or {}))
        if not self.descriptor.tileable:
            # The model tiles (and handles its own out-of-memory) inside; splitting its input
            # into pixel tiles here would bypass that.
            self._check_cancel()
            return forward(x)
        tile = self._tile_for(x)

        def on_tile(done: int, total: int) -> None:
            self._check_cancel()
            if self.progress and total > 1:
                self.progress(done, total, f"{phase}: tiles")

        def on_shrink(t: int) -> None:
            log.warning("out of memory: retrying %s with %dx%d tiles", self.descriptor.name, t, t)
            self.tile = t

        return run_with_oom_fallback(
            forward, x, scale=self.scale, tile=tile, overlap=self.overlap,
            alignment=self.descriptor.alignment, on_tile=on_tile, on_shrink=on_shrink,
        )

    def upscale(self, frames, scene_starts: Sequence[bool] | None = None) -> torch.Tensor:
        """Upscale frames held in memory; returns ``[T, 3, s*H, s*W]`` float32 on the CPU."""
        x = as_frames(frames)
        return torch.stack(list(self.stream(iter(x), scene_starts=scene_starts, total=x.shape[0])))

    def plan(self, num_frames: int) -> TemporalWindowPlan:
        """The clip's window plan; a clip shorter than a window is one window of its own length."""
        length = min(self.window, num_frames) if num_frames > 0 else self.window
        return TemporalWindowPlan(num_frames, length, min(self.window_overlap, length - 1))

    # ----------------------------------------------------------------- streaming
    def stream(
        self,
        frames: Iterable,
        *,
        scene_starts: Sequence[bool] | Callable[[int], bool] | None = None,
        total: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Upscale an iterator of frames, yielding ``[3, s*H, s*W]`` frames in order.

        Memory stays bounded by one window of input and output frames, whatever the clip
        length. ``total`` (if known) is used only for progress.
        """
        if self.descriptor.kind == "image":
            yield from self._stream_images(frames, total)
            return
        yield from self._stream_windows(frames, scene_starts, total)

    def _stream_images(self, frames: Iterable, total: int | None) -> Iterator[torch.Tensor]:
        batch: list[torch.Tensor] = []
        done = 0
        for f in frames:
            batch.append(as_frames(f)[0])
            if len(batch) == self.batch:
                yield from self._emit_batch(batch)
                done += len(batch)
                batch = []
                self._report(done, total)
        if batch:
            yield from self._emit_batch(batch)
            self._report(done + len(batch), total)

    def _emit_batch(self, batch: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        self._check_cancel()
        out = self.process(torch.stack(batch))
        yield from out

    def _report(self, done: int, total: int | None) -> None:
        if self.progress:
            self.progress(done, total or 0, "frames")

    def _stream_windows(self, frames, scene_starts, total) -> Iterator[torch.Tensor]:
        L, O = self.window, self.window_overlap
        S = L - O
        it = iter(frames)
        buf: dict[int, torch.Tensor] = {}
        acc: dict[int, list] = {}
        n_read, N = 0, None

        def fill(upto: int) -> None:
            nonlocal n_read, N
            while N is None and n_read <= upto:
                try:
                    f = next(it)
                except StopIteration:
                    N = n_read
                    if N == 0:
                        raise SuperResError("the clip has no frames") from None
                    return
                buf[n_read] = as_frames(f)[0]
                n_read += 1

        state = None
        if self._clip_runner:
            needed = self._runner.clip_frames(total)
            if needed:
                fill(max(needed))  # bounded: the runner names frames near the clip start
                if N is not None and max(needed) >= N:  # the stream is shorter than announced
                    needed = self._runner.clip_frames(N)
            state = self._runner.clip_state({i: buf[i] for i in needed}, N if N is not None else total)

        fill(L)
        if N is not None and N < L:  # the whole clip fits one window: one window of its length
            L, O = N, min(O, N - 1)
            S = L - O
        k, emitted = 0, 0
        while True:
            start = k * S
            fill(start + L)
            if k > 0 and not (N is None or start + O < N):
                break
            plan = TemporalWindowPlan(N if N is not None else start + L + 1, L, O)
            window_out = self._compute_window(plan, k, buf.__getitem__, scene_starts, state)
            for p in range(L):
                n = start + p
                if N is not None and n >= N:
                    break
                w = float(min(p + 1, L - p))
                if n in acc:
                    acc[n][0].add_(window_out[p], alpha=w)
                    acc[n][1] += w
                else:
                    acc[n] = [window_out[p] * w, w]
            has_next = N is None or start + S + O < N
            final_upto = start + S if has_next else N
            while emitted < final_upto:
                total_w = acc[emitted][1]
                yield acc.pop(emitted)[0] / total_w
                buf.pop(emitted, None)
                emitted += 1
            self._report(emitted, total)
            if not has_next:
                break
            k += 1

    def _compute_window(self, plan: TemporalWindowPlan, k: int, get: Callable[[int], torch.Tensor], scene_starts, state=None) -> torch.Tensor:
        """The model's output for every position of window ``k`` (scene segments merged)."""
        self._check_cancel()
        out = None
        for seg in plan.segments(k, scene_starts):
            x = torch.stack([get(i) for i in seg.inputs])
            kwargs = None
            if self._clip_runner:
                kwargs = {"clip_state": state, "frame_indices": seg.inputs, "on_step": self._step_reporter(f"window {k}")}
            y = self.process(x, phase=f"window {k}", runner_kwargs=kwargs)
            if out is None:
                out = y if (seg.start, seg.stop) == (0, plan.length) else torch.empty_like(y)
            out[seg.start:seg.stop] = y[seg.start:seg.stop]
        return out

    def _step_reporter(self, phase: str) -> Callable[[int, int, str], None]:
        """A clip runner's ``on_step``: cancellation check and progress between its tiles."""

        def on_step(done: int, total: int, what: str) -> None:
            self._check_cancel()
            if self.progress and total > 1:
                self.progress(done, total, f"{phase}: {what}")

        return on_step

    # ----------------------------------------------------------------- random access
    def frames_needed(self, n: int, num_frames: int) -> list[int]:
        """Input frames that output frame ``n`` depends on (what a host must fetch)."""
        if self.descriptor.kind == "image":
            if not 0 <= n < num_frames:
                raise SuperResError(f"frame {n} is outside the clip (0..{num_frames - 1})")
            return [n]
        needed = self.plan(num_frames).frames_needed(n)
        if self._clip_runner and ("clip", num_frames) not in self._clip_cache:
            # Until the clip state exists every request carries its frames, so whichever frame
            # is asked for first can compute it.
            needed = sorted(set(needed).union(self._runner.clip_frames(num_frames)))
        return needed

    def render_frame(self, n: int, num_frames: int, frames: Mapping[int, torch.Tensor], scene_start: Mapping[int, bool] | None = None) -> torch.Tensor:
        """Output frame ``n`` from the fetched input ``frames`` (``{index: [3,H,W]}``).

        Each window is computed once and kept in a bounded cache; threads asking for a
        window that is being computed wait for it. The result never depends on the order in
        which frames are requested.
        """
        if self.descriptor.kind == "image":
            return self.process(as_frames(frames[n]))[0]
        plan = self.plan(num_frames)
        flags = (lambda i: bool(scene_start.get(i, False))) if scene_start else None

        def get(i: int) -> torch.Tensor:
            try:
                return as_frames(frames[i])[0]
            except KeyError:
                raise SuperResError(f"render_frame({n}) needs input frame {i}; fetch frames_needed({n}) first") from None

        state = None
        if self._clip_runner:
            state = self._clip_cache.get_or_compute(
                ("clip", num_frames),
                lambda: self._runner.clip_state({i: get(i) for i in self._runner.clip_frames(num_frames)}, num_frames),
            )
        out = None
        for k, w in plan.weights_of(n):
            # The key carries the frames' scene flags: a window is only shared by requests
            # that agree on where its cuts are.
            cuts = tuple(i for i in plan.frames_of(k) if flags and flags(i))
            key = (num_frames, k, cuts)
            win = self._cache.get_or_compute(key, lambda k=k: self._compute_window(plan, k, get, flags, state))
            y = win[plan.position(k, n)] * w
            out = y if out is None else out + y
        return out

    def close(self) -> None:
        """Drop the model and cached windows (hosts call this when freeing the filter)."""
        self._cache.clear()
        self._clip_cache.clear()
        self._runner = None


def _compare_keys(expected: Mapping, got: Mapping) -> tuple[list[str], list[str]]:
    return sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
