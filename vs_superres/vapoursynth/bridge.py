"""What the native ``core.superres`` plugin calls: VapourSynth checks, then the engine.

The C plugin (``superres.c``) calls :func:`create` once per filter instance and then, from
VapourSynth's worker threads, :meth:`VSFilter.frames_needed` and :meth:`VSFilter.render`.
Frames arrive as memoryviews over VapourSynth's planes and the output is written into the
planes of the frame the plugin returns; nothing here keeps a reference to either.

The arguments a function takes are its declared options (:mod:`.signatures`, from the
engine's and the families' declarations); the plugin passes every one that was given.
A user's mistake is a :class:`~vs_superres.contracts.errors.SuperResError` whose message starts
with the function name (``superres.DITN: ...``); anything else is a bug, reported as a
``RuntimeError`` ``superres.DITN: internal error (...)`` with its traceback in VapourSynth's
log. The plugin shows the message as the VapourSynth error.
"""

from __future__ import annotations

import copy
import logging
import sys
import threading
import traceback
from typing import Any, Mapping, Sequence, TextIO

import numpy as np
import torch

from vs_superres.contracts.descriptor import PRECISIONS, ModelDescriptor
from vs_superres.contracts.errors import OutOfRangeFrames, SuperResError, render_refs
from vs_superres.runtime import registry
from vs_superres.runtime.devices import device_precisions, resolve_device
from vs_superres.runtime.engine_options import ENGINE_OPTIONS
from vs_superres.runtime.upscaler import Upscaler
from vs_superres.runtime.windows import SceneStarts
from vs_superres.vapoursynth import signatures

#: Accepted formats: VapourSynth format name -> plane dtype.
FORMATS = {"RGBS": np.float32, "RGBH": np.float16}
#: Float RGB holding 8-bit codes (0..255) instead of [0, 1], scaled in the script.
RANGE_HINT = 'if the clip holds 8-bit codes as floats, scale it first: clip = core.std.Expr(clip, "x 255 /")'


def convert_hint(fmt: str | None, height: int = 0) -> str:
    """The conversion to RGBS for a clip of format ``fmt`` (a VapourSynth format name), written
    so that it is right for that format: YUV needs its matrix (HD's BT.709 or SD's BT.601 by
    the frame height, as players assume), RGB needs none, grey must be copied to three planes."""
    if fmt and fmt.startswith("GRAY"):
        return ("convert first: clip = core.std.ShufflePlanes(core.resize.Point(clip, format=vs.GRAYS), "
                "planes=[0, 0, 0], colorfamily=vs.RGB)")
    if fmt and fmt.startswith("RGB"):
        return "convert first: clip = core.resize.Point(clip, format=vs.RGBS)"
    matrix = "709" if height >= 720 or not fmt else "170m"
    which = ("HD video's BT.709" if matrix == "709" else "SD video's BT.601") if fmt else "BT.709 for HD, 170m for SD"
    return (f'convert first: clip = core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s="{matrix}") '
            f"({which}; leave matrix_in_s out when the frames carry _Matrix)")
log = logging.getLogger("vs_superres")


class _StdoutToStderr:
    """Python-level prints go to stderr while a filter loads or renders.

    Under ``vspipe script.vpy -`` stdout is the video stream, and one stray line from a library
    (a notice, a progress line) would corrupt it. ``sys.stdout`` is process-wide and filters
    render on several VapourSynth threads at once, so the swap is reference-counted: the first
    thread in swaps, the last one out restores.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: TextIO | None = None

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0 and sys.stderr is not None:
                self._saved, sys.stdout = sys.stdout, sys.stderr
            self._depth += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._saved is not None:
                if sys.stdout is sys.stderr:  # nobody else replaced it meanwhile
                    sys.stdout = self._saved
                self._saved = None


_stdout_to_stderr = _StdoutToStderr()


def create(function: str, args: Mapping[str, Any], clip: Mapping[str, Any]) -> "VSFilter":
    """Validate one ``core.superres.<function>(clip, **args)`` call and build its filter."""
    with _stdout_to_stderr:
        return _with_name(function, VSFilter, function, dict(args), dict(clip))


def vs_spelling(name: str, value: str | None) -> str:
    """How a VapourSynth script writes option ``name`` in a message: a keyword argument in
    Python's syntax, text quoted (``device="cpu"``), a bool as VapourSynth's 0/1 (``merge_lora=0``),
    a placeholder as it is (``autoencoder=DIR``)."""
    if value is None:
        return name
    declared = {**{o.name: o for o in ENGINE_OPTIONS},
                **{o.name: o for f in registry.default_registry().families() for o in f.options}}
    kind = declared[name].type if name in declared else None
    if kind == "bool" and value.lower() in ("true", "false"):
        return f"{name}={int(value.lower() == 'true')}"
    if kind in ("str", "path") and not value.isupper():
        return f'{name}="{value}"'
    return f"{name}={value}"


def _in_vs_spelling(error: SuperResError) -> SuperResError:
    """``error`` with its option references written as a VapourSynth script writes them (the
    plugin shows ``str(error)``)."""
    error.message = render_refs(error.message, vs_spelling)
    if error.hint:
        error.hint = render_refs(error.hint, vs_spelling)
    error.args = (str(error),)
    return error


class BridgeInternalError(RuntimeError):
    """Something other than a :class:`SuperResError` escaped the engine: a bug. The plugin shows
    the message as the VapourSynth error and logs ``superres_traceback`` as a warning."""

    def __init__(self, message: str, superres_traceback: str):
        super().__init__(message)
        self.superres_traceback = superres_traceback


def _with_name(function: str, fn, *a):
    """Run ``fn``; a user error keeps its type and fields and gains the function name; anything
    else is a bug: the message says it is an internal error, and its traceback goes to
    VapourSynth's log (the plugin logs ``superres_traceback`` as a warning, which vspipe shows)
    and to the ``vs_superres`` logger at debug level."""
    prefix = f"superres.{function}"
    try:
        return fn(*a)
    except SuperResError as e:
        prefixed = e.with_prefix(prefix)
        raise _in_vs_spelling(copy.copy(prefixed) if prefixed is e else prefixed) from None
    except Exception as e:
        log.debug("%s: internal error", prefix, exc_info=True)
        raise BridgeInternalError(
            f"{prefix}: internal error ({type(e).__name__}: {e}); this is a bug in vs-superres, please "
            "report it with the VapourSynth log",
            f"{prefix}: internal error; traceback:\n" + "".join(traceback.format_exception(e)).rstrip(),
        ) from e


def _check_clip(clip: Mapping[str, Any]) -> np.dtype:
    fmt = clip["format"]
    if not fmt:
        raise SuperResError(
            "the clip has a variable format; only constant-format RGBS and RGBH clips are "
            f"supported; convert every part to one format: {convert_hint(None)}"
        )
    if fmt not in FORMATS:
        raise SuperResError(
            f"only RGBS and RGBH clips are supported, got {fmt}; {convert_hint(fmt, clip['height'])}"
        )
    if clip["width"] <= 0 or clip["height"] <= 0:
        raise SuperResError(
            "the clip has a variable frame size; only constant-size clips are supported; "
            "resize every frame to one size first (e.g. core.resize.Bicubic(clip, width=W, height=H))"
        )
    if clip["num_frames"] <= 0:
        raise SuperResError("the clip has no frames")
    return np.dtype(FORMATS[fmt])


def _pick_model(function: str, model: str | None) -> str:
    if model:
        return model
    if function == signatures.ANY_MODEL:
        names = ", ".join(m.name for m in registry.list_models())
        raise SuperResError(f"model is required; known models: {names}", option="model")
    family = signatures.family_of(function)
    if family.default_model:
        return family.default_model
    found = registry.default_registry().models_of(family.name)
    if not found:
        raise SuperResError(f"no {function} model is registered in this installation", option="model")
    return found[0].name


def _split_args(function: str, args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(engine arguments, model options)`` of a call; 0/1 ints become the booleans declared."""
    engine: dict[str, Any] = {}
    options: dict[str, Any] = {}
    declared = signatures.function_options(function)
    for name, value in args.items():
        try:
            opt = declared.get(name)
        except KeyError:  # the C plugin registered what signatures() gave: a bug, said plainly
            raise RuntimeError(f"the plugin passed argument {name!r}, which {function} does not declare") from None
        if opt.type == "bool":
            if value not in (0, 1):
                raise SuperResError(f"{name} must be 0 or 1 (False or True), got {value}", option=name)
            value = bool(value)
        (engine if name in ENGINE_OPTIONS else options)[name] = value
    return engine, options


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _check_family(function: str, desc: ModelDescriptor) -> None:
    if function == signatures.ANY_MODEL:
        return
    family = signatures.family_of(function)
    if desc.family == family.name:
        return
    same = [m.name for m in registry.default_registry().models_of(family.name)]
    raise SuperResError(
        f"model {desc.name!r} is a {desc.family} model, not {_article(function)} {function} "
        f"model; {function} models: {', '.join(same) or 'none registered'}; use "
        f"core.superres.Upscale(clip, model={desc.name!r}) for other models",
        option="model", model=desc.name,
    )


def _check_clip_for(function: str, desc: ModelDescriptor, height: int, width: int) -> None:
    """The model fits the function and accepts frames of this size."""
    _check_family(function, desc)
    desc.check_size(height, width)


class VSFilter:
    """One ``core.superres`` filter instance: a clip's geometry plus an engine."""

    def __init__(self, function: str, args: dict[str, Any], clip: Mapping[str, Any]):
        self.function = function
        self.plane_dtype = _check_clip(clip)
        self.width, self.height = int(clip["width"]), int(clip["height"])
        self.num_frames = int(clip["num_frames"])
        self.notes: list[str] = []

        model = _pick_model(function, args.pop("model", None))
        engine, options = _split_args(function, args)
        device = engine.pop("device", "auto")
        dtype = engine.pop("dtype", None) or self._default_dtype(clip["format"], model, device)
        if model in registry.default_registry():
            _check_clip_for(function, registry.get_model(model), self.height, self.width)  # before loading anything
        self.upscaler = Upscaler(model, device=device, dtype=dtype, **engine, **options)
        _check_clip_for(function, self.upscaler.descriptor, self.height, self.width)  # checkpoint paths
        if self.upscaler.descriptor.kind == "video":
            self.upscaler.plan(self.num_frames)  # window arguments against the clip length

        scale = self.upscaler.scale
        self.out_width, self.out_height = self.width * scale, self.height * scale
        self.temporal = int(self.upscaler.descriptor.kind == "video")

    def _default_dtype(self, fmt: str, model: str, device: str) -> str:
        if fmt != "RGBH":
            return "fp32"
        # RGBH asks for half precision; compute in it only where device and model support it.
        dev = resolve_device(device)
        try:
            model_precisions = registry.get_model(model).precisions
        except SuperResError:  # a checkpoint path: the engine decides
            model_precisions = PRECISIONS
        if "fp16" in device_precisions(dev) and "fp16" in model_precisions:
            return "fp16"
        self.notes.append(
            f"superres.{self.function}: RGBH input is computed in fp32 on {dev} "
            f"(fp16 is not supported there or by {model}); the output is RGBH"
        )
        return "fp32"

    # ------------------------------------------------------------------ called per frame
    def frames_needed(self, n: int) -> list[int]:
        return _with_name(self.function, self.upscaler.frames_needed, n, self.num_frames)

    def render(
        self,
        n: int,
        indices: Sequence[int],
        planes: Sequence[Sequence[memoryview]],
        strides: Sequence[int],
        props: Sequence[tuple[int, int]],
        out: Sequence[memoryview],
        out_stride: int,
    ) -> None:
        """Compute output frame ``n`` into ``out`` (three writable planes, ``out_stride`` bytes
        per row) from input frames ``indices`` (their planes, row strides in bytes and
        ``(_SceneChangePrev, _SceneChangeNext)``, -1 where absent)."""
        with _stdout_to_stderr:
            _with_name(self.function, self._render, n, indices, planes, strides, props, out, out_stride)

    def _render(self, n, indices, planes, strides, props, out, out_stride) -> None:
        frames = {
            i: torch.from_numpy(self._read_frame(frame_planes, stride))
            for i, frame_planes, stride in zip(indices, planes, strides)
        }
        flags = dict(zip(indices, props))
        starts = SceneStarts(frozenset(
            i for i, (prev, _next) in flags.items() if prev == 1 or flags.get(i - 1, (0, 0))[1] == 1))
        try:
            y = self.upscaler.render_frame(n, self.num_frames, frames, starts)
        except OutOfRangeFrames as e:  # the engine's hint speaks of arrays; say it in script terms
            e.hint = RANGE_HINT
            raise
        planes_out = y.detach().to("cpu", torch.float32).numpy()
        for p in range(3):
            self._plane(out[p], self.out_height, self.out_width, out_stride)[...] = planes_out[p]

    def _read_frame(self, frame_planes: Sequence[memoryview], stride: int) -> np.ndarray:
        """``[3, H, W]`` float32, a copy (the plugin frees the planes after the call)."""
        stacked = np.stack([self._plane(mv, self.height, self.width, stride) for mv in frame_planes])
        return stacked.astype(np.float32, copy=False)

    def _plane(self, mv: memoryview, height: int, width: int, stride: int) -> np.ndarray:
        return np.frombuffer(mv, dtype=self.plane_dtype).reshape(height, stride // self.plane_dtype.itemsize)[:, :width]

    def close(self) -> None:
        """Drop the model (the plugin calls this when VapourSynth frees the filter)."""
        up, self.upscaler = self.upscaler, None  # type: ignore[assignment]  # never used after close()
        if up is not None:
            up.close()
