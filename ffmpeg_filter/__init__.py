"""FFmpeg pipe bridge for vs-superres (imported as ``vs_superres.ffmpeg_filter``).

Two commands, both thin hosts over :class:`vs_superres.Upscaler` and :mod:`vs_superres.media`:

- ``superres-filter`` (:mod:`.filter_cmd`): video on stdin, upscaled video on stdout, in any
  of the carriers of :mod:`.carriers` (y4m, NUT, Matroska, raw frames);
- ``superres-ffmpeg`` (:mod:`.wrapper`): ffmpeg's own command line with ``superres=...`` in the
  video filter chain, run as ffmpeg -> engine -> ffmpeg (:mod:`.cmdline`).

Options are derived from the declarations (:mod:`.options`); frames stream through the media
layer's one run path (:mod:`vs_superres.media.pump`: three overlapping stages with bounded
queues), and signals, exit statuses and progress are the host kit's (:mod:`vs_superres.hostkit`),
as for ``superres``. See ``docs/ffmpeg_bridge.md``.
Importing this package imports neither torch nor the models.
"""
