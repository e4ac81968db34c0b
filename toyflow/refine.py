"""Cheaper and reversible sampling of a trained flow: FlowTurbo's velocity refiner and pseudo-corrector
(Zhao et al. 2024, arXiv 2409.18128), and inversion with RF-Solver's second-order step (Wang et al. 2024,
arXiv 2411.04746).

FlowTurbo: along a sampling path the velocity changes slowly, so a small network ``r_φ`` learns the
change: after a step of size ``Δ`` from ``x`` with velocity ``v_prev = v(x, t)``, at ``x' = x + Δ·v_prev``::

    v(x', t + Δ) ≈ v_prev + r_φ(x', t + Δ, v_prev)        (teacher v frozen, Δ ~ U(0, Δ_max))

``r_φ`` is not told ``Δ`` (nor is the paper's), so it is trained on the step sizes it will be used with: the
paper draws ``Δ ~ U(0, 0.12)`` for its 9-step schedules (``Δ = 1/9``); here ``Δ_max`` is the refiner's
``max_gap`` (0.2 by default, the step of the 5-step H1-P2-R2), and :func:`flowturbo` refuses a schedule whose
steps are longer. A refiner step costs ``r_φ`` (a few times cheaper than ``v``) instead of an evaluation of
``v``. The pseudo-corrector is Heun whose first slope reuses the previous step's second evaluation: 1 NFE per
step. A FlowTurbo sampler is a schedule such as H1-P5-R3: Heun steps, then pseudo-corrector steps, then refiner
steps. (The paper's refiner step is a Heun step with two refiner calls; ours is an Euler step with one.)

Inversion: run the ODE from a target sample at ``t = 1`` back to ``t = 0`` (a negative step) and forward
again. RF-Solver's step is a second-order Taylor step with the time derivative of ``v`` taken from a
velocity difference; written out it is the explicit midpoint rule.

>>> import toyflow
>>> refiner = Refiner(max_gap=0.2)
>>> x0 = toyflow.data.get("gaussian").sample(8, torch.Generator().manual_seed(0))
>>> flowturbo(toyflow.models.VelocityMLP(), refiner, x0, heun=1, pseudo=2, refine=2).nfe
4
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._base import batch_time, check_callable, check_choice, check_int, check_number, check_points, mlp, rand
from .batch import check_pair_source, draw_batch, mean_loss
from .couplings import PairSource
from .models import TimeEmbedding
from .paths import UniformTime
from .solvers import Solution, Velocity, integrate, time_grid


class Refiner(nn.Module):
    """``r_φ(x, t, v_prev) -> (n, dim)``: an MLP on ``[x, v_prev, emb(t)]``, smaller than the teacher.

    ``max_gap`` is the largest step ``Δ`` it is trained for (:class:`RefinerObjective` draws ``Δ ~ U(0, max_gap)``)
    and may be used with (:func:`flowturbo` checks); it is a buffer, so a checkpoint keeps it.
    """

    def __init__(self, dim: int = 2, hidden: int = 32, depth: int = 2, max_gap: float = 0.2):
        super().__init__()
        check_int("dim", dim)
        check_number("max_gap", max_gap, low=0, high=1, low_open=True, why="the largest step size the refiner is for")
        self.embed = TimeEmbedding()
        self.net = mlp(2 * dim + self.embed.dim, dim, hidden, depth)
        self.register_buffer("max_gap", torch.tensor(float(max_gap)))

    def forward(self, x: Tensor, t: Tensor, v_prev: Tensor) -> Tensor:
        """The correction ``r_φ(x, t, v_prev)`` ``(n, dim)`` for points ``x`` ``(n, dim)`` at times ``t``, given the
        velocity ``v_prev`` ``(n, dim)`` from the previous step."""
        return self.net(torch.cat([x, v_prev, self.embed(t)], dim=1))


@dataclass
class RefinerObjective:
    """FlowTurbo's refiner loss ``‖r_φ(x', s + Δ, v_prev) − (v(x', s + Δ) − v_prev)‖²`` with the teacher ``v`` frozen.

    For a pair ``(x0, x1)`` from ``pairs`` (drawn with :func:`toyflow.batch.draw_batch`, with ``t ~ U(0, 1)``),
    a step ``Δ ~ U(0, model.max_gap)`` starts at ``s = (1 − Δ)·t`` (so ``s + Δ ≤ 1``) from the path point
    ``x_s = (1 − s)·x0 + s·x1``: ``v_prev = v(x_s, s)``, ``x' = x_s + Δ·v_prev``. The loss is per point, averaged
    over dimensions, weighted by the pair weights. The model must carry ``max_gap`` (a :class:`Refiner`).
    """

    teacher: Velocity
    pairs: PairSource
    batch_size: int = 256

    def __post_init__(self):
        check_callable("teacher", self.teacher, "a velocity field v(x, t) -> (n, d)")
        check_pair_source(self.pairs)
        check_int("batch_size", self.batch_size)

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        max_gap = _max_gap(model)
        if max_gap is None:
            raise TypeError(f"model must be a refiner with a max_gap (the largest step it is trained for), such as "
                            f"refine.Refiner(max_gap=0.2), got {type(model).__name__}")
        batch = draw_batch(self.pairs, self.batch_size, model, generator, UniformTime())
        gap = max_gap * rand(self.batch_size, generator, device=batch.x1.device, dtype=batch.x1.dtype)  # (B,)
        start = (1 - gap) * batch.t  # (B,)
        x = (1 - start[:, None]) * batch.x0 + start[:, None] * batch.x1  # (B, d)
        with torch.no_grad():
            v_prev = self.teacher(x, start)
            moved = x + gap[:, None] * v_prev
            target = self.teacher(moved, start + gap) - v_prev
        return mean_loss((model(moved, start + gap, v_prev) - target) ** 2, batch.weight)


def _max_gap(refiner: object) -> float | None:
    """The refiner's training range ``Δ_max``, or None for one without (a closed-form function)."""
    gap = getattr(refiner, "max_gap", None)
    return None if gap is None else float(gap)


def flowturbo(
    v: Velocity, refiner: nn.Module | None, x0: Tensor, heun: int = 1, pseudo: int = 2, refine: int = 2,
    return_path: bool = False,
) -> Solution:
    """FlowTurbo's H·P·R sampler on a uniform grid of ``heun + pseudo + refine`` steps from ``x0`` ``(n, d)``.

    Heun steps (2 NFE), then pseudo-corrector steps ``x + dt/2·(v_prev + v(x + dt·v_prev, t + dt))`` whose
    second slope becomes the next ``v_prev`` (1 NFE), then refiner steps ``x + dt·(v_prev + r_φ(x, t, v_prev))``
    (0 NFE: only the refiner runs). The step ``dt = 1/(heun + pseudo + refine)`` must not exceed the refiner's
    ``max_gap`` (the steps it was trained on); a refiner without ``max_gap`` (a closed-form function) is trusted.

    Returns:
        a :class:`~toyflow.solvers.Solution`; ``nfe`` counts ``v`` only; ``path`` ``(T + 1, n, d)`` if asked.
    """
    check_callable("v", v, "a velocity field v(x, t) -> (n, d)")
    check_points("x0", x0)
    check_int("heun", heun, minimum=1)  # the first step has no previous velocity to reuse
    check_int("pseudo", pseudo, minimum=0)
    check_int("refine", refine, minimum=0)
    steps = heun + pseudo + refine
    if refine > 0:
        if refiner is None:
            raise ValueError(f"refine = {refine} steps need a refiner, got refiner=None")
        check_callable("refiner", refiner, "a refiner r(x, t, v_prev) -> (n, d) such as refine.Refiner()")
        max_gap = _max_gap(refiner)
        if max_gap is not None and 1 / steps > max_gap + 1e-6:
            raise ValueError(
                f"H{heun}-P{pseudo}-R{refine} takes steps of 1/{steps} = {1 / steps:.3f}, longer than the refiner's "
                f"training range Δ <= max_gap = {max_gap:.3f}: use at least {math.ceil(1 / max_gap - 1e-6)} steps in all, "
                f"or train a Refiner(max_gap >= {1 / steps:.3f})")
    grid = time_grid(steps, device=x0.device, dtype=x0.dtype)
    dt, x, nfe, v_prev, states = grid[1] - grid[0], x0, 0, x0, [x0]
    with torch.no_grad():
        for i, t in enumerate(grid[:-1]):
            time = batch_time(t, x)
            k1 = v(x, time) if i < heun else v_prev  # the pseudo-corrector reuses the last second slope
            nfe += 1 if i < heun else 0
            if i < heun + pseudo:
                k2 = v(x + dt * k1, time + dt)
                x, v_prev, nfe = x + dt / 2 * (k1 + k2), k2, nfe + 1
            else:
                v_prev = v_prev + refiner(x, time, v_prev)
                x = x + dt * v_prev
            states.append(x)
    return Solution(x, grid, nfe, torch.stack(states) if return_path else None)


def rf_solver_step(v: Velocity, x: Tensor, t: Tensor, dt: Tensor) -> Tensor:
    """RF-Solver: ``x + h·v + ½h²·v'`` with ``v' ≈ (v(x + h/2·v, t + h/2) − v)/(h/2)``; 2 evaluations, second order.

    ``h = dt`` may be negative (inversion). Expanding ``v'`` gives ``x + h·v(x + h/2·v, t + h/2)``: the midpoint rule.
    """
    time = batch_time(t, x)
    slope = v(x, time)
    half = dt / 2
    derivative = (v(x + half * slope, time + half) - slope) / half
    return x + dt * slope + dt**2 / 2 * derivative


def invert(v: Velocity, x1: Tensor, nfe: int, method: str = "rf_solver") -> Solution:
    """Run the flow backwards from target points ``x1`` ``(n, d)`` at ``t = 1`` to the source at ``t = 0``.

    Args:
        nfe: the evaluation budget: ``nfe`` Euler steps or ``nfe/2`` RF-Solver steps.
        method: ``"euler"`` or ``"rf_solver"``.

    Returns:
        a :class:`~toyflow.solvers.Solution` whose ``grid`` runs from 1 down to 0.
    """
    return _run(v, x1, nfe, method, backwards=True, name="x1")


def regenerate(v: Velocity, z: Tensor, nfe: int, method: str = "rf_solver") -> Solution:
    """Run the flow forwards from source points ``z`` ``(n, d)`` (e.g. inverted, then edited) to ``t = 1``."""
    return _run(v, z, nfe, method, backwards=False, name="z")


def _run(v: Velocity, x: Tensor, nfe: int, method: str, backwards: bool, name: str) -> Solution:
    per_step = {"euler": 1, "rf_solver": 2}
    check_callable("v", v, "a velocity field v(x, t) -> (n, d)")
    check_points(name, x)
    check_choice("method", method, sorted(per_step))
    if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe < per_step[method] or nfe % per_step[method]:
        raise ValueError(f"nfe must be a positive multiple of {per_step[method]} for {method}, got {nfe!r}")
    grid = time_grid(nfe // per_step[method], device=x.device, dtype=x.dtype)
    grid = grid.flip(0) if backwards else grid
    return integrate(v, x, grid=grid, method=rf_solver_step if method == "rf_solver" else "euler")
