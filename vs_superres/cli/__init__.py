"""The ``superres`` command line (``superres --help``); :func:`main` is the console script."""

from vs_superres.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
