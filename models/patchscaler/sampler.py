"""Group sampling (PGS, Sec. 3.2): each group from its own start step with its own step count,
patches of one group batched, groups spread over devices.

Determinism: the only random draw is each patch's start noise, made on the CPU by a generator
seeded from ``(seed, patch index)``; DDIM with eta = 0 is deterministic after it, and every
network acts on each patch alone. So the result does not depend on the batch size, the order of
the groups or how they are split over devices.

Devices (the paper's dual-GPU mode puts the hard group on one GPU, simple and medium on the
other): groups are assigned longest-processing-time first by their cost ``M_g * N_g`` to the
least-loaded device, which gives the paper's split whenever the hard group costs at least as
much as the other two together; each device runs its groups in its own thread.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
from typing import Callable, Mapping, Sequence

import torch

from vs_superres.contracts.errors import Cancelled
from vs_superres.contracts.progress import Progress, ProgressFn

from vs_superres.models.patchscaler.schedule import GroupPlan, NoiseSchedule, ddim_step, next_steps, truncated_start

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def patch_seed(seed: int, index: int) -> int:
    """A 32-bit generator seed from ``(seed, index)``: torch's CPU generator keeps only 32 bits of
    its seed, so the pair is mixed (splitmix64, folded) rather than packed side by side."""
    h = _splitmix64(_splitmix64(seed & _MASK64) ^ (index & _MASK64))
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def patch_noise(seed: int, index: int, shape: Sequence[int]) -> torch.Tensor:
    """The start noise of patch ``index``: float32 on the CPU, from a generator seeded by ``(seed, index)``."""
    g = torch.Generator(device="cpu").manual_seed(patch_seed(seed, index))
    return torch.randn(tuple(shape), generator=g, dtype=torch.float32)


@dataclasses.dataclass(frozen=True)
class GroupJob:
    """The patches (global indices) of one group and its plan."""

    plan: GroupPlan
    indices: tuple[int, ...]

    @property
    def cost(self) -> int:
        return len(self.indices) * self.plan.num_steps


def assign_devices(jobs: Sequence[GroupJob], num_devices: int) -> list[list[GroupJob]]:
    """LPT: jobs by descending cost (then descending tau) onto the least-loaded device (lowest index on ties)."""
    loads = [0] * num_devices
    out: list[list[GroupJob]] = [[] for _ in range(num_devices)]
    for job in sorted(jobs, key=lambda j: (-j.cost, -j.plan.tau)):
        d = min(range(num_devices), key=lambda i: (loads[i], i))
        out[d].append(job)
        loads[d] += job.cost
    return out


class StepReporter:
    """Patch-evaluations done of ``total``, reported to ``on_step`` after every Patch-DiT step.

    The unit is one patch through one sampling step, so ``total`` (``sum M_g * N_g``) and every
    count do not depend on ``patches_per_batch`` or the device split. ``on_step`` may raise
    (the engine's reporter raises :class:`Cancelled` when the caller cancels); the device
    threads call it one at a time, and once it has raised every other thread stops at its next
    step instead of finishing its groups.
    """

    def __init__(self, on_step: ProgressFn | None, total: int, phase: str = "sampling"):
        self.on_step, self.total, self.phase = on_step, total, phase
        self.done = 0
        self._lock = threading.Lock()
        #: what ``on_step`` raised, re-raised by :func:`sample_patches` whichever thread stopped first
        self.error: BaseException | None = None

    def start(self) -> None:
        """The first report (0 done): a cancel request before any Patch-DiT work stops here."""
        self.advance(0, "")

    def advance(self, patches: int, group: str) -> None:
        with self._lock:
            if self.error is not None:
                raise Cancelled("stopped: another device's sampling was cancelled")
            self.done += patches
            if self.on_step is None:
                return
            phase = f"{self.phase}: {group} group" if group else self.phase
            try:
                self.on_step(Progress(self.done, self.total, phase, "patch-steps"))
            except BaseException as exc:
                self.error = exc
                raise


#: Texture prompts are computed in chunks of this many patches, whatever the sampling batch, so
#: a patch's prompt does not depend on ``patches_per_batch`` or the device split.
PROMPT_CHUNK = 256


@torch.no_grad()
def texture_prompts(networks, patches: torch.Tensor, chunk: int = PROMPT_CHUNK) -> torch.Tensor:
    """Algorithm 1 + the texture encoder for every patch ``[M, c, V, V]`` -> ``[M, L_p, D]``: once per patch."""
    return torch.cat([networks.texture_prompt(patches[i:i + chunk]) for i in range(0, patches.shape[0], chunk)])


@torch.no_grad()
def sample_group(networks, y0: torch.Tensor, prompts: torch.Tensor, job: GroupJob, schedule: NoiseSchedule, *,
                 seed: int, batch: int, on_step: Callable[[int, str], None] | None = None) -> torch.Tensor:
    """Denoise one group's patches ``y0 [M_g, c, V, V]`` (on the networks' device) -> ``x0_hat [M_g, c, V, V]``.

    ``prompts [M_g, L_p, D]`` are the patches' texture prompts. Per batch: the per-block prompt
    keys/values once, the start ``y_tau`` of Eq. 7, then ``N_g`` DDIM steps, each one Patch-DiT
    evaluation; ``on_step(patches, group)`` after each (progress and cancellation).
    """
    out = torch.empty_like(y0)
    dit = networks.dit
    for lo in range(0, len(job.indices), batch):
        idx = job.indices[lo:lo + batch]
        y0b = y0[lo:lo + len(idx)]
        kv = dit.prompt_cache(prompts[lo:lo + len(idx)])
        noise = torch.stack([patch_noise(seed, i, y0b.shape[1:]) for i in idx]).to(y0b.device, y0b.dtype)
        y = truncated_start(y0b, job.plan.tau, schedule, noise)
        for t, t_next in next_steps(job.plan.timesteps):
            x0 = dit(y, t, y0b, kv)
            y = ddim_step(y, x0, t, t_next, schedule)
            if on_step is not None:
                on_step(len(idx), job.plan.name)
        out[lo:lo + len(idx)] = y
    return out


def sample_patches(replicas: Mapping[int, object], devices: Sequence[torch.device], patches: torch.Tensor,
                   prompts: torch.Tensor, jobs: Sequence[GroupJob], schedule: NoiseSchedule, *, seed: int,
                   batch: int, reporter: StepReporter | None = None) -> torch.Tensor:
    """All groups: ``patches [M, c, V, V]`` (and their ``prompts``) -> ``x0_hat [M, c, V, V]`` on ``patches``' device.

    ``replicas[d]`` is the networks on ``devices[d]``; each device's jobs run in one thread.
    ``reporter`` hears of every sampling step (see :class:`StepReporter`).
    """
    out = torch.empty_like(patches)
    plan = assign_devices([j for j in jobs if j.indices], len(devices))

    def run(d: int) -> list[tuple[GroupJob, torch.Tensor]]:
        results = []
        for job in plan[d]:
            rows = list(job.indices)
            y0, p = patches[rows].to(devices[d]), prompts[rows].to(devices[d])
            results.append((job, sample_group(replicas[d], y0, p, job, schedule, seed=seed, batch=batch,
                                              on_step=reporter.advance if reporter else None)))
        return results

    busy = [d for d in range(len(devices)) if plan[d]]
    if len(busy) <= 1:
        finished = [run(d) for d in busy]
    else:
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(busy)) as pool:
                finished = list(pool.map(run, busy))
        except BaseException:
            if reporter is not None and reporter.error is not None:
                raise reporter.error from None
            raise
    for results in finished:
        for job, x0 in results:
            out[list(job.indices)] = x0.to(out.device, out.dtype)
    return out
