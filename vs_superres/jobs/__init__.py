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
from vs_superres.jobs.segments import SegmentSink, segments_of

__all__ = ["JOURNALED_SUFFIXES", "device_kind", "journaled_output", "upscale_journaled", "weight_hashes"]

log = logging.getLogger("vs_superres")

#: output containers whose segments join by stream copy into a file equal to an uninterrupted
#: run's (tested); others run without a journal, with a notice
JOURNALED_SUFFIXES = (".mkv", ".mp4", ".mov", ".webm")


def upscale_journaled(src: Path, dst: Path, *, model: Callable[[], Any], options: dict[str, Any],
                      weights: Callable[[Any], list[str]], device_kind: str, threads: int | None = None,
                      make_engine: Callable[[Callable[[], bool]], Any] | None = None,
                      distributed: Callable[..., Any] | None = None, resume: bool = True,
                      segment_seconds: float | None = None, progress: ProgressFn | None = None,
                      say: Callable[[str], None] = log.info,
                      writer_options: dict[str, Any] | None = None,
                      scene_starts: frozenset[int] | None = None) -> Path | None:
    """Upscale the video file ``src`` into ``dst`` through a journal (module docstring).

    ``model()``: resolves the model (its descriptor gives the scale and windows), called once the
    input was opened and probed, so a broken input is heard of first. The segments are computed
    on this machine by the engine ``make_engine(cancel)`` builds when the first segment is
    computed, or on Ray workers by ``distributed(reader, open_sink, kept=...)``
    (:func:`vs_superres.distributed.driver.run_reader` with the run's other arguments bound),
    which writes through the same sink. ``options`` and ``weights(descriptor)`` (sha256s)
    enter the job's identity with the model's name, the project and torch versions,
    ``device_kind`` and ``threads`` (torch threads per computing process, this one's by
    default: they change the bits of some CPU kernels). Raises like the run path (a cut input after the output was
    committed; an interruption leaves the journal for the next run). ``writer_options``: the
    encoder settings every segment is written with (:class:`~vs_superres.media.writer.VideoWriter`'s
    keywords); they are part of the identity, as are ``scene_starts`` (the frames that begin a
    scene, where the engine's windows are cut).
    """
    import torch

    from vs_superres import __version__
    from vs_superres.media import VideoReader, VideoWriter
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
        identity = job_identity(source=src, output=dst, model=desc.name, weights=weights(desc),
                                options={**options, **({"encoder": writer_options} if writer_options else {}),
                                         **({"scene_cuts": sorted(scene_starts)} if scene_starts else {})},
                                segment_frames=segment_frames, project=__version__,
                                torch_version=torch.__version__, device_kind=device_kind,
                                threads=torch.get_num_threads() if threads is None else threads)
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

        def kept(outputs: range) -> bool:
            return set(segments_of(outputs, segment_frames)) <= done

        def open_sink(request: SinkRequest, writer_class=VideoWriter) -> SegmentSink:
            return SegmentSink(journal, src, dst, request.info, request.width, request.height, request.packets,
                               segment_frames=segment_frames, done=done, writer_class=writer_class,
                               writer_options=writer_options, check_source=reader.check_unchanged)

        def process(inputs):
            assert make_engine is not None
            yield from segment_outputs(make_engine(run.cancelled), inputs, plan, kept, scene_starts)

        try:
            if distributed is not None:
                return distributed(reader, _code_sink(open_sink, journal), kept=kept).path
            run = Pump(ReaderSource(reader), process, open_sink, output_size=(width, height), on_progress=progress,
                       phase="transcode", model=desc)
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


def _code_sink(open_sink: Callable[..., SegmentSink], journal: Journal) -> Callable[[Any], SegmentSink]:
    """The sink of a job computed on Ray workers: its segments are written by the driver's
    writer of integer codes (the same encoder, the same bytes), whose format the workers are
    told before any segment is written (from a writer opened and dropped at once)."""
    from vs_superres.distributed.output import CodeWriter

    def open_code_sink(request) -> SegmentSink:
        sink = open_sink(request, CodeWriter)
        probe = sink.open_writer(journal.folder / f"format-probe{journal.output.suffix.lower()}")
        assert isinstance(probe, CodeWriter)
        sink.output_format = probe.output_format
        probe.abort()
        return sink

    return open_code_sink


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


def weight_hashes(model: str) -> Callable[[Any], list[str]]:
    """What identifies the weights of a job on ``model`` (a name or a checkpoint file): the
    registered sha256s, and a checkpoint file's own."""
    from vs_superres.jobs.journal import file_sha256

    def hashes_of(desc) -> list[str]:
        hashes = [wf.sha256 for wf in desc.weights if wf.sha256]
        if Path(model).is_file():
            hashes.append(file_sha256(Path(model)))
        return hashes

    return hashes_of


def device_kind(device: str) -> str:
    """The kind of device (``cpu``, ``cuda``, ...) the engine option ``device`` resolves to here."""
    from vs_superres.runtime.devices import resolve_device

    return resolve_device(device).type
