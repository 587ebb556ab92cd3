"""PatchScaler, one test per equation and algorithm of the paper (Eq. 1-7, Algorithm 1), plus
the PGS machinery: grouping thresholds at their boundaries, group plans, stitching, seeds.

No autoencoder is needed here: the networks are the tiny config, built in memory.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vs_superres.models.patchscaler.configs import TINY_CONFIG, PatchScalerConfig
from vs_superres.models.patchscaler.grm import grm_loss, optimal_confidence, squared_error_map
from vs_superres.models.patchscaler.options import PatchScalerSettings
from vs_superres.models.patchscaler.pgs import PatchGrid, assign_groups, axis_starts, qmap
from vs_superres.models.patchscaler.rtm import (
    ReferenceTextureMemory, build_rtm, farthest_point_sampling, fps_features, retrieve,
)
from vs_superres.models.patchscaler.sampler import GroupJob, assign_devices, patch_noise, sample_patches, texture_prompts
from vs_superres.models.patchscaler.schedule import (
    NoiseSchedule, ddim_timesteps, group_plans, q_sample, q_sample_shortcut, q_step, shortcut_gap, truncated_start,
)
from vs_superres.models.patchscaler.tiny import tiny_networks

pytestmark = pytest.mark.torch_threads(1)

SCHEDULE = NoiseSchedule.linear()



# ----------------------------------------------------------------------------- Eq. 1


def test_eq1_grm_loss_matches_a_hand_computation_and_its_confidence_optimum():
    y = torch.tensor([[[[1.0, 2.0]], [[0.0, 1.0]]]])  # [1, 2, 1, 2]
    x = torch.tensor([[[[0.5, 2.0]], [[1.0, 3.0]]]])
    c = torch.tensor([[[[0.5, 0.25]]]])
    e = [0.25 + 1.0, 0.0 + 4.0]  # channel-summed squared errors per pixel
    l1 = (0.5 + 0.0 + 1.0 + 2.0) / 4
    lam, eta = 2.0, 0.1
    expected = l1 + lam * ((0.5 * e[0] - eta * math.log(0.5)) + (0.25 * e[1] - eta * math.log(0.25))) / 2
    assert squared_error_map(y, x).flatten().tolist() == e
    assert grm_loss(y, c, x, lam=lam, eta=eta).item() == pytest.approx(expected, rel=1e-6)

    # per pixel, lambda (C e - eta log C) is minimised by C* = eta / e: gradient descent finds it
    err = torch.tensor([0.2, 0.5, 1.0, 4.0])
    logit = torch.zeros(4, requires_grad=True)
    opt = torch.optim.Adam([logit], lr=0.05)
    for _ in range(3000):
        opt.zero_grad()
        cc = torch.sigmoid(logit)
        (cc * err - 0.1 * torch.log(cc)).sum().backward()
        opt.step()
    assert torch.allclose(torch.sigmoid(logit).detach(), 0.1 / err, atol=1e-3)
    assert optimal_confidence(torch.tensor([0.05, 0.1, 0.2]), 0.1).tolist() == pytest.approx([1.0, 1.0, 0.5])
    # a saturated confidence cannot make the loss infinite (C is clamped before the log)
    assert torch.isfinite(grm_loss(y, torch.zeros_like(c), x))


# ----------------------------------------------------------------------------- Eq. 2


def test_eq2_qmap_thresholds_at_their_boundaries():
    got = [qmap(a) for a in (1.0, 0.96, 0.9500001, 0.95, 0.90, 0.7500001, 0.75, 0.5, 0.0)]
    assert got == ["simple", "simple", "simple", "medium", "medium", "medium", "hard", "hard", "hard"]
    for bad in (-0.01, 1.01, float("nan")):
        with pytest.raises(ValueError, match=r"Avg\(C\) must be in \[0, 1\]"):
            qmap(bad)
    assert qmap(0.6, gamma_simple=0.7, gamma_medium=0.6) == "hard"


def test_eq2_averages_only_each_patch_footprint():
    grid = PatchGrid.of(16, 28, patch=16, stride=12)  # x origins 0, 12
    conf = torch.ones(1, 16, 28)
    conf[:, :, 16:] = 0.0  # only the second patch sees these columns
    means = grid.footprint_means(conf)
    assert means.tolist() == pytest.approx([1.0, 4 / 16])
    assert assign_groups(means) == {"simple": [0], "medium": [], "hard": [1]}
    # a latent smaller than V: the padding is not averaged
    small = PatchGrid.of(5, 7, patch=16, stride=12)
    c = torch.linspace(0, 1, 35).reshape(1, 5, 7)
    assert small.footprint_means(c).item() == pytest.approx(c.double().mean().item())


# ----------------------------------------------------------------------------- Eq. 3 / 4 / 5 / 6


def test_eq3_forward_step_and_a_monotone_schedule():
    b = SCHEDULE.betas[1:]
    assert (b > 0).all() and (b < 1).all() and (b[1:] > b[:-1]).all()
    x, eps = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    beta = float(SCHEDULE.betas[500])
    assert torch.equal(q_step(x, 500, SCHEDULE, eps), math.sqrt(1 - beta) * x + math.sqrt(beta) * eps)


def test_eq4_closed_form_equals_the_chained_steps():
    mean, var = 1.0, 0.0
    for t in range(1, 1001):
        a = float(SCHEDULE.alphas[t])
        mean, var = mean * math.sqrt(a), a * var + float(SCHEDULE.betas[t])
        if t in (1, 400, 700, 1000):
            assert mean == pytest.approx(SCHEDULE.sqrt_alpha_bar(t), rel=1e-12)
            assert var == pytest.approx(1 - float(SCHEDULE.alpha_bar[t]), rel=1e-12)
    # sqrt(abar) at the three groups' starts (the notes: 0.442 / 0.0835 / 0.0064)
    assert [round(SCHEDULE.sqrt_alpha_bar(t), 4) for t in (400, 700, 1000)] == [0.4418, 0.0835, 0.0064]
    # Monte Carlo: chaining Eq. 3 400 times matches Eq. 4's moments within 3 sigma
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000,), 2.0, dtype=torch.float64)
    x = x0.clone()
    for t in range(1, 401):
        x = q_step(x, t, SCHEDULE, torch.randn(x.shape, generator=g, dtype=torch.float64))
    m, v = SCHEDULE.sqrt_alpha_bar(400) * 2.0, 1 - float(SCHEDULE.alpha_bar[400])
    assert abs(x.mean().item() - m) < 3 * math.sqrt(v / x.numel())
    assert abs(x.var().item() - v) < 3 * v * math.sqrt(2 / x.numel())
    # the batched form with per-sample steps agrees with the scalar one
    t = torch.tensor([1, 400, 1000])
    xb, eps = torch.randn(3, 4), torch.randn(3, 4)
    for i in range(3):
        assert torch.allclose(q_sample(xb, t, SCHEDULE, eps)[i], q_sample(xb[i], int(t[i]), SCHEDULE, eps[i]), atol=1e-6)


def test_eq5_shortcut_is_eq4_with_x0_split():
    y0, d, eps = torch.randn(4, 16, 16), torch.randn(4, 16, 16), torch.randn(4, 16, 16)
    assert torch.equal(q_sample_shortcut(y0, d, 700, SCHEDULE, eps), q_sample(y0 + d, 700, SCHEDULE, eps))


def test_eq6_gap_shrinks_with_tau():
    d = torch.randn(4, 16, 16)
    gaps = [shortcut_gap(d, tau, SCHEDULE) for tau in (1, 100, 400, 700, 1000)]
    assert all(a > b for a, b in zip(gaps, gaps[1:]))
    y0, eps = torch.randn(4, 16, 16), torch.randn(4, 16, 16)
    exact, approx = q_sample(y0 + d, 400, SCHEDULE, eps), truncated_start(y0, 400, SCHEDULE, eps)
    assert (exact - approx).double().norm().item() == pytest.approx(gaps[2], rel=1e-5)


# ----------------------------------------------------------------------------- Eq. 7 and the group plan


def test_eq7_start_and_group_plans_with_the_paper_defaults():
    y0, eps = torch.randn(4, 16, 16), torch.randn(4, 16, 16)
    a = float(SCHEDULE.alpha_bar[700])
    assert torch.equal(truncated_start(y0, 700, SCHEDULE, eps), math.sqrt(a) * y0 + math.sqrt(1 - a) * eps)
    plans = group_plans(PatchScalerSettings().group_schedule())
    assert {g: (p.tau, p.num_steps) for g, p in plans.items()} == {"simple": (400, 8), "medium": (700, 14), "hard": (1000, 20)}
    for p in plans.values():
        ts = p.timesteps
        assert ts[0] == p.tau and ts[-1] >= 1 and all(a > b for a, b in zip(ts, ts[1:]))
    assert plans["simple"].timesteps == (400, 350, 300, 250, 200, 150, 100, 50)
    assert ddim_timesteps(10, 4) == (10, 8, 5, 3)  # round half up, the same on every platform
    assert ddim_timesteps(5, 5) == (5, 4, 3, 2, 1)


def test_group_plan_call_counts_with_a_counting_model():
    """Sum over groups of ceil(M_g / B) * N_g Patch-DiT calls; the texture encoder runs once per patch."""
    nets = tiny_networks(live=True)
    calls = {"dit": 0, "encoder_patches": 0}
    nets.dit.register_forward_hook(lambda m, a, o: calls.__setitem__("dit", calls["dit"] + 1))
    nets.texture_encoder.register_forward_hook(
        lambda m, a, o: calls.__setitem__("encoder_patches", calls["encoder_patches"] + a[0].shape[0]))
    settings = PatchScalerSettings(tau_simple=40, tau_medium=70, tau_hard=100, steps_simple=2, steps_medium=3, steps_hard=5)
    plans = group_plans(settings.group_schedule())
    sizes = {"simple": 5, "medium": 3, "hard": 9}
    order = torch.randperm(17).tolist()
    jobs, lo = [], 0
    for g, m in sizes.items():
        jobs.append(GroupJob(plans[g], tuple(sorted(order[lo:lo + m]))))
        lo += m
    patches = torch.randn(17, 4, 16, 16)
    with torch.no_grad():
        prompts = texture_prompts(nets, patches)
        sample_patches({0: nets}, [torch.device("cpu")], patches, prompts, jobs, SCHEDULE, seed=0, batch=4)
    assert calls["dit"] == sum(math.ceil(m / 4) * n for m, n in zip(sizes.values(), (2, 3, 5)))
    assert calls["encoder_patches"] == 17


# ----------------------------------------------------------------------------- Algorithm 1 and the RTM


def test_alg1_retrieval_against_brute_force():
    g = torch.Generator().manual_seed(3)
    keys = F.normalize(torch.randn(50, 8, generator=g), dim=1)
    values = torch.randn(50, 4, 16, 16, generator=g)
    rtm = ReferenceTextureMemory(keys, values)
    query = torch.randn(6, 8, generator=g) * 7.0
    priors, sims = retrieve(query, rtm, top_k=3)
    assert torch.allclose(keys.norm(dim=1), torch.ones(50))
    for b in range(6):
        cos = torch.tensor([F.cosine_similarity(query[b], keys[i], dim=0) for i in range(50)])
        best = sorted(range(50), key=lambda i: -cos[i].item())[:3]
        assert torch.allclose(sims[b], cos[best], atol=1e-6)
        assert torch.equal(priors[b], values[best])
    assert torch.equal(retrieve(query * 0.01, rtm, 3)[0], priors)  # query-scale invariant
    own, s = retrieve(keys[[7]] * 3, rtm, 3)  # a stored key ranks its own value first, with s = 1
    assert torch.equal(own[0, 0], values[7]) and s[0, 0].item() == pytest.approx(1.0, abs=1e-6)


def _fps_brute_force(points: torch.Tensor, count: int) -> list[int]:
    chosen = [0]
    for _ in range(count - 1):
        best, best_d = None, -1.0
        for i in range(points.shape[0]):
            d = min(float(((points[i] - points[j]) ** 2).sum()) for j in chosen)
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
    return chosen


def test_rtm_farthest_point_sampling_against_brute_force():
    g = torch.Generator().manual_seed(1)
    pts = torch.randn(60, 5, generator=g, dtype=torch.float64)
    got = farthest_point_sampling(pts, 12).tolist()
    assert got == _fps_brute_force(pts, 12)
    assert len(set(got)) == 12 and farthest_point_sampling(pts, 12).tolist() == got
    # the build: keys are unit rows of T's features, chosen by FPS on [key, value]
    nets = tiny_networks(live=True)
    values = torch.randn(40, 4, 16, 16, generator=g)
    rtm = build_rtm(values, nets.classifier, 10)
    with torch.no_grad():
        keys = F.normalize(nets.classifier.features(values), dim=1)
    chosen = farthest_point_sampling(fps_features(keys, values), 10)
    assert len(rtm) == 10 and torch.equal(rtm.values, values[chosen])
    assert torch.allclose(rtm.keys, keys[chosen], atol=1e-6)


# ----------------------------------------------------------------------------- Patch-DiT and the texture prompt


def test_prompt_is_time_independent_and_gamma_zero_removes_it():
    nets = tiny_networks(live=True)
    y0, yt = torch.randn(3, 4, 16, 16), torch.randn(3, 4, 16, 16)
    with torch.no_grad():
        p1, p2 = nets.texture_prompt(y0), torch.randn(3, *nets.texture_prompt(y0).shape[1:])
        a = nets.dit(yt, 500, y0, nets.dit.prompt_cache(p1))
        b = nets.dit(yt, 500, y0, nets.dit.prompt_cache(p2))
        assert (a - b).abs().max() > 1e-4  # the prompt matters while gamma(t) is live
        for blk in nets.dit.blocks:
            blk.cross_scale[1].weight.zero_()
            blk.cross_scale[1].bias.zero_()
        a = nets.dit(yt, 500, y0, nets.dit.prompt_cache(p1))
        b = nets.dit(yt, 500, y0, nets.dit.prompt_cache(p2))
        assert torch.equal(a, b)
        # one shared step is the same as the per-sample form training uses
        c = nets.dit(yt, torch.full((3,), 500), y0, nets.dit.prompt_cache(p1))
        assert torch.allclose(a, c, atol=1e-6)


def test_zero_initialised_model_returns_the_coarse_latent():
    nets = tiny_networks(live=False)  # as constructed: x0 head and gates zero
    grid = PatchGrid.of(21, 30, 16, 12)
    y_hr = torch.randn(4, 21, 30)
    patches = grid.extract(y_hr)
    jobs = [GroupJob(p, tuple(range(i, len(grid), 3))) for i, p in enumerate(group_plans(PatchScalerSettings().group_schedule()).values())]
    with torch.no_grad():
        x0 = sample_patches({0: nets}, [torch.device("cpu")], patches, texture_prompts(nets, patches), jobs, SCHEDULE,
                            seed=0, batch=4)
    assert torch.equal(grid.stitch(x0), y_hr)


# ----------------------------------------------------------------------------- stitching, seeds, devices


@pytest.mark.parametrize("h,w", [(16, 16), (40, 40), (21, 30), (17, 29), (5, 7), (3, 40), (1, 1)])
def test_overlap_stitching_reassembles_an_untouched_latent_exactly(h, w):
    grid = PatchGrid.of(h, w, 16, 12)
    y = torch.randn(4, h, w)
    covered = torch.zeros(max(h, 16), max(w, 16), dtype=torch.bool)
    for top, left in grid.origins:
        covered[top:top + 16, left:left + 16] = True
    assert covered.all()
    assert torch.equal(grid.stitch(grid.extract(y)), y)
    assert axis_starts(40, 16, 12) == [0, 12, 24] and axis_starts(41, 16, 12) == [0, 12, 24, 25] and axis_starts(7, 16, 12) == [0]
    with pytest.raises(ValueError, match="patch_stride must be in"):
        axis_starts(40, 16, 17)


def test_patch_noise_depends_only_on_seed_and_index():
    a = patch_noise(0, 5, (4, 16, 16))
    assert torch.equal(a, patch_noise(0, 5, (4, 16, 16)))
    assert not torch.equal(a, patch_noise(0, 6, (4, 16, 16))) and not torch.equal(a, patch_noise(1, 5, (4, 16, 16)))


def test_output_is_independent_of_batch_size_group_order_and_device_split():
    nets = tiny_networks(live=True)
    grid = PatchGrid.of(30, 30, 16, 12)
    patches = grid.extract(torch.randn(4, 30, 30))
    plans = group_plans(PatchScalerSettings(tau_simple=40, tau_medium=70, tau_hard=100, steps_simple=2, steps_medium=3,
                                            steps_hard=4).group_schedule())
    jobs = [GroupJob(plans["simple"], (0, 4, 8)), GroupJob(plans["medium"], (1, 2, 5, 7)), GroupJob(plans["hard"], (3, 6))]
    cpu = torch.device("cpu")
    with torch.no_grad():
        prompts = texture_prompts(nets, patches)
        ref = sample_patches({0: nets}, [cpu], patches, prompts, jobs, SCHEDULE, seed=7, batch=64)
        for batch in (1, 2, 3):
            assert torch.equal(sample_patches({0: nets}, [cpu], patches, prompts, jobs, SCHEDULE, seed=7, batch=batch), ref)
        assert torch.equal(sample_patches({0: nets}, [cpu], patches, prompts, jobs[::-1], SCHEDULE, seed=7, batch=2), ref)
        two = sample_patches({0: nets, 1: nets}, [cpu, cpu], patches, prompts, jobs, SCHEDULE, seed=7, batch=2)
        assert torch.equal(two, ref)
        assert not torch.equal(sample_patches({0: nets}, [cpu], patches, prompts, jobs, SCHEDULE, seed=8, batch=2), ref)


def test_device_assignment_puts_the_hard_group_alone_as_in_the_paper():
    plans = group_plans(PatchScalerSettings().group_schedule())
    jobs = [GroupJob(plans["simple"], tuple(range(40))), GroupJob(plans["medium"], tuple(range(30))),
            GroupJob(plans["hard"], tuple(range(30)))]
    split = assign_devices(jobs, 2)
    assert [[j.plan.name for j in d] for d in split] == [["hard"], ["medium", "simple"]]
    assert [[j.plan.name for j in d] for d in assign_devices(jobs, 1)] == [["hard", "medium", "simple"]]


# ----------------------------------------------------------------------------- defaults and settings


def test_paper_defaults():
    s, c = PatchScalerSettings(), PatchScalerConfig()
    assert (s.gamma_simple, s.gamma_medium) == (0.95, 0.75)
    assert s.group_schedule() == {"simple": (400, 8), "medium": (700, 14), "hard": (1000, 20)}
    assert (c.patch_size, c.latent_channels, c.num_timesteps, c.rtm_size, c.scale) == (16, 4, 1000, 2000, 4)
    assert (c.beta_start, c.beta_end, c.latent_scale) == (1e-4, 0.02, 0.18215)
    assert PatchScalerConfig.from_dict(TINY_CONFIG.to_dict()) == TINY_CONFIG


def test_settings_refuse_inconsistent_groups():
    from vs_superres import InvalidOption

    with pytest.raises(InvalidOption, match="gamma_medium .* must be less than gamma_simple") as e:
        PatchScalerSettings(gamma_simple=0.7, gamma_medium=0.8)
    assert e.value.option == "gamma_medium"
    with pytest.raises(InvalidOption, match=r"tau_simple <= tau_medium <= tau_hard"):
        PatchScalerSettings(tau_simple=800)
    with pytest.raises(InvalidOption, match="steps_simple .* cannot exceed tau_simple"):
        PatchScalerSettings(tau_simple=5, steps_simple=8)
    uniform = PatchScalerSettings(tau_simple=1000, tau_medium=1000, steps_simple=20, steps_medium=20)
    assert set(uniform.group_schedule().values()) == {(1000, 20)}
