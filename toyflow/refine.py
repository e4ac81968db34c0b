"""Cheaper and reversible sampling of a trained flow: FlowTurbo's velocity refiner and pseudo-corrector
(Zhao et al. 2024), and inversion with RF-Solver's second-order step (Wang et al. 2024, arXiv 2411.04746).

FlowTurbo: along a sampling path the velocity changes slowly, so a small network ``r_φ`` learns the
change: after a step of size ``Δ`` from ``x`` with velocity ``v_prev = v(x, t)``, at ``x' = x + Δ·v_prev``::

    v(x', t + Δ) ≈ v_prev + r_φ(x', t + Δ, v_prev)        (teacher v frozen, Δ ~ U(0, 0.12))

A refiner step costs ``r_φ`` (a few times cheaper than ``v``) instead of an evaluation of ``v``. The
pseudo-corrector is Heun whose first slope reuses the previous step's second evaluation: 1 NFE per step.
A FlowTurbo sampler is a schedule such as H1-P5-R3: Heun steps, then pseudo-corrector steps, then refiner steps.

Inversion: run the ODE from a target sample at ``t = 1`` back to ``t = 0`` (a negative step) and forward
again. RF-Solver's step is a second-order Taylor step with the time derivative of ``v`` taken from a
velocity difference; written out it is the explicit midpoint rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .couplings import PairSource
from .models import TimeEmbedding
from .paths import UniformTime
from .solvers import Solution, Velocity, integrate, time_grid
from ._base import model_device


class Refiner(nn.Module):
    """``r_φ(x, t, v_prev) -> (n, dim)``: an MLP on ``[x, v_prev, emb(t)]``, smaller than the teacher."""

    def __init__(self, dim: int = 2, hidden: int = 32, depth: int = 2):
        super().__init__()
        self.embed = TimeEmbedding()
        layers: list[nn.Module] = [nn.Linear(2 * dim + self.embed.dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor, v_prev: Tensor) -> Tensor:
        return self.net(torch.cat([x, v_prev, self.embed(t)], dim=1))


@dataclass
class RefinerObjective:
    """FlowTurbo's refiner loss ``‖r_φ(x', t + Δ, v_prev) − (v(x', t + Δ) − v_prev)‖²`` with the teacher ``v`` frozen.

    ``x`` is a point of the path at ``t``: ``x_t = (1 − t)·x0 + t·x1`` for a pair from ``pairs``;
    ``v_prev = v(x_t, t)``, ``x' = x_t + Δ·v_prev``, ``Δ ~ U(0, max_gap)`` (clipped to ``t + Δ ≤ 1``).
    """

    teacher: Velocity
    pairs: PairSource
    max_gap: float = 0.12
    batch_size: int = 256

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else model_device(model)
        batch = self.pairs.sample(self.batch_size, generator, device)
        t = UniformTime()(self.batch_size, generator, device)
        gap = torch.minimum(self.max_gap * torch.rand(self.batch_size, generator=generator, device=device), 1 - t)
        x = (1 - t[:, None]) * batch.x0 + t[:, None] * batch.x1
        with torch.no_grad():
            v_prev = self.teacher(x, t)
            moved = x + gap[:, None] * v_prev
            target = self.teacher(moved, t + gap) - v_prev
        return ((model(moved, t + gap, v_prev) - target) ** 2).mean()


def flowturbo(
    v: Velocity, refiner: nn.Module | None, x0: Tensor, heun: int = 1, pseudo: int = 2, refine: int = 2
) -> Solution:
    """FlowTurbo's H·P·R sampler on a uniform grid of ``heun + pseudo + refine`` steps from ``x0`` ``(n, d)``.

    Heun steps (2 NFE), then pseudo-corrector steps ``x + dt/2·(v_prev + v(x + dt·v_prev, t + dt))`` whose
    second slope becomes the next ``v_prev`` (1 NFE), then refiner steps ``x + dt·(v_prev + r_φ(x, t, v_prev))``
    (0 NFE: only the refiner runs). Returns a :class:`~toyflow.solvers.Solution`; ``nfe`` counts ``v`` only.
    """
    for name, value in {"heun": heun, "pseudo": pseudo, "refine": refine}.items():
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if heun < 1:
        raise ValueError(f"heun must be >= 1 (the first step has no previous velocity to reuse), got {heun}")
    if refine > 0 and refiner is None:
        raise ValueError(f"refine = {refine} steps need a refiner, got refiner=None")
    grid = time_grid(heun + pseudo + refine, device=x0.device, dtype=x0.dtype)
    dt, x, nfe, v_prev = grid[1] - grid[0], x0, 0, x0
    with torch.no_grad():
        for i, t in enumerate(grid[:-1]):
            time = t.expand(len(x))
            k1 = v(x, time) if i < heun else v_prev  # the pseudo-corrector reuses the last second slope
            nfe += 1 if i < heun else 0
            if i < heun + pseudo:
                k2 = v(x + dt * k1, time + dt)
                x, v_prev, nfe = x + dt / 2 * (k1 + k2), k2, nfe + 1
            else:
                v_prev = v_prev + refiner(x, time, v_prev)
                x = x + dt * v_prev
    return Solution(x, grid, nfe)


def rf_solver_step(v: Velocity, x: Tensor, t: Tensor, dt: Tensor) -> Tensor:
    """RF-Solver: ``x + h·v + ½h²·v'`` with ``v' ≈ (v(x + h/2·v, t + h/2) − v)/(h/2)``; 2 evaluations, second order.

    ``h = dt`` may be negative (inversion). Expanding ``v'`` gives ``x + h·v(x + h/2·v, t + h/2)``: the midpoint rule.
    """
    time = t.expand(len(x))
    slope = v(x, time)
    half = dt / 2
    derivative = (v(x + half * slope, time + half) - slope) / half
    return x + dt * slope + dt**2 / 2 * derivative


def invert(v: Velocity, x1: Tensor, nfe: int, method: str = "rf_solver") -> Solution:
    """Run the flow backwards from target points ``x1`` ``(n, d)`` at ``t = 1`` to the source at ``t = 0``.

    Args:
        nfe: the evaluation budget: ``nfe`` Euler steps or ``nfe/2`` RF-Solver steps.
        method: ``"euler"`` or ``"rf_solver"``.
    """
    return _run(v, x1, nfe, method, backwards=True)


def regenerate(v: Velocity, z: Tensor, nfe: int, method: str = "rf_solver") -> Solution:
    """Run the flow forwards from source points ``z`` ``(n, d)`` (e.g. inverted, then edited) to ``t = 1``."""
    return _run(v, z, nfe, method, backwards=False)


def _run(v: Velocity, x: Tensor, nfe: int, method: str, backwards: bool) -> Solution:
    per_step = {"euler": 1, "rf_solver": 2}
    if method not in per_step:
        raise ValueError(f"method must be one of {sorted(per_step)}, got {method!r}")
    if not isinstance(nfe, int) or nfe < per_step[method] or nfe % per_step[method]:
        raise ValueError(f"nfe must be a positive multiple of {per_step[method]} for {method}, got {nfe!r}")
    grid = time_grid(nfe // per_step[method], device=x.device, dtype=x.dtype)
    grid = grid.flip(0) if backwards else grid
    return integrate(v, x, grid=grid, method=rf_solver_step if method == "rf_solver" else "euler")
