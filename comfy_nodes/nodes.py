"""The nodes: the loaders (:mod:`.loaders`), Upscale Image, Upscale Video and Scene Cuts, each
defined once.

They translate ComfyUI's types to the engine's frame contract and back and do nothing else:
tiling, windows, out-of-memory back-off, weight search and option checks are the engine's
(:class:`vs_superres.Upscaler`). Their widgets are derived from the declared options
(:data:`~vs_superres.runtime.engine_options.ENGINE_OPTIONS` and each family's
``options.for_hosts()``), so a new family option appears here without a line of this file.

IMAGE is ``[B, H, W, C]`` float32 in [0, 1] on the CPU; the engine takes ``[T, 3, H, W]``. A
batch given to a video model is the clip, in order.
"""

from __future__ import annotations

import os
import re

from vs_superres.contracts.errors import UnsupportedFormat
from vs_superres.runtime.engine_options import ENGINE_OPTIONS
from vs_superres.runtime.windows import SceneStarts

from vs_superres.comfy_nodes import host
from vs_superres.comfy_nodes.handle import ModelHandle
from vs_superres.comfy_nodes.inputs import RUN_ENGINE_OPTIONS, engine_ports, value_of
from vs_superres.comfy_nodes.loaders import LEGACY_LOADER, loaders
from vs_superres.comfy_nodes.spec import MODEL_TYPE, SCENES_TYPE, NodeSpec, Port
from vs_superres.comfy_nodes.video import stream_source, upscale_file

LOADER = LEGACY_LOADER
UPSCALE_IMAGE = "SuperResUpscaleImage"
UPSCALE_VIDEO = "SuperResUpscaleVideo"
SCENE_CUTS = "SuperResSceneCuts"


# ---------------------------------------------------------------- upscaling
def _run_settings(widgets: dict, model: str) -> dict:
    return {n: value_of(ENGINE_OPTIONS.get(n), widgets[n], model=model) for n in RUN_ENGINE_OPTIONS}


#: float32 bytes of one RGB pixel, as ComfyUI's IMAGE holds it
_PIXEL_BYTES = 3 * 4


def check_budget(up, count: int, height: int, width: int, what: str, model: str) -> None:
    """The project's pixel and memory budget (:mod:`vs_superres.media.budget`), before a frame
    is run: each picture against the pixel limit (``$SUPERRES_MAX_PIXELS``), and the output the
    node returns (``count`` frames of the output size, held whole by ComfyUI) plus one frame's
    working copies and the model's share against the memory available."""
    from vs_superres.media.budget import check_memory, check_pixel_limit, image_job_bytes, model_share_bytes

    kind = "video" if what == "VIDEO" else "image"
    check_pixel_limit(width, height, f"the {what}", kind=kind)
    s = up.scale
    frames = image_job_bytes(width, height, s) + (count - 1) * width * s * height * s * _PIXEL_BYTES
    on_cpu = str(up.device).startswith("cpu")
    window = up.window if up.descriptor.kind == "video" else 1
    check_memory((width, height), (width * s, height * s), frames, model=model, source=f"the {what}",
                 model_bytes=model_share_bytes(up.descriptor.bytes_per_pixel, window) if on_cpu else 0, kind=kind,
                 held=f"the {count} output frame{'s' if count != 1 else ''} the node returns and one frame's working copies")


def upscale_frames(handle: ModelHandle, images, widgets: dict, scene_cuts=None, *, what: str = "IMAGE batch"):
    """``[B, H, W, C]`` -> ``[B, sH, sW, C]`` through :meth:`Upscaler.stream`, one input frame
    converted at a time and each output frame written into the result as it comes. ``what``
    names the input in messages ("IMAGE batch", "VIDEO")."""
    import torch

    if not isinstance(handle, ModelHandle):
        raise UnsupportedFormat(f"the model input must come from a SuperRes loader, got {type(handle).__name__}")
    if images.ndim != 4:
        raise UnsupportedFormat(f"expected an IMAGE batch [B, H, W, C], got shape {tuple(images.shape)}")
    count = images.shape[0]
    if count == 0:
        raise UnsupportedFormat(f"the {what} is empty: there is no frame to upscale")
    up = handle.upscaler(_run_settings(widgets, handle.label))
    check_budget(up, count, images.shape[1], images.shape[2], what, handle.label)
    unit = up.window - up.window_overlap if up.descriptor.kind == "video" else up.batch
    up.progress = host.ProgressAdapter(count, unit)
    up.cancel = host.interrupted
    starts = SceneStarts(frozenset(scene_cuts or ()))
    out = None
    try:
        frames = (images[i:i + 1].movedim(-1, 1) for i in range(count))
        for i, y in enumerate(up.stream(frames, total=count, scene_starts=starts)):
            if out is None:
                out = torch.empty((count, *y.shape[1:], y.shape[0]), dtype=torch.float32)
            out[i] = y.movedim(0, -1)
    finally:
        up.progress = up.cancel = None
    if out is None:
        raise UnsupportedFormat(f"the {what} is empty: there is no frame to upscale")
    return out


def _upscale_inputs(frames: Port) -> tuple[Port, ...]:
    return (
        Port("model", MODEL_TYPE, tooltip="from a SuperRes loader (SuperRes Load DITN, ...)"),
        frames,
        *engine_ports(RUN_ENGINE_OPTIONS),
        Port("scene_cuts", SCENES_TYPE, optional=True, tooltip="frames that start a scene (video models never mix scenes)"),
    )


def upscale_image(model, image, unique_id=None, scene_cuts=None, **widgets) -> tuple:
    with host.engine_errors("SuperRes Upscale Image"):
        return (upscale_frames(model, image, widgets, scene_cuts),)


def video_components(video):
    """ComfyUI's VIDEO decoded (``VideoFromFile`` decodes the whole file here, not when it was
    loaded): a file PyAV cannot decode is named, with the way out, instead of a traceback."""
    import comfy.model_management as mm

    try:
        return video.get_components()
    except mm.InterruptProcessingException:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is the file's, said in one line
        source = getattr(video, "get_stream_source", lambda: None)()
        name = f"'{os.path.basename(source)}'" if isinstance(source, str) else "the VIDEO"
        detail = (str(e).splitlines() or [""])[0][:200] or "no detail"
        raise UnsupportedFormat(
            f"{name} cannot be decoded as a video ({type(e).__name__}: {detail}); check that it plays "
            "(ffprobe shows its streams), or re-encode it, e.g. ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4") from None


def upscale_video(model, video, unique_id=None, scene_cuts=None, **widgets) -> tuple:
    """A file-backed VIDEO (LoadVideo's) is streamed into a file (:mod:`.video`); any other
    VIDEO (made from IMAGE batches) is decoded and upscaled as an IMAGE batch."""
    from comfy_api.input_impl import VideoFromComponents, VideoFromFile
    from comfy_api.util import VideoComponents

    with host.engine_errors("SuperRes Upscale Video"):
        path = stream_source(video)
        if path is not None:
            if not isinstance(model, ModelHandle):
                raise UnsupportedFormat(f"the model input must come from a SuperRes loader, got {type(model).__name__}")
            up = model.upscaler(_run_settings(widgets, model.label))
            return (VideoFromFile(upscale_file(up, path, scene_cuts)),)
        parts = video_components(video)
        images = upscale_frames(model, parts.images, widgets, scene_cuts, what="VIDEO")
        # Same frame rate (an exact Fraction), audio and metadata: only the frames change.
        out = VideoComponents(images=images, frame_rate=parts.frame_rate, audio=parts.audio, metadata=parts.metadata)
        return (VideoFromComponents(out),)


# ---------------------------------------------------------------- scene cuts
def scene_cuts(frames: str, unique_id=None, mask=None) -> tuple:
    """Frame numbers that start a scene, from a list ("0, 120 300") and/or a MASK batch (a
    frame whose mask has any value above 0.5 starts a scene)."""
    cuts: set[int] = set()
    for token in re.split(r"[\s,;]+", frames.strip()):
        if not token:
            continue
        if not token.isdigit():
            raise host.SuperResNodeError(
                f"SuperRes Scene Cuts: {token!r} is not a frame number; write frame numbers (from 0) "
                "separated by commas or spaces, e.g. 0, 120, 300")
        cuts.add(int(token))
    if mask is not None:
        flags = mask.reshape(mask.shape[0], -1).amax(dim=1) > 0.5
        cuts.update(int(i) for i in flags.nonzero().flatten().tolist())
    return (tuple(sorted(cuts)),)


NODES = (
    *loaders(),
    NodeSpec(UPSCALE_IMAGE, "SuperRes Upscale Image",
             "Upscales an IMAGE batch by the model's exact scale (a video model takes the batch as one clip, in order).",
             lambda: _upscale_inputs(Port("image", "IMAGE")), (("IMAGE", "image"),), upscale_image),
    NodeSpec(UPSCALE_VIDEO, "SuperRes Upscale Video",
             "Upscales a VIDEO: every frame, the exact frame rate and the audio are kept; a loaded video file is "
             "streamed into a file, in memory that does not grow with its length.",
             lambda: _upscale_inputs(Port("video", "VIDEO")), (("VIDEO", "video"),), upscale_video),
    NodeSpec(SCENE_CUTS, "SuperRes Scene Cuts",
             "Marks the frames that start a scene, so a video model never blends two scenes.",
             lambda: (Port("frames", "STRING", default="", tooltip="frame numbers that start a scene, e.g. 0, 120, 300"),
                      Port("mask", "MASK", optional=True, tooltip="a mask per frame; any value above 0.5 marks a cut")),
             ((SCENES_TYPE, "scene_cuts"),), scene_cuts),
)
