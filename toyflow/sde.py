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

Interpolant conversion (Kim et al. 2025, §4). A flow trained on the linear path can be sampled along another affine
path ``x̄_τ = b(τ)·x1 + a(τ)·x0`` (data coefficient ``b``, noise coefficient ``a``, as in :mod:`toyflow.paths`) without
retraining: ``x̄_τ = s·x_t`` with ``t(τ) = b/(a + b)`` (the same signal-to-noise ratio) and ``s(τ) = a + b``, so::

    v̄(x̄, τ) = (ṡ/s)·x̄ + s·ṫ·v(x̄/s, t(τ))                                   (:func:`convert`)

The paper's path is the variance-preserving one, :func:`vp_path` (``b = e^{−T/2}``, ``a = √(1 − e^{−T})``), sampled
with a diffusion that vanishes at the data end, :func:`quadratic` (``g = c·(1 − τ)²``). Pass ``path=`` to
:func:`euler_maruyama` (or to the samplers of :mod:`toyflow.search`): the step above generalises to any affine
path (:func:`transition`), and the states it returns are the converted ones, ``x̄_τ``.

>>> from toyflow.closed_form import GaussianToGaussian
>>> case = GaussianToGaussian(mean=(2.0, 0.0), std=0.5)
>>> x0 = case.source.sample(20000, torch.Generator().manual_seed(0))
>>> end = euler_maruyama(case.velocity, x0, steps=100, diffusion=constant(1.0), generator=torch.Generator().manual_seed(1))
>>> round(end.x[:, 0].mean().item(), 1), round(end.x.std(0).mean().item(), 2), end.nfe  # N((2, 0), 0.5² I)
(2.0, 0.5, 100)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ._base import batch_time, check_callable, check_choice, check_grid, check_int, check_number, check_points, randn
from .batch import check_pair_source, draw_batch, mean_loss
from .couplings import PairSource
from .paths import Interpolant, UniformTime, check_path, stochastic
from .solvers import Solution, Velocity, time_grid

Diffusion = Callable[[Tensor], Tensor]  # g(t): times (n,) -> diffusion coefficients (n,)


def score_from_velocity(v: Velocity | Tensor, x: Tensor, t: Tensor | float) -> Tensor:
    """The score ``∇log p_t(x) = (t·v − x)/(1 − t)`` of the linear path from ``N(0, I)``, shape ``(n, d)``.

    Args:
        v: the velocity field (a callable ``v(x, t)``) or its value at ``(x, t)``, shape ``(n, d)``.
        x: points ``(n, d)``.
        t: times ``(n,)`` (or a scalar) in ``[0, 1)``; the score does not exist at ``t = 1``.
    """
    t = batch_time(t, x)
    if (t >= 1).any():
        raise ValueError(f"t must be < 1 (the score is singular at the data end), got max t = {t.max().item()}")
    velocity = v(x, t) if callable(v) else v
    t = t[:, None]
    return (t * velocity - x) / (1 - t)


def drift(v: Velocity | Tensor, x: Tensor, t: Tensor | float, g: Tensor | float) -> Tensor:
    """The SDE drift ``v + ½g²·s`` with ``s`` from :func:`score_from_velocity`, shape ``(n, d)``."""
    t = batch_time(t, x)
    velocity = v(x, t) if callable(v) else v
    g = batch_time(g, x)[:, None]  # (n, 1)
    return velocity + 0.5 * g**2 * score_from_velocity(velocity, x, t)


# ---- diffusion schedules g(t): any callable times (n,) -> (n,) with g ≥ 0 keeps the marginals ----


def _check_scale(scale: float) -> float:
    return check_number("scale", scale, low=0, why="g is a diffusion coefficient")


def constant(scale: float = 1.0) -> Diffusion:
    """``g(t) = c``: the same noise everywhere; the ``½g²s`` drift is large near ``t = 1``."""
    scale = _check_scale(scale)
    return lambda t: torch.full_like(t, scale)


def decaying(scale: float = 1.0) -> Diffusion:
    """``g(t) = c·(1 − t)``: noisy near the source, silent at the data end, where ``½g²s = ½c²(1 − t)(t·v − x)`` stays finite."""
    scale = _check_scale(scale)
    return lambda t: scale * (1 - t)


def quadratic(scale: float = 3.0) -> Diffusion:
    """``g(t) = c·(1 − t)²``: Kim et al. 2025's diffusion (``c = 3``; ``σ_t²`` in their time, where data sit at 0).

    It vanishes at the data end faster than :func:`decaying`, so the last steps are almost the ODE's.
    """
    scale = _check_scale(scale)
    return lambda t: scale * (1 - t) ** 2


def vp(scale: float = 1.0, t_min: float = 0.05) -> Diffusion:
    """The diffusion a DDPM-style reverse SDE would use on this path: ``g(t)² = 2c²(1 − t)/t`` (our time).

    It is the diffusion of the forward noising SDE whose marginals are ``x = α·x1 + σ·x0`` with ``α = t``,
    ``σ = 1 − t``: ``g² = 2σ²(α̇/α − σ̇/σ) = 2(1 − t)/t``; with ``c = 1`` the SDE is that process's time reversal.
    It is infinite at ``t = 0``, so ``t`` is clamped to ``t ≥ t_min``; any clamp is allowed since every ``g`` keeps the marginals.
    """
    scale = _check_scale(scale)
    t_min = check_number("t_min", t_min, 0, 1, low_open=True, high_open=True)
    return lambda t: scale * (2 * (1 - t) / t.clamp_min(t_min)).sqrt()


DIFFUSIONS = {"constant": constant, "decaying": decaying, "quadratic": quadratic, "vp": vp}


def resolve(diffusion: Diffusion | str | float) -> Diffusion:
    """A diffusion schedule from a callable, a name in :data:`DIFFUSIONS` (its default scale) or a constant ``g``."""
    if isinstance(diffusion, str):
        return DIFFUSIONS[check_choice("diffusion", diffusion, sorted(DIFFUSIONS))]()
    if isinstance(diffusion, (int, float)) and not isinstance(diffusion, bool):
        return constant(float(diffusion))
    return check_callable("diffusion", diffusion, "a callable g(t), a name in sde.DIFFUSIONS or a number")


# ---- interpolant conversion (Kim et al. 2025): sample a linear-path flow along another path ----


def vp_path(beta_min: float = 0.1, beta_max: float = 20.0) -> Interpolant:
    """The variance-preserving path ``x̄_τ = e^{−T/2}·x1 + √(1 − e^{−T})·x0``, ``T(τ) = ½(1 − τ)²(β_max − β_min) + (1 − τ)β_min``.

    Data coefficient ``b = e^{−T/2}`` (1 at ``τ = 1``, ``e^{−5.03} ≈ 0.007`` at ``τ = 0`` with the defaults), noise
    coefficient ``a = √(1 − b²)``: ``a² + b² = 1``. The VP-SDE schedule of Song et al. 2021 in our time, the path
    Kim et al. 2025 convert flows to. ``ȧ`` is infinite at ``τ = 1``: the converted field is never evaluated there.
    """
    low = check_number("beta_min", beta_min, low=0, low_open=True)
    high = check_number("beta_max", beta_max, low=low, low_open=True, why="beta_max > beta_min")

    def big_t(t: Tensor) -> Tensor:
        return 0.5 * (1 - t) ** 2 * (high - low) + (1 - t) * low

    def d_big_t(t: Tensor) -> Tensor:
        return -(1 - t) * (high - low) - low

    def noise(t: Tensor) -> Tensor:
        return (-torch.expm1(-big_t(t))).sqrt()

    return Interpolant(
        alpha=noise,
        beta=lambda t: torch.exp(-0.5 * big_t(t)),
        d_alpha=lambda t: 0.5 * d_big_t(t) * torch.exp(-big_t(t)) / noise(t),
        d_beta=lambda t: -0.5 * d_big_t(t) * torch.exp(-0.5 * big_t(t)),
        name=f"vp({low:g}, {high:g})",
    )


def linear_time(path: Interpolant, tau: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Where ``path`` at ``τ`` ``(n,)`` sits on the linear path: ``t = b/(a + b)``, ``s = a + b``, and ``ṫ``, ``ṡ``."""
    a, b, da, db = path.alpha(tau), path.beta(tau), path.d_alpha(tau), path.d_beta(tau)
    s = a + b
    return b / s, s, (db * a - b * da) / s**2, da + db


def convert(v: Velocity, path: Interpolant) -> Velocity:
    """The velocity on ``path`` of a flow ``v`` trained on the linear path: ``v̄(x̄, τ) = (ṡ/s)·x̄ + s·ṫ·v(x̄/s, t(τ))``.

    With ``x̄_τ = b·x1 + a·x0 = s·x_t``, ``t = b/(a + b)``, ``s = a + b`` (:func:`linear_time`); one evaluation of ``v``
    per call. The ODE of ``v̄`` from ``s(τ0)·x_{t(τ0)}`` lands where ``v``'s ODE lands (``s = 1`` at ``τ = 1``).
    Kim et al. 2025, "Inference-time scaling for flow models", eq. of §4 (interpolant conversion).
    """
    check_callable("v", v, "a velocity field v(x, t)")
    check_path(path)

    def converted(x: Tensor, tau: Tensor) -> Tensor:
        t, s, dt, ds = (c[:, None] for c in linear_time(path, batch_time(tau, x)))  # (n, 1) each
        return ds / s * x + s * dt * v(x / s, t[:, 0])

    return converted


# ---- the step ----


def euler_maruyama_step(
    v: Velocity, x: Tensor, t: Tensor | float, dt: Tensor | float, diffusion: Diffusion, noise: Tensor
) -> Tensor:
    """The textbook Euler–Maruyama step ``x + dt·[v + ½g²s] + g·√dt·noise`` at ``g = g(t)``, ``noise ~ N(0, I)`` ``(n, d)``.

    Accurate only while ``κ = g²dt/(2(1 − t))`` is small (module docstring): it removes the fraction ``κ`` of the
    noise ``x̂0 = x − t·v``, more than all of it when ``κ > 1``. The samplers use :func:`exponential_step`.
    """
    time = batch_time(t, x)
    g = diffusion(time)[:, None]  # (n, 1)
    dt = torch.as_tensor(dt, dtype=x.dtype, device=x.device)
    return x + dt * drift(v, x, time, g[:, 0]) + g * dt.sqrt() * noise


def exponential_step(
    v: Velocity | Tensor, x: Tensor, t: Tensor | float, dt: Tensor | float, diffusion: Diffusion, noise: Tensor,
    path: Interpolant | None = None,
) -> Tensor:
    """One sampler step from ``x`` at ``t`` to ``t + dt``: ``mean + std·noise`` of :func:`transition`, ``noise`` ``(n, d)``.

    Differentiable (no ``no_grad``): the Gaussian transition is what reward fine-tuning (Flow-GRPO) takes
    log-probabilities of.
    """
    mean, std = transition(v, x, t, dt, diffusion, path)
    return mean + std * noise


def transition(
    v: Velocity | Tensor, x: Tensor, t: Tensor | float, dt: Tensor | float, diffusion: Diffusion,
    path: Interpolant | None = None,
) -> tuple[Tensor, Tensor]:
    """The Gaussian law of one step from ``x`` ``(n, d)`` at ``t`` (scalar or ``(n,)``) to ``t + dt`` (``dt > 0``, a scalar).

    On the linear path (``path=None``), with ``v = v(x, t)`` (a callable or its value), ``x̂0 = x − t·v`` and
    ``κ = g(t)²·dt/(2(1 − t))``::

        mean = x + dt·v − (1 − e^{−κ})·x̂0   (n, d),       std = √((1 − t)(1 − e^{−2κ}))   (n, 1)

    the ODE's Euler step plus the exact Ornstein–Uhlenbeck solution of ``dY = ½g²s(Y) dt + g dW`` with ``v`` frozen
    (``s(Y) = (t·v − Y)/(1 − t)``): ``Y`` relaxes to ``t·v`` at rate ``g²/(2(1 − t))`` with stationary variance
    ``1 − t``. For small ``κ`` this is the Euler–Maruyama law ``N(x + dt·(v + ½g²s), g²dt·I)`` (Flow-GRPO's
    policy), to first order in ``dt``; ``std`` does not depend on ``v``, so two models' steps share it.

    On another affine path ``x = b·x1 + a·x0`` (``v`` a velocity on that path, e.g. from :func:`convert`) the score
    with ``v`` frozen is ``s(Y) = (c − Y)/D`` with centre ``c = (b/ḃ)·v`` and ``D = a·(a·ḃ − b·ȧ)/ḃ``: the same step with
    ``t·v → c`` and ``1 − t → D`` (``D = 1`` on :func:`vp_path`).
    """
    time = batch_time(t, x)
    velocity = v(x, time) if callable(v) else v
    dt = torch.as_tensor(dt, dtype=x.dtype, device=x.device)
    tc = time[:, None]  # (n, 1)
    if path is None:
        centre, variance = tc * velocity, 1 - tc
    else:
        a, b, da, db = path.alpha(tc), path.beta(tc), path.d_alpha(tc), path.d_beta(tc)
        centre, variance = b / db * velocity, a * (a * db - b * da) / db
    kappa = diffusion(time)[:, None] ** 2 * dt / (2 * variance)  # (n, 1)
    mean = x + dt * velocity + torch.expm1(-kappa) * (x - centre)  # expm1(−κ) = −(1 − e^{−κ})
    return mean, (variance * -torch.expm1(-2 * kappa)).sqrt()


def posterior_mean(x: Tensor, velocity: Tensor, t: Tensor | float, path: Interpolant | None = None) -> Tensor:
    """``E[x1 | x_t]`` ``(n, d)`` from the velocity: ``x + (1 − t)·v`` (linear path), ``(a·v − ȧ·x)/(a·ḃ − b·ȧ)`` on ``path``."""
    if path is None:
        return x + (1 - batch_time(t, x)[:, None]) * velocity
    return path.endpoints(x, velocity, batch_time(t, x))[1]


def euler_maruyama(
    v: Velocity,
    x0: Tensor,
    steps: int = 100,
    diffusion: Diffusion | str | float = "decaying",
    generator: torch.Generator | None = None,
    return_path: bool = False,
    grid: Tensor | None = None,
    path: Interpolant | None = None,
) -> Solution:
    """Sample ``dX = [v + ½g²s] dt + g dW`` from ``x0`` ``(n, d)`` at ``t = 0``, one :func:`exponential_step` per step.

    The name is kept from the textbook scheme; each step is Euler–Maruyama with its noise part solved exactly
    (module docstring), which keeps the marginals where plain Euler–Maruyama overshoots (large ``g²dt/(1 − t)``).

    Args:
        v: a velocity field trained on the linear path from ``N(0, I)``.
        x0: source points ``(n, d)``.
        steps: number of uniform steps (ignored when ``grid`` is given).
        diffusion: ``g(t)``: a callable, a name in :data:`DIFFUSIONS`, or a number (constant ``g``).
        generator: draws the Brownian increments; the same seed gives the same samples.
        return_path: also return the states at every grid time.
        grid: increasing times in ``[0, 1]``, shape ``(T + 1,)``.
        path: sample along this path instead (Kim et al.'s interpolant conversion, e.g. :func:`vp_path`): ``v`` is
            converted by :func:`convert` and the states are ``x̄_τ`` on ``path``.

    Returns:
        a :class:`~toyflow.solvers.Solution` with ``nfe = T`` (one velocity per step). A step that ends
        at ``t = 1`` is the noiseless jump to ``E[x1 | x_t]`` (the score is singular there).
    """
    check_callable("v", v, "a velocity field v(x, t)")
    g = resolve(diffusion)
    check_points("x0", x0)
    if grid is None:
        grid = time_grid(check_int("steps", steps), device=x0.device, dtype=x0.dtype)
    grid = check_grid(grid, inside_unit=True, increasing=True).to(x0)
    field = v if path is None else convert(v, check_path(path))
    x, states = x0, [x0]
    with torch.no_grad():
        for t, t_next in zip(grid[:-1], grid[1:]):
            if t_next >= 1:  # the singular end: no score, no noise, the posterior-mean jump
                x = posterior_mean(x, field(x, batch_time(t, x)), t, path)
            else:
                x = exponential_step(field, x, t, t_next - t, g, randn(x.shape, generator, x.device, x.dtype), path)
            if return_path:
                states.append(x)
    return Solution(x, grid, len(grid) - 1, torch.stack(states) if return_path else None)


# ---- stochastic interpolants (Albergo, Boffi, Vanden-Eijnden 2023): any source, two regressions ----


@dataclass
class InterpolantRegression:
    """One of the two regressions of a stochastic interpolant ``x_t = α·x0 + β·x1 + γ·z`` (``paths.stochastic``).

    ``target="velocity"``: ``‖v(x_t, t) − (α̇·x0 + β̇·x1)‖²``, so ``v = E[α̇x0 + β̇x1 | x_t]``;
    ``target="denoiser"``: ``‖η(x_t, t) − z‖²``, so ``η = E[z | x_t]``. Then the drift is ``b = v + γ̇·η``
    and the score ``s = −η/γ``, with no Gaussian source needed. Loss per point, averaged over dimensions,
    weighted by the pair weights; the batch (pairs, times, ``z``) comes from :func:`toyflow.batch.draw_batch`.
    """

    pairs: PairSource
    path: Interpolant = field(default_factory=stochastic)
    time: object = field(default_factory=UniformTime)
    batch_size: int = 256
    target: str = "velocity"

    def __post_init__(self):
        check_pair_source(self.pairs)
        check_path(self.path)
        if not self.path.is_stochastic:
            raise ValueError(f"path must be stochastic (gamma > 0), e.g. paths.stochastic(), got {self.path.name}")
        check_callable("time", self.time, "a time sampler time(n, generator, device) such as paths.UniformTime()")
        check_int("batch_size", self.batch_size)
        check_choice("target", self.target, ["velocity", "denoiser"])

    def __call__(self, model: nn.Module | Callable, generator: torch.Generator | None = None) -> Tensor:
        batch = draw_batch(self.pairs, self.batch_size, model, generator, self.time, self.path)
        xt = self.path.interpolate(batch.x0, batch.x1, batch.t, batch.z)
        target = self.path.velocity(batch.x0, batch.x1, batch.t) if self.target == "velocity" else batch.z
        return mean_loss((model(xt, batch.t) - target) ** 2, batch.weight)


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
    check_callable("velocity", velocity, "a velocity field v(x, t)")
    check_callable("denoiser", denoiser, "a denoiser η(x, t)")
    if not check_path(path).is_stochastic:
        raise ValueError(f"path must be stochastic (gamma > 0 inside (0, 1): the score is −η/γ), got {path.name}: "
                         "use paths.stochastic(sigma)")
    epsilon = check_number("epsilon", epsilon, low=0, why="the diffusion is √(2ε)")
    delta = check_number("delta", delta, 0, 0.5, low_open=True, high_open=True)
    check_points("x0", x0)
    grid = time_grid(check_int("steps", steps), device=x0.device, dtype=x0.dtype)
    x, states, dt = x0, [x0], grid[1] - grid[0]
    with torch.no_grad():
        for t in grid[:-1]:
            time = batch_time(t.clamp(delta, 1 - delta), x)
            eta = denoiser(x, time)
            b = velocity(x, time) + path.d_gamma(time)[:, None] * eta
            if epsilon > 0 and delta <= t and t + dt <= 1 - delta:
                noise = randn(x.shape, generator, x.device, x.dtype)
                x = x + dt * (b - epsilon * eta / path.gamma(time)[:, None]) + (2 * epsilon * dt) ** 0.5 * noise
            else:
                x = x + dt * b
            if return_path:
                states.append(x)
    return Solution(x, grid, 2 * steps, torch.stack(states) if return_path else None)
