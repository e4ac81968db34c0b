"""Sample a trained flow with noise and keep its marginals: the score from the velocity, an SDE, Euler–Maruyama.

On the linear path from a standard normal source, ``x_t = (1 − t)·x0 + t·x1`` with ``x0 ~ N(0, I)``,
the velocity ``v = E[x1 − x0 | x_t]`` already knows the score of ``p_t`` (Kim et al. 2025, §6 of METHODS)::

    E[x0 | x_t] = x_t − t·v                      (from x_t = x0 + t·(x1 − x0))
    score s(x, t) = ∇log p_t(x) = −E[x0 | x_t]/(1 − t) = (t·v − x)/(1 − t)   (Tweedie, x0 ~ N(0, I))

and for every diffusion schedule ``g(t) ≥ 0`` the SDE

    dX = [v(X, t) + ½g(t)²·s(X, t)] dt + g(t) dW

has the same marginals ``p_t`` as the ODE ``dX = v dt`` (Fokker–Planck: the ``½g²s`` drift cancels the
``½g²Δp`` spreading). ``g = 0`` is the ODE.

The step. Write ``x̂0 = x − t·v = E[x0 | x_t]`` (the noise the point still carries), so ``½g²·s = −½g²·x̂0/(1 − t)``.
The textbook Euler–Maruyama step :func:`euler_maruyama_step` removes the fraction ``κ = g²·dt/(2(1 − t))`` of
``x̂0`` and adds fresh noise of variance ``g²·dt = 2κ(1 − t)``. That is accurate only while ``κ`` is small: with
``sde.vp(1)`` (``g² = 40`` at ``t = 0``) and 10 steps, ``κ = 2``: the step leaves ``(1 − κ)·x̂0 = −x̂0``, and the first
step's spread is 2.3 where the true one is 0.90. The samplers therefore take :func:`exponential_step`:
the Euler step of the ODE plus the *exact* solution, over ``dt``, of the noise part ``dY = ½g²·s(Y) dt + g dW``
with ``v``, ``g`` and ``t`` frozen (an Ornstein–Uhlenbeck process that pulls ``x̂0`` to 0)::

    x' = x + dt·v − (1 − e^{−κ})·x̂0 + √((1 − t)(1 − e^{−2κ}))·ε,      κ = g(t)²·dt / (2(1 − t))

It removes at most all of ``x̂0`` and adds at most variance ``1 − t``, whatever ``κ``; for small ``κ`` it is the
Euler–Maruyama step (``1 − e^{−κ} ≈ κ``, ``(1 − t)(1 − e^{−2κ}) ≈ g²dt``); ``g = 0`` is the ODE's Euler step; it
costs one velocity per step. On the Gaussian case its std at every grid time stays within the Euler ODE's own
worst error (``benchmarks/sde_marginals.py``: 12 % against the ODE's 14 % for ``vp(1)`` at 10 steps, where plain
Euler–Maruyama is off by 153 %).

The singular end: ``s`` divides by ``1 − t``, so at the data end ``t = 1`` the score blows up (the data
have no noise left). :func:`euler_maruyama` never evaluates it there: its last step, the one that lands
on ``t = 1``, is the noiseless jump to the posterior mean ``x + (1 − t)·v = E[x1 | x_t]`` (an ODE Euler
step). Every other step has ``1 − t ≥ dt``.

>>> from toyflow.closed_form import GaussianToGaussian
>>> case = GaussianToGaussian(mean=(2.0, 0.0), std=0.5)
>>> x0 = torch.randn(20000, 2, generator=torch.Generator().manual_seed(0))
>>> end = euler_maruyama(case.velocity, x0, steps=100, diffusion=constant(1.0), generator=torch.Generator().manual_seed(1))
>>> round(end.x[:, 0].mean().item(), 1), round(end.x.std(0).mean().item(), 2), end.nfe  # N((2, 0), 0.5² I)
(2.0, 0.5, 100)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .couplings import PairSource
from .paths import Interpolant, UniformTime, stochastic
from .solvers import Solution, Velocity, time_grid
from ._base import model_device

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
    """The diffusion a DDPM-style reverse SDE would use on this path: ``g(t)² = 2c²(1 − t)/t`` (our time).

    It is the diffusion of the forward noising SDE whose marginals are ``x = α·x1 + σ·x0`` with ``α = t``,
    ``σ = 1 − t``: ``g² = 2σ²(α̇/α − σ̇/σ) = 2(1 − t)/t``; with ``c = 1`` the SDE is that process's time reversal.
    It is infinite at ``t = 0``, so ``t`` is clamped to ``t ≥ t_min``; any clamp is allowed since every ``g`` keeps the marginals.
    """
    _check_scale(scale)
    if not 0 < t_min < 1:
        raise ValueError(f"t_min must be in (0, 1), got {t_min}")
    return lambda t: scale * (2 * (1 - t) / t.clamp_min(t_min)).sqrt()


DIFFUSIONS = {"constant": constant, "decaying": decaying, "vp": vp}


def euler_maruyama_step(
    v: Velocity, x: Tensor, t: Tensor, dt: Tensor, diffusion: Diffusion, noise: Tensor
) -> Tensor:
    """The textbook Euler–Maruyama step ``x + dt·[v + ½g²s] + g·√dt·noise`` at ``g = g(t)``, ``noise ~ N(0, I)`` ``(n, d)``.

    Accurate only while ``κ = g²dt/(2(1 − t))`` is small (module docstring): it removes the fraction ``κ`` of the
    noise ``x̂0 = x − t·v``, more than all of it when ``κ > 1``. The samplers use :func:`exponential_step`.
    """
    time = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(len(x))
    g = diffusion(time)[:, None]  # (n, 1)
    dt = torch.as_tensor(dt, dtype=x.dtype, device=x.device)
    return x + dt * drift(v, x, time, g[:, 0]) + g * dt.sqrt() * noise


def exponential_step(
    v: Velocity | Tensor, x: Tensor, t: Tensor, dt: Tensor, diffusion: Diffusion, noise: Tensor
) -> Tensor:
    """One sampler step from ``x`` at ``t`` to ``t + dt``: ``mean + std·noise`` of :func:`transition`, ``noise`` ``(n, d)``.

    Differentiable (no ``no_grad``): the Gaussian transition is what reward fine-tuning (Flow-GRPO) takes
    log-probabilities of.
    """
    mean, std = transition(v, x, t, dt, diffusion)
    return mean + std * noise


def transition(v: Velocity | Tensor, x: Tensor, t: Tensor, dt: Tensor, diffusion: Diffusion) -> tuple[Tensor, Tensor]:
    """The Gaussian law of one step from ``x`` ``(n, d)`` at ``t`` (0-d or ``(n,)``) to ``t + dt`` (``dt > 0``, a scalar).

    With ``v = v(x, t)`` (``v`` a callable or its value), ``x̂0 = x − t·v`` and ``κ = g(t)²·dt/(2(1 − t))``::

        mean = x + dt·v − (1 − e^{−κ})·x̂0   (n, d),       std = √((1 − t)(1 − e^{−2κ}))   (n, 1)

    the ODE's Euler step plus the exact Ornstein–Uhlenbeck solution of ``dY = ½g²s(Y) dt + g dW`` with ``v`` frozen
    (``s(Y) = (t·v − Y)/(1 − t)``): ``Y`` relaxes to ``t·v`` at rate ``g²/(2(1 − t))`` with stationary variance
    ``1 − t``. For small ``κ`` this is the Euler–Maruyama law ``N(x + dt·(v + ½g²s), g²dt·I)`` (Flow-GRPO's
    policy), to first order in ``dt``; ``std`` does not depend on ``v``, so two models' steps share it.
    """
    time = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(len(x))
    velocity = v(x, time) if callable(v) else v
    t, dt = time[:, None], torch.as_tensor(dt, dtype=x.dtype, device=x.device)  # t: (n, 1)
    kappa = diffusion(time)[:, None] ** 2 * dt / (2 * (1 - t))  # (n, 1)
    x0_hat = x - t * velocity  # E[x0 | x_t]
    mean = x + dt * velocity + torch.expm1(-kappa) * x0_hat  # expm1(−κ) = −(1 − e^{−κ})
    return mean, ((1 - t) * -torch.expm1(-2 * kappa)).sqrt()


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
    """Sample ``dX = [v + ½g²s] dt + g dW`` from ``x0`` ``(n, d)`` at ``t = 0``, one :func:`exponential_step` per step.

    The name is kept from the textbook scheme; each step is Euler–Maruyama with its noise part solved exactly
    (module docstring), which keeps the marginals where plain Euler–Maruyama overshoots (large ``g²dt/(1 − t)``).

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
                x = exponential_step(v, x, t, dt, g, noise)
            if return_path:
                states.append(x)
    return Solution(x, grid, len(grid) - 1, torch.stack(states) if return_path else None)


# ---- stochastic interpolants (Albergo, Boffi, Vanden-Eijnden 2023): any source, two regressions ----


@dataclass
class InterpolantRegression:
    """One of the two regressions of a stochastic interpolant ``x_t = α·x0 + β·x1 + γ·z`` (``paths.stochastic``).

    ``target="velocity"``: ``‖v(x_t, t) − (α̇·x0 + β̇·x1)‖²``, so ``v = E[α̇x0 + β̇x1 | x_t]``;
    ``target="denoiser"``: ``‖η(x_t, t) − z‖²``, so ``η = E[z | x_t]``. Then the drift is ``b = v + γ̇·η``
    and the score ``s = −η/γ``, with no Gaussian source needed. Loss per point, averaged over dimensions.
    """

    pairs: PairSource
    path: Interpolant = field(default_factory=stochastic)
    time: object = field(default_factory=UniformTime)
    batch_size: int = 256
    target: str = "velocity"

    def __post_init__(self):
        if self.target not in ("velocity", "denoiser"):
            raise ValueError(f"target must be 'velocity' or 'denoiser', got {self.target!r}")
        if not self.path.is_stochastic:
            raise ValueError(f"path must be stochastic (gamma > 0), e.g. paths.stochastic(), got {self.path.name}")

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else model_device(model)
        batch = self.pairs.sample(self.batch_size, generator, device)
        t = self.time(self.batch_size, generator=generator, device=device)
        z = torch.randn(batch.x0.shape, generator=generator, device=device)
        xt = self.path.interpolate(batch.x0, batch.x1, t, z)
        target = self.path.velocity(batch.x0, batch.x1, t) if self.target == "velocity" else z
        return ((model(xt, t) - target) ** 2).mean()


def interpolant_sde(
    velocity: Velocity,
    denoiser: Velocity,
    x0: Tensor,
    path: Interpolant,
    steps: int = 100,
    epsilon: float = 0.5,
    generator: torch.Generator | None = None,
    delta: float = 0.02,
    return_path: bool = False,
) -> Solution:
    """Sample a stochastic interpolant forward: ``dX = [b − ε·η/γ] dt + √(2ε) dW`` (``s = −η/γ``) from ``x0`` ``(n, d)``.

    Every ``ε ≥ 0`` has the interpolant's marginals (``ε = 0`` is the ODE ``dX = b dt``), whatever the source:
    noise → data or data → data. ``γ`` vanishes at both ends, where ``γ̇`` and ``s`` blow up, so the fields
    are evaluated at times clamped to ``[δ, 1 − δ]`` and the noise is switched off outside that window.

    Returns:
        a :class:`~toyflow.solvers.Solution`; ``nfe = 2 × steps`` (the velocity and the denoiser each step).
    """
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0 (the diffusion is √(2ε)), got {epsilon}")
    if not 0 < delta < 0.5:
        raise ValueError(f"delta must be in (0, 0.5), got {delta}")
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (n, d), got {tuple(x0.shape)}")
    grid = time_grid(steps, device=x0.device, dtype=x0.dtype)
    x, states, dt = x0, [x0], grid[1] - grid[0]
    with torch.no_grad():
        for t in grid[:-1]:
            time = t.clamp(delta, 1 - delta).expand(len(x))
            eta = denoiser(x, time)
            b = velocity(x, time) + path.d_gamma(time)[:, None] * eta
            if epsilon > 0 and delta <= t and t + dt <= 1 - delta:
                noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = x + dt * (b - epsilon * eta / path.gamma(time)[:, None]) + (2 * epsilon * dt) ** 0.5 * noise
            else:
                x = x + dt * b
            if return_path:
                states.append(x)
    return Solution(x, grid, 2 * steps, torch.stack(states) if return_path else None)
