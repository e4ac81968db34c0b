"""A toy *sequence* distribution for TARFlow: short noisy 2D curves (arcs, circles, spirals).

Each sample is a sequence of ``length`` points, shape ``(length, 2)``, along one random curve: a
centre ``c``, a radius ``r``, a start angle ``θ0`` and a direction, then for ``s = 0 … 1``::

    arc      x(s) = c + r·(cos θ, sin θ),          θ = θ0 ± π·s
    circle   x(s) = c + r·(cos θ, sin θ),          θ = θ0 ± 2π·s·(length − 1)/length
    spiral   x(s) = c + r(0.3 + 0.7s)·(cos θ, sin θ), θ = θ0 ± 3π·s
    cloud    x_k  = c + r·(cos θ_k, sin θ_k),        θ_k uniform at random (a point set: the order says little)

plus ``N(0, noise²)`` on every coordinate. The points of a sequence are the tokens a TARFlow block
reads in order. It lives here rather than in :mod:`toyflow.data`, whose distributions and registry
are ``(n, 2)`` point clouds that every 2D flow of the course may be asked to transport.

>>> x = Curves(length=8).sample(3, generator=torch.Generator().manual_seed(0))
>>> tuple(x.shape)
(3, 8, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import check_positive

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

    def __post_init__(self):
        if not isinstance(self.length, int) or self.length < 2:
            raise ValueError(f"length must be an int >= 2, got {self.length!r}")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty selection of {KINDS}, got {self.kinds}")

    @property
    def event_shape(self) -> tuple[int, int]:
        return (self.length, 2)

    def sample(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> Tensor:
        """``n`` curves, shape ``(n, length, 2)``, on ``device`` (default: the generator's, else CPU)."""
        check_positive(n=n)
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")

        def uniform(low: float, high: float, *shape: int) -> Tensor:
            return low + (high - low) * torch.rand(n, *shape, generator=generator, device=device)

        allowed = torch.tensor([KINDS.index(kind) for kind in self.kinds], device=device)
        kind = allowed[torch.randint(len(allowed), (n,), generator=generator, device=device)]  # (n,)
        centre, radius, start = uniform(-1.5, 1.5, 1, 2), uniform(1.5, 3.0, 1), uniform(0, 2 * math.pi, 1)
        direction = 2 * torch.randint(2, (n, 1), generator=generator, device=device) - 1
        s = torch.linspace(0, 1, self.length, device=device)  # (length,)
        sweep = torch.stack([math.pi * s, 2 * math.pi * s * (self.length - 1) / self.length, 3 * math.pi * s])  # (3, length)
        scattered = 2 * math.pi * torch.rand(n, self.length, generator=generator, device=device)
        angle = start + direction * torch.where(kind[:, None] == 3, scattered, sweep[kind % 3])  # (n, length)
        radius = torch.where(kind[:, None] == 2, radius * (0.3 + 0.7 * s), radius)  # spirals grow outwards
        points = centre + radius[..., None] * torch.stack([angle.cos(), angle.sin()], -1)  # (n, length, 2)
        return points + self.noise * torch.randn(points.shape, generator=generator, device=device)
