"""The diffusion maths of Sec. 3.2: the DDPM forward process (Eq. 3-5), the truncated start of
PGS (Eq. 6/7), the per-group step plans and the deterministic DDIM reverse step.

Indices follow the paper: ``t = 1..T``; arrays are length ``T + 1`` with ``alpha_bar[0] = 1``
(the paper writes the product from ``i = 0``; with ``alpha_0 := 1`` that is the same).
The network predicts ``x_0`` (Sec. 3.2: ``f_theta`` maps any point of the trajectory "to the
starting point ``x_0``"), and the reverse process is DDIM with eta = 0, so the only random draw
of a patch is its start noise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch

from vs_superres.contracts.errors import InvalidOption


@dataclasses.dataclass(frozen=True)
class NoiseSchedule:
    """``betas[t]``, ``alphas[t] = 1 - betas[t]`` and ``alpha_bar[t] = prod_{i<=t} alphas[i]`` for t = 0..T (float64)."""

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bar: torch.Tensor

    @property
    def num_timesteps(self) -> int:
        return self.betas.numel() - 1

    @classmethod
    def linear(cls, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        """DiT's / DDPM's linear schedule, computed in float64; index 0 is the clean sample."""
        betas = torch.cat([torch.zeros(1, dtype=torch.float64),
                           torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)])
        alphas = 1.0 - betas
        return cls(betas=betas, alphas=alphas, alpha_bar=torch.cumprod(alphas, 0))

    def sqrt_alpha_bar(self, t: int) -> float:
        return math.sqrt(float(self.alpha_bar[t]))

    def sqrt_one_minus_alpha_bar(self, t: int) -> float:
        return math.sqrt(1.0 - float(self.alpha_bar[t]))


def q_step(x_prev: torch.Tensor, t: int, schedule: NoiseSchedule, noise: torch.Tensor) -> torch.Tensor:
    """One forward step, Eq. 3: ``x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps``."""
    beta = float(schedule.betas[t])
    return math.sqrt(1.0 - beta) * x_prev + math.sqrt(beta) * noise


def q_sample(x0: torch.Tensor, t: int | torch.Tensor, schedule: NoiseSchedule, noise: torch.Tensor) -> torch.Tensor:
    """The closed form, Eq. 4: ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``.

    ``t`` is an int or a ``[B]`` tensor of steps (training draws one per sample). With
    ``x_0 = y_0 + dx_0`` this is Eq. 5 (:func:`q_sample_shortcut`).
    """
    if isinstance(t, int):
        a = schedule.alpha_bar[t].item()
        return math.sqrt(a) * x0 + math.sqrt(1.0 - a) * noise
    abar = schedule.alpha_bar.to(x0.device)[t].to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
    return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise


def q_sample_shortcut(y0: torch.Tensor, delta_x0: torch.Tensor, t: int, schedule: NoiseSchedule,
                      noise: torch.Tensor) -> torch.Tensor:
    """Eq. 5: the forward process written with ``x_0 = y_0 + dx_0`` (the coarse patch plus the unknown residual)."""
    return q_sample(y0 + delta_x0, t, schedule, noise)


def shortcut_gap(delta_x0: torch.Tensor, tau: int, schedule: NoiseSchedule) -> float:
    """``||sqrt(abar_tau) dx_0||``: how far Eq. 6's mean is from Eq. 5's; it shrinks as ``tau`` grows."""
    return schedule.sqrt_alpha_bar(tau) * float(delta_x0.double().norm())


def truncated_start(y0: torch.Tensor, tau: int, schedule: NoiseSchedule, noise: torch.Tensor) -> torch.Tensor:
    """The start of the reverse process, Eq. 6/7: ``y_tau = sqrt(abar_tau) y_0 + sqrt(1 - abar_tau) eps``."""
    return q_sample(y0, tau, schedule, noise)


@dataclasses.dataclass(frozen=True)
class GroupPlan:
    """One PGS group's sampling configuration: start step ``tau`` and its ``steps`` (strictly decreasing, first = tau)."""

    name: str
    tau: int
    timesteps: tuple[int, ...]

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)


def ddim_timesteps(tau: int, num_steps: int) -> tuple[int, ...]:
    """``t_k = round(tau (N - k) / N)`` for k = 0..N-1: starts at tau, strictly decreasing, ends >= 1.

    Python's ``round`` on exact fractions would round half to even; ``floor(x + 1/2)`` on integers
    keeps the plan the same on every platform.
    """
    if not 1 <= num_steps <= tau:
        raise InvalidOption(f"a group needs 1 <= steps <= tau, got steps={num_steps}, tau={tau}", model="patchscaler")
    return tuple((2 * tau * (num_steps - k) + num_steps) // (2 * num_steps) for k in range(num_steps))


def group_plans(schedule: dict[str, tuple[int, int]], num_timesteps: int = 1000) -> dict[str, GroupPlan]:
    """``{group: (tau, steps)}`` -> ``{group: GroupPlan}``."""
    plans = {}
    for name, (tau, steps) in schedule.items():
        if not 1 <= tau <= num_timesteps:
            raise InvalidOption(f"tau_{name} must be in [1, {num_timesteps}], got {tau}", option=f"tau_{name}",
                                model="patchscaler")
        plans[name] = GroupPlan(name=name, tau=tau, timesteps=ddim_timesteps(tau, steps))
    return plans


def ddim_step(y_t: torch.Tensor, x0_pred: torch.Tensor, t: int, t_next: int, schedule: NoiseSchedule) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from step ``t`` to ``t_next`` (0 = clean) given the predicted ``x_0``."""
    if t_next == 0:
        return x0_pred
    a_t, a_next = float(schedule.alpha_bar[t]), float(schedule.alpha_bar[t_next])
    eps = (y_t - math.sqrt(a_t) * x0_pred) / math.sqrt(1.0 - a_t)
    return math.sqrt(a_next) * x0_pred + math.sqrt(1.0 - a_next) * eps


def next_steps(timesteps: Sequence[int]) -> list[tuple[int, int]]:
    """``[(t_k, t_{k+1})]`` pairs of a plan, the last one going to 0."""
    ts = list(timesteps)
    return list(zip(ts, ts[1:] + [0]))
