"""Image and video files for vs-superres: float R'G'B' in, float R'G'B' out.

- :func:`read_image` / :func:`write_image`: PNG, TIFF (8/16-bit), JPEG; ``[H, W, 3]`` float32.
- :class:`VideoReader` / :class:`VideoWriter`: streaming video as ``[3, H, W]`` float32 frames,
  converted with the source's own colour matrix, range and chroma siting, written back with
  the same tags, timestamps, audio and subtitles. Sources and targets are paths (always
  opened as local files, never as FFmpeg URLs) or binary file objects (pipes).
- :class:`StreamInfo`: what the reader tells the writer (geometry, rate, time base, colour,
  bit depth, the streams to pass through); the two never import each other.
- :func:`transcode`: reader -> your frame iterator function -> writer, in bounded memory.
- :func:`atomic_output`: every file appears under its final name only once complete.
"""

from .atomic import AtomicFile, atomic_output, write_bytes_atomic
from .colour import ColourInfo
from .images import ImageInfo, read_image, write_image
from .streaminfo import PassthroughStream, StreamInfo
from .transcoding import transcode
from .video import DecodedFrame, VideoReader
from .writer import VideoWriter, choose_encoder, encoder_available

__all__ = [
    "AtomicFile", "ColourInfo", "DecodedFrame", "ImageInfo", "PassthroughStream", "StreamInfo",
    "VideoReader", "VideoWriter", "atomic_output", "choose_encoder", "encoder_available",
    "read_image", "transcode", "write_bytes_atomic", "write_image",
]
