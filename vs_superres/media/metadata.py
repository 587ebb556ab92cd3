"""Container and stream metadata carried from a source to its upscaled output, as ffmpeg does.

``ffmpeg -i IN -map_metadata 0 -map_chapters 0 ... OUT`` (which is also what ffmpeg does
unasked for the first input) keeps the container's tags (title, comment, date, ...), each
stream's tags (language, title, handler name, ...) and the chapters. :class:`SourceTags` holds
them, read once from the open source (:meth:`SourceTags.read`) and carried in the
:class:`~.streaminfo.StreamInfo` the writer gets; :func:`apply_tags` writes them into an output
container before its header. What no longer describes the output is left out, as ffmpeg
replaces it: the source's ``encoder`` tags, and the re-encoded video's per-stream statistics
(``DURATION``, ``NUMBER_OF_FRAMES``, ``BPS``, ... written by mkvmerge and Matroska muxers).
"""

from __future__ import annotations

import dataclasses
import logging
from fractions import Fraction
from typing import Any

log = logging.getLogger(__name__)

Tags = tuple[tuple[str, str], ...]

#: tags never copied: they name the program that wrote the source
_NOT_COPIED = {"encoder"}
#: tags of the video stream that describe the source's encoding, not the re-encoded video
_VIDEO_STATISTICS = {"duration", "number_of_frames", "number_of_bytes", "bps", "vendor_id"}


def _tags(mapping: Any) -> Tags:
    return tuple((str(k), str(v)) for k, v in dict(mapping or {}).items()
                 if str(k).lower() not in _NOT_COPIED and v is not None)


@dataclasses.dataclass(frozen=True)
class Chapter:
    """One chapter: ``[start, end)`` in ``time_base`` units, and its tags (``title``, ...)."""

    start: int
    end: int
    time_base: Fraction
    tags: Tags = ()


@dataclasses.dataclass(frozen=True)
class SourceTags:
    """The source's container tags, each stream's tags (by source stream index) and chapters."""

    container: Tags = ()
    streams: tuple[tuple[int, Tags], ...] = ()
    chapters: tuple[Chapter, ...] = ()

    @classmethod
    def read(cls, container) -> "SourceTags":
        """The tags of the open PyAV input ``container``."""
        streams = tuple((s.index, _tags(s.metadata)) for s in container.streams)
        chapters: list[Chapter] = []
        read_chapters = getattr(container, "chapters", None)
        if callable(read_chapters):  # PyAV >= 14.1
            try:
                for item in read_chapters():
                    chapters.append(Chapter(int(item["start"]), int(item["end"]), Fraction(item["time_base"]),
                                            _tags(item.get("metadata"))))
            except (KeyError, TypeError, ValueError) as exc:
                log.debug("chapters not read: %s", exc)
        return cls(_tags(container.metadata), streams, tuple(chapters))

    def of_stream(self, index: int) -> dict[str, str]:
        return dict(next((tags for i, tags in self.streams if i == index), ()))


def video_tags(tags: SourceTags, index: int) -> dict[str, str]:
    """The tags of the source's video stream ``index`` that still describe the re-encoded one."""
    return {k: v for k, v in tags.of_stream(index).items()
            if k.lower() not in _VIDEO_STATISTICS and not k.upper().startswith("_STATISTICS")}


def apply_tags(output, tags: SourceTags, video, video_index: int, copies: dict[int, Any], where: str) -> None:
    """Write ``tags`` into the PyAV output container ``output`` (before its header): container
    tags, the video stream's (``video``, from source stream ``video_index``), those of the
    copied streams (``copies``: source index -> output stream) and the chapters. ``where``
    names the output for a warning when this PyAV cannot write chapters."""
    output.metadata.update(dict(tags.container))
    video.metadata.update(video_tags(tags, video_index))
    for index, stream in copies.items():
        stream.metadata.update(tags.of_stream(index))
    if not tags.chapters:
        return
    write_chapters = getattr(output, "set_chapters", None)
    if not callable(write_chapters):
        log.warning("the %d chapters of the source are not written to %s: this PyAV cannot write chapters "
                    "(PyAV >= 14.1 can)", len(tags.chapters), where)
        return
    write_chapters([{"id": n + 1, "start": c.start, "end": c.end, "time_base": c.time_base,
                     "metadata": dict(c.tags)} for n, c in enumerate(tags.chapters)])
