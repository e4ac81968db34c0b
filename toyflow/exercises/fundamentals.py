"""Checkers for the first notebooks (00–02): one velocity field — an Euler and a Heun step along it, the flow
matching loss that learns it, its closed form between two Gaussians, and how straight its paths are; and the
W2 distance that measures where it lands."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import _base, closed_form, metrics, solvers
from ._check import as_float64, compare, gaussian_field, normal, pair_cases, step_cases, uniform


def check_euler_step(step: Callable[..., Tensor]) -> bool:
    """Check ``step(v, x, t, dt)``, one Euler step ``x + dt·v(x, t)``; ``t`` and ``dt`` are 0-d tensors."""

    def at_end(v, x, t, dt):
        return x + dt * v(x, _base.batch_time(t + dt, x))

    return compare(step, solvers.euler_step, step_cases(), "check_euler_step", [
        ("the step goes backwards: use x + dt·v, not x − dt·v", lambda v, x, t, dt: x - dt * v(x, _base.batch_time(t, x))),
        ("the step forgets dt: multiply the velocity by dt", lambda v, x, t, dt: x + v(x, _base.batch_time(t, x))),
        ("the velocity is evaluated at t + dt: Euler uses the start of the step", at_end),
    ])


def check_heun_step(step: Callable[..., Tensor]) -> bool:
    """Check ``step(v, x, t, dt)``, Heun's step ``x + dt/2·(k1 + k2)``, ``k2 = v(x + dt·k1, t + dt)``."""

    def k2_only(v, x, t, dt):
        return x + dt * v(x + dt * v(x, _base.batch_time(t, x)), _base.batch_time(t + dt, x))

    def k2_at_start_time(v, x, t, dt):
        k1 = v(x, _base.batch_time(t, x))
        return x + dt / 2 * (k1 + v(x + dt * k1, _base.batch_time(t, x)))

    return compare(step, solvers.heun_step, step_cases(1), "check_heun_step", [
        ("you took the Euler step (k1 only): average k1 and k2", solvers.euler_step),
        ("you used k2 alone: Heun averages the two slopes, dt/2·(k1 + k2)", k2_only),
        ("k2 is evaluated at time t: the predictor lands at t + dt", k2_at_start_time),
    ])


def check_flow_matching_loss(loss: Callable[..., Tensor]) -> bool:
    """Check ``loss(v, x0, x1, t)``: ``mean_i (1/d)‖v(x_t, t) − (x1 − x0)‖²`` at ``x_t = (1 − t)·x0 + t·x1``,
    a scalar; ``x0, x1`` are ``(n, d)``, ``t`` is ``(n,)``, ``v(x, t)`` a velocity field."""
    field = closed_form.GaussianToGaussian(mean=(3.0, 3.0), std=0.5).velocity

    def reference(x0, x1, t, x_t=None, target=None):
        x_t = (1 - t)[:, None] * x0 + t[:, None] * x1 if x_t is None else x_t
        target = x1 - x0 if target is None else target
        return ((field(x_t, t) - target) ** 2).mean()

    return compare(lambda x0, x1, t: loss(field, x0, x1, t), reference, pair_cases(2), "check_flow_matching_loss", [
        ("the target velocity points backwards: it is x1 − x0", lambda x0, x1, t: reference(x0, x1, t, target=x0 - x1)),
        ("x_t runs from x1 to x0: at t = 0 the path must sit on the source, x_t = (1 − t)·x0 + t·x1",
         lambda x0, x1, t: reference(x0, x1, t, x_t=t[:, None] * x0 + (1 - t)[:, None] * x1)),
        ("the loss sums over the dimensions: average them, (1/d)‖·‖²",
         lambda x0, x1, t: 2 * reference(x0, x1, t)),
        ("the error is not squared", lambda x0, x1, t: (field((1 - t)[:, None] * x0 + t[:, None] * x1, t) - (x1 - x0)).mean()),
    ])


def check_w2_1d(w2_1d: Callable[[Tensor, Tensor], Tensor | float]) -> bool:
    """Check ``w2_1d(a, b)``, the W2 distance between two 1D samples of equal size ``(n,)``:
    ``(1/n Σ_k (a_(k) − b_(k))²)^{1/2}`` with both samples sorted (in 1D the optimal matching is the sorted one).
    Compared with :func:`toyflow.metrics.w2`, which solves the matching as a linear program."""

    def reference(a, b):
        return torch.tensor(metrics.w2(a[:, None], b[:, None]), dtype=torch.float64)

    def sorted_gaps(a, b, descending=False):
        return a.sort().values - b.sort(descending=descending).values

    generator = torch.Generator().manual_seed(9)
    cases = [(normal(n, generator) * scale, normal(n, generator) + shift)
             for n, scale, shift in ((12, 1.0, 0.5), (30, 2.0, -1.0), (50, 0.5, 2.0))]
    return compare(as_float64(w2_1d), reference, cases, "check_w2_1d", [
        ("the points are matched in the order given: sort both samples first (in 1D the optimal matching pairs them "
         "in sorted order)", lambda a, b: (a - b).pow(2).mean().sqrt()),
        ("one sample is sorted in decreasing order: that is the worst matching; pair smallest with smallest",
         lambda a, b: sorted_gaps(a, b, descending=True).pow(2).mean().sqrt()),
        ("this is W2²: take the square root of the mean squared gap", lambda a, b: sorted_gaps(a, b).pow(2).mean()),
        ("the squared gaps are summed: each point has weight 1/n, so average them",
         lambda a, b: sorted_gaps(a, b).pow(2).sum().sqrt()),
        ("the gaps are not squared: the mean |gap| is W1; W2 is the root of the mean squared gap",
         lambda a, b: sorted_gaps(a, b).abs().mean()),
    ], atol=1e-6)


def gaussian_velocity(x: Tensor, t: Tensor, source_mean: Tensor, source_std: float, target_mean: Tensor,
                      target_std: float) -> Tensor:
    """The marginal velocity ``E[x1 − x0 | x_t = x]`` from ``N(a, r²I)`` to ``N(m, s²I)`` with independent pairs:
    ``(m − a) + (t·s² − (1 − t)·r²)/σ_t² · (x − μ_t)``, ``μ_t = (1 − t)·a + t·m``, ``σ_t² = (1 − t)²r² + t²s²``.
    ``x`` ``(n, d)``, ``t`` ``(n,)``, means ``(d,)``. With ``a = 0``, ``r = 1``: :class:`closed_form.GaussianToGaussian`."""
    a, r, m, s, t = source_mean, source_std, target_mean, target_std, t[:, None]
    variance = (1 - t) ** 2 * r**2 + t**2 * s**2  # Var(x_t), per coordinate
    covariance = t * s**2 - (1 - t) * r**2  # Cov(x1 − x0, x_t), per coordinate
    return (m - a) + covariance / variance * (x - ((1 - t) * a + t * m))


def check_gaussian_velocity(velocity: Callable[..., Tensor]) -> bool:
    """Check ``velocity(x, t, source_mean, source_std, target_mean, target_std)``, the marginal velocity of flow matching
    with independent pairs from ``N(a, r²I)`` to ``N(m, s²I)`` (see :func:`gaussian_velocity`)."""

    def wrong(center=None, squares=True, sign=1.0, from_standard=False):
        def field(x, t, a, r, m, s):
            if from_standard:
                a, r = torch.zeros_like(a), 1.0
            tt = t[:, None]
            p = 2 if squares else 1
            variance = (1 - tt) ** 2 * r**p + tt**2 * s**p
            covariance = sign * (tt * s**p - (1 - tt) * r**p)
            mean_t = (1 - tt) * a + tt * m if center is None else center(tt, a, m)
            return (m - a) + covariance / variance * (x - mean_t)
        return field

    generator = torch.Generator().manual_seed(10)
    cases = []
    for _ in range(4):
        a, m = normal((2, 2), generator) * 2
        r, s = (0.4 + 1.6 * uniform(2, generator)).tolist()
        x = normal((16, 2), generator) * 2
        t = 0.05 + 0.9 * uniform(16, generator)
        cases.append((x, t, a, r, m, s))
    return compare(velocity, gaussian_velocity, cases, "check_gaussian_velocity", [
        ("the source was taken as N(0, I): here it is N(a, r²I), so x_t has mean (1 − t)·a + t·m and variance "
         "(1 − t)²r² + t²s²", wrong(from_standard=True)),
        ("this is the straight line between the means, m − a: the pairs through x also spread or contract; add "
         "Cov(x1 − x0, x_t)/Var(x_t)·(x − E x_t)", lambda x, t, a, r, m, s: (m - a).expand_as(x).clone()),
        ("the correction is centred at t·m: E x_t = (1 − t)·a + t·m", wrong(center=lambda t, a, m: t * m)),
        ("the correction has the wrong sign: Cov(x1 − x0, x_t) = t·s² − (1 − t)·r²", wrong(sign=-1.0)),
        ("standard deviations stand where variances belong: Var(x_t) = (1 − t)²r² + t²s², "
         "Cov(x1 − x0, x_t) = t·s² − (1 − t)·r²", wrong(squares=False)),
    ], atol=1e-6)


def straightness_of_path(path: Tensor, grid: Tensor) -> Tensor:
    """Straightness ``S = ∫ E‖(Z1 − Z0) − Ż_t‖² dt`` of paths ``(T + 1, n, d)`` stored at the times ``grid`` ``(T + 1,)``:
    each step's velocity is ``(z_{i+1} − z_i)/Δt_i`` and the integral a sum weighted by ``Δt_i``. On an Euler path of
    ``v`` with a uniform grid it equals :func:`toyflow.metrics.straightness` (Liu et al. 2022)."""
    dt = grid[1:] - grid[:-1]  # (T,)
    velocity = (path[1:] - path[:-1]) / dt[:, None, None]  # (T, n, d)
    gap = ((path[-1] - path[0]) - velocity).pow(2).sum(-1).mean(-1)  # (T,): E‖(Z1 − Z0) − Ż_t‖² per step
    return (dt * gap).sum()


def check_straightness(straightness: Callable[[Tensor, Tensor], Tensor | float]) -> bool:
    """Check ``straightness(path, grid)`` on Euler paths ``(T + 1, n, d)`` of a closed-form field, on a uniform grid and
    on uneven ones (see :func:`straightness_of_path`)."""

    def per_step(path, grid):
        return path[1:] - path[:-1], grid[1:] - grid[:-1]

    def no_division(path, grid):
        step, dt = per_step(path, grid)
        return (dt * ((path[-1] - path[0]) - step).pow(2).sum(-1).mean(-1)).sum()

    def equal_weights(path, grid):
        step, dt = per_step(path, grid)
        return ((path[-1] - path[0]) - step / dt[:, None, None]).pow(2).sum(-1).mean()

    def end_only(path, grid):
        step, dt = per_step(path, grid)
        return (dt * (path[-1] - step / dt[:, None, None]).pow(2).sum(-1).mean(-1)).sum()

    def mean_over_coordinates(path, grid):
        return straightness_of_path(path, grid) / path.shape[-1]

    generator = torch.Generator().manual_seed(11)
    grids = [torch.linspace(0, 1, 21, dtype=torch.float64),
             torch.linspace(0, 1, 16, dtype=torch.float64) ** 2,
             torch.cat([torch.zeros(1, dtype=torch.float64), uniform(10, generator).sort().values,
                        torch.ones(1, dtype=torch.float64)])]
    cases = []
    for grid in grids:
        x0 = normal((24, 2), generator)
        cases.append((solvers.integrate(gaussian_field(generator), x0, grid=grid, return_path=True).path, grid))
    return compare(as_float64(straightness), straightness_of_path, cases, "check_straightness", [
        ("each step's displacement is used as its velocity: divide z_{i+1} − z_i by the step's length Δt_i", no_division),
        ("every step has the same weight: S is an integral over t, so weight each step by its length Δt_i",
         equal_weights),
        ("the straight line's velocity is taken as Z1: it is the whole displacement Z1 − Z0", end_only),
        ("the squared error is averaged over the coordinates: ‖·‖² sums them (average over the points only)",
         mean_over_coordinates),
    ], atol=1e-6)
