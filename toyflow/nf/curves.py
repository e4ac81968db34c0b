"""Toy *sequence* distributions for TARFlow: short noisy 2D curves (arcs, circles, spirals), and :class:`Wander`.

Each sample is a sequence of ``length`` points, shape ``(length, 2)``, along one random curve: a
centre ``c``, a radius ``r``, a start angle ``θ0`` and a direction, then for ``s = 0 … 1``::

    arc      x(s) = c + r·(cos θ, sin θ),          θ = θ0 ± π·s
    circle   x(s) = c + r·(cos θ, sin θ),          θ = θ0 ± 2π·s·(length − 1)/length
    spiral   x(s) = c + r(0.3 + 0.7s)·(cos θ, sin θ), θ = θ0 ± 3π·s
    cloud    x_k  = c + r·(cos θ_k, sin θ_k),        θ_k uniform at random (a point set: the order says little)

plus ``N(0, noise²)`` on every coordinate. The points of a sequence are the tokens a TARFlow block
reads in order. :class:`Wander` is a Gaussian random walk with a dial for how much each token depends on
the one before (what decides how fast Jacobi decoding converges). They live here rather than in
:mod:`toyflow.data`, whose distributions and registry are ``(n, 2)`` point clouds that every 2D flow of the
course may be asked to transport. Both draw by the device rule of :mod:`toyflow._base` and are marked
``draws_points = True``, so :func:`toyflow.batch.draw_batch` (and every objective) takes them as data.

>>> x = Curves(length=8).sample(3, generator=torch.Generator().manual_seed(0))
>>> tuple(x.shape)
(3, 8, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .._base import check_int, check_number, draw_device, rand, randint, randn

KINDS = ("arc", "circle", "spiral", "cloud")
CURVES = KINDS[:3]


@dataclass
class Curves:
    """Noisy curves of ``length`` points, centres in ``[−1.5, 1.5]²``, radii in ``[1.5, 3]``.

    Args:
        length: points (tokens) per curve.
        noise: standard deviation of the noise on every coordinate.
        kinds: which of ``"arc"``, ``"circle"``, ``"spiral"``, ``"cloud"`` to draw, in equal proportions
            (default: the three curves).
    """

    length: int = 12
    noise: float = 0.05
    kinds: tuple[str, ...] = CURVES
    draws_points: ClassVar[bool] = True  # data for batch.draw_batch, not pairs

    def __post_init__(self):
        check_int("length", self.length, minimum=2)
        check_number("noise", self.noise, low=0)
        if isinstance(self.kinds, str) or not isinstance(self.kinds, (tuple, list)):
            raise TypeError(f"kinds must be a tuple of names from {KINDS}, got {self.kinds!r}")
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty selection of {KINDS}, got {self.kinds}")

    @property
    def event_shape(self) -> tuple[int, int]:
        """The shape of one sample: ``(length, 2)``, a sequence of ``length`` 2D tokens."""
        return (self.length, 2)

    def sample(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> Tensor:
        """``n`` curves, shape ``(n, length, 2)``, drawn on the generator's device (the CPU without one), then
        moved to ``device``."""
        check_int("n", n)
        draw = draw_device(generator)

        def uniform(low: float, high: float, *shape: int) -> Tensor:
            return low + (high - low) * rand((n, *shape), generator)

        allowed = torch.tensor([KINDS.index(kind) for kind in self.kinds], device=draw)
        kind = allowed[randint(len(allowed), n, generator)]  # (n,)
        centre, radius, start = uniform(-1.5, 1.5, 1, 2), uniform(1.5, 3.0, 1), uniform(0, 2 * math.pi, 1)
        direction = 2 * randint(2, (n, 1), generator) - 1
        s = torch.linspace(0, 1, self.length, device=draw)  # (length,)
        sweep = torch.stack([math.pi * s, 2 * math.pi * s * (self.length - 1) / self.length, 3 * math.pi * s])  # (3, length)
        scattered = 2 * math.pi * rand((n, self.length), generator)
        angle = start + direction * torch.where(kind[:, None] == 3, scattered, sweep[kind % 3])  # (n, length)
        radius = torch.where(kind[:, None] == 2, radius * (0.3 + 0.7 * s), radius)  # spirals grow outwards
        points = centre + radius[..., None] * torch.stack([angle.cos(), angle.sin()], -1)  # (n, length, 2)
        points = points + self.noise * randn(points.shape, generator)
        return points if device is None else points.to(device)


@dataclass
class Wander:
    """Toy sequences with a dial for how much the tokens depend on each other: 2D points ``(n, length, 2)`` with
    ``x_0 = ε_0``, ``x_t = ρ·x_{t−1} + √(1 − ρ²)·ε_t``, ``ε_t ~ N(0, I)`` (a Gaussian AR(1) walk; every token is
    ``N(0, I)``). ``ρ = 0``: independent tokens; ``ρ → 1``: each token nearly fixed by the one before, like a curve.

    Args:
        length: tokens per sequence; rho: the dependence ``ρ`` in ``[0, 1)``.
    """

    length: int = 64
    rho: float = 0.3
    draws_points: ClassVar[bool] = True  # data for batch.draw_batch, not pairs

    def __post_init__(self):
        check_int("length", self.length)
        check_number("rho", self.rho, low=0, high=1, high_open=True, why="the dependence of a token on the one before")

    @property
    def event_shape(self) -> tuple[int, int]:
        """The shape of one sample: ``(length, 2)``, a sequence of ``length`` 2D tokens."""
        return (self.length, 2)

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
        """``n`` walks, shape ``(n, length, 2)``, drawn on the generator's device, then moved to ``device``."""
        check_int("n", n)
        noise = randn((n, self.length, 2), generator, device=device)
        tokens = [noise[:, 0]]
        for t in range(1, self.length):
            tokens.append(self.rho * tokens[-1] + math.sqrt(1 - self.rho**2) * noise[:, t])
        return torch.stack(tokens, 1)
