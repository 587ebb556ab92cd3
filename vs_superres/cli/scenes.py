"""``superres upscale ... --scene-cuts 120,480`` or ``--scene-cuts @cuts.txt``: where scenes start.

A video model's temporal windows never mix two scenes: the frames named here begin a new scene
(0-based frame numbers of the input, as ffmpeg's ``select``/``scdet`` or a scene detector list
them). The engine takes them as :class:`~vs_superres.runtime.windows.SceneStarts`; a journaled
job records them in its identity (other cuts: other output).
"""

from __future__ import annotations

import argparse
import re
from typing import Any
from pathlib import Path

from vs_superres.contracts.errors import InvalidOption

_SEPARATORS = re.compile(r"[\s,;]+")


def add_arguments(parser: Any) -> None:
    parser.add_argument("--scene-cuts", default=None, metavar="FRAMES",
                        help="frames where a new scene starts (a video model's windows never cross them): "
                             "120,480,... or @FILE with the numbers separated by commas, spaces or lines "
                             "(# starts a comment); 0-based input frame numbers")


def scene_cuts(args: argparse.Namespace) -> frozenset[int] | None:
    """The frames ``--scene-cuts`` names, or None when it was not given."""
    given = getattr(args, "scene_cuts", None)
    if given is None:
        return None
    text, where = given, "--scene-cuts"
    if given.startswith("@"):
        path = Path(given[1:])
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InvalidOption(f"--scene-cuts {given}: cannot read {str(path)!r} ({exc.strerror or exc}); "
                                "give a readable file of frame numbers", option="scene_cuts") from None
        where = f"--scene-cuts {given}"
        text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    frames = set()
    for word in filter(None, _SEPARATORS.split(text.strip())):
        if not word.isdigit():
            raise InvalidOption(f"{where}: {word!r} is not a frame number; give 0-based frame numbers such as "
                                "120,480", option="scene_cuts")
        frames.add(int(word))
    return frozenset(frames)
