"""Checkers for sampling from a trained flow: DDIM's step in the diffusion notation (notebook 04), the score read
off a velocity, the Euler–Maruyama step of the matching SDE and BOSS's step schedule (11), and the one-step
lookahead a reward judges during search (12)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import _base, schedules, sde, search
from ._check import Case, compare, gaussian_field, normal, step_cases, uniform


def _schedules() -> dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]]:
    """``(α_t, σ_t)`` of ``x_t = α_t·x1 + σ_t·x0`` in diffusion notation: the data's and the noise's coefficient."""
    half_pi = torch.pi / 2
    return {"VP": (lambda t: torch.sin(half_pi * t), lambda t: torch.cos(half_pi * t)),
            "linear": (lambda t: t, lambda t: 1 - t)}


def _ddim_cases(seed: int = 7) -> list[Case]:
    """``(x, x1_hat, t, t_next, alpha, sigma)``: points, a data prediction, two 0-d times ``t < t_next < 1``."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for name in ("VP", "VP", "linear", "VP"):
        alpha, sigma = _schedules()[name]
        t = 0.05 + 0.6 * uniform((), generator)
        t_next = t + (1 - t) * (0.1 + 0.8 * uniform((), generator))
        x, x1_hat = normal((2, 16, 2), generator)
        cases.append((x, x1_hat, t, t_next, alpha, sigma))
    return cases


def ddim_step(x: Tensor, x1_hat: Tensor, t: Tensor, t_next: Tensor, alpha, sigma) -> Tensor:
    """DDIM's deterministic step (Song, Meng & Ermon 2021, η = 0) in our time: read the noise off the data prediction,
    ``x̂0 = (x − α_t·x̂1)/σ_t``, and mix the two at the next time, ``α_{t'}·x̂1 + σ_{t'}·x̂0``, shape ``(n, d)``."""
    x0_hat = (x - alpha(t) * x1_hat) / sigma(t)
    return alpha(t_next) * x1_hat + sigma(t_next) * x0_hat


def check_ddim_step(step: Callable[..., Tensor]) -> bool:
    """Check ``step(x, x1_hat, t, t_next, alpha, sigma)``: one DDIM step from ``t`` to ``t_next`` on the path
    ``x_t = α_t·x1 + σ_t·x0``, given the data prediction ``x1_hat`` ``(n, d)`` and the schedules ``alpha``, ``sigma``."""

    def no_coefficients(x, x1_hat, t, t_next, alpha, sigma):
        return alpha(t_next) * x1_hat + sigma(t_next) * (x - x1_hat)

    def old_noise_level(x, x1_hat, t, t_next, alpha, sigma):
        return alpha(t_next) * x1_hat + (x - alpha(t) * x1_hat)

    def swapped(x, x1_hat, t, t_next, alpha, sigma):
        return ddim_step(x, x1_hat, t, t_next, sigma, alpha)

    return compare(step, ddim_step, _ddim_cases(), "check_ddim_step", [
        ("x̂0 forgot its coefficients: from x = α_t·x̂1 + σ_t·x̂0, x̂0 = (x − α_t·x̂1)/σ_t, not x − x̂1", no_coefficients),
        ("the noise keeps its old size σ_t·x̂0: the next point mixes x̂1 and x̂0 with the NEXT time's α_{t'} and σ_{t'}",
         old_noise_level),
        ("α and σ are swapped: α_t multiplies the data x̂1, σ_t the noise x̂0", swapped),
        ("you returned the data prediction x̂1: that is a jump to t = 1, not to t_next",
         lambda x, x1_hat, t, t_next, alpha, sigma: x1_hat),
    ])


def _score_cases(seed: int = 2, count: int = 4) -> list[Case]:
    """``(velocity (n, d), x (n, d), t (n,))`` from a closed-form field, times in ``[0, 0.9)``."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(count):
        x = 2 * normal((16, 2), generator)
        t = 0.9 * uniform(16, generator)
        cases.append((gaussian_field(generator)(x, t), x, t))
    return cases


def check_score_from_velocity(score: Callable[..., Tensor]) -> bool:
    """Check ``score(velocity, x, t)``, the score ``(t·v − x)/(1 − t)`` of the linear path from ``N(0, I)``."""

    def column(t: Tensor) -> Tensor:
        return t[:, None]

    return compare(score, sde.score_from_velocity, _score_cases(), "check_score_from_velocity", [
        ("the sign is flipped: s = −E[x0 | x_t]/(1 − t) = (t·v − x)/(1 − t)",
         lambda v, x, t: (x - column(t) * v) / (1 - column(t))),
        ("you forgot to divide by 1 − t: E[x0 | x_t] = x − t·v and the score is −E[x0 | x_t]/(1 − t)",
         lambda v, x, t: column(t) * v - x),
        ("the factor t is missing: E[x0 | x_t] = x − t·v, not x − v", lambda v, x, t: (v - x) / (1 - column(t))),
        ("you divided by t: the noise x0 has weight 1 − t in x_t", lambda v, x, t: (column(t) * v - x) / column(t)),
    ])


def _scaled_score_cases(seed: int = 21, count: int = 4) -> list[Case]:
    """``(velocity (n, 2), x (n, 2), t (n,), sigma)``: the exact velocity of ``N(0, σ²I) → N(m, s²I)`` at random points,
    with the exact score of ``p_t = N(t·m, ((1 − t)²σ² + t²s²)·I)`` kept for the reference."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(count):
        sigma, s = (0.3 + 2 * uniform(2, generator)).tolist()
        m = 2 * normal(2, generator)
        x = 2 * normal((16, 2), generator)
        t = 0.9 * uniform(16, generator)[:, None]
        variance = (1 - t) ** 2 * sigma**2 + t**2 * s**2
        velocity = m + (t * s**2 - (1 - t) * sigma**2) / variance * (x - t * m)  # E[x1 − x0 | x_t = x]
        cases.append((velocity, x, t[:, 0], sigma))
    return cases


def scaled_score(velocity: Tensor, x: Tensor, t: Tensor, sigma: float) -> Tensor:
    """The score ``(t·v − x)/((1 − t)·σ²)`` of the linear path from ``N(0, σ²I)``, shape ``(n, d)``:
    ``E[x0 | x_t] = x − t·v`` as before, and Tweedie's formula for the Gaussian part ``(1 − t)·x0`` of variance ``(1 − t)²σ²``."""
    t = t[:, None]
    return (t * velocity - x) / ((1 - t) * sigma**2)


def check_scaled_score(score: Callable[..., Tensor]) -> bool:
    """Check ``score(velocity, x, t, sigma)``, the score of the linear path from a source ``N(0, σ²I)``, on exact
    Gaussian velocities (the reference :func:`scaled_score` equals the closed-form score of ``p_t`` on these cases)."""

    def column(t: Tensor) -> Tensor:
        return t[:, None]

    return compare(score, scaled_score, _scaled_score_cases(), "check_scaled_score", [
        ("σ is ignored: with x0 ~ N(0, σ²I) the Gaussian part (1 − t)·x0 has variance (1 − t)²σ², so divide by (1 − t)·σ²",
         lambda v, x, t, sigma: sde.score_from_velocity(v, x, t)),
        ("you divided by σ, not σ²: Tweedie's formula divides by the variance (1 − t)²σ²",
         lambda v, x, t, sigma: (column(t) * v - x) / ((1 - column(t)) * sigma)),
        ("σ² multiplies instead of dividing: the score of N(μ, σ²) is −(x − μ)/σ²",
         lambda v, x, t, sigma: (column(t) * v - x) / (1 - column(t)) * sigma**2),
        ("the whole variance (1 − t)²σ² divides x − t·v: Tweedie gives ∇log p = −E[(1 − t)·x0 | x_t]/((1 − t)²σ²), "
         "and one factor 1 − t cancels", lambda v, x, t, sigma: (column(t) * v - x) / ((1 - column(t)) ** 2 * sigma**2)),
    ], atol=1e-6)


def _em_cases(seed: int = 3, count: int = 4) -> list[Case]:
    """The Euler step's cases with a noise scale ``g`` (0-d) and standard normal noise ``(n, d)`` added."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for v, x, t, dt in step_cases(seed, count):
        g = 0.2 + 1.5 * uniform((), generator)
        cases.append((v, x, t, dt, g, normal(x.shape, generator)))
    return cases


def check_euler_maruyama_step(step: Callable[..., Tensor]) -> bool:
    """Check ``step(v, x, t, dt, g, noise)``: ``x + dt·(v + ½g²·s) + g·√dt·noise``, ``s`` the score from ``v``."""

    def reference(v, x, t, dt, g, noise):
        return sde.euler_maruyama_step(v, x, t, dt, sde.constant(g.item()), noise)

    def wrong(half: float = 0.5, score: bool = True, scale=lambda dt: dt.sqrt()):
        def step(v, x, t, dt, g, noise):
            velocity = v(x, _base.batch_time(t, x))
            s = sde.score_from_velocity(velocity, x, t) if score else 0
            return x + dt * (velocity + half * g**2 * s) + g * scale(dt) * noise
        return step

    return compare(step, reference, _em_cases(), "check_euler_maruyama_step", [
        ("the ½ is missing: the drift is v + ½g²·s", wrong(half=1.0)),
        ("the score term is missing: noise alone spreads the samples; add ½g²·s to the drift", wrong(score=False)),
        ("the noise is scaled by dt: Brownian increments grow like √dt", wrong(scale=lambda dt: dt)),
        ("the noise is not scaled by √dt: multiply it by g·√dt", wrong(scale=lambda dt: torch.ones_like(dt))),
    ])


def check_bellman(bellman: Callable[[Tensor, int], list[int]]) -> bool:
    """Check ``bellman(cost, steps) -> [0, i_1, …, N]``, BOSS's dynamic program over a jump-cost matrix."""
    generator = torch.Generator().manual_seed(4)
    cases = []
    for n, steps in ((8, 3), (10, 4), (12, 2), (9, 5)):
        cost = uniform((n + 1, n + 1), generator)
        cases.append((cost.masked_fill(~torch.ones_like(cost, dtype=torch.bool).triu(1), float("inf")), steps))

    def as_tensor(function):
        return lambda cost, steps: torch.tensor(function(cost, steps))

    def greedy(cost, steps):
        path, last = [0], cost.shape[0] - 1
        for left in range(steps - 1, 0, -1):  # the cheapest next jump that leaves room for the rest
            path.append(int(cost[path[-1], path[-1] + 1:last - left + 1].argmin()) + path[-1] + 1)
        return torch.tensor(path + [last])

    def uniform_schedule(cost, steps):
        return torch.linspace(0, cost.shape[0] - 1, steps + 1).round().long()

    return compare(as_tensor(bellman), as_tensor(schedules.bellman), cases, "check_bellman", [
        ("you chose each jump greedily: the cheapest next jump can force expensive ones later; use V_{k−1}", greedy),
        ("you returned the uniform schedule: minimise c(i, j) + V_{k−1}(j) over j", uniform_schedule),
    ])


def check_lookahead(lookahead: Callable[..., Tensor]) -> bool:
    """Check ``lookahead(x, velocity, t)``, the one-step estimate ``x̂1 = x + (1 − t)·v`` a reward judges."""
    cases = [(x, v, t[0]) for v, x, t in _score_cases(5)]
    return compare(lookahead, search.lookahead, cases, "check_lookahead", [
        ("you stepped by t: the time left to t = 1 is 1 − t", lambda x, v, t: x + t * v),
        ("you took a whole unit step: x + v lands at t + 1, not at 1", lambda x, v, t: x + v),
        ("you returned the velocity alone: add it to x", lambda x, v, t: (1 - t) * v),
    ])
