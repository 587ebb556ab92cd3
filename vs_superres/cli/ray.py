"""``superres upscale ... --ray ADDRESS | --workers N``: the command line of a distributed run.

:func:`add_arguments` adds the flags to the ``upscale`` parser; :func:`run` does the run when
one of them was given and returns its exit status, or None to let the CLI upscale on this
machine alone. Neither imports Ray (or torch) before a distributed run is asked for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from typing import Any, Callable

from vs_superres.cli.scenes import scene_cuts
from vs_superres.contracts.errors import InvalidOption, SuperResError, option_ref, render_refs
from vs_superres.hostkit.flags import engine_options, model_options
from vs_superres.hostkit.progress import ProgressBar, end_open_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "distributed (Ray)", "run a video on several GPUs or machines (needs `pip install vs-superres[ray]`); "
        "the output is the single-machine output, bit for bit")
    group.add_argument("--ray", metavar="ADDRESS", default=None,
                       help="join the Ray cluster at ADDRESS: auto (the one this node belongs to), HOST:6379, "
                            "or ray://HOST:10001")
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help="number of workers (default with --ray: one per GPU, else one per CPU); without "
                            "--ray, start a local Ray instance with N workers")
    group.add_argument("--worker-threads", type=int, default=1, metavar="N",
                       help="torch threads and Ray CPUs of each CPU worker (default 1)")
    group.add_argument("--segment-frames", type=int, default=None, metavar="N",
                       help="frames per segment, rounded to whole windows (default: about four segments per worker)")
    group.add_argument("--transport", choices=("store", "path"), default="store",
                       help="store: the driver decodes and ships frames through Ray's object store (default); "
                            "path: each worker decodes its own segment (the input must be at the same path on every node)")
    group.add_argument("--retries", type=int, default=3, metavar="N",
                       help="times a segment is run again after its worker or node died (default 3)")


def wanted(args: argparse.Namespace) -> bool:
    return getattr(args, "ray", None) is not None or getattr(args, "workers", None) is not None


def run(args: argparse.Namespace, src: Path, dst: Path, writer_options: dict | None = None) -> int | None:
    """The distributed run asked for by ``args`` (exit status 0), or None when none was;
    ``writer_options``: the encoder settings, as the single-machine run takes them."""
    if not wanted(args):
        return None
    from vs_superres.media.images import IMAGE_READ_EXTENSIONS

    if src.suffix.lower() in IMAGE_READ_EXTENSIONS:
        raise InvalidOption(f"--ray and --workers split videos across workers; {src.name!r} is an image, "
                            "so upscale it without them", option="workers")
    if args.workers is not None and args.workers < 1:
        raise InvalidOption(f"--workers must be >= 1, got {args.workers}", option="workers")
    from vs_superres.distributed import upscale_video
    from vs_superres.distributed.cluster import import_ray
    from vs_superres.jobs import JOURNALED_SUFFIXES, journaled_output

    import_ray()  # a missing extra is the first thing to hear about
    engine = engine_options(args)
    run_options = dict(model=args.model, address=args.ray, workers=args.workers, threads=args.worker_threads,
                       segment_frames=args.segment_frames, transport=args.transport, retries=args.retries)
    bar = ProgressBar(src.name) if not args.quiet else None
    try:
        if journaled_output(dst):
            summary = _with_flags(_journaled, args, src, dst, run_options, {**engine, **model_options(args)}, bar,
                                  writer_options)
        else:
            say(f"'{dst.name}' is written in one pass: an interrupted run starts over (a resumable job writes "
                + ", ".join(JOURNALED_SUFFIXES) + ")")
            summary = _with_flags(upscale_video, src, dst, progress=bar, writer_options=writer_options,
                                  scene_starts=scene_cuts(args), **run_options,
                                  **engine, **model_options(args))
    finally:
        if bar:
            bar.close()
    if not args.quiet:
        for line in summary.lines():
            print(f"superres: {line}", file=sys.stderr)
    print(f"{src} -> {summary.path} with {args.model} on {len(summary.workers)} Ray workers", file=sys.stderr)
    return 0


def _journaled(args: argparse.Namespace, src: Path, dst: Path, run_options: dict, options: dict, bar,
               writer_options: dict | None):
    """The run as a journaled job (:mod:`vs_superres.jobs`): the same segments and journal as
    on one machine, computed by the Ray workers; the summary of the run's Ray part."""
    from vs_superres.distributed.driver import run_reader
    from vs_superres.jobs import device_kind, upscale_journaled, weight_hashes
    from vs_superres.runtime.loading import resolve_model

    summaries: list = []

    def on_ray(reader, open_sink, kept):
        summaries.append(run_reader(reader, src, open_sink, kept=kept, options=options, progress=bar,
                                    scene_starts=scene_cuts(args), **run_options))
        return summaries[-1]

    path = upscale_journaled(src, dst, model=lambda: resolve_model(args.model), options=options,
                             weights=weight_hashes(str(args.model)), device_kind=device_kind(options.get("device", "auto")),
                             threads=args.worker_threads, distributed=on_ray, resume=args.resume,
                             segment_seconds=args.segment_seconds, progress=bar, say=say, writer_options=writer_options,
                             scene_starts=scene_cuts(args))
    summaries[-1].path = path
    return summaries[-1]


def say(line: str) -> None:
    end_open_lines()
    print(f"superres: {line}", file=sys.stderr)


#: the distributed options' Python names -> their flags here (the engine's and the model's
#: options keep the CLI's own spelling, applied by the host kit)
FLAGS = {"address": "--ray", "ray": "--ray", "workers": "--workers", "threads": "--worker-threads",
         "segment_frames": "--segment-frames", "transport": "--transport", "retries": "--retries"}


def _spelling(name: str, value: str | None) -> str:
    if name in FLAGS:
        return FLAGS[name] if value is None else f"{FLAGS[name]} {value}"
    return option_ref(name, value)  # left for the host kit to spell


def _with_flags(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(...)``, its errors' references to the distributed options written as flags."""
    try:
        return call(*args, **kwargs)
    except SuperResError as exc:
        exc.message = render_refs(exc.message, _spelling)
        exc.args = (exc.message,)
        raise
