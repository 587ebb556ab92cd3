"""FFmpeg pipe bridge for vs-superres (imported as ``vs_superres.ffmpeg_filter``).

Not written yet (issue 11); ``superres upscale`` already streams videos through PyAV, and
``vs_superres.media`` reads and writes pipes (``StreamInfo``). The package exists so that the
installed layout is final.
"""
