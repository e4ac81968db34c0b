"""Time grids for the fixed-step solvers: uniform, and BOSS's Bellman-optimal steps (Nguyen et al. 2023).

BOSS picks the ``K`` Euler steps that best follow the flow. On a fine grid ``t_0 < … < t_N`` it caches
``M`` reference paths ``x̄_i`` (an accurate solve) and their velocities, prices every jump ``i → j``::

    c(i, j) = mean_m ‖x̄_j − (x̄_i + (t_j − t_i)·v(x̄_i, t_i))‖²      (one Euler step from the path, vs the path)

and solves ``V_1(i) = c(i, N)``, ``V_k(i) = min_{i < j < N} c(i, j) + V_{k−1}(j)`` by dynamic
programming (``O(K N²)``); backtracking from ``i = 0`` gives the schedule. Plug it into
``solvers.integrate(v, x0, grid=schedule)``. Where the flow curves, BOSS puts short steps; where it
is straight, long ones.

>>> cost = torch.tensor([[0., 1., 4., 9.], [0., 0., 1., 4.], [0., 0., 0., 1.], [0., 0., 0., 0.]])
>>> bellman(cost, 2)  # two jumps over three intervals of equal price (j − i)²: 0 → 1 → 3 or 0 → 2 → 3
[0, 1, 3]
"""

from __future__ import annotations

import torch
from torch import Tensor

from .solvers import Velocity, integrate, time_grid


def uniform(steps: int, device=None, dtype=None) -> Tensor:
    """``steps + 1`` evenly spaced times on ``[0, 1]``, shape ``(steps + 1,)``."""
    return time_grid(steps, device=device, dtype=dtype)


def jump_costs(v: Velocity, x0: Tensor, fine: int = 100, reference: str = "rk4") -> tuple[Tensor, Tensor]:
    """BOSS's price ``c(i, j)`` of an Euler jump from reference state ``i`` to ``j`` on ``fine + 1`` uniform times.

    Args:
        v: the velocity field.
        x0: source points ``(M, d)`` that start the reference paths.
        fine: the number of fine intervals ``N``.
        reference: the solver of the reference paths on the fine grid.

    Returns:
        ``cost`` ``(N + 1, N + 1)`` (upper triangle; ``inf`` elsewhere) and the fine grid ``(N + 1,)``.
    """
    solution = integrate(v, x0, fine, reference, return_path=True)
    states, grid = solution.path, solution.grid  # (N + 1, M, d), (N + 1,)
    with torch.no_grad():
        slopes = torch.stack([v(x, t.expand(len(x))) for x, t in zip(states[:-1], grid[:-1])])  # (N, M, d)
    cost = torch.full((fine + 1, fine + 1), float("inf"), dtype=x0.dtype, device=x0.device)
    for i in range(fine):
        gaps = (grid[i + 1:] - grid[i])[:, None, None]  # (N − i, 1, 1)
        jumps = states[i] + gaps * slopes[i]  # (N − i, M, d)
        cost[i, i + 1:] = (states[i + 1:] - jumps).pow(2).sum(-1).mean(-1)
    return cost, grid


def bellman(cost: Tensor, steps: int) -> list[int]:
    """The ``steps`` jumps ``0 = i_0 < i_1 < … < i_K = N`` of least total ``cost`` ``(N + 1, N + 1)``, by dynamic programming.

    ``V_1(i) = c(i, N)``; ``V_k(i) = min_{i < j < N} c(i, j) + V_{k−1}(j)``; the argmins backtracked from ``i = 0``.
    """
    last = cost.shape[0] - 1
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"cost must be a square (N + 1, N + 1) matrix, got shape {tuple(cost.shape)}")
    if not isinstance(steps, int) or not 1 <= steps <= last:
        raise ValueError(f"steps must be an int in [1, {last}] (the fine grid has {last} intervals), got {steps!r}")
    value = cost[:, last].clone()  # V_1(i), shape (N + 1,)
    choices = []
    for _ in range(steps - 1):
        total = cost[:, :last] + value[None, :last]  # c(i, j) + V_{k−1}(j) for j < N
        value, best = total.min(dim=1)
        choices.append(best)
    path = [0]
    for best in reversed(choices):
        path.append(int(best[path[-1]]))
    return path + [last]


def boss(v: Velocity, x0: Tensor, steps: int, fine: int = 100, reference: str = "rk4") -> Tensor:
    """The BOSS schedule of ``steps`` Euler steps for ``v``, from reference paths started at ``x0`` ``(M, d)``.

    Returns:
        increasing times ``(steps + 1,)`` from 0 to 1, a subset of the fine grid; pass it as ``grid=``.
    """
    cost, grid = jump_costs(v, x0, fine, reference)
    return grid[bellman(cost, steps)]
