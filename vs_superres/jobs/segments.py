"""A journaled job's sink: output frames into segment files, then one stream-copy join.

:class:`SegmentSink` is the run path's :class:`~vs_superres.media.pump.FrameSink` of a
journaled job. Each output frame arrives as a :class:`SegmentFrame` naming its segment; the
frames of a segment (a fixed number of output frames; the last one may be shorter) are encoded
by a fresh :class:`~vs_superres.media.writer.VideoWriter` (the final codec and container, the
encoder started at the segment's first frame, so every segment starts with a key frame and
decodes alone), committed under its name and recorded in the journal. Frames of segments the
journal already holds are dropped (or arrive as ``None``: nobody computed them). Segments are
counted in output frames, not in how the frames were computed, so a job computed in one
process and resumed on Ray workers (or the other way round) writes the same segments.

:func:`join` makes the output: the segments' video packets, copied in order (no re-encode, no
decode), with the source's audio, subtitle and attachment streams demuxed again from the source
(stream copy too), interleaved by time by the writer's own muxing, into the output under a
temporary name, renamed at the end. The container is written bit-exact (no random identifiers,
no dates), so a resumed job's file equals an uninterrupted one's byte for byte.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import av

from vs_superres.contracts.errors import InternalError
from vs_superres.jobs.journal import Journal
from vs_superres.media.files import InputSource
from vs_superres.media.pyav_features import add_copied_stream
from vs_superres.media.streaminfo import StreamInfo
from vs_superres.media.writer import VideoWriter

#: AVFMT_FLAG_BITEXACT: the muxer writes no random identifiers, dates or version strings
_FLAG_BITEXACT = 0x0400


def segments_of(frames: range, segment_frames: int) -> range:
    """The indices of the segments that frames ``frames`` fall in."""
    if not frames:
        return range(0)
    return range(frames.start // segment_frames, (frames.stop - 1) // segment_frames + 1)


class SegmentSink:
    """The sink of a journaled job (see the module docstring): output frame ``n`` goes to
    segment ``n // segment_frames``; ``None`` stands for a frame nobody computed because its
    segment is done; frames of ``done`` segments are dropped. Each segment is written by a
    ``writer_class`` (a :class:`VideoWriter`, or the Ray driver's writer of integer codes: the
    same encoder, the same bytes) with ``writer_options`` (the encoder settings)."""

    def __init__(self, journal: Journal, source: Path, output: Path, info: StreamInfo, width: int, height: int,
                 packets: Callable[[], list], *, segment_frames: int, done: set[int],
                 writer_class: type[VideoWriter] = VideoWriter, writer_options: dict[str, Any] | None = None,
                 check_source: Callable[[], None] = lambda: None):
        self.journal, self.source, self.output = journal, source, output
        self.info, self.width, self.height = info, width, height
        self.segment_frames, self.done = segment_frames, set(done)
        self._check_source = check_source
        self._writer_class = writer_class
        self._writer_options = {**(writer_options or {}), "copy_streams": False}  # every segment's encoder settings
        # The pass-through packets the pump collects are not needed: the join demuxes them
        # again from the source. Taking them keeps the pump's buffer empty.
        self._drop_packets = packets
        #: the integer format segment writers encode, where workers convert frames to codes
        #: (set by the job that computes on Ray workers)
        self.output_format: Any = None
        self._writer: VideoWriter | None = None
        self._index = -1
        self._frames = 0
        self._n = 0

    def write(self, item: Any, pts: int | None) -> None:
        self._drop_packets()
        index = self._n // self.segment_frames
        self._n += 1
        if index in self.done:
            return
        if item is None:
            raise InternalError(f"frame {self._n - 1} of segment {index}, which is not done, was never computed")
        if self._writer is None:
            self._writer = self.open_writer(self.journal.segment_path(index))
            self._index, self._frames = index, 0
        self._writer.write(item, pts)
        self._frames += 1
        if self._n % self.segment_frames == 0:
            self._commit()

    def open_writer(self, path: Path) -> VideoWriter:
        """A segment's writer: the final codec and container, video only."""
        return self._writer_class(path, self.info, self.width, self.height, **self._writer_options)

    def _commit(self) -> None:
        writer, self._writer = self._writer, None
        assert writer is not None
        writer.close()
        self.journal.record(self._index, self._frames)

    def close(self) -> Path | None:
        self._drop_packets()
        if self._writer is not None:
            self._commit()  # the clip's last segment, shorter than the others
        # The join demuxes the source's other streams once more: it must still be the file the
        # frames came from (a rewrite after the last frame was read is caught here, not mixed in).
        self._check_source()
        path = join(self.journal, self.source, self.output, self.info, self.width, self.height)
        try:
            self._check_source()
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.journal.finish()
        return path

    def abort(self) -> None:
        """Stop: the unfinished segment leaves nothing; the journal stays for the next run."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


class _Joiner(VideoWriter):
    """A :class:`VideoWriter` whose video stream is copied from ``template`` (the first
    segment's), fed packets instead of frames."""

    def __init__(self, output: Path, info: StreamInfo, width: int, height: int, template: Any,
                 packets: Iterable[av.Packet]):
        self._template = template
        self._last_dts: int | None = None
        super().__init__(output, info, width, height, packets=packets)

    def _open_video(self, codec, pix_fmt, crf, preset, options) -> None:
        self._container.flags |= _FLAG_BITEXACT
        template = self._template
        stream = add_copied_stream(self._container, template)
        self.codec = template.codec_context.name
        self.pix_fmt = template.codec_context.format.name
        self.colour = self.info.colour
        self._time_base = Fraction(template.time_base)
        self._variable_rate = True
        self._video = stream

    def _flush_video(self) -> Iterable[av.Packet]:
        return ()

    def _follow_on(self, packets: list, path: Path) -> None:
        """Decoding times that carry on from the previous segment's. An encoder with frame
        reordering starts a stream's decoding times before its first presentation time by
        the reorder delay, measured in the stream's own times: after a gap of a variable
        frame rate that reaches back past the previous segment's last decoding time, which a
        muxer refuses. Such packets are moved to one tick after their predecessor: still no
        later than their presentation (the previous segment presents everything before this
        one's first frame), and the same for a resumed job as for an uninterrupted one."""
        for packet in packets:
            if self._last_dts is not None and packet.dts <= self._last_dts:
                packet.dts = self._last_dts + 1
                if packet.pts is not None and packet.dts > packet.pts:
                    raise InternalError(f"segment '{path.name}' cannot follow the previous one: a packet "
                                        f"presented at {packet.pts} would be decoded at {packet.dts}")
            self._last_dts = packet.dts

    def copy_segment(self, path: Path) -> int:
        """Mux every video packet of the segment file ``path``; returns how many."""
        count = 0
        with InputSource(path).open() as container:  # a local file, whatever its name looks like
            stream = container.streams.video[0]
            packets = []
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream marker
                packet.stream = self._video
                packets.append(packet)
                count += 1
            if stream.time_base != self._time_base:
                raise InternalError(f"segment '{path.name}' has the time base {stream.time_base}, "
                                    f"the first one {self._time_base}")
            if any(packet.dts is None for packet in packets):
                # A container that stores no decoding times (Matroska, WebM, NUT): its demuxer
                # guesses some and leaves others unset, and a guess can run past the next real
                # one. The muxer derives them all from the presentation times, as it did when
                # the segment was written.
                for packet in packets:
                    packet.dts = None
            else:
                self._follow_on(packets, path)
            self._mux_video(packets)
        return count


def _passthrough(source: Path, info: StreamInfo) -> tuple[Any, StreamInfo, Iterator[av.Packet]]:
    """The source opened again for its pass-through streams only: the container (keep it open
    while the join runs), ``info`` with stream templates from it, and their packets in demux
    order (the video is not even demuxed)."""
    container = InputSource(source).open()
    by_index = {s.index: s for s in container.streams}
    kept = tuple(dataclasses.replace(copy, template=by_index.get(copy.index)) for copy in info.passthrough)
    wanted = [by_index[c.index] for c in kept if c.kind in ("audio", "subtitle") and c.index in by_index]

    def packets() -> Iterator[av.Packet]:
        if wanted:
            yield from container.demux(*wanted)

    return container, dataclasses.replace(info, passthrough=kept), packets()


def join(journal: Journal, source: Path, output: Path, info: StreamInfo, width: int, height: int) -> Path:
    """The output from the journal's segments and the source's other streams (module docstring)."""
    indices = sorted(journal.segments)
    if not indices or indices != list(range(len(indices))):
        raise InternalError(f"the journal of '{output}' holds segments {indices}, not 0..n-1")
    container, joined_info, packets = _passthrough(source, info)
    try:
        with InputSource(journal.segment_path(0)).open() as first:
            writer = _Joiner(output, joined_info, width, height, first.streams.video[0], packets)
        try:
            for index in indices:
                writer.copy_segment(journal.segment_path(index))
        except BaseException:
            writer.abort()
            raise
        path = writer.close()
    finally:
        container.close()
    assert path is not None
    return path
