"""Sample a trained flow with noise and keep its marginals: the score from the velocity, an SDE, Euler–Maruyama.

On the linear path from a standard normal source, ``x_t = (1 − t)·x0 + t·x1`` with ``x0 ~ N(0, I)``,
the velocity ``v = E[x1 − x0 | x_t]`` already knows the score of ``p_t`` (Kim et al. 2025, §6 of METHODS)::

    E[x0 | x_t] = x_t − t·v                      (from x_t = x0 + t·(x1 − x0))
    score s(x, t) = ∇log p_t(x) = −E[x0 | x_t]/(1 − t) = (t·v − x)/(1 − t)   (Tweedie, x0 ~ N(0, I))

and for every diffusion schedule ``g(t) ≥ 0`` the SDE

    dX = [v(X, t) + ½g(t)²·s(X, t)] dt + g(t) dW

has the same marginals ``p_t`` as the ODE ``dX = v dt`` (Fokker–Planck: the ``½g²s`` drift cancels the
``½g²Δp`` spreading). ``g = 0`` is the ODE.

The singular end: ``s`` divides by ``1 − t``, so at the data end ``t = 1`` the score blows up (the data
have no noise left). :func:`euler_maruyama` never evaluates it there: its last step, the one that lands
on ``t = 1``, is the noiseless jump to the posterior mean ``x + (1 − t)·v = E[x1 | x_t]`` (an ODE Euler
step). The other steps see ``1 − t ≥ dt``, where ``dt·½g²/(1 − t) ≤ ½g²`` keeps the step stable.

>>> from toyflow.closed_form import GaussianToGaussian
>>> case = GaussianToGaussian(mean=(2.0, 0.0), std=0.5)
>>> x0 = torch.randn(20000, 2, generator=torch.Generator().manual_seed(0))
>>> end = euler_maruyama(case.velocity, x0, steps=100, diffusion=constant(1.0), generator=torch.Generator().manual_seed(1))
>>> round(end.x[:, 0].mean().item(), 1), round(end.x.std(0).mean().item(), 2), end.nfe  # N((2, 0), 0.5² I)
(2.0, 0.5, 100)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .solvers import Solution, Velocity, time_grid

Diffusion = Callable[[Tensor], Tensor]  # g(t): times (n,) -> diffusion coefficients (n,)


def _column(t: Tensor, x: Tensor) -> Tensor:
    """A time (a 0-d tensor or ``(n,)``) as a column ``(n, 1)`` on ``x``'s device and dtype."""
    return torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(len(x))[:, None]


def score_from_velocity(v: Velocity | Tensor, x: Tensor, t: Tensor) -> Tensor:
    """The score ``∇log p_t(x) = (t·v − x)/(1 − t)`` of the linear path from ``N(0, I)``, shape ``(n, d)``.

    Args:
        v: the velocity field (a callable ``v(x, t)``) or its value at ``(x, t)``, shape ``(n, d)``.
        x: points ``(n, d)``.
        t: times ``(n,)`` (or a 0-d tensor) in ``[0, 1)``; the score does not exist at ``t = 1``.
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(len(x))
    if (t >= 1).any():
        raise ValueError(f"t must be < 1 (the score is singular at the data end), got max t = {t.max().item()}")
    velocity = v(x, t) if callable(v) else v
    t = t[:, None]
    return (t * velocity - x) / (1 - t)


def drift(v: Velocity | Tensor, x: Tensor, t: Tensor, g: Tensor | float) -> Tensor:
    """The SDE drift ``v + ½g²·s`` with ``s`` from :func:`score_from_velocity`, shape ``(n, d)``."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(len(x))
    velocity = v(x, t) if callable(v) else v
    g = torch.as_tensor(g, dtype=x.dtype, device=x.device)
    g = g[:, None] if g.ndim == 1 else g
    return velocity + 0.5 * g**2 * score_from_velocity(velocity, x, t)


# ---- diffusion schedules g(t): any callable times (n,) -> (n,) with g ≥ 0 keeps the marginals ----


def _check_scale(scale: float) -> None:
    if not scale >= 0:
        raise ValueError(f"scale must be >= 0 (g is a diffusion coefficient), got {scale}")


def constant(scale: float = 1.0) -> Diffusion:
    """``g(t) = c``: the same noise everywhere; the ``½g²s`` drift is large near ``t = 1``."""
    _check_scale(scale)
    return lambda t: torch.full_like(t, scale)


def decaying(scale: float = 1.0) -> Diffusion:
    """``g(t) = c·(1 − t)``: noisy near the source, silent at the data end, where ``½g²s = ½c²(1 − t)(t·v − x)`` stays finite."""
    _check_scale(scale)
    return lambda t: scale * (1 - t)


def vp(scale: float = 1.0, t_min: float = 0.05) -> Diffusion:
    """The diffusion of the reverse VP/DDPM SDE for this path: ``g(t)² = 2c²(1 − t)/t`` (translated to our time).

    Derived from the forward noising SDE of ``x = α·x1 + σ·x0`` with ``α = t``, ``σ = 1 − t``:
    ``g² = 2σ²(α̇/α − σ̇/σ) = 2(1 − t)/t``. It is infinite at ``t = 0``, so ``t`` is clamped to
    ``t ≥ t_min``; any clamp is allowed since every ``g`` keeps the marginals.
    """
    _check_scale(scale)
    if not 0 < t_min < 1:
        raise ValueError(f"t_min must be in (0, 1), got {t_min}")
    return lambda t: scale * (2 * (1 - t) / t.clamp_min(t_min)).sqrt()


DIFFUSIONS = {"constant": constant, "decaying": decaying, "vp": vp}


def euler_maruyama_step(
    v: Velocity, x: Tensor, t: Tensor, dt: Tensor, diffusion: Diffusion, noise: Tensor
) -> Tensor:
    """One Euler–Maruyama step ``x + dt·[v + ½g²s] + g·√dt·noise`` at ``g = g(t)``, ``noise ~ N(0, I)`` ``(n, d)``.

    Differentiable (no ``no_grad``): the Gaussian transition ``N(mean, g²dt·I)`` is what reward
    fine-tuning (Flow-GRPO) takes log-probabilities of; see :func:`transition`.
    """
    mean, std = transition(v, x, t, dt, diffusion)
    return mean + std * noise


def transition(v: Velocity, x: Tensor, t: Tensor, dt: Tensor, diffusion: Diffusion) -> tuple[Tensor, Tensor]:
    """The Gaussian law of one Euler–Maruyama step from ``x`` at ``t``: mean ``x + dt·(v + ½g²s)`` ``(n, d)``,
    standard deviation ``g(t)·√dt`` ``(n, 1)``."""
    time = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(len(x))
    g = diffusion(time)[:, None]  # (n, 1)
    mean = x + dt * drift(v, x, time, g[:, 0])
    return mean, g * torch.as_tensor(dt, dtype=x.dtype, device=x.device).abs().sqrt()


def resolve(diffusion: Diffusion | str | float) -> Diffusion:
    """A diffusion schedule from a callable, a name in :data:`DIFFUSIONS` (scale 1) or a constant ``g``."""
    if isinstance(diffusion, str):
        if diffusion not in DIFFUSIONS:
            raise ValueError(f"unknown diffusion {diffusion!r}; choose one of {sorted(DIFFUSIONS)} or pass g(t)")
        return DIFFUSIONS[diffusion]()
    if isinstance(diffusion, (int, float)):
        return constant(float(diffusion))
    if callable(diffusion):
        return diffusion
    raise TypeError(f"diffusion must be a callable g(t), a name or a number, got {type(diffusion).__name__}")


def euler_maruyama(
    v: Velocity,
    x0: Tensor,
    steps: int = 100,
    diffusion: Diffusion | str | float = "decaying",
    generator: torch.Generator | None = None,
    return_path: bool = False,
    grid: Tensor | None = None,
) -> Solution:
    """Sample ``dX = [v + ½g²s] dt + g dW`` from ``x0`` ``(n, d)`` at ``t = 0`` with Euler–Maruyama.

    Args:
        v: a velocity field trained on the linear path from ``N(0, I)``.
        x0: source points ``(n, d)``.
        steps: number of uniform steps (ignored when ``grid`` is given).
        diffusion: ``g(t)``: a callable, ``"constant"``, ``"decaying"``, ``"vp"``, or a number (constant ``g``).
        generator: draws the Brownian increments; the same seed gives the same samples.
        return_path: also return the states at every grid time.
        grid: increasing times in ``[0, 1]``, shape ``(T + 1,)``.

    Returns:
        a :class:`~toyflow.solvers.Solution` with ``nfe = T`` (one velocity per step). A step that ends
        at ``t = 1`` is the noiseless jump ``x + (1 − t)·v`` (the score is singular there).
    """
    g = resolve(diffusion)
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (n, d), got {tuple(x0.shape)}")
    grid = time_grid(steps, device=x0.device, dtype=x0.dtype) if grid is None else grid.to(x0)
    if grid.ndim != 1 or len(grid) < 2 or not (grid[1:] > grid[:-1]).all() or grid[0] < 0 or grid[-1] > 1:
        raise ValueError(f"grid must be increasing times in [0, 1] (at least 2), got {grid.tolist()}")
    x, states = x0, [x0]
    with torch.no_grad():
        for t, t_next in zip(grid[:-1], grid[1:]):
            dt = t_next - t
            if t_next >= 1:  # the singular end: no score, no noise, the posterior-mean jump
                x = x + dt * v(x, t.expand(len(x)))
            else:
                noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = euler_maruyama_step(v, x, t, dt, g, noise)
            if return_path:
                states.append(x)
    return Solution(x, grid, len(grid) - 1, torch.stack(states) if return_path else None)
