"""Long videos on several GPUs or machines through Ray, with the single-process output.

    from vs_superres.distributed import upscale_video
    upscale_video("film.mkv", "film_x4.mkv", model="ditn-real-x4", workers=2)     # a local Ray instance
    upscale_video("film.mkv", "film_x4.mkv", model="ultravsr", address="auto")   # a running cluster

The clip is cut at window boundaries into segments (:mod:`.plan`, from the one window
scheduler); Ray actors (:mod:`.worker`, one per GPU or CPU slot, each loading the model once)
compute them; the driver (:mod:`.driver`) writes their frames in order through a bounded
reorder buffer with the CLI's reader and writer. The output is bit-identical to the
single-process run on the same device type and precision. Ray is an optional extra
(``pip install vs-superres[ray]``); importing this package does not import it (or torch).
See ``docs/distributed.md``.
"""

from __future__ import annotations

from pathlib import Path

from vs_superres.contracts.progress import ProgressFn

__all__ = ["upscale_video"]


def upscale_video(src: str | Path, dst: str | Path, *, model: str | Path, address: str | None = None,
                  workers: int | None = None, threads: int = 1, segment_frames: int | None = None,
                  transport: str = "store", retries: int = 3, scene_starts=None,
                  progress: ProgressFn | None = None, writer_options: dict | None = None, **options):
    """Upscale the video file ``src`` into ``dst`` on Ray workers; returns a
    :class:`~.driver.RunSummary` (output path, frames, per-worker throughput).

    Args:
        model: a registered model name or a checkpoint path (as :class:`~vs_superres.Upscaler`),
            which every worker must be able to load.
        address: ``None`` starts a local Ray instance with ``workers`` slots (or uses the one
            this process already joined with ``ray.init``); ``"auto"`` joins the cluster this
            node belongs to; ``"HOST:6379"`` or ``"ray://HOST:10001"`` a remote one.
        workers: how many workers (default: one per GPU of the cluster, else one per
            ``threads`` CPUs; 1 for a local instance).
        threads: torch threads (and Ray CPUs) per CPU worker.
        segment_frames: frames per segment, rounded to whole windows (default: from the clip
            length and the number of workers, about four segments per worker).
        transport: ``"store"`` (default): the driver decodes once and ships each segment's
            frames through Ray's object store; ``"path"``: each worker decodes its own segment
            from ``src``, which must then be the same file on every node.
        retries: times a segment is run again after its worker or node died.
        scene_starts: where scenes start (no window mixes two scenes): per-frame flags (True
            where a scene starts), a set of frame indices, or :class:`~vs_superres.runtime.windows.SceneStarts`.
        progress: called with a :class:`~vs_superres.contracts.progress.Progress` per frame written.
        writer_options: the encoder settings (:class:`~vs_superres.media.writer.VideoWriter`'s
            keywords: ``codec``, ``pix_fmt``, ``crf``, ``preset``, ``options``, ...).
        options: engine options (``device``, ``dtype``, ``tile``, ``window``, ...) and the
            model family's options, as :class:`~vs_superres.Upscaler` takes them.
    """
    from vs_superres.distributed.driver import run

    return run(Path(src), Path(dst), model=str(model), options=dict(options), address=address, workers=workers,
               threads=threads, segment_frames=segment_frames, transport=transport, retries=retries,
               scene_starts=scene_starts, progress=progress, writer_options=writer_options)
