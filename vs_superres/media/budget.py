"""One pixel and memory budget for every input: images, video files and pipes.

Two checks, both made before a pixel is decoded, from what a header announces:

* :func:`check_pixel_limit`: the picture's size against the pixel limit. A frame of one colour
  compresses about 1000:1 (PNG, FFV1), so a few kilobytes can announce 8000x8000 pixels and take
  gigabytes once decoded. The default, :data:`DEFAULT_MAX_PIXELS`, is Pillow's own refusal
  threshold (2 x ``PIL.Image.MAX_IMAGE_PIXELS``, about 179 megapixels, e.g. 13000x13000); set
  ``$SUPERRES_MAX_PIXELS`` (or pass ``max_pixels=``) to change it, ``0`` for no limit. Images
  are checked by the image probe, videos by :class:`~vs_superres.media.video.VideoReader` from
  the codec parameters (before the first frame is decoded), every run of the run path by
  :class:`~vs_superres.media.pump.Pump` (raw pipes included).
* :func:`check_memory`: the job's frames (:func:`image_job_bytes`, :func:`video_job_bytes`)
  plus the model's working memory against the memory available (:func:`available_memory_bytes`:
  the system's, lowered to what a cgroup limit leaves). Tiling bounds only the model's working
  memory, never the whole frames, so a job whose frames alone exceed the memory cannot be saved
  by ``--tile`` and is refused, naming the sizes, the estimate, the memory and the way out.

The copy counts were measured: peak RSS of ``superres upscale`` with a DITN at x4,
``--tile 512``, on a 2000x2000 image was 2.6 GB, 2.35 GB over the interpreter and torch, i.e.
3.05 output frames (768 MB each) with the input frames and the model's tiles included. A video
holds, besides those, the frames queued between the decoder, the engine and the encoder
(``frames_in_flight`` each way, :data:`~vs_superres.media.pump.QUEUE_FRAMES`), the frames of
a temporal window, and the encoder's own picture of the output size.
"""

from __future__ import annotations

import os
from pathlib import Path

from vs_superres.contracts.errors import InvalidOption, UnsupportedFormat, option_ref

#: pixels (width x height) of one picture above which an input is refused before decoding
DEFAULT_MAX_PIXELS = 2 * (1024 * 1024 * 1024 // 4 // 3)
MAX_PIXELS_ENV = "SUPERRES_MAX_PIXELS"
#: float32 RGB frames of the input size held at once at the peak (decode, the engine's
#: validated, batched and per-call copies)
INPUT_FRAME_COPIES = 4.0
#: float32 RGB frames of the output size held at once at the peak: the blended output, its
#: weight sum (a third of a frame, twice), the normalised result, and the tiles in flight
OUTPUT_FRAME_COPIES = 3.0
#: bytes per output pixel of the encoder's own picture (up to 16-bit 4:4:4)
ENCODER_BYTES_PER_PIXEL = 6
#: the tile side the model's share is counted at: the smallest ``--tile`` worth using
SMALL_TILE = 128
_FRAME_BYTES_PER_PIXEL = 3 * 4
GB = 1e9


class OverBudget(UnsupportedFormat):
    """An input over the pixel limit, or a job over the memory available: refused before any
    decoding; the message names the sizes and the way out. Hosts that wrap the errors of
    opening an input (``the input is not a readable ... stream``) let it through as it is."""


def max_pixels_limit(max_pixels: int | None = None) -> int | None:
    """The pixel limit in force: ``max_pixels`` if given, else ``$SUPERRES_MAX_PIXELS``, else
    :data:`DEFAULT_MAX_PIXELS`; ``0`` means no limit (returned as None)."""
    if max_pixels is None:
        text = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(text.replace("_", ""))
        except ValueError:
            max_pixels = -1
        if max_pixels < 0:
            raise InvalidOption(
                f"${MAX_PIXELS_ENV} must be a whole number of pixels (0 for no limit), got {text!r}; "
                f"e.g. {MAX_PIXELS_ENV}={DEFAULT_MAX_PIXELS}", option=MAX_PIXELS_ENV)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 0:
        raise InvalidOption(f"max_pixels must be a whole number of pixels (0 for no limit), got {max_pixels!r}",
                            option="max_pixels")
    return max_pixels or None


def _named(source: str | os.PathLike) -> str:
    """A path quoted; a reader's name (``'path'``, ``the input stream``) as it is."""
    text = os.fspath(source)
    return text if not isinstance(source, os.PathLike) and text.startswith(("'", "the ")) else f"'{text}'"


def check_pixel_limit(width: int, height: int, source: str | os.PathLike, *, kind: str = "image",
                      max_pixels: int | None = None) -> None:
    """Refuse a picture of ``width`` x ``height`` over the pixel limit (:func:`max_pixels_limit`),
    before decoding. ``source`` names the input in the message (a path is quoted); ``kind`` is
    ``"image"`` or ``"video"`` (whose every frame is that size)."""
    limit = max_pixels_limit(max_pixels)
    pixels = int(width) * int(height)
    if limit is None or pixels <= limit:
        return
    name = _named(source)
    if kind == "video":
        what = f"its frames are {width}x{height} pixels"
        smaller = "use a smaller video (e.g. `ffmpeg -i IN -vf scale=iw/2:ih/2 OUT`)"
    else:
        what = f"it is {width}x{height} pixels"
        smaller = "use a smaller image"
    raise OverBudget(
        f"cannot read {name}: {what} ({pixels / 1e6:.0f} megapixels), over the limit of "
        f"{limit / 1e6:.0f} megapixels that guards against decompression bombs (small files that "
        f"decode to gigabytes); {smaller}, or if this one is genuine raise the limit, e.g. "
        f"{MAX_PIXELS_ENV}={pixels} (max_pixels= in the Python API; 0 for no limit)")


def image_job_bytes(width: int, height: int, scale: int | float) -> int:
    """Bytes of frames an image job of ``width`` x ``height`` at ``scale`` holds at its peak."""
    pixels_in = width * height
    pixels_out = pixels_in * scale * scale
    return int(_FRAME_BYTES_PER_PIXEL * (INPUT_FRAME_COPIES * pixels_in + OUTPUT_FRAME_COPIES * pixels_out))


def video_job_bytes(width: int, height: int, out_width: int | None, out_height: int | None, *,
                    frames_in_flight: int, window: int = 1) -> int:
    """Bytes of frames a video job holds at its peak: input frames queued to the engine
    (``frames_in_flight``, one being converted, one being read), the engine's copies and its
    temporal ``window``; output frames (unknown size: none) queued to the encoder, the one
    being made and the encoder's picture."""
    pixels_in = width * height
    inputs = _FRAME_BYTES_PER_PIXEL * pixels_in * (frames_in_flight + 2 + window + INPUT_FRAME_COPIES)
    if not out_width or not out_height:
        return int(inputs)
    pixels_out = out_width * out_height
    outputs = pixels_out * (_FRAME_BYTES_PER_PIXEL * (frames_in_flight + 1 + OUTPUT_FRAME_COPIES)
                            + ENCODER_BYTES_PER_PIXEL)
    return int(inputs + outputs)


def model_share_bytes(bytes_per_pixel: int, window: int = 1) -> int:
    """The model's working memory at a small tile (:data:`SMALL_TILE`): ``--tile`` can shrink
    it that far, never the frames."""
    return int(bytes_per_pixel) * SMALL_TILE * SMALL_TILE * max(1, int(window))


def available_memory_bytes() -> int | None:
    """Memory this process can still take: the system's available memory (psutil, else
    ``MemAvailable`` in /proc/meminfo), lowered to what a cgroup memory limit leaves; None
    when neither can be read."""
    available: int | None = None
    try:
        import psutil

        available = int(psutil.virtual_memory().available)
    except ImportError:
        available = _meminfo_available()
    cgroup = _cgroup_headroom()
    if cgroup is not None:
        available = cgroup if available is None else min(available, cgroup)
    return available


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """``memory.max - memory.current`` of this process's cgroup (v2), None when unlimited."""
    try:
        rel = Path("/proc/self/cgroup").read_text().strip().splitlines()[0].split(":", 2)[2]
        base = Path("/sys/fs/cgroup") / rel.lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((base / "memory.current").read_text().strip()))
    except (OSError, ValueError, IndexError):
        return None


def check_memory(size: tuple[int, int], out_size: tuple[int, int] | None, frame_bytes: int, *,
                 model: str | None, source: str | os.PathLike, model_bytes: int = 0,
                 available: int | None = None, kind: str = "image", held: str = "") -> None:
    """Refuse a job whose frames (``frame_bytes``) plus ``model_bytes`` (the model's working
    memory at a small tile) need more memory than is available (``available``: measured when
    None; nothing is refused when it cannot be measured). ``size``/``out_size``: the input and
    output ``(width, height)``; ``held`` says which frames ``frame_bytes`` counts."""
    if available is None:
        available = available_memory_bytes()
    if available is None:
        return
    needed = frame_bytes + model_bytes
    if needed <= available:
        return
    width, height = size
    name = _named(source)
    job = f"{width}x{height}" + (f" -> {out_size[0]}x{out_size[1]}" if out_size else "")
    with_model = f" with {model}" if model else ""
    held = held or "the whole input and output frames"
    if kind == "video":
        smaller = ("use a smaller input (e.g. `ffmpeg -i IN -vf scale=iw/2:ih/2 OUT`, or crop it "
                   "with -vf crop=W:H:X:Y)")
    else:
        smaller = "use a smaller input (crop it, or cut it into parts and upscale each)"
    tiles = (f"a smaller {option_ref('tile')} does not help, it lowers only the model's working memory, not the frames"
             if frame_bytes >= model_bytes else
             f"a smaller tile ({option_ref('tile', SMALL_TILE)}) lowers the model's working memory")
    raise OverBudget(
        f"cannot upscale {name}: {job}{with_model} needs about {needed / GB:.1f} GB of memory "
        f"({frame_bytes / GB:.1f} GB for {held}), but only {available / GB:.1f} GB is available; "
        f"{tiles}; {smaller}, a model with a smaller scale, or free memory (close other programs, "
        "or use a machine with more)")


def check_image_memory(width: int, height: int, scale: int, *, model: str, source: str | os.PathLike,
                       model_bytes: int = 0, available: int | None = None) -> None:
    """Refuse an image upscale whose frames (:func:`image_job_bytes`) plus ``model_bytes``
    need more memory than is available (:func:`check_memory`)."""
    check_memory((width, height), (width * scale, height * scale), image_job_bytes(width, height, scale),
                 model=model, source=source, model_bytes=model_bytes, available=available, kind="image")


def check_video_memory(size: tuple[int, int], out_size: tuple[int, int] | None, *, frames_in_flight: int,
                       source: str, model: str | None = None, model_bytes: int = 0, window: int = 1,
                       available: int | None = None) -> None:
    """Refuse a video job whose frames in flight (:func:`video_job_bytes`) plus ``model_bytes``
    need more memory than is available (:func:`check_memory`)."""
    frames = video_job_bytes(*size, *(out_size or (None, None)), frames_in_flight=frames_in_flight,
                             window=window)
    held = (f"the frames in flight: {frames_in_flight} queued each way, the engine's copies and "
            "the encoder's picture")
    check_memory(size, out_size, frames, model=model, source=source, model_bytes=model_bytes,
                 available=available, kind="video", held=held)
