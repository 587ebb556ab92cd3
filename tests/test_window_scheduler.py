"""One window scheduler: stream == random access == any segmentation, bit for bit.

Checked for every registered video model (the tests' diagnostic model and a tiny UltraVSR
release loaded through the real loader), with and without a scene cut, for clips longer and
shorter than one window.
"""

from __future__ import annotations

import random

import pytest
import torch

from vs_superres import Upscaler
from vs_superres.runtime.registry import list_models
from vs_superres.runtime.windows import TemporalWindowPlan, WindowStream


@pytest.fixture(scope="module")
def tiny_ultravsr(ultravsr_release):
    base, ckpt = ultravsr_release
    return {"base": str(base), "checkpoint": str(ckpt), "strength": 0.3}


def engines(tiny_ultravsr):
    """An engine for every registered video model (a new video family must be added here)."""
    out = {}
    for desc in list_models(include_diagnostic=True):
        if desc.kind != "video":
            continue
        if desc.family == "ultravsr":
            out[desc.name] = Upscaler(desc.name, device="cpu", window=4, window_overlap=2, **tiny_ultravsr)
        elif desc.family == "temporal-mean":
            out[desc.name] = Upscaler(desc.name, device="cpu", window=5, window_overlap=2)
        else:
            raise AssertionError(f"no scheduler test for video model {desc.name}; add it here")
    return out


def clip(n: int, h: int = 12, w: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    base = torch.rand(3, h, w + n, generator=g)
    return torch.stack([base[:, :, i:i + w] for i in range(n)]).contiguous()  # a pan: frames differ


@pytest.mark.parametrize("num_frames,cut", [(11, None), (11, 6), (3, None)])
def test_stream_random_access_and_segments_agree(tiny_ultravsr, num_frames, cut):
    x = clip(num_frames)
    starts = [i == cut for i in range(num_frames)] if cut is not None else None
    for name, up in engines(tiny_ultravsr).items():
        streamed = torch.stack(list(up.stream(iter(x), scene_starts=starts, total=num_frames)))
        frames = {i: x[i] for i in range(num_frames)}
        flags = {i: bool(starts and starts[i]) for i in range(num_frames)}
        order = list(range(num_frames))
        random.Random(1).shuffle(order)
        for n in order:
            got = up.render_frame(n, num_frames, {i: frames[i] for i in up.frames_needed(n, num_frames)}, flags)
            assert torch.equal(got, streamed[n]), (name, "random access", n)
        plan = up.plan(num_frames)
        for per_segment in (1, 2, 3):
            pieces = []
            for seg in plan.split(per_segment):
                pieces += list(up.render_segment(seg, num_frames, {i: frames[i] for i in seg.inputs}, starts))
            assert torch.equal(torch.stack(pieces), streamed), (name, "segments of", per_segment)


@pytest.mark.parametrize("N,L,O,per", [(20, 5, 2, 1), (20, 5, 2, 3), (7, 8, 2, 1), (30, 6, 0, 2), (31, 6, 3, 4)])
def test_segments_partition_the_clip(N, L, O, per):
    plan = TemporalWindowPlan.for_clip(N, L, O)
    segs = plan.split(per)
    outputs = [n for s in segs for n in s.outputs]
    assert outputs == list(range(N))
    for s in segs:
        for n in s.outputs:
            assert set(plan.windows_of(n)) <= set(s.windows)
            for k in s.windows:
                assert set(plan.frames_of(k)) <= set(s.inputs)


def test_stream_reads_only_one_window_ahead():
    read = []

    def frames():
        for i in range(100):
            read.append(i)
            yield i

    ws = WindowStream(frames(), 10, 2)
    out = ws.run(lambda plan, k, get: [get(i) for i in plan.frames_of(k)])
    first = next(out)
    assert first == 0 and max(read) <= 10 + 1  # one window (+ the look-ahead that detects the end)
    assert list(out) == list(range(1, 100))
