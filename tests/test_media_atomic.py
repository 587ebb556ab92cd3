"""Media: atomic writes (an interrupted or failed run leaves no file, an existing output
stays as it was)."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_helpers import make_clips, needs_ffmpeg, upscale_nearest

from vs_superres.contracts.errors import SuperResError
from vs_superres.media import atomic_output, transcode


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    return make_clips(tmp_path_factory)


@needs_ffmpeg
def test_interrupted_transcode_leaves_nothing(clips, tmp_path):
    dst = tmp_path / "out.mp4"

    def interrupted(frames):
        for index, frame in enumerate(upscale_nearest(frames)):
            if index == 5:
                raise KeyboardInterrupt
            yield frame

    with pytest.raises(KeyboardInterrupt):
        transcode(clips["h264_8bit.mp4"], dst, interrupted)
    assert list(tmp_path.iterdir()) == []
    dst.write_bytes(b"previous result")
    with pytest.raises(KeyboardInterrupt):
        transcode(clips["h264_8bit.mp4"], dst, interrupted)
    assert list(tmp_path.iterdir()) == [dst] and dst.read_bytes() == b"previous result"


@needs_ffmpeg
def test_process_must_yield_one_frame_per_input(clips, tmp_path):
    def drops_last(frames):
        return list(upscale_nearest(frames))[:-1]

    with pytest.raises(SuperResError, match="11 frames for 12 inputs"):
        transcode(clips["h264_8bit.mp4"], tmp_path / "out.mp4", drops_last)
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_cleans_up_on_interrupt(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]
