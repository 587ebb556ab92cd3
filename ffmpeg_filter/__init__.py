"""FFmpeg pipe bridge for vs-superres (imported as ``vs_superres.ffmpeg_filter``).

Not written yet (no issue has asked for it so far); ``superres upscale`` already streams
videos through PyAV. The package exists so that the installed layout is final.
"""
