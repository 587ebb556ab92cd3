"""Encoding float R'G'B' frames to a video that keeps the source's look and streams.

Everything about the source comes from a :class:`~.streaminfo.StreamInfo`; the writer never
opens the source. The output gets a pixel format close to the source's (same kind,
subsampling, and at least its bit depth), the source's colour tags (matrix/range/primaries/
transfer/chroma siting), frame rate, time base, timestamps, sample aspect ratio and rotation;
audio and subtitle packets handed to it are remuxed (never re-encoded) and interleaved by
time, attachments are re-attached, and the container's and streams' tags (title, language,
handler names, ...) and chapters are kept (:mod:`.metadata`). A file appears under its final name only when
:meth:`VideoWriter.close` succeeds; a file object (pipe) is written as it goes.

The encoder and pixel format are chosen by :func:`.encoders.choose_encoder` (lossy file
encoders unless given; any encoder of the build, and any pixel format with a planar twin,
when given: see :mod:`.encoders`); a packed or semi-planar format is filled in its planar twin
(:func:`.encoders.fill_format`) and repacked by swscale (the same samples, no colour maths).

The sample aspect ratio (the source's, or ``sample_aspect_ratio=``) is written to the encoder
and to the output stream itself, which is where the Matroska, NUT and y4m muxers read it
(:mod:`.stream_aspect`); where this build's layout forbids that, a y4m file object gets the
header's ``A`` field rewritten on its way out, other outputs a warning.

Everything the output container can refuse is checked when the writer is made, before a
single frame is computed: the encoder opens at the final size and the container header is
written. Timestamps are then fitted to what the container stores, so a muxer never refuses a
frame at the end of a long run:

- containers that store variable frame rates (Matroska, WebM, MP4, MOV, NUT, MPEG-TS) keep
  each frame's time, rounded to the container's time base (Matroska: 1 ms) and made strictly
  increasing: a frame whose time equals or precedes its predecessor's (duplicate or
  backward timestamps, several frames within one tick) is moved to one tick after it;
- containers with a fixed frame rate (AVI) put each frame in its slot of the nominal rate,
  strictly increasing; a gap of more than :data:`MAX_SKIPPED_SLOTS` empty slots (which AVI
  refuses) is closed up, so later frames keep their order but not their absolute time.

``writer.retimed`` counts the frames moved; a warning at :meth:`close` says how many.

A full disk (``ENOSPC``, ``EDQUOT``, or ``EFBIG`` from a file size limit), met when the header,
a frame or the trailer is written, is reported as the
:class:`~vs_superres.contracts.errors.SuperResError` of :func:`.atomic.disk_full_error` (naming
the folder; ``errno`` set; :func:`.atomic.reporting_full_disk`); the temporary file is removed
and an existing output is left untouched.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Union

import av
import numpy as np

from vs_superres.contracts.errors import SuperResError, UnsupportedFormat
from vs_superres.media.atomic import reporting_full_disk
from vs_superres.media.colour import CHROMA_LOCATION_NAMES, guess_matrix
from vs_superres.media.convert import pixel_layout, rgb_to_frame
from vs_superres.media.encoders import (choose_encoder, encoder_defaults, fill_format, is_lossless, stored_codecs,
                                        stream_copy_advice)
from vs_superres.media.files import MediaFile, OutputTarget
from vs_superres.media.metadata import apply_tags
from vs_superres.media.pyav_features import CONTAINER_HAS_ATTACHMENTS, pyav_version, set_display_rotation
from vs_superres.media.stream_aspect import Y4MAspectField, set_stream_aspect
from vs_superres.media.streaminfo import HasStreamInfo, PassthroughStream, StreamInfo, require_info

log = logging.getLogger(__name__)

#: AVFMT_VARIABLE_FPS: the muxer stores each frame's own time
_AVFMT_VARIABLE_FPS = 0x0400

#: empty frame slots a fixed-rate container takes between two frames (AVI refuses more)
MAX_SKIPPED_SLOTS = 60000


#: where pass-through packets come from: an iterable, pulled as far as the video has come,
#: or a callable returning the packets ready so far (polled on each write), such as
#: :meth:`VideoReader.passthrough_packets`
PacketSource = Union[Iterable[av.Packet], Callable[[], Iterable[av.Packet]]]


def _stamp(packet: av.Packet) -> int | None:
    return packet.dts if packet.dts is not None else packet.pts


class VideoWriter:
    """Encode float R'G'B' frames ``[3, height, width]`` in ``[0, 1]`` to ``target``.

    ``target``: a path (written under a temporary name, renamed on :meth:`close`) or a
    writable binary file object such as ``sys.stdout.buffer`` (then give ``format``, e.g.
    ``"matroska"`` or ``"nut"``, unless its name ends in a known suffix). ``source``: the
    :class:`StreamInfo` of the source (a reader is accepted too and stands for its ``info``
    and its :meth:`~VideoReader.passthrough_packets`), which supplies frame rate, time base,
    colour tags, sample aspect ratio, rotation and the streams to copy. ``packets``: the
    source packets of those streams (see :data:`PacketSource`); :meth:`remux` hands over more.
    ``codec``/``pix_fmt`` override the automatic choice (see the module docstring), ``crf``,
    ``preset`` and ``bitrate`` (bit/s, ``-b:v``; it replaces the default constant quality) the
    encoder's quality settings, ``options`` adds raw FFmpeg encoder options (``x265-params``
    items go after the writer's own); ``keep_lossless``: a lossless source without a given
    codec or quality gets a lossless encoder (``writer.lossless`` says whether it did);
    ``sample_aspect_ratio`` replaces the source's (a caller that changes the shape of
    the picture keeps its display aspect so), ``field_order`` (FFmpeg's name:
    ``progressive``, ``tt``, ``bb``, ``tb``, ``bt``) tags interlacing; ``copy_streams=False``
    writes video only; otherwise the source's container and stream tags and chapters are kept
    (:mod:`.metadata`, as ffmpeg's ``-map_metadata 0 -map_chapters 0``). Use as a context manager: an exception (or ``KeyboardInterrupt``)
    inside the block calls :meth:`abort`, which removes all traces of a file.
    """

    def __init__(self, target: MediaFile, source: StreamInfo | HasStreamInfo, width: int, height: int,
                 *, codec: str | None = None, pix_fmt: str | None = None,
                 crf: float | None = None, preset: str | None = None,
                 options: dict | None = None, copy_streams: bool = True,
                 bitrate: int | None = None, keep_lossless: bool = False,
                 packets: PacketSource | None = None, format: str | None = None,
                 sample_aspect_ratio: Fraction | None = None, field_order: str | None = None):
        self.info = require_info(source)
        if packets is None and not isinstance(source, StreamInfo):
            packets = getattr(source, "passthrough_packets", None)
        self.width, self.height = int(width), int(height)
        self._target = OutputTarget(target, format)
        self.path: Path | None = self._target.path
        self._y4m_field: Y4MAspectField | None = None
        if self._target.format == "yuv4mpegpipe":
            self._y4m_field = self._target.route_writes(Y4MAspectField)
        self.sample_aspect_ratio = Fraction(
            sample_aspect_ratio if sample_aspect_ratio is not None else self.info.sample_aspect_ratio)
        self._field_order = field_order
        self._pending: collections.deque = collections.deque()
        self._poll: Callable[[], Iterable[av.Packet]] | None = None
        self._pull: Iterator[av.Packet] | None = None
        if callable(packets):
            self._poll = packets
        elif packets is not None:
            self._pull = iter(packets)
        self._copy_map: dict[int, av.stream.Stream] = {}
        self._next_pts = 0
        self._last_slot: int | None = None
        self.frames_written = 0
        #: frames whose timestamp was moved to fit the container (see the module docstring)
        self.retimed = 0
        self._bitrate, self._keep_lossless = bitrate, keep_lossless
        #: whether the output codes losslessly what it is given (a lossless source kept lossless)
        self.lossless = False
        self._container = self._target.open()
        try:
            with reporting_full_disk(self.path):
                self._open_video(codec, pix_fmt, crf, preset, options or {})
                if copy_streams:
                    self._open_copies()
                    apply_tags(self._container, self.info.tags, self._video, self.info.stream_index,
                               self._copy_map, self._target.name)
                self._start()
        except BaseException:
            self.abort()
            raise

    def _start(self) -> None:
        """Open the encoder at the final size and write the container header now, so that
        anything the container refuses is refused before the first frame is computed."""
        try:
            with reporting_full_disk(self.path):
                self._container.start_encoding()
        except av.FFmpegError as exc:
            raise UnsupportedFormat(
                f"cannot write {self._target.name}: the '{self._target.suffix}' container or the "
                f"{self.codec} encoder refuses a {self.width}x{self.height} {self.pix_fmt} video "
                f"({exc}); write .mkv or .mp4, or choose another codec") from exc
        # The muxer may have replaced the time base asked for (Matroska: 1 ms, MP4: finer).
        self._mux_time_base = Fraction(self._video.time_base or self._time_base)
        self._grid = max(self._mux_time_base, self._time_base)

    def _fit_pts(self, pts: int) -> int:
        """The encoder pts for a frame at ``pts`` (source time base): its time on the
        coarser of the encoder's and the muxer's grids, strictly after the previous frame."""
        seconds = pts * self.info.time_base
        slot = round(seconds / self._grid)
        if self._last_slot is not None:
            if slot <= self._last_slot:
                slot = self._last_slot + 1
                self.retimed += 1
            elif not self._variable_rate and slot - self._last_slot > MAX_SKIPPED_SLOTS:
                slot = self._last_slot + 1
                self.retimed += 1
        self._last_slot = slot
        return round(slot * self._grid / self._time_base)

    def _open_video(self, codec, pix_fmt, crf, preset, options) -> None:
        source = self.info
        # A lossless source stays lossless unless an encoder or a quality was asked for.
        lossless = (self._keep_lossless and codec is None and crf is None and self._bitrate is None
                    and not {"crf", "qp", "b"} & set(options) and is_lossless(source.codec_name))
        self.codec, self.pix_fmt = choose_encoder(
            self._target.suffix, source, stored_codecs(self._container), codec, pix_fmt,
            default_codec=self._container.default_video_codec, keep_lossless=lossless)
        layout = pixel_layout(self.pix_fmt)
        self._fill = fill_format(self.pix_fmt) or self.pix_fmt
        colour = source.colour
        if layout.kind != "rgb" and colour.matrix == 0:  # RGB source into a Y'CbCr format
            colour = dataclasses.replace(colour, matrix=guess_matrix(self.width, self.height))
        if colour.matrix_guessed:
            log.info("source has no colour matrix tag; assumed and tagged %s",
                     colour.names()["matrix"])
        self.colour = colour
        flags = self._container.format.flags or 0
        self._variable_rate = bool(flags & _AVFMT_VARIABLE_FPS)
        # A fixed-rate container stores frame slots: give it the slot as its time base.
        self._time_base = source.time_base if self._variable_rate else 1 / Fraction(source.fps)
        stream = self._container.add_stream(self.codec, rate=source.fps)
        stream.time_base = self._time_base
        ctx = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, self.pix_fmt
        ctx.time_base = self._time_base
        ctx.framerate = source.fps
        ctx.colorspace = colour.matrix if layout.kind != "rgb" else 0
        ctx.color_range = colour.range
        ctx.color_primaries = colour.primaries
        ctx.color_trc = colour.transfer
        ctx.sample_aspect_ratio = self.sample_aspect_ratio
        self._write_stream_aspect(stream)
        merged = encoder_defaults(self.codec)
        if lossless and self.codec == "libx264":
            merged = {"qp": "0", "preset": "medium"}  # x264's lossless mode
        self.lossless = lossless and (is_lossless(self.codec) or self.codec == "libx264")
        if crf is not None:
            merged["crf"] = str(crf)
        if preset is not None:
            merged["preset"] = str(preset)
        if self._bitrate is not None:
            # -b:v replaces the default constant quality (crf, or the MPEG encoders' qscale)
            for key in ("crf", "qp", "flags", "global_quality"):
                merged.pop(key, None)
            merged["b"] = str(int(self._bitrate))
        if not colour.chroma_location_guessed and (layout.log2_w or layout.log2_h):
            merged["chroma_sample_location"] = CHROMA_LOCATION_NAMES[colour.chroma_location]
        if self._field_order:
            merged["field_order"] = self._field_order
        for key, value in options.items():
            if key.endswith("-params") and merged.get(key):
                value = f"{merged[key]}:{value}"  # the user's items after ours: theirs win
            merged[key] = str(value)
        ctx.options = merged
        stream.thread_type = "AUTO"
        if source.rotation and not set_display_rotation(stream, source.rotation):
            log.warning("the display rotation (%d degrees) is not written: PyAV %s cannot set one "
                        "(PyAV >= 18 can); add it afterwards with `ffmpeg -display_rotation %d -i OUT "
                        "-map 0 -c copy ROTATED%s` (FFmpeg >= 6.1)", source.rotation, pyav_version(),
                        source.rotation, self._target.suffix)
        self._video = stream

    def _write_stream_aspect(self, stream) -> None:
        aspect = self.sample_aspect_ratio
        if set_stream_aspect(stream, aspect):
            return
        if self._y4m_field is not None:
            self._y4m_field.aspect = aspect
        elif aspect != 1:
            log.warning("the sample aspect ratio %s:%s is not written to the %s container: this "
                        "PyAV/FFmpeg build's stream layout is unknown; give the receiving ffmpeg "
                        "-vf setsar=%s/%s", aspect.numerator, aspect.denominator,
                        self._target.suffix, aspect.numerator, aspect.denominator)

    def _open_copies(self) -> None:
        supported = set(self._container.supported_codecs)
        suffix = self._target.suffix
        for where in self.info.dropped:
            log.warning("%s is not copied: only audio, subtitle and attachment streams are", where)
        for copy in self.info.passthrough:
            where = copy.describe()
            if copy.kind == "attachment":
                self._attach(copy)
                continue
            if copy.codec_name not in supported:
                log.warning("%s is not copied: %s", where,
                            stream_copy_advice(copy.kind, copy.codec_name, suffix))
                continue
            if copy.template is None:
                log.warning("%s is not copied: its description has no stream template", where)
                continue
            try:
                out = self._container.add_stream_from_template(copy.template)
            except (ValueError, av.FFmpegError) as exc:
                log.warning("%s is not copied: %s", where, exc)
                continue
            if copy.language:
                out.metadata["language"] = copy.language
            if copy.title:
                out.metadata["title"] = copy.title
            if copy.disposition:
                out.disposition = copy.disposition
            self._copy_map[copy.index] = out

    def _attach(self, copy: PassthroughStream) -> None:
        if self._container.format.name != "matroska":
            log.warning("%s is not copied: a '%s' file cannot store attachments (fonts, "
                        "covers); write a .mkv to keep it", copy.describe(), self._target.suffix)
            return
        if not CONTAINER_HAS_ATTACHMENTS:
            log.warning("%s is not copied: PyAV %s cannot write attachments; upgrade PyAV to keep "
                        "it", copy.describe(), pyav_version())
            return
        try:
            out = self._container.add_attachment(
                copy.filename or f"attachment-{copy.index}",
                copy.mimetype or "application/octet-stream", copy.data)
        except (ValueError, av.FFmpegError, MemoryError) as exc:
            log.warning("%s is not copied: %s", copy.describe(), exc)
            return
        if copy.title:
            out.metadata["title"] = copy.title

    def remux(self, packets: Iterable[av.Packet]) -> None:
        """Queue source packets of the pass-through streams (``stream_index`` as in
        ``info.passthrough``) to be muxed in time order with the video; packets of streams
        not copied are dropped."""
        for packet in packets:
            if (packet.stream_index in self._copy_map and packet.size
                    and _stamp(packet) is not None):
                self._pending.append(packet)

    def _next_copy(self) -> av.Packet | None:
        if self._pending:
            return self._pending.popleft()
        while self._pull is not None:
            packet = next(self._pull, None)
            if packet is None:
                self._pull = None
            elif (packet.stream_index in self._copy_map and packet.size
                    and _stamp(packet) is not None):
                return packet
        return None

    def _mux_copies_until(self, seconds: float | None) -> None:
        """Mux pass-through packets whose time is before ``seconds`` (all of them for None)."""
        if self._poll is not None:
            self.remux(self._poll())
        while True:
            packet = self._next_copy()
            if packet is None:
                return
            stamp = _stamp(packet)
            if (seconds is not None and stamp is not None and packet.time_base
                    and float(stamp * packet.time_base) > seconds):
                self._pending.appendleft(packet)
                return
            packet.stream = self._copy_map[packet.stream_index]
            self._container.mux(packet)

    def _mux_video(self, packets) -> None:
        for packet in packets:
            stamp = _stamp(packet)
            if stamp is not None and packet.time_base:
                self._mux_copies_until(float(stamp * packet.time_base))
            self._container.mux(packet)

    def write(self, rgb, pts: int | None = None) -> None:
        """Encode one frame: float ``[3, height, width]`` in ``[0, 1]`` (clipped), at ``pts``
        (source time base; default: one frame after the previous one)."""
        array = np.asarray(rgb, dtype=np.float32)
        if array.shape != (3, self.height, self.width):
            raise SuperResError(
                f"frame shaped {tuple(array.shape)} given to a {self.width}x{self.height} "
                f"writer; expected [3, {self.height}, {self.width}] float RGB")
        if not np.isfinite(array).all():
            raise SuperResError(
                "frame contains NaN or infinite values; check the model output (fp16 "
                "overflow is a common cause; try fp32)")
        frame = rgb_to_frame(array, self._fill, self.colour)
        if self._fill != self.pix_fmt:
            frame = frame.reformat(format=self.pix_fmt)  # a repack: the same samples, new layout
        self.write_frame(frame, pts)

    def write_frame(self, frame: av.VideoFrame, pts: int | None = None) -> None:
        """Encode one frame already in the writer's ``pix_fmt``, ``width`` x ``height`` and
        colour tags (as :func:`rgb_to_frame` makes it with ``pix_fmt`` and ``colour``), at
        ``pts`` (source time base; default: one frame after the previous one). Its timestamp
        is fitted to the container as :meth:`write` does; a full disk and encoder errors are
        reported the same way."""
        if (frame.width, frame.height, frame.format.name) != (self.width, self.height, self.pix_fmt):
            raise SuperResError(
                f"a {frame.width}x{frame.height} {frame.format.name} frame given to a "
                f"{self.width}x{self.height} {self.pix_fmt} writer; make it with "
                "rgb_to_frame(rgb, writer.pix_fmt, writer.colour)")
        source_pts = self._next_pts if pts is None else int(pts)
        self._next_pts = source_pts + self.info.frame_step
        frame.pts = self._fit_pts(source_pts)
        frame.time_base = self._time_base
        try:
            with reporting_full_disk(self.path):
                self._mux_video(self._video.encode(frame))
        except (av.FFmpegError, OSError) as exc:
            raise SuperResError(f"encoding frame {self.frames_written} failed: {exc}") from exc
        self.frames_written += 1

    def _flush_video(self) -> Iterable[av.Packet]:
        """The packets the encoder still holds (a writer that copies packets has none)."""
        return self._video.encode(None)

    def close(self) -> Path | None:
        """Flush the encoder, mux the remaining pass-through packets, and move the file into
        place; returns its path (None for a file object)."""
        with reporting_full_disk(self.path):
            try:
                self._mux_video(self._flush_video())
                self._mux_copies_until(None)
                self._container.close()
                self._pending.clear()
                if self.retimed:
                    log.warning("%d of %d frame timestamps were moved to fit the '%s' container "
                                "(duplicate, backward or too close for its time base, or a gap "
                                "too long); the frame order is kept", self.retimed,
                                self.frames_written, self._target.suffix)
                return self._target.commit()
            except BaseException:
                self.abort()
                raise

    def abort(self) -> None:
        """Stop without producing a file: close everything and delete the temporary file."""
        with contextlib.suppress(Exception):
            self._container.close()
        self._pending.clear()
        self._target.abort()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
