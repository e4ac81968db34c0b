"""The one case where everything is known exactly: ``N(0, I)`` to ``N(m, s²I)`` on the linear path.

With independent pairs, ``x_t = (1 − t)x0 + t·x1 ~ N(t·m, σ_t² I)`` where
``σ_t² = (1 − t)² + t²s²``. Then (docs/methods.md, "closed-form case")::

    marginal velocity  v(x, t) = m + (σ̇_t/σ_t)(x − t·m),   σ̇_t = (t·s² − (1 − t))/σ_t
    flow map           φ_{r→t}(x) = t·m + (σ_t/σ_r)(x − r·m)
    average velocity   u(x, r, t) = (φ_{r→t}(x) − x)/(t − r),   u(x, t, t) = v(x, t)

Tests check solvers, losses and samplers against these; notebooks draw them beside learned fields.

>>> g = GaussianToGaussian(mean=(2.0, 0.0), std=0.5)
>>> g.flow_map(torch.zeros(1, 2), 0.0, 1.0).tolist()  # the source mean goes to the target mean
[[2.0, 0.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._base import check_number
from .data import Gaussian


def _column(t: Tensor | float, x: Tensor) -> Tensor:
    """A time as a column ``(n, 1)`` (or a scalar) that broadcasts against ``x`` ``(n, d)``."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t[:, None] if t.ndim == 1 else t


@dataclass(frozen=True)
class GaussianToGaussian:
    """Exact flow-matching quantities from ``N(0, I)`` to ``N(mean, std² I)``."""

    mean: tuple[float, ...] = (2.0, 1.0)
    std: float = 0.5

    def __post_init__(self):
        check_number("std", self.std, low=0, low_open=True, why="the target's standard deviation")

    @property
    def source(self) -> Gaussian:
        """The source ``N(0, I)`` as a :mod:`toyflow.data` distribution."""
        return Gaussian(tuple(0.0 for _ in self.mean), 1.0)

    @property
    def target(self) -> Gaussian:
        """The target ``N(mean, std²·I)`` as a :mod:`toyflow.data` distribution."""
        return Gaussian(tuple(self.mean), self.std)

    def _m(self, x: Tensor) -> Tensor:
        return torch.tensor(self.mean, dtype=x.dtype, device=x.device)

    def sigma(self, t: Tensor) -> Tensor:
        """``σ_t = √((1 − t)² + t² s²)``, the standard deviation of ``x_t``."""
        return ((1 - t) ** 2 + t**2 * self.std**2).sqrt()

    def d_sigma(self, t: Tensor) -> Tensor:
        """``σ̇_t = (t s² − (1 − t))/σ_t``."""
        return (t * self.std**2 - (1 - t)) / self.sigma(t)

    def velocity(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The marginal velocity ``v(x, t) = m + (σ̇_t/σ_t)(x − t·m)``, shape ``(n, d)``."""
        t, m = _column(t, x), self._m(x)
        return m + self.d_sigma(t) / self.sigma(t) * (x - t * m)

    def flow_map(self, x: Tensor, r: Tensor | float, t: Tensor | float) -> Tensor:
        """``φ_{r→t}(x) = t·m + (σ_t/σ_r)(x − r·m)``: where the flow takes ``x`` from time ``r`` to ``t``."""
        r, t, m = _column(r, x), _column(t, x), self._m(x)
        return t * m + self.sigma(t) / self.sigma(r) * (x - r * m)

    def average_velocity(self, x: Tensor, r: Tensor | float, t: Tensor | float) -> Tensor:
        """MeanFlow's ``u(x, r, t) = (φ_{r→t}(x) − x)/(t − r)``, and ``v(x, t)`` where ``r = t``."""
        r_col, t_col = _column(r, x), _column(t, x)
        gap = t_col - r_col
        safe = torch.where(gap == 0, torch.ones_like(gap), gap)
        average = (self.flow_map(x, r, t) - x) / safe
        return torch.where(gap == 0, self.velocity(x, t), average)
