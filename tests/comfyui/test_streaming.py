"""Long videos in bounded memory through the real server (issue 24): LoadVideo -> SuperRes
Upscale Video -> SaveVideo streams the file, so the server's peak resident memory is the same
for 30 and 600 frames; interrupting a long streamed video leaves nothing in ComfyUI's temp
folder, and the next run works.

Sizes: 64x48 -> 256x192 with the tiny DITN. Holding the clip as ComfyUI's float32 tensors (the
decoded path) would add 600 x 256 x 192 x 3 x 4 B = 338 MiB of output alone at 600 frames.
"""

from __future__ import annotations

import threading
import time

import av
import numpy as np
import psutil

from graphs import node

MIB = 2**20
#: allowed growth of the peak from 30 to 600 frames (what the decoded path adds: ~350 MiB)
FLAT_MIB = 48


def _clip(comfy, astronaut, name: str, frames: int) -> str:
    path = comfy.base / "input" / name
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        base = (astronaut[100:148, 150:214] * 255).astype(np.uint8)
        for i in range(frames):
            img = np.ascontiguousarray(np.roll(base, i, axis=1))
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return name


def _prompt(comfy, video: str, prefix: str) -> dict:
    return {
        "1": node(comfy, "LoadVideo", file=video),
        "2": node(comfy, "SuperResLoadDITN", model="superres/tiny_ditn.pth", device="cpu"),
        "3": node(comfy, "SuperResUpscaleVideo", model=["2", 0], video=["1", 0]),
        "4": node(comfy, "SaveVideo", video=["3", 0], filename_prefix=prefix, format="auto", codec="auto"),
    }


class PeakRSS:
    """The server's resident memory, sampled every 20 ms while the block runs."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> "PeakRSS":
        self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _frames(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_peak_memory_is_flat_in_the_clip_length(comfy, astronaut):
    peaks = {}
    for frames in (30, 600):
        video = _clip(comfy, astronaut, f"flat_{frames}.mp4", frames)
        with PeakRSS(comfy.proc.pid) as rss:
            h = comfy.run(_prompt(comfy, video, f"flat/v{frames}"), timeout=900)
        assert h["status"]["status_str"] == "success", h["status"]
        (saved,) = (comfy.base / "output" / "flat").glob(f"v{frames}_*.mp4")
        assert _frames(saved) == frames
        peaks[frames] = rss.peak
    growth = (peaks[600] - peaks[30]) / MIB
    print(f"server peak RSS: 30 frames {peaks[30] / MIB:.0f} MiB, 600 frames {peaks[600] / MIB:.0f} MiB "
          f"(+{growth:.1f} MiB)")
    assert growth < FLAT_MIB, {k: v // MIB for k, v in peaks.items()}


def test_interrupting_a_long_streamed_video_leaves_no_file(comfy, astronaut):
    temp = comfy.base / "temp"
    video = _clip(comfy, astronaut, "interrupted.mp4", 600)
    before = set(temp.iterdir()) if temp.exists() else set()
    ws = comfy.websocket()
    try:
        pid = comfy.queue(_prompt(comfy, video, "cut/v"))
        ws.json_messages(lambda m: m["type"] == "progress" and m["data"].get("prompt_id") == pid
                         and m["data"]["value"] >= 100, timeout=300)  # a tenth of the clip is done
        status, _ = comfy.post("/interrupt", {})
        assert status == 200
        rest = ws.json_messages(lambda m: m["type"] in ("execution_interrupted", "execution_success", "execution_error")
                                and m["data"].get("prompt_id") == pid, timeout=300)
    finally:
        ws.close()
    assert rest[-1]["type"] == "execution_interrupted", [m["type"] for m in rest]
    assert rest[-1]["data"]["node_id"] == "3"
    assert set(temp.iterdir()) == before  # neither a partial output nor its temporary name
    assert not (comfy.base / "output" / "cut").exists()
    h = comfy.run(_prompt(comfy, _clip(comfy, astronaut, "after_cut.mp4", 12), "cut/after"))
    assert h["status"]["status_str"] == "success", h["status"]
    (saved,) = (comfy.base / "output" / "cut").glob("after_*.mp4")
    assert _frames(saved) == 12
    assert len(set(temp.iterdir()) - before) == 1
