"""Long video jobs that are never lost: journaled segments, resumed where they stopped.

    path = upscale_journaled(src, dst, model=resolved, engine=make_engine, options=given, ...)

A video job writes its output as segments cut at window boundaries (:mod:`.local`, the one
window scheduler), each encoded in the final codec and recorded in a journal beside the output
(:mod:`.journal`); at the end the segments and the source's other streams are joined by stream
copy into the output (:mod:`.segments`). An uninterrupted run goes through the same segments,
so a resumed run's file equals an uninterrupted run's byte for byte. Rerunning the same job
after any interruption reuses every completed, verified segment; any change of input, model,
weights, options, version or device kind starts fresh, saying which. See docs/reliability.md.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from vs_superres.contracts.progress import ProgressFn
from vs_superres.jobs.journal import Journal, job_identity
from vs_superres.jobs.local import segment_outputs, segment_plan
from vs_superres.jobs.segments import SegmentSink

__all__ = ["JOURNALED_SUFFIXES", "upscale_journaled"]

log = logging.getLogger("vs_superres")

#: output containers whose segments join by stream copy into a file equal to an uninterrupted
#: run's (tested); others run without a journal, with a notice
JOURNALED_SUFFIXES = (".mkv", ".mp4", ".mov", ".webm")


def upscale_journaled(src: Path, dst: Path, *, model: Callable[[], Any], make_engine: Callable[[Callable[[], bool]], Any],
                      options: dict[str, Any], weights: Callable[[Any], list[str]], device_kind: str, resume: bool = True,
                      segment_seconds: float | None = None, progress: ProgressFn | None = None,
                      say: Callable[[str], None] = log.info) -> Path | None:
    """Upscale the video file ``src`` into ``dst`` through a journal (module docstring).

    ``model()``: resolves the model (its descriptor gives the scale and windows), called once the
    input was opened and probed, so a broken input is heard of first;
    ``make_engine(cancel)`` builds the engine when the first segment is computed; ``options``
    and ``weights(descriptor)`` (sha256s) enter the job's identity with the model's name, the project and
    torch versions and ``device_kind``. Raises like the run path (a cut input after the output
    was committed; an interruption leaves the journal for the next run).
    """
    import torch

    from vs_superres import __version__
    from vs_superres.media import VideoReader
    from vs_superres.media.pump import Pump, ReaderSource, SinkRequest
    from vs_superres.runtime.engine_options import settle

    with VideoReader(src, passthrough=True) as reader, Journal(dst) as journal:
        info = reader.info
        desc = model().descriptor
        settled = settle(desc, window=options.get("window"), window_overlap=options.get("window_overlap"))
        width, height = info.width * desc.scale, info.height * desc.scale
        frames_per_segment = None
        if segment_seconds is not None:
            frames_per_segment = max(1, round(segment_seconds * float(info.fps or 25)))
        plan = segment_plan(settled.window, settled.window_overlap, float(info.fps or 25), 12 * width * height,
                            frames_per_segment)
        segment_frames = plan.windows_per_segment * plan.stride
        identity = job_identity(source=src, output=dst, model=desc.name, weights=weights(desc), options=options,
                                segment_frames=segment_frames, project=__version__,
                                torch_version=torch.__version__, device_kind=device_kind)
        for stale in journal.folder.glob(".*.partial-*"):
            stale.unlink(missing_ok=True)  # a segment being written when a run was killed
        reason = journal.open(identity, resume=resume)
        if reason is not None:
            say(f"starting '{dst.name}' afresh: {reason}; the earlier segments were set aside "
                f"(`superres jobs clean {dst.parent}` removes them)")
        done, bad = journal.verified()
        for index in bad:
            say(f"segment {index} of '{dst.name}' is damaged or missing; it is computed again")
        if done:
            seconds = journal.frames_kept() / float(info.fps or 25)
            expected = info.frame_count or 0
            of = f" of {-(-expected // segment_frames)}" if expected else ""
            say(f"resuming '{dst.name}': {len(done)}{of} segments done, {_duration(seconds)} of video kept")

        def open_sink(request: SinkRequest) -> SegmentSink:
            return SegmentSink(journal, src, dst, request.info, request.width, request.height, request.packets,
                               segment_frames=segment_frames, done=done)

        def process(inputs):
            engine = make_engine(run.cancelled)
            yield from segment_outputs(engine, inputs, plan, done, segment_frames)

        run = Pump(ReaderSource(reader), process, open_sink, output_size=(width, height), on_progress=progress,
                   phase="transcode", model=desc)
        try:
            return run.run().path
        except BaseException as exc:
            if not journal.segments:
                journal.finish()  # nothing done that a rerun could keep: leave no folder behind
            else:
                seconds = journal.frames_kept() / float(info.fps or 25)
                say(f"{len(journal.segments)} finished segments ({_duration(seconds)} of video) of '{dst.name}' "
                    f"are kept in '{journal.folder.name}'; the next run of the same command resumes")
            full = _full_disk(exc, dst)
            if full is not None:
                raise full from exc
            raise


def _full_disk(exc: BaseException, dst: Path):
    """A full disk met while writing a segment, said of the output the user named (the work
    folder is beside it, on the same disk)."""
    from vs_superres.media.atomic import DISK_FULL_ERRNOS, disk_full_error

    code = getattr(exc, "errno", None)
    if code not in DISK_FULL_ERRNOS:
        return None
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else OSError(code, os.strerror(code))
    return disk_full_error(cause, dst)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def journaled_output(dst: Path) -> bool:
    """Whether ``dst``'s container is one a job can be journaled into."""
    return dst.suffix.lower() in JOURNALED_SUFFIXES
