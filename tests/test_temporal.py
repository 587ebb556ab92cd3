"""Window planner properties and the engine's streaming vs random-access agreement."""

import random

import pytest
import torch

from vs_superres import Upscaler
from vs_superres.contracts.errors import SuperResError
from vs_superres.runtime.windows import SceneStarts, TemporalWindowPlan


@pytest.mark.parametrize("N,L,O", [(1, 5, 2), (4, 5, 2), (5, 5, 2), (17, 5, 2), (30, 8, 3), (10, 4, 0), (9, 1, 0)])
def test_every_frame_covered_and_weights_sum_to_one(N, L, O):
    plan = TemporalWindowPlan(N, L, O)
    for n in range(N):
        ws = plan.weights_of(n)
        assert ws, n
        assert sum(w for _, w in ws) == pytest.approx(1.0)
        for k, _ in ws:
            assert plan.frames_of(k)[plan.position(k, n)] == n
    # the last window reaches the last frame, and no window starts past the end
    assert N - 1 in plan.frames_of(plan.num_windows - 1)
    assert all(k * plan.stride < N for k in range(plan.num_windows))


def test_windows_are_aligned_on_a_fixed_grid():
    plan = TemporalWindowPlan(100, 8, 2)
    assert plan.frames_of(0) == list(range(0, 8))
    assert plan.frames_of(3) == list(range(18, 26))
    # stride 6: window 2 covers [12, 20), window 3 covers [18, 26)
    assert plan.windows_of(20) == [3]
    assert plan.windows_of(19) == [2, 3]
    # independent of anything but the index
    assert TemporalWindowPlan(100, 8, 2).windows_of(19) == plan.windows_of(19)


def test_clip_end_repeats_the_last_frame():
    plan = TemporalWindowPlan(7, 5, 1)
    assert plan.num_windows == 2
    assert plan.frames_of(1) == [4, 5, 6, 6, 6]
    short = TemporalWindowPlan(2, 5, 2)
    assert short.frames_of(0) == [0, 1, 1, 1, 1]


def test_crossfade_is_linear_across_the_overlap():
    plan = TemporalWindowPlan(50, 8, 3)  # stride 5: overlap frames 5,6,7 between windows 0 and 1
    w = {n: dict(plan.weights_of(n)) for n in (5, 6, 7)}
    assert [round(w[n][1], 6) for n in (5, 6, 7)] == [0.25, 0.5, 0.75]
    assert [round(w[n][0], 6) for n in (5, 6, 7)] == [0.75, 0.5, 0.25]


def test_scene_cut_splits_window_into_padded_segments():
    plan = TemporalWindowPlan(20, 6, 2)
    cuts = [False] * 20
    cuts[7] = True  # frame 7 starts a new scene; window 1 covers 4..9
    segs = plan.segments(1, SceneStarts.of(cuts))
    assert [(s.start, s.stop) for s in segs] == [(0, 3), (3, 6)]
    assert segs[0].inputs == (4, 5, 6, 6, 6, 6)
    assert segs[1].inputs == (7, 7, 7, 7, 8, 9)
    # a cut at the window's first position changes nothing
    cuts2 = [False] * 20
    cuts2[4] = True
    assert len(plan.segments(1, SceneStarts.of(cuts2))) == 1


def test_scene_starts_one_type_from_every_shape():
    want = SceneStarts(frozenset({3, 7}))
    flags = [i in (3, 7) for i in range(10)]
    assert SceneStarts.of(flags) == want
    assert SceneStarts.of(torch.tensor(flags)) == want
    assert SceneStarts.of({3, 7}) == want
    assert SceneStarts.of({i: f for i, f in enumerate(flags)}) == want
    assert SceneStarts.of(want) is want
    assert SceneStarts.of(None) == SceneStarts() and not SceneStarts().starts(0)
    assert [want.starts(i) for i in range(12)] == flags + [False, False]  # past the flags: no cut
    with pytest.raises(SuperResError, match="SceneStarts.of"):
        SceneStarts(frozenset({True}))
    with pytest.raises(SuperResError, match="per-frame flags .* got function"):
        SceneStarts.of(lambda i: i == 3)


def test_every_shape_of_scene_starts_gives_the_same_frames():
    x = torch.rand(9, 3, 6, 6, generator=torch.Generator().manual_seed(3))
    up = Upscaler("temporal-mean-x2", device="cpu", window=4, window_overlap=1)
    base = up.upscale(x, scene_starts=[i == 5 for i in range(9)])
    assert not torch.equal(base, up.upscale(x))
    for shape in ({5}, {5: True, 6: False}, SceneStarts(frozenset({5}))):
        assert torch.equal(up.upscale(x, scene_starts=shape), base), shape


@pytest.mark.parametrize("L,O,N", [(5, 2, 1), (5, 2, 3), (5, 2, 13), (4, 0, 9), (6, 3, 17)])
def test_output_does_not_depend_on_request_order(L, O, N):
    up = Upscaler("temporal-mean-x2", device="cpu", window=L, window_overlap=O)
    x = torch.rand(N, 3, 6, 7)
    cuts = [False] * N
    if N > 8:
        cuts[N // 2] = True
    sequential = up.upscale(x, scene_starts=cuts)
    order = list(range(N))
    random.Random(1).shuffle(order)
    for n in order:
        need = up.frames_needed(n, N)
        got = up.render_frame(n, N, {i: x[i] for i in need}, {i: cuts[i] for i in need})
        torch.testing.assert_close(got, sequential[n], atol=1e-6, rtol=0)


def test_scene_cut_isolates_scenes():
    up = Upscaler("temporal-mean-x2", device="cpu", window=5, window_overlap=2)
    N = 12
    x = torch.rand(N, 3, 4, 4)
    cuts = [False] * N
    cuts[6] = True
    base = up.upscale(x, scene_starts=cuts)
    changed = x.clone()
    changed[6:] = torch.rand(6, 3, 4, 4)  # the second scene changes completely
    other = up.upscale(changed, scene_starts=cuts)
    torch.testing.assert_close(other[:6], base[:6])  # the first scene does not notice
    assert not torch.allclose(other[6:], base[6:])
    # without the cut, the change leaks into frame 5 through the window mean
    leak = up.upscale(changed)
    assert not torch.allclose(leak[5], up.upscale(x)[5])


def test_window_overlap_continuity_on_a_smooth_clip():
    # a smooth ramp in time: consecutive output frames differ by about the same amount at
    # window borders as inside a window (crossfade, no jump)
    up = Upscaler("temporal-mean-x2", device="cpu", window=6, window_overlap=3)
    N = 30
    t = torch.linspace(0, 1, N)
    x = t[:, None, None, None].expand(N, 3, 4, 4).clone()
    y = up.upscale(x)
    steps = (y[1:] - y[:-1]).abs().mean(dim=(1, 2, 3))
    assert float(steps.max()) < 2.5 * float(steps.median())


def test_streaming_holds_at_most_a_window():
    up = Upscaler("temporal-mean-x2", device="cpu", window=4, window_overlap=1)
    produced = []

    def frames():
        for i in range(40):
            produced.append(i)
            yield torch.full((3, 2, 2), i / 40)

    for i, _ in enumerate(up.stream(frames())):
        # the reader never runs more than a window (plus one look-ahead frame) ahead
        assert len(produced) - i <= up.window + 1


def test_plan_rejects_bad_arguments():
    with pytest.raises(SuperResError, match="overlap must be in"):
        TemporalWindowPlan(10, 4, 4)
    with pytest.raises(SuperResError, match="at least 1"):
        TemporalWindowPlan(0, 4, 1)
    with pytest.raises(SuperResError, match="window_overlap must be in"):
        Upscaler("temporal-mean-x2", device="cpu", window=3, window_overlap=5)
