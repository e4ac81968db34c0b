"""Restoration with a posterior-mean rectified flow (PMRF, Ohayon, Michaeli & Elad 2024).

A clean point ``x`` is seen only through a degradation ``y = D(x)`` (noise, a projection, quantisation).

1. Regress ``f_ω(y) ≈ E[x | y]`` with the MSE (:class:`PosteriorMeanRegression`): the best estimate in
   MSE, but its outputs pile up between the modes, far from the data distribution.
2. Train a rectified flow from ``x0 = f_ω(y) + σ_s·ε`` to ``x1 = x`` (:class:`RestorationPairs` with
   :class:`toyflow.flow_matching.FlowMatching`); the velocity is *not* given ``y``. Integrating it from
   the posterior mean moves each estimate onto the data with the least extra MSE a straight flow allows.

The baseline starts the same kind of flow from the degraded point itself (``start = lift``).

>>> import toyflow
>>> g = torch.Generator().manual_seed(0)
>>> x = toyflow.data.get("moons").sample(3, g)
>>> tuple(quantise(0.5)(x, g).shape), tuple(project((1.0, 0.0))(x, g).shape)
((3, 2), (3, 1))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._base import check_callable, check_int, check_number, check_points, mlp, randn
from .batch import check_distribution, draw_batch, mean_loss
from .couplings import PairBatch
from .data import Distribution

Degradation = Callable[[Tensor, torch.Generator | None], Tensor]  # clean (n, d), generator -> degraded (n, d_y)


def add_noise(sigma: float) -> Degradation:
    """``y = x + σ·n``, ``n ~ N(0, I)`` drawn by the device rule (on the generator's device, then moved to ``x``'s)."""
    check_number("sigma", sigma, low=0, low_open=True, why="the noise's standard deviation")

    def degrade(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return x + sigma * randn(x.shape, generator, device=x.device, dtype=x.dtype)

    return degrade


def project(direction: tuple[float, ...]) -> Degradation:
    """``y = ⟨x, u⟩`` with ``u = direction/‖direction‖``: one coordinate of the point survives, shape ``(n, 1)``."""
    if isinstance(direction, (str, bytes)) or not all(isinstance(c, (int, float)) and math.isfinite(c) for c in direction):
        raise ValueError(f"direction must be a sequence of finite numbers, got {direction!r}")
    u = torch.tensor([float(c) for c in direction])
    if u.ndim != 1 or len(u) == 0 or not u.norm() > 0:
        raise ValueError(f"direction must be a non-zero vector, got {direction!r}")
    u = u / u.norm()

    def degrade(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_points("x", x, dim=len(u))
        return x @ u.to(x)[:, None]  # (n, 1)

    return degrade


def quantise(step: float) -> Degradation:
    """``y = step·round(x/step)``: the point snapped to a grid of spacing ``step``."""
    check_number("step", step, low=0, low_open=True, why="the grid spacing")
    return lambda x, generator=None: step * torch.round(x / step)


def posterior_mean_net(inputs: int, dim: int = 2, hidden: int = 128, depth: int = 3) -> nn.Module:
    """A SiLU MLP ``f_ω: (n, inputs) -> (n, dim)`` for the posterior mean ``E[x | y]`` (``_base.mlp``)."""
    check_int("dim", dim)
    return mlp(inputs, dim, hidden, depth)


@dataclass
class PosteriorMeanRegression:
    """``E_x ‖f_ω(D(x)) − x‖²`` (per point, averaged over dimensions), minimised by ``f_ω(y) = E[x | y]``.

    ``x`` ``(B, d)`` is drawn from ``target`` with :func:`toyflow.batch.draw_batch`; ``degrade`` draws its noise
    with the same generator.
    """

    target: Distribution
    degrade: Degradation
    batch_size: int = 256

    def __post_init__(self):
        check_distribution(self.target, "target")
        check_callable("degrade", self.degrade, "a degradation degrade(x, generator) -> y")
        check_int("batch_size", self.batch_size)

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        x = draw_batch(self.target, self.batch_size, model, generator).x1  # (B, d)
        return mean_loss((model(self.degrade(x, generator)) - x) ** 2)


@dataclass
class RestorationPairs:
    """Pairs ``(x0, x1) = (start(D(x)) + σ·ε, x)`` for a flow that restores ``x`` from ``y = D(x)``.

    ``start`` is the trained posterior mean ``f_ω`` (PMRF) or a lift of ``y`` into the data space (the
    baseline flow from the degraded point). ``σ ≥ 0`` smooths the source so the flow is well defined
    where ``start`` collapses many ``y`` onto one point. ``start`` runs without gradients.
    """

    target: Distribution
    degrade: Degradation
    start: Callable[[Tensor], Tensor]
    sigma: float = 0.1

    def __post_init__(self):
        check_distribution(self.target, "target")
        check_callable("degrade", self.degrade, "a degradation degrade(x, generator) -> y")
        check_callable("start", self.start, "a map start(y) -> (n, d) into the data space")
        check_number("sigma", self.sigma, low=0, why="the source noise's standard deviation")

    def source(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The flow's starting points ``start(y) + σ·ε`` for degraded points ``y``, shape ``(n, d)``."""
        with torch.no_grad():
            x0 = self.start(y)
        if not isinstance(x0, Tensor) or x0.ndim != 2 or len(x0) != len(y):
            shape = tuple(x0.shape) if isinstance(x0, Tensor) else type(x0).__name__
            raise ValueError(f"start(y) must return points of shape ({len(y)}, d), got {shape}")
        return x0 + self.sigma * randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> PairBatch:
        """``n`` pairs ``(start(D(x)) + σ·ε, x)``, each ``(n, d)``, on ``device``."""
        x1 = self.target.sample(n, generator, device)
        return PairBatch(self.source(self.degrade(x1, generator), generator), x1)
