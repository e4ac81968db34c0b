"""MeanFlow and SplitMeanFlow: learn the *average* velocity, so one big step lands on the target.

The average velocity of the flow ``φ`` from time ``s`` to ``t ≥ s``, starting at ``x`` at time ``s``, is::

    u(x, s, t) = (φ_{s→t}(x) − x) / (t − s),     u(x, t, t) = v(x, t),

so ``x_t = x_s + (t − s)·u(x_s, s, t)`` exactly: one step from 0 to 1 is ``x1 = x0 + u(x0, 0, 1)``.
A two-time network ``u_θ(x, s, t)`` (``models.VelocityMLP(times=2)``) learns it from pairs
``(x0, x1)`` on a path, by default the linear one ``x_s = (1 − s)x0 + s·x1`` with ``v = x1 − x0``
(``path=`` takes any interpolant of :mod:`toyflow.paths`, as flow matching does):

- **MeanFlow** (Geng et al. 2025, translated to toyflow's time convention): differentiate
  ``(t − s)·u(x_s, s, t) = ∫_s^t v dτ`` in ``s``. Along the flow this gives
  ``u = v + (t − s)·d/ds u`` with ``d/ds u = (∂u/∂x)·v + ∂u/∂s``, one forward-mode JVP with
  tangent ``(v, 1, 0)``. Regress ``u_θ(x_s, s, t)`` on ``sg(v + (t − s)·d/ds u_θ)``.
- **SplitMeanFlow** (Guo et al. 2025): average velocities add over a split interval. For
  ``m = s + λ(t − s)``: ``u(x_s, s, t) = λ·u(x_s, s, m) + (1 − λ)·u(x_m, m, t)`` with
  ``x_m = x_s + (m − s)·u(x_s, s, m)``. Regress ``u_θ(x_s, s, t)`` on that, no JVP.

On a share of the batch ``t = s``; there both targets reduce to ``v = x1 − x0``, the
flow-matching boundary condition that anchors everything else. Both objectives take a pair
sampler (independent, minibatch OT, fixed pairs …), train with :func:`toyflow.train.fit`, and
can add the dispersive regulariser of "Diffuse and Disperse" (Wang & He 2025), used by DM1/MP1.

Both targets are built from the network itself, so the defaults decide whether training converges.
toyflow's differ from MeanFlow's ImageNet code; each was found by experiment on the closed-form
Gaussian case (tests/test_meanflow.py) and on 8 gaussians → moons (notebooks/07_meanflow.ipynb):

- **``t = s`` pairs take one time draw**, not the smaller of two. The smaller of two rarely lands near
  ``t = 1``, so ``v`` goes unlearned there, and ``u(x, 0, 1)``, the average of ``v`` over the whole
  interval, inherits the error: one-step samples of ``N(m, 0.5²I)`` had std 0.22; with one draw, 0.40.
- **Uniform times**, not logit-normal(0.4, 1), which rarely draws ``(s, t)`` near ``(0, 1)``, the
  interval one step jumps (one-step W2 on 8 gaussians → moons: 0.57–0.61 against 0.26–0.29).
- **Adaptive weight ``p = 0.5``**: a pair's loss ``‖Δ‖²/(‖Δ‖² + c)^p`` pulls with force ``≈ 2‖Δ‖^{1 − 2p}``.
  With ``p = 1`` (MeanFlow's code) the pull fades like ``1/‖Δ‖``, so nothing brings back long
  intervals that drift; SplitMeanFlow, whose long-interval targets are its own predictions, diverged
  (one-step samples at ``x ~ 100``). ``p = 0`` (plain L2) gave worse one-step maps on OT pairs.
- **Half the batch has ``t = s``**: with a quarter SplitMeanFlow diverged too, too little of the
  batch says what a velocity is.
- **Train with** ``fit(..., lr=1e-2, grad_clip=1.0)``: ``lr = 1e-2`` trained much faster than ``2e-3``,
  and without clipping SplitMeanFlow still diverged in 4 of 32 short runs on the Gaussian case (none with).

>>> import toyflow
>>> toyflow.seed(0)
>>> pairs = toyflow.couplings.PairSampler(toyflow.data.get("gaussian"), toyflow.data.get("moons"))
>>> u = toyflow.models.VelocityMLP(times=2)
>>> loss = MeanFlow(pairs)(u, torch.Generator().manual_seed(0))
>>> tuple(sample(u, torch.zeros(3, 2), steps=2).x.shape)
(3, 2)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ._base import batch_time, check_callable, check_grid, check_int, check_number, check_points, rand
from .batch import check_pair_source, draw_batch, mean_loss
from .couplings import PairSource
from .paths import Interpolant, UniformTime, check_path, linear
from .solvers import Solution, Velocity, time_grid

AverageVelocity = Callable[[Tensor, Tensor, Tensor], Tensor]  # u(x (n, d), s (n,), t (n,)) -> (n, d)


@dataclass(frozen=True)
class TimePairs:
    """Draws ``(s, t)`` with ``0 ≤ s ≤ t ≤ 1``: on a random share ``equal`` of the batch ``s = t = a``
    (the flow-matching boundary), elsewhere ``s = min(a, b)``, ``t = max(a, b)``, ``a, b ~ time``.

    MeanFlow's code draws logit-normal times and, on the ``s = t`` share, keeps the min of two
    draws (the max in its convention). toyflow draws uniform times and one draw for ``s = t``, so
    the boundary is learned as evenly as in flow matching (the module docstring says why).

    Args:
        time: a time sampler ``(n, generator, device) -> (n,)`` with values in ``[0, 1]``.
        equal: the share of pairs with ``t = s``, in ``[0, 1]``.

    >>> s, t = TimePairs(equal=0.5)(4, generator=torch.Generator().manual_seed(0))
    >>> bool((s <= t).all())
    True
    """

    time: object = field(default_factory=UniformTime)
    equal: float = 0.5

    def __post_init__(self):
        check_callable("time", self.time, "a time sampler (n, generator, device) -> (n,)")
        check_number("equal", self.equal, low=0, high=1, why="the share of pairs with s = t")

    def __call__(self, n: int, generator: torch.Generator | None = None, device=None) -> tuple[Tensor, Tensor]:
        a, b = self.time(n, generator=generator, device=device), self.time(n, generator=generator, device=device)
        same = rand(n, generator, device) < self.equal  # (n,)
        return torch.where(same, a, torch.minimum(a, b)), torch.where(same, a, torch.maximum(a, b))


def meanflow_target(u: AverageVelocity, x: Tensor, s: Tensor, t: Tensor, v: Tensor) -> Tensor:
    """MeanFlow's target ``v + (t − s)·d/ds u(x, s, t)``, ``d/ds u = (∂u/∂x)·v + ∂u/∂s``, shape ``(n, d)``.

    The total derivative along the flow is the JVP of ``(x, s, t) ↦ u`` with tangent ``(v, 1, 0)``
    (``torch.func.jvp``). For the exact ``u`` and the marginal ``v`` it equals ``u(x, s, t)``.

    Args:
        u: the average velocity ``u(x, s, t)``.
        x: points at time ``s``, ``(n, d)``.
        s, t: start and end times, ``(n,)`` each.
        v: the velocity at ``(x, s)``, ``(n, d)``: ``x1 − x0`` in training.
    """
    with warnings.catch_warnings():  # torch's first forward-mode call scripts its decompositions with a deprecated API
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
        _, du_ds = torch.func.jvp(u, (x, s, t), (v, torch.ones_like(s), torch.zeros_like(t)))
    return v + (t - s)[:, None] * du_ds


def split_target(u: AverageVelocity, x: Tensor, s: Tensor, t: Tensor, lam: Tensor) -> Tensor:
    """SplitMeanFlow's target ``λ·u(x, s, m) + (1 − λ)·u(x_m, m, t)``, ``m = s + λ(t − s)``, ``(n, d)``.

    ``x_m = x + (m − s)·u(x, s, m)`` is where the first part of the interval leads. For the exact
    ``u`` it equals ``u(x, s, t)``: ``(t − s)·u`` is a displacement, and displacements add.

    Args:
        u: the average velocity ``u(x, s, t)``.
        x: points at time ``s``, ``(n, d)``.
        s, t: start and end times, ``(n,)`` each.
        lam: where to split, ``(n,)`` in ``[0, 1]``.
    """
    m = s + lam * (t - s)
    first = u(x, s, m)
    second = u(x + (m - s)[:, None] * first, m, t)
    return lam[:, None] * first + (1 - lam[:, None]) * second


def dispersive_loss(h: Tensor, tau: float = 1.0) -> Tensor:
    """``log((1/B²) Σ_ij exp(−‖h_i − h_j‖²/(d·τ)))`` for features ``h`` ``(B, d)``: 0 when all features
    coincide, down to ``−log B`` when they are far apart. Adding it pushes the features apart
    (a contrastive loss with no positive pairs; "Diffuse and Disperse", Wang & He 2025)."""
    if h.ndim != 2 or len(h) < 2:
        raise ValueError(f"h must have shape (B, d) with B >= 2, got {tuple(h.shape)}")
    check_number("tau", tau, low=0, low_open=True, why="the temperature")
    sq = h.pow(2).sum(1)
    distances = (sq[:, None] + sq[None, :] - 2 * h @ h.T).clamp_min(0)  # (B, B)
    return torch.logsumexp(-distances.flatten() / (h.shape[1] * tau), 0) - 2 * math.log(len(h))


@dataclass
class _AverageVelocityObjective:
    """What MeanFlow and SplitMeanFlow share: the batch, the adaptive weight and the dispersive term.

    Per pair the loss is ``w·‖Δ‖²/d`` with ``Δ = u_θ(x_s, s, t) − sg(target)`` averaged over the ``d``
    dimensions, like flow matching and distillation, and the adaptive weight ``w = sg(1/(‖Δ‖²/d + c)^p)``
    (MeanFlow's code: ``p = 1``, ``c = 1e−3``; ``p = 0`` is plain L2; ``p = 0.5`` is ``≈ ‖Δ‖``, whose
    minimiser is the median of the target, not its mean: the same for the nearly deterministic targets
    of OT or fixed pairs). ``dispersive > 0`` adds ``dispersive · dispersive_loss(h, tau)`` on the
    features ``h = model.features(x_s, s, t)`` the model exposes (``models.VelocityMLP.features``).
    """

    pairs: PairSource
    path: Interpolant = field(default_factory=linear)
    time: TimePairs = field(default_factory=TimePairs)
    batch_size: int = 256
    p: float = 0.5
    c: float = 1e-3
    dispersive: float = 0.0
    tau: float = 1.0

    def __post_init__(self):
        check_int("batch_size", self.batch_size, minimum=2)
        check_number("p", self.p, low=0, why="the adaptive-weight power")
        check_number("c", self.c, low=0, low_open=True, why="it keeps the adaptive weight finite at Δ = 0")
        check_number("dispersive", self.dispersive, low=0, why="the regulariser's weight")
        check_number("tau", self.tau, low=0, low_open=True, why="the regulariser's temperature")
        check_pair_source(self.pairs)
        check_path(self.path)
        check_callable("time", self.time, "a TimePairs sampler (n, generator, device) -> (s, t)")

    def target(self, model: nn.Module, x: Tensor, s: Tensor, t: Tensor, v: Tensor, generator: torch.Generator | None) -> Tensor:
        """The stop-gradient regression target ``(B, d)`` for ``u_θ(x, s, t)``; each objective defines its own."""
        raise NotImplementedError

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        if self.dispersive > 0 and not callable(getattr(model, "features", None)):
            raise TypeError(
                f"dispersive > 0 reads the features the model exposes, model.features(x, s, t) -> (n, h); "
                f"{type(model).__name__} has no features method (models.VelocityMLP has one)"
            )
        batch = draw_batch(self.pairs, self.batch_size, model, generator, self.time, self.path)
        (s, t), z = batch.t, batch.z
        xs = self.path.interpolate(batch.x0, batch.x1, s, z)  # (B, d)
        v = self.path.velocity(batch.x0, batch.x1, s, z)  # (B, d)
        with torch.no_grad():  # the stop-gradient target
            target = self.target(model, xs, s, t, v, generator)
        squared = (model(xs, s, t) - target).pow(2).mean(1)  # (B,)
        loss = mean_loss(squared / (squared.detach() + self.c) ** self.p, batch.weight)
        return loss + self.dispersive * dispersive_loss(model.features(xs, s, t), self.tau) if self.dispersive > 0 else loss


@dataclass
class MeanFlow(_AverageVelocityObjective):
    """The MeanFlow loss (Geng et al. 2025): ``E w·‖u_θ(x_s, s, t) − sg(v + (t − s)·d/ds u_θ)‖²``.

    Args:
        pairs: a pair sampler ``sample(n, generator, device) -> PairBatch`` (its weights are used).
        path: the interpolant ``x_s`` between the pairs, whose velocity ``v`` enters the target (default: linear).
        time: the ``(s, t)`` sampler (default: uniform times, half the batch ``t = s``).
        batch_size: pairs per step.
        p, c: the adaptive weight ``1/(‖Δ‖² + c)^p``.
        dispersive, tau: weight and temperature of the dispersive regulariser (0: off).
    """

    def target(self, model: nn.Module, x: Tensor, s: Tensor, t: Tensor, v: Tensor, generator: torch.Generator | None) -> Tensor:
        """MeanFlow's target :func:`meanflow_target`."""
        return meanflow_target(model, x, s, t, v)


@dataclass
class SplitMeanFlow(_AverageVelocityObjective):
    """The SplitMeanFlow loss (Guo et al. 2025): ``E w·‖u_θ(x_s, s, t) − sg(λ·u_θ(x_s, s, m) + (1 − λ)·u_θ(x_m, m, t))‖²``
    with ``λ ~ U(0, 1)``, and ``E w·‖u_θ(x_s, s, s) − (x1 − x0)‖²`` where ``t = s``. Same arguments as :class:`MeanFlow`."""

    def target(self, model: nn.Module, x: Tensor, s: Tensor, t: Tensor, v: Tensor, generator: torch.Generator | None) -> Tensor:
        """``v`` where ``t = s``, else SplitMeanFlow's interval-splitting target :func:`split_target` at a random ``λ``."""
        lam = rand(len(x), generator, device=x.device, dtype=x.dtype)
        return torch.where((s == t)[:, None], v, split_target(model, x, s, t, lam))


def sample(
    u: AverageVelocity, x0: Tensor, steps: int = 1, grid: Tensor | None = None, return_path: bool = False
) -> Solution:
    """Jump across a time grid with the average velocity: ``x_{i+1} = x_i + (t_{i+1} − t_i)·u(x_i, t_i, t_{i+1})``.

    Exact for the exact ``u`` at any number of steps; ``steps = 1`` is ``x1 = x0 + u(x0, 0, 1)``.

    Args:
        u: the average velocity ``u(x, s, t)``.
        x0: starting points ``(n, d)`` at ``grid[0]``.
        steps: number of uniform steps on ``[0, 1]`` (ignored when ``grid`` is given).
        grid: increasing times ``(T + 1,)``.
        return_path: also return the states at every grid time, ``(T + 1, n, d)``.

    Returns:
        a :class:`toyflow.solvers.Solution` with ``nfe = T``. Runs without gradients.
    """
    check_callable("u", u, "an average velocity u(x, s, t) -> (n, d)")
    check_points("x0", x0)
    grid = time_grid(steps, device=x0.device, dtype=x0.dtype) if grid is None else check_grid(grid.to(x0), increasing=True)
    x, states = x0, [x0]
    with torch.no_grad():
        for s, t in zip(grid[:-1], grid[1:]):
            x = x + (t - s) * u(x, batch_time(s, x), batch_time(t, x))
            states.append(x)
    return Solution(x, grid, len(grid) - 1, torch.stack(states) if return_path else None)


def instantaneous(u: AverageVelocity) -> Velocity:
    """The velocity ``v(x, t) = u(x, t, t)`` inside an average-velocity model, for the ODE solvers and plots."""
    return lambda x, t: u(x, t, t)
