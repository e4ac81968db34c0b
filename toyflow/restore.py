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
>>> tuple(quantise(0.5)(torch.randn(3, 2, generator=g), g).shape), tuple(project((1.0, 0.0))(torch.randn(3, 2), g).shape)
((3, 2), (3, 1))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .couplings import PairBatch
from .data import Distribution
from ._base import model_device

Degradation = Callable[[Tensor, torch.Generator | None], Tensor]  # clean (n, d), generator -> degraded (n, d_y)


def add_noise(sigma: float) -> Degradation:
    """``y = x + σ·n``, ``n ~ N(0, I)``."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return lambda x, generator=None: x + sigma * torch.randn(x.shape, generator=generator, device=x.device)


def project(direction: tuple[float, ...]) -> Degradation:
    """``y = ⟨x, u⟩`` with ``u = direction/‖direction‖``: one coordinate of the point survives, shape ``(n, 1)``."""
    u = torch.tensor(direction, dtype=torch.float32)
    if u.ndim != 1 or not u.norm() > 0:
        raise ValueError(f"direction must be a non-zero vector, got {direction}")
    u = u / u.norm()
    return lambda x, generator=None: x @ u.to(x)[:, None]


def quantise(step: float) -> Degradation:
    """``y = step·round(x/step)``: the point snapped to a grid of spacing ``step``."""
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    return lambda x, generator=None: step * torch.round(x / step)


def posterior_mean_net(inputs: int, dim: int = 2, hidden: int = 128, depth: int = 3) -> nn.Module:
    """A SiLU MLP ``f_ω: (n, inputs) -> (n, dim)`` for the posterior mean ``E[x | y]``."""
    layers: list[nn.Module] = [nn.Linear(inputs, hidden), nn.SiLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.SiLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, dim))


@dataclass
class PosteriorMeanRegression:
    """``E_x ‖f_ω(D(x)) − x‖²`` (per point, averaged over dimensions), minimised by ``f_ω(y) = E[x | y]``."""

    target: Distribution
    degrade: Degradation
    batch_size: int = 256

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else model_device(model)
        x = self.target.sample(self.batch_size, generator, device)
        return ((model(self.degrade(x, generator)) - x) ** 2).mean()


@dataclass
class RestorationPairs:
    """Pairs ``(x0, x1) = (start(D(x)) + σ·ε, x)`` for a flow that restores ``x`` from ``y = D(x)``.

    ``start`` is the trained posterior mean ``f_ω`` (PMRF) or a lift of ``y`` into the data space (the
    baseline flow from the degraded point). ``σ > 0`` smooths the source so the flow is well defined
    where ``start`` collapses many ``y`` onto one point. ``start`` runs without gradients.
    """

    target: Distribution
    degrade: Degradation
    start: Callable[[Tensor], Tensor]
    sigma: float = 0.1

    def __post_init__(self):
        if not self.sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")

    def source(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The flow's starting points ``start(y) + σ·ε`` for degraded points ``y``, shape ``(n, d)``."""
        with torch.no_grad():
            x0 = self.start(y)
        return x0 + self.sigma * torch.randn(x0.shape, generator=generator, device=x0.device)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> PairBatch:
        x1 = self.target.sample(n, generator, device)
        return PairBatch(self.source(self.degrade(x1, generator), generator), x1)
