"""Fixtures the bridge's fault tests share: the small clips and their y4m stream (one set per
test module, made in its own folder)."""

from __future__ import annotations

import pytest
from bridge_helpers import ffmpeg_bytes, make_clips


@pytest.fixture(scope="module")
def clips(tmp_path_factory, request):
    return make_clips(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1] + "_clips"))


@pytest.fixture(scope="module")
def y4m(clips) -> bytes:
    return ffmpeg_bytes("-i", clips["420.mkv"], "-fps_mode", "passthrough", "-f", "yuv4mpegpipe", "-")
