"""SuperRes Upscale Video on a file-backed VIDEO: streamed, in memory bounded by one window.

ComfyUI's ``VideoFromFile`` (what LoadVideo gives) knows its file
(``get_stream_source()``). That file is read by the project's reader, run through the one run
path (:mod:`vs_superres.media.pump`: a decoding thread, the engine's ``stream`` with its windows
and scene cuts, an encoding thread; queues of a few frames), and written by the project's writer
into ComfyUI's temp folder; the node returns a ``VideoFromFile`` of that file. The frame rate,
time stamps, audio (copied, never re-encoded), colour tags and container tags are the writer's
to keep; a lossless source stays lossless, as on the command line. The output is an MP4 holding
H.264 (or the source's lossless codec), so SaveVideo with ``auto`` or ``mp4``/``h264`` copies its
streams instead of decoding it. Nothing holds the clip: memory does not grow with its length.

The file appears under its name only when complete (the writer's temporary name and rename):
an interruption, a failure or a full disk leaves nothing in temp.
"""

from __future__ import annotations

import os
import uuid

from vs_superres.contracts.errors import UnsupportedFormat
from vs_superres.runtime.windows import SceneStarts

from vs_superres.comfy_nodes import host

#: the container of the streamed output (SaveVideo's ``auto`` and ``mp4`` copy it as it is)
SUFFIX = ".mp4"
PREFIX = "superres_"


def stream_source(video) -> str | None:
    """The file a VIDEO reads, when it is a file on disk (LoadVideo's ``VideoFromFile``);
    None for a VIDEO made from IMAGE batches or held in memory. Only ``VideoFromFile`` is
    asked: the base class answers by encoding the whole clip into memory."""
    from comfy_api.input_impl import VideoFromFile

    if not isinstance(video, VideoFromFile):
        return None
    source = video.get_stream_source()
    return source if isinstance(source, str) and os.path.isfile(source) else None


def output_path() -> str:
    """A new file name in ComfyUI's temp folder."""
    import folder_paths

    folder = folder_paths.get_temp_directory()
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{PREFIX}{uuid.uuid4().hex}{SUFFIX}")


def _open(path: str):
    """The project's reader on ``path``; a file it cannot read is named by its file name only
    (a prompt may come from anyone: the server's folders are not theirs to learn)."""
    from vs_superres.media.video import VideoReader

    try:
        return VideoReader(path, passthrough=True)
    except UnsupportedFormat as e:
        name = os.path.basename(path)
        detail = str(e).replace(f"'{path}'", f"'{name}'").replace(path, name).splitlines()[0][:300]
        raise UnsupportedFormat(
            f"'{name}' cannot be decoded as a video ({detail}); check that it plays (ffprobe shows its streams), "
            "or re-encode it, e.g. ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4") from None


def upscale_file(up, path: str, scene_cuts=None) -> str:
    """``path`` upscaled by the engine ``up`` into a new file in ComfyUI's temp folder; its path.

    Progress goes to ComfyUI's bar (frames and tiles, as for images); ComfyUI's interrupt is
    the engine's ``cancel``, as is a failure of the encoding thread."""
    from vs_superres.hostkit.engine_frames import upscaled
    from vs_superres.media.pump import Pump, ReaderSource, SinkRequest
    from vs_superres.media.writer import VideoWriter

    out = output_path()
    starts = SceneStarts(frozenset(scene_cuts or ()))

    def open_sink(request: SinkRequest) -> VideoWriter:
        return VideoWriter(out, request.info, request.width, request.height, packets=request.packets,
                           keep_lossless=True)

    def process(inputs):
        yield from upscaled(up, inputs, starts)

    with _open(path) as reader:
        info = reader.info
        unit = up.window - up.window_overlap if up.descriptor.kind == "video" else up.batch
        run = Pump(ReaderSource(reader), process, open_sink, output_size=(info.width * up.scale, info.height * up.scale),
                   model=up.descriptor)
        up.progress = host.ProgressAdapter(info.frame_count or 1, unit)
        up.cancel = lambda: host.interrupted() or run.cancelled()
        try:
            run.run()
        finally:
            up.progress = up.cancel = None
    return out
