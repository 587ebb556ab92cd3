"""Image and video files for vs-superres: float R'G'B' in, float R'G'B' out.

- :func:`read_image` / :func:`write_image`: PNG, TIFF (8/16-bit), JPEG; ``[H, W, 3]`` float32.
- :class:`VideoReader` / :class:`VideoWriter`: streaming video as ``[3, H, W]`` float32 frames,
  converted with the source's own colour matrix, range and chroma siting, written back with
  the same tags, timestamps, audio and subtitles. Sources and targets are paths (always
  opened as local files, never as FFmpeg URLs) or binary file objects (pipes).
- :class:`StreamInfo`: what the reader tells the writer (geometry, rate, time base, colour,
  bit depth, the streams to pass through); the two never import each other.
- :mod:`.pump`: the one run path of every sequential video host (a :class:`~.pump.FrameSource`
  -> ``process`` -> a :class:`~.pump.FrameSink`, three threads, bounded queues, one
  cancellation, progress and cut-input rule); :func:`transcode` is it with a reader and a
  writer: your frame iterator function between two files, in bounded memory.
- :func:`atomic_output`: every file appears under its final name only once complete.
"""

from vs_superres.media.atomic import AtomicFile, atomic_output, write_bytes_atomic
from vs_superres.media.colour import ColourInfo
from vs_superres.media.images import ImageInfo, read_image, write_image
from vs_superres.media.streaminfo import PassthroughStream, StreamInfo
from vs_superres.media.transcoding import transcode
from vs_superres.media.video import DecodedFrame, VideoReader
from vs_superres.media.encoders import choose_encoder, encoder_available
from vs_superres.media.writer import VideoWriter

__all__ = [
    "AtomicFile", "ColourInfo", "DecodedFrame", "ImageInfo", "PassthroughStream", "StreamInfo",
    "VideoReader", "VideoWriter", "atomic_output", "choose_encoder", "encoder_available",
    "read_image", "transcode", "write_bytes_atomic", "write_image",
]
