"""Inference-time scaling: spend more velocity evaluations (NFE) for a higher reward (Kim et al. 2025,
"Inference-time scaling for flow models via stochastic generation and rollover budget forcing", arXiv 2503.19385).

A reward ``r(x) -> (n,)`` scores target points. Every strategy judges a partial sample at time ``t`` by the reward of
its one-step estimate ``x̂1 = x + (1 − t)·v(x, t) = E[x1 | x_t]`` (:func:`lookahead`):

- :func:`best_of_n` (ODE or SDE): draw ``N`` whole samples, keep the best; ``N × T`` NFE for ``T`` steps.
- :func:`particles`: ``K`` SDE particles per sample (:mod:`toyflow.sde`), resampled after every step. Temperature
  ``λ = 0``: all copy the best (greedy); ``λ > 0``: sequential Monte Carlo towards ``p1(x)·exp(r(x)/λ)``, each
  particle weighted by its *incremental* reward ``exp((r_k − r_{k−1})/λ)``. ``K × T`` NFE.
- :func:`rollover` (rollover budget forcing, RBF): each step has a quota of ``K`` NFE; SDE proposals are drawn one
  at a time and the first whose reward beats the current one is taken; the quota left over rolls to the next step.

The ODE is deterministic after ``t = 0``: only the SDE gives a search room to branch along the way. The SDE samplers
take ``path=sde.vp_path()`` to search along the paper's variance-preserving path (:func:`toyflow.sde.convert`).
Every sampler returns a :class:`~toyflow.solvers.Solution` with ``nfe`` the mean evaluations spent per sample.

>>> from toyflow.closed_form import GaussianToGaussian
>>> case, x0 = GaussianToGaussian(mean=(2.0, 0.0)), torch.zeros(3, 2)
>>> best = best_of_n(case.velocity, lambda x: x[:, 1], x0, candidates=4, steps=5, generator=torch.Generator().manual_seed(0))
>>> tuple(best.x.shape), best.nfe
((3, 2), 20)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import sde
from ._base import batch_time, check_callable, check_int, check_number, check_points, check_reward, multinomial, randn
from .paths import Interpolant, check_path
from .solvers import Solution, Velocity, integrate, time_grid

Reward = Callable[[Tensor], Tensor]  # points (n, d) -> rewards (n,)

lookahead = sde.posterior_mean  # x̂1 = x + (1 − t)·v = E[x1 | x_t] on the linear path (exercise 1 of notebook 12)


def _check(v: Velocity, reward: Reward, x0: Tensor, count: int, name: str, steps: int, fewest_steps: int) -> None:
    check_callable("v", v, "a velocity field v(x, t)")
    check_callable("reward", reward, "a reward r(x) -> (n,)")
    check_points("x0", x0)
    check_int(name, count)
    check_int("steps", steps, fewest_steps)


def _starts(x0: Tensor, count: int, generator: torch.Generator | None) -> Tensor:
    """``count`` starts per source point, the first at ``x0`` ``(n, d)``, the others fresh ``N(0, I)`` draws: ``(n·count, d)``."""
    n, d = x0.shape
    extra = randn((n, count - 1, d), generator, x0.device, x0.dtype)
    return torch.cat([x0[:, None], extra], 1).view(-1, d)


def _pick_best(x: Tensor, reward: Reward, n: int) -> Tensor:
    """Of ``x`` ``(n·K, d)`` grouped as ``(n, K)``, the point of highest reward in each group (the first on ties), ``(n, d)``."""
    best = check_reward(reward, x).view(n, -1).argmax(1)  # (n,)
    return x.view(n, -1, x.shape[1])[torch.arange(n, device=x.device), best]


def best_of_n(
    v: Velocity, reward: Reward, x0: Tensor, candidates: int, steps: int = 20,
    diffusion: sde.Diffusion | str | float | None = None, generator: torch.Generator | None = None,
) -> Solution:
    """Best-of-N: for each source point, ``candidates`` whole samples; the one of highest reward is kept.

    Contract: candidate 0 of point ``i`` starts at ``x0[i]``, candidates ``1 … N − 1`` at fresh ``N(0, I)`` draws
    (``generator``); each takes ``steps`` uniform steps of the Euler ODE (``diffusion=None``) or of
    :func:`toyflow.sde.euler_maruyama` with ``diffusion``; ``reward`` is evaluated once on all ``n·N`` endpoints and
    must return ``(n·N,)`` finite values; ties keep the earliest candidate. ``candidates = 1`` is the plain sampler.

    Args:
        v: velocity field ``v(x, t)``; reward: ``r(x) -> (n,)``; x0: source points ``(n, d)``.

    Returns:
        ``Solution(x (n, d), grid (steps + 1,), nfe = candidates × steps, path None)``.
    """
    _check(v, reward, x0, candidates, "candidates", steps, 1)
    starts = _starts(x0, candidates, generator)  # (n·N, d)
    if diffusion is None:
        ends = integrate(v, starts, steps)
    else:
        ends = sde.euler_maruyama(v, starts, steps, diffusion, generator)
    return Solution(_pick_best(ends.x, reward, len(x0)), ends.grid, candidates * steps)


def particles(
    v: Velocity, reward: Reward, x0: Tensor, count: int, steps: int = 20,
    diffusion: sde.Diffusion | str | float = "vp", temperature: float = 0.0, generator: torch.Generator | None = None,
    path: Interpolant | None = None,
) -> Solution:
    """Particle sampling: ``count`` SDE particles per source point (the first at ``x0`` ``(n, d)``), resampled by the
    reward of their lookahead ``r_k = r(x̂1)`` after every step ``k``.

    - ``temperature = 0`` (greedy): every particle copies the best one, then they branch again with the next step's
      noise; the best particle of each group is returned. The paper's fixed-quota particle search (best of ``K`` per step).
    - ``temperature = λ > 0`` (sequential Monte Carlo, the paper's SMC): particles are drawn ``∝ exp((r_k − r_{k−1})/λ)``
      (``r_{−1} = 0``, ``r_{k−1}`` the parent's reward), so the weights telescope to ``exp(r/λ)`` at the end and the
      population follows ``p1(x)·exp(r(x)/λ)``; the first particle of each group (an equally weighted draw) is returned.

    Args:
        path: search along this path (e.g. :func:`toyflow.sde.vp_path`, with ``diffusion=sde.quadratic(3)``);
            ``None``: the linear path.

    Returns:
        ``Solution(x (n, d), grid, nfe = count × steps)``.
    """
    _check(v, reward, x0, count, "count", steps, 2)
    temperature = check_number("temperature", temperature, low=0, why="0 keeps the best particle, > 0 is SMC")
    g, n = sde.resolve(diffusion), len(x0)
    field = v if path is None else sde.convert(v, check_path(path))
    x = _starts(x0, count, generator)  # (n·K, d)
    grid = time_grid(steps, device=x0.device, dtype=x0.dtype)
    rows = torch.arange(n, device=x0.device)[:, None] * count  # first particle of each group, (n, 1)
    previous = torch.zeros(n, count, device=x0.device, dtype=x0.dtype)  # r_{k−1}, (n, K)
    with torch.no_grad():
        velocity = field(x, batch_time(grid[0], x))
        for t, t_next in zip(grid[:-2], grid[1:-1]):  # the last step is the noiseless jump
            mean, std = sde.transition(velocity, x, t, t_next - t, g, path)
            x = mean + std * randn(x.shape, generator, x.device, x.dtype)
            velocity = field(x, batch_time(t_next, x))
            score = check_reward(reward, lookahead(x, velocity, t_next, path)).view(n, count)  # r_k, (n, K)
            if temperature == 0:
                chosen = score.argmax(1, keepdim=True).expand(n, count)
            else:
                chosen = multinomial(torch.softmax((score - previous) / temperature, 1), count, True, generator)
            previous = score.gather(1, chosen)
            index = (rows + chosen).reshape(-1)
            x, velocity = x[index], velocity[index]
        x = lookahead(x, velocity, grid[-2], path)
    x = _pick_best(x, reward, n) if temperature == 0 else x.view(n, count, -1)[:, 0]
    return Solution(x, grid, count * steps)


def rollover(
    v: Velocity, reward: Reward, x0: Tensor, quota: int, steps: int = 20,
    diffusion: sde.Diffusion | str | float = "vp", generator: torch.Generator | None = None,
    path: Interpolant | None = None,
) -> Solution:
    """Rollover budget forcing from ``x0`` ``(n, d)``: per step up to ``quota`` (plus what earlier steps left) SDE
    proposals, one at a time, until one's reward beats the current reward; else the best proposal is taken.

    ``path`` as in :func:`particles`. Returns ``Solution(x (n, d), grid, nfe)`` with ``nfe`` the mean evaluations
    spent per sample (at most ``quota × steps``; less when proposals succeed early in the last steps).
    """
    _check(v, reward, x0, quota, "quota", steps, 2)
    g, grid, n = sde.resolve(diffusion), time_grid(steps, device=x0.device, dtype=x0.dtype), len(x0)
    field = v if path is None else sde.convert(v, check_path(path))
    spent, credit = torch.zeros(n, device=x0.device), torch.zeros(n, device=x0.device)
    with torch.no_grad():
        x, velocity = x0, field(x0, batch_time(grid[0], x0))
        current = check_reward(reward, lookahead(x, velocity, grid[0], path))  # (n,)
        for t, t_next in zip(grid[:-2], grid[1:-1]):
            credit += quota
            mean, std = sde.transition(velocity, x, t, t_next - t, g, path)
            best_x, best_v = mean.clone(), velocity.clone()
            best_r = torch.full_like(current, -float("inf"))
            searching = torch.ones(n, dtype=torch.bool, device=x.device)
            while searching.any():
                rows = searching.nonzero().squeeze(1)
                proposal = mean[rows] + std[rows] * randn((len(rows), x.shape[1]), generator, x.device, x.dtype)
                proposal_v = field(proposal, batch_time(t_next, proposal))
                score = check_reward(reward, lookahead(proposal, proposal_v, t_next, path))
                credit[rows] -= 1
                spent[rows] += 1
                better = score > best_r[rows]
                best_x[rows[better]], best_v[rows[better]], best_r[rows[better]] = (
                    proposal[better], proposal_v[better], score[better])
                searching[rows] = (score <= current[rows]) & (credit[rows] >= 1)
            x, velocity, current = best_x, best_v, best_r
        x = lookahead(x, velocity, grid[-2], path)
    return Solution(x, grid, round(spent.mean().item()) + 1)
