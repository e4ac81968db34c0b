"""Rectified flow and reflow (Liu, Gong, Liu 2022), one-step distillation (InstaFlow), SlimFlow's
annealing reflow and rectified diffusion: every one is flow matching on a *coupling built by a flow*.

1. **1-RF**: flow matching with independent pairs ``(x0, x1)``. Its paths cannot cross, so where the
   straight lines of independent pairs cross, the flow bends.
2. **Rectify**: push fresh source points through the trained flow, ``z1 = φ_{0→1}(z0)``. The pairs
   ``(z0, z1)`` keep both marginals, and their transport cost ``E‖z1 − z0‖²`` is no larger than the
   independent coupling's (it is for every convex cost).
3. **Reflow (k-RF)**: flow matching on the fixed pairs ``(z0, z1)``, warm-started from the previous
   round. The pairs no longer cross, so the new flow can be straight; one Euler step becomes accurate.
4. **Distil**: regress the one-step map ``T(z0) = z0 + v(z0, 0)`` on ``z1`` (the student starts as the
   teacher). A straight teacher's map is easy to learn, which is why InstaFlow distils the 2-RF.

>>> import toyflow
>>> toyflow.seed(0)
>>> rounds = rectified_flow(toyflow.data.get("gaussian"), toyflow.data.get("moons"), rounds=2, steps=20,
...                         num_pairs=100, progress=False)
>>> [r.name for r in rounds], len(rounds[1].pairs.z0)
(['1-RF', '2-RF'], 100)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ._base import batch_time, check_int, model_device, randn
from .batch import check_pair_source, draw_batch, mean_loss
from .couplings import FixedPairs, PairBatch, PairSampler, PairSource
from .data import Distribution
from .flow_matching import FlowMatching
from .models import VelocityMLP
from .paths import Interpolant, UniformTime, linear
from .solvers import Velocity, integrate, integrate_adaptive
from .train import History, fit


def sample_pairs(velocity: Velocity, z0: Tensor, steps: int = 25, method: str = "rk4") -> FixedPairs:
    """Rectify a flow: the pairs ``(z0, φ_{0→1}(z0))`` of ``z0`` ``(n, d)`` and where the flow carries it.

    The ODE is solved accurately (``method="rk4"`` with ``steps`` steps, or ``"adaptive"`` for
    torchdiffeq's Dormand–Prince): the next round learns these pairs, solver error included. 25 RK4
    steps land within about 1e-5 of a tight adaptive solve on a trained 1-RF (100 steps reach float32's
    rounding floor at 4× the cost), far below any W2 a 2D sample can resolve.
    A teacher that sends some points to NaN or inf raises a ``ValueError`` here.
    """
    z1 = integrate_adaptive(velocity, z0).x if method == "adaptive" else integrate(velocity, z0, steps, method).x
    finite = torch.isfinite(z1).all(1)
    if not finite.all():
        raise ValueError(
            f"the teacher (velocity) carried {int((~finite).sum())} of {len(z1)} points to NaN or inf "
            f"(the first is z0[{int((~finite).nonzero()[0])}]): the teacher is broken, its training diverged "
            "or it was given points far outside its data; retrain it (lower lr, grad_clip) before rectifying"
        )
    return FixedPairs(z0, z1)


def reflow(
    model: nn.Module, pairs: PairSource, steps: int, path: Interpolant | None = None, time=None,
    loss: str = "l2", batch_size: int = 256, **fit_kwargs,
) -> History:
    """Train ``model`` (in place, from its current weights) by flow matching on the fixed ``pairs``.

    ``time=paths.UShapedTime(4)`` and ``loss="pseudo_huber"`` are the improvements of Lee, Lin and Fanti
    (2024); ``path=paths.trigonometric()`` is rectified diffusion (Wang et al. 2024). ``fit_kwargs`` go to
    :func:`toyflow.train.fit` (``lr``, ``seed``, ``progress`` …).
    """
    objective = FlowMatching(pairs, path or linear(), time or UniformTime(), batch_size, loss)
    return fit(model, objective, steps, **fit_kwargs)


@dataclass
class Round:
    """One round of rectified flow: its name (``"2-RF"``), the trained model, its training history and
    the pairs it was trained on (``None`` for 1-RF, which draws independent pairs)."""

    name: str
    model: nn.Module
    history: History
    pairs: FixedPairs | None = None


def rectified_flow(
    source: Distribution, target: Distribution, rounds: int = 2, steps: int = 5000, num_pairs: int = 20000,
    model: nn.Module | None = None, pair_steps: int = 25, seed: int = 0, progress: bool = True,
    **reflow_kwargs,
) -> list[Round]:
    """Train 1-RF on independent pairs, then ``rounds − 1`` reflow rounds, each warm-started from the last.

    Round ``k + 1`` learns the pairs ``(z0, φ_k(z0))`` of ``num_pairs`` fresh source points pushed
    through round ``k`` (:func:`sample_pairs`, RK4 with ``pair_steps`` steps). Like every trainer, it
    trains the ``model`` it is given in place: that is the 1-RF; each later round trains a copy of the
    round before, so all of them can be compared afterwards.

    Args:
        source, target: the distributions at ``t = 0`` and ``t = 1``.
        rounds: how many flows to train (1-RF counts as the first).
        steps: training steps per round.
        num_pairs: source points rectified per reflow round.
        model: the 1-RF network, trained in place (default: a fresh ``VelocityMLP``); its device is used throughout.
        reflow_kwargs: ``path``, ``time``, ``loss``, ``batch_size``, ``lr`` … for every round.
    """
    for name, value in {"rounds": rounds, "num_pairs": num_pairs, "pair_steps": pair_steps}.items():
        check_int(name, value)
    model = model if model is not None else VelocityMLP()
    device = model_device(model)
    generator = torch.Generator().manual_seed(seed)  # the device rule: drawn on the CPU, moved to the model
    history = reflow(model, PairSampler(source, target), steps, seed=seed, progress=progress,
                     description="1-RF", **reflow_kwargs)
    trained = [Round("1-RF", model, history)]
    for k in range(2, rounds + 1):
        pairs = sample_pairs(trained[-1].model, source.sample(num_pairs, generator, device), pair_steps)
        model = copy.deepcopy(trained[-1].model)
        history = reflow(model, pairs, steps, seed=seed + k, progress=progress, description=f"{k}-RF", **reflow_kwargs)
        trained.append(Round(f"{k}-RF", model, history, pairs))
    return trained


@dataclass
class Distillation:
    """One-step distillation loss ``E w·‖z1 − (z0 + v(z0, 0))‖² / d`` on fixed pairs (Liu et al. 2022; InstaFlow):
    per pair averaged over the ``d`` dimensions, like flow matching and MeanFlow.

    The network keeps the velocity signature ``v(x, t)``, so its one-step map is one Euler step from
    ``t = 0`` and the same solvers and metrics apply (at 1 NFE).
    """

    pairs: PairSource
    batch_size: int = 256

    def __post_init__(self):
        check_int("batch_size", self.batch_size)
        check_pair_source(self.pairs)

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        batch = draw_batch(self.pairs, self.batch_size, model, generator)
        jump = batch.x0 + model(batch.x0, batch_time(0.0, batch.x0))
        return mean_loss((batch.x1 - jump).pow(2), batch.weight)


def distill(model: nn.Module, pairs: PairSource, steps: int, batch_size: int = 256, **fit_kwargs) -> History:
    """Train ``model`` (in place, from its current weights, like :func:`reflow` and :func:`toyflow.train.fit`)
    into a one-step generator on a teacher's ``pairs``. To keep the teacher, pass a copy:
    ``student = copy.deepcopy(teacher); distill(student, pairs, steps)``."""
    return fit(model, Distillation(pairs, batch_size), steps, **fit_kwargs)


def one_step(model: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """The map ``z0 ↦ z0 + v(z0, 0)`` of a distilled (or any) velocity model: one Euler step from 0 to 1."""

    def jump(z0: Tensor) -> Tensor:
        with torch.no_grad():
            return z0 + model(z0, batch_time(0.0, z0))

    return jump


@dataclass
class AnnealedPairs:
    """SlimFlow's annealing reflow (Zhu et al. 2024) as a coupling: the teacher's pairs ``(z0, z1)`` with
    the source blended with noise, ``z̃0 = √(1 − β²)·z0 + β·ξ``, ``ξ ~ N(0, I)``, ``β = max(0, 1 − k/warmup)``
    at the ``k``-th draw.

    A student trained from scratch on it starts on independent pairs (1-RF, easy from scratch) and by
    draw ``warmup`` learns the teacher's pairs (reflow). ``z̃0 ~ N(0, I)`` at every draw only when the
    source is a standard normal, the setting SlimFlow was built for.
    """

    pairs: PairSource
    warmup: int
    draws: int = field(default=0, init=False)

    def __post_init__(self):
        check_int("warmup", self.warmup)
        check_pair_source(self.pairs)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> PairBatch:
        """``n`` of the teacher's pairs with the source blended with noise at this draw's ``β``; counts the draw."""
        beta = max(0.0, 1.0 - self.draws / self.warmup)
        self.draws += 1
        batch = self.pairs.sample(n, generator, device)
        noise = randn(batch.x0.shape, generator, device=batch.x0.device, dtype=batch.x0.dtype)
        return PairBatch(math.sqrt(1 - beta**2) * batch.x0 + beta * noise, batch.x1)
