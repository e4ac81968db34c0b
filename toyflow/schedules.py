"""Time grids for the fixed-step solvers: uniform, and BOSS's Bellman-optimal steps (Nguyen et al. 2023,
arXiv 2312.16414) with its second stage, straightening the flow on the chosen steps.

**Stage 1, the step search.** BOSS picks the ``K`` Euler steps that best follow the flow. On a fine grid
``t_0 < … < t_N`` it caches ``M`` reference paths ``x̄_i`` (an accurate solve) and their velocities, prices
every jump ``i → j``::

    c(i, j) = mean_m ‖x̄_j − (x̄_i + (t_j − t_i)·v(x̄_i, t_i))‖²      (one Euler step from the path, vs the path)

and solves ``V_1(i) = c(i, N)``, ``V_k(i) = min_{i < j < N} c(i, j) + V_{k−1}(j)`` by dynamic
programming (``O(K N²)``); backtracking from ``i = 0`` gives the schedule. Plug it into
``solvers.integrate(v, x0, grid=schedule)``. Where the flow curves, BOSS puts short steps; where it
is straight, long ones.

**Stage 2, straightening.** :class:`BossStraightening` fine-tunes a copy of the flow so that one Euler step
per interval of the schedule lands where the flow's own accurate solve does (the paper's "redress" loss;
the paper may fine-tune with LoRA, here every weight trains).

>>> cost = torch.tensor([[0., 1., 4., 9.], [0., 0., 1., 4.], [0., 0., 0., 1.], [0., 0., 0., 0.]])
>>> bellman(cost, 2)  # two jumps over three intervals of equal price (j − i)²: 0 → 1 → 3 or 0 → 2 → 3
[0, 1, 3]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ._base import check_callable, check_choice, check_grid, check_int, check_points
from .batch import draw_batch, mean_loss
from .couplings import FixedPairs
from .solvers import STEPS, Velocity, integrate, time_grid


def uniform(steps: int, device=None, dtype=None) -> Tensor:
    """``steps + 1`` evenly spaced times on ``[0, 1]``, shape ``(steps + 1,)``."""
    return time_grid(steps, device=device, dtype=dtype)


def jump_costs(v: Velocity, x0: Tensor, fine: int = 100, reference: str = "rk4") -> tuple[Tensor, Tensor]:
    """BOSS's price ``c(i, j)`` of an Euler jump from reference state ``i`` to ``j`` on ``fine + 1`` uniform times.

    Args:
        v: the velocity field.
        x0: source points ``(M, d)`` that start the reference paths.
        fine: the number of fine intervals ``N``.
        reference: the solver of the reference paths on the fine grid (``"euler"``, ``"midpoint"``, ``"heun"``, ``"rk4"``).

    Returns:
        ``cost`` ``(N + 1, N + 1)`` (upper triangle; ``inf`` elsewhere) and the fine grid ``(N + 1,)``.
    """
    check_callable("v", v, "a velocity field v(x, t) -> (n, d)")
    check_points("x0", x0)
    check_int("fine", fine)
    check_choice("reference", reference, sorted(STEPS))
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
    if not isinstance(cost, Tensor):
        raise TypeError(f"cost must be a torch.Tensor of shape (N + 1, N + 1), got {type(cost).__name__}")
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1] or cost.shape[0] < 2:
        raise ValueError(f"cost must be a square (N + 1, N + 1) matrix with N >= 1, got shape {tuple(cost.shape)}")
    if torch.isnan(cost).any():
        raise ValueError("cost must not contain NaN (a jump's price is a number, or inf where j <= i)")
    last = cost.shape[0] - 1
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= last:
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


@dataclass
class BossStraightening:
    """BOSS's second stage: the loss that straightens a flow on its schedule ``t_0 < t_1 < … < t_K``.

    The frozen ``teacher`` is solved once from ``x0`` ``(M, d)`` at ``t_0`` (RK4, ``substeps`` per interval), giving
    states ``x̄_k`` at the schedule's times. For a random path and step ``k`` (drawn with
    :func:`toyflow.batch.draw_batch`) the student regresses on the chord to the next schedule point::

        ‖v_θ(x̄_k, t_k) − (x̄_{k+1} − x̄_k)/(t_{k+1} − t_k)‖²      (per point, averaged over dimensions)

    so one Euler step per interval reproduces the teacher's accurate solve. Train a copy of the teacher:
    ``fit(student, BossStraightening(teacher, x0, schedule), steps)``, then sample it on ``schedule``.
    """

    teacher: Velocity
    x0: Tensor
    schedule: Tensor
    substeps: int = 10
    batch_size: int = 256
    _steps: FixedPairs = field(init=False, repr=False)

    def __post_init__(self):
        check_callable("teacher", self.teacher, "a velocity field v(x, t) -> (n, d)")
        check_points("x0", self.x0)
        check_grid(self.schedule, inside_unit=True, increasing=True, name="schedule")
        check_int("substeps", self.substeps)
        check_int("batch_size", self.batch_size)
        times = self.schedule.to(self.x0)
        fine = torch.cat([torch.linspace(float(a), float(b), self.substeps + 1)[:-1] for a, b in zip(times, times[1:])])
        fine = torch.cat([fine.to(self.x0), times[-1:]])  # (K·substeps + 1,)
        solve = integrate(self.teacher, self.x0, grid=fine, method="rk4", return_path=True)
        states = solve.path[::self.substeps]  # (K + 1, M, d) at the schedule's times
        stamped = torch.cat([states, times[:, None, None].expand(-1, len(self.x0), 1)], dim=2)  # the time as a last column
        self._steps = FixedPairs(stamped[:-1].flatten(0, 1), stamped[1:].flatten(0, 1))  # (K·M, d + 1): x̄_k ↔ x̄_{k+1}

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        batch = draw_batch(self._steps, self.batch_size, model, generator)
        x, t, x_next, t_next = batch.x0[:, :-1], batch.x0[:, -1], batch.x1[:, :-1], batch.x1[:, -1]
        chord = (x_next - x) / (t_next - t)[:, None]  # (B, d)
        return mean_loss((model(x, t) - chord) ** 2, batch.weight)
