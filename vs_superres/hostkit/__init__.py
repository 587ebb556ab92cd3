"""The host kit: what every command-line host (``superres``, its Ray runs, ``superres-filter``,
``superres-ffmpeg``) shares, written once.

- :mod:`.signals`: SIGINT, SIGTERM and SIGHUP unwind like Ctrl-C; the first raises, a second
  cannot cut the clean-up short, the previous handlers come back;
- :mod:`.exits`: the exit-status table (``--help`` and the docs read it) and the error ladder
  that turns an exception into a status and one line on stderr;
- :mod:`.flags`: command-line flags derived from the declared options, ``-O KEY=VALUE``, and
  how an option is spelled in messages;
- :mod:`.progress`: the progress bar (``superres``) and ffmpeg's progress line (the bridge).

Hosts import the kit; the kit imports the runtime and the contracts, never a host.
"""
