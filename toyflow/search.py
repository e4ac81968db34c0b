"""Inference-time scaling: spend more velocity evaluations (NFE) for a higher reward (Kim et al. 2025,
"Inference-time scaling for flow models via stochastic generation and rollover budget forcing").

A reward ``r(x) -> (n,)`` scores target points. All four strategies judge a partial sample at time ``t``
by the reward of its one-step estimate ``x̂1 = x + (1 − t)·v(x, t) = E[x1 | x_t]`` (linear path):

- best-of-N (ODE or SDE): draw ``N`` whole samples, keep the best; ``N × T`` NFE for ``T`` steps.
- particle sampling: ``K`` particles per sample take SDE steps (:mod:`toyflow.sde`); after each step they
  are resampled ``∝ exp(r(x̂1)/λ)`` (``λ = 0``: all copy the best); ``K × T`` NFE.
- rollover budget forcing (RBF): each step has a quota of ``K`` NFE; SDE proposals are drawn one at a time
  and the first whose reward beats the current one is taken; the quota left over rolls to the next step.

The ODE is deterministic after ``t = 0``: only the SDE gives a search room to branch along the way. Every
sampler returns a :class:`~toyflow.solvers.Solution` with ``nfe`` the mean evaluations spent per sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import sde
from .solvers import Solution, Velocity, integrate, time_grid

Reward = Callable[[Tensor], Tensor]  # points (n, d) -> rewards (n,)


def lookahead(x: Tensor, velocity: Tensor, t: Tensor) -> Tensor:
    """The one-step estimate ``x̂1 = x + (1 − t)·v`` of where ``x`` at time ``t`` lands, shape ``(n, d)``."""
    return x + (1 - t) * velocity


def _check(count: int, name: str, steps: int) -> None:
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"{name} must be a positive int, got {count!r}")
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")


def _pick_best(x: Tensor, reward: Reward, n: int) -> Tensor:
    """Of ``x`` ``(n·K, d)`` grouped as ``(n, K)``, the point of highest reward in each group, ``(n, d)``."""
    best = reward(x).view(n, -1).argmax(1)  # (n,)
    return x.view(n, -1, x.shape[1])[torch.arange(n, device=x.device), best]


def best_of_n(
    v: Velocity, reward: Reward, x0: Tensor, candidates: int, steps: int = 20,
    diffusion: sde.Diffusion | str | None = None, generator: torch.Generator | None = None,
) -> Solution:
    """Best of ``candidates`` samples per source point: the first starts at ``x0`` ``(n, d)``, the others at fresh
    ``N(0, I)`` draws; Euler ODE (``diffusion=None``) or Euler–Maruyama SDE with ``diffusion``."""
    _check(candidates, "candidates", steps)
    n, d = x0.shape
    extra = torch.randn(n, candidates - 1, d, generator=generator, device=x0.device, dtype=x0.dtype)
    starts = torch.cat([x0[:, None], extra], 1).view(-1, d)  # (n·N, d)
    if diffusion is None:
        ends = integrate(v, starts, steps).x
    else:
        ends = sde.euler_maruyama(v, starts, steps, diffusion, generator).x
    return Solution(_pick_best(ends, reward, n), time_grid(steps, device=x0.device), candidates * steps)


def particles(
    v: Velocity, reward: Reward, x0: Tensor, count: int, steps: int = 20,
    diffusion: sde.Diffusion | str = "vp", temperature: float = 0.0, generator: torch.Generator | None = None,
) -> Solution:
    """Particle sampling: ``count`` SDE particles per source point (the first at ``x0`` ``(n, d)``), resampled by
    reward after every step (``temperature`` ``λ``: ``0`` keeps the best, ``> 0`` draws ``∝ exp(r/λ)``); the best
    particle of each group is returned."""
    _check(count, "count", steps)
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    g, n, d = sde.resolve(diffusion), *x0.shape
    extra = torch.randn(n, count - 1, d, generator=generator, device=x0.device, dtype=x0.dtype)
    x = torch.cat([x0[:, None], extra], 1).view(-1, d)  # (n·K, d)
    grid = time_grid(steps, device=x0.device, dtype=x0.dtype)
    rows = torch.arange(n, device=x0.device)[:, None] * count  # first particle of each group, (n, 1)
    with torch.no_grad():
        velocity = v(x, grid[0].expand(len(x)))
        for t, t_next in zip(grid[:-2], grid[1:-1]):  # the last step is the noiseless jump
            mean, std = sde.transition(velocity, x, t, t_next - t, g)
            x = mean + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            velocity = v(x, t_next.expand(len(x)))
            score = reward(lookahead(x, velocity, t_next)).view(n, count)
            if temperature == 0:
                chosen = score.argmax(1, keepdim=True).expand(n, count)
            else:
                chosen = torch.multinomial(torch.softmax(score / temperature, 1), count, True, generator=generator)
            index = (rows + chosen).reshape(-1)
            x, velocity = x[index], velocity[index]
        x = lookahead(x, velocity, grid[-2])
    return Solution(_pick_best(x, reward, n), grid, count * steps)


def rollover(
    v: Velocity, reward: Reward, x0: Tensor, quota: int, steps: int = 20,
    diffusion: sde.Diffusion | str = "vp", generator: torch.Generator | None = None,
) -> Solution:
    """Rollover budget forcing from ``x0`` ``(n, d)``: per step up to ``quota`` (plus what earlier steps left) SDE
    proposals, one at a time, until one's reward beats the current reward; else the best proposal is taken."""
    _check(quota, "quota", steps)
    g, grid = sde.resolve(diffusion), time_grid(steps, device=x0.device, dtype=x0.dtype)
    n, spent = len(x0), torch.zeros(len(x0), device=x0.device)
    credit = torch.zeros(len(x0), device=x0.device)
    with torch.no_grad():
        x, velocity = x0, v(x0, grid[0].expand(n))
        current = reward(lookahead(x, velocity, grid[0]))  # (n,)
        for t, t_next in zip(grid[:-2], grid[1:-1]):
            credit += quota
            mean, std = sde.transition(velocity, x, t, t_next - t, g)
            best_x, best_v = mean.clone(), velocity.clone()
            best_r = torch.full_like(current, -float("inf"))
            searching = torch.ones(n, dtype=torch.bool, device=x.device)
            while searching.any():
                rows = searching.nonzero().squeeze(1)
                proposal = mean[rows] + std[rows] * torch.randn(
                    (len(rows), x.shape[1]), generator=generator, device=x.device, dtype=x.dtype)
                proposal_v = v(proposal, t_next.expand(len(rows)))
                score = reward(lookahead(proposal, proposal_v, t_next))
                credit[rows] -= 1
                spent[rows] += 1
                better = score > best_r[rows]
                best_x[rows[better]], best_v[rows[better]], best_r[rows[better]] = (
                    proposal[better], proposal_v[better], score[better])
                searching[rows] = (score <= current[rows]) & (credit[rows] >= 1)
            x, velocity, current = best_x, best_v, best_r
        x = lookahead(x, velocity, grid[-2])
    return Solution(x, grid, round(spent.mean().item()) + 1)
