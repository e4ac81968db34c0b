"""Flow matching in a latent space (Dao et al. 2023, arXiv 2307.08698; METHODS.md §23), on a lifted toy data set.

Real data live near a low-dimensional set inside a big space. :class:`Lifted` makes that a toy: a 2D data set
``y`` is lifted into ``D`` dimensions by a fixed smooth random map, plus noise::

    x = Q·[y, a·sin(Ω y + φ)] + σ·ε,       Q a random rotation of R^D,  Ω (D − 2, 2),  φ (D − 2,),  ε ~ N(0, I_D)

so ``y = (Qᵀx)[:2]`` up to the noise (:meth:`Lifted.project`, to score samples in the original 2D coordinates).
Latent flow matching then runs in three steps:

1. train an :class:`Autoencoder` ``E: R^D → R^k``, ``D: R^k → R^D`` on the data by reconstruction (:class:`Reconstruction`),
   then :meth:`Autoencoder.calibrate` it: latents are standardised (mean 0, std 1 per coordinate, the paper's scaling);
2. flow matching from ``N(0, I_k)`` to the encoded data ``E(x)`` (:class:`Encoded`, a target like any other), frozen ``E``;
3. sample in the latent space and decode (:func:`sample`): ``x = D(φ_{0→1}(z0))``.

The flow is ``k``-dimensional instead of ``D``-dimensional; the price is the autoencoder's reconstruction error.

>>> lifted = Lifted(data_name="moons", dim=8)
>>> x = lifted.sample(5, torch.Generator().manual_seed(0))
>>> tuple(x.shape), tuple(lifted.project(x).shape)
((5, 8), (5, 2))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import data
from ._base import check_callable, check_int, check_number, check_points, mlp, model_device, rand, randn
from .batch import check_distribution, draw_batch, mean_loss
from .solvers import Solution, Velocity, integrate


@dataclass
class Lifted(data.Distribution):
    """A 2D data set ``data.get(data_name)`` lifted into ``dim`` dimensions by a fixed smooth random map plus noise.

    Args:
        data_name: the 2D data set (any name of :func:`toyflow.data.get`).
        dim: the ambient dimension ``D > 2``.
        frequency: scale of the random frequencies ``Ω ~ N(0, frequency²)`` (small: a smooth map).
        amplitude: ``a``, the size of the sine features.
        noise: ``σ``, standard deviation of the ambient noise.
        seed: the seed of the random map (the same seed, the same map).
    """

    data_name: str = "moons"
    dim: int = 32
    frequency: float = 0.4
    amplitude: float = 1.0
    noise: float = 0.05
    seed: int = 0
    base: data.Distribution = field(init=False, repr=False)
    rotation: Tensor = field(init=False, repr=False)  # Q, (D, D)
    frequencies: Tensor = field(init=False, repr=False)  # Ω, (D − 2, 2)
    phases: Tensor = field(init=False, repr=False)  # φ, (D − 2,)

    def __post_init__(self):
        check_int("dim (the ambient dimension)", self.dim, minimum=3)
        check_number("frequency", self.frequency, low=0, why="the scale of the random frequencies")
        check_number("amplitude", self.amplitude, why="the size of the sine features")
        check_number("noise", self.noise, low=0, why="the standard deviation of the ambient noise")
        check_int("seed", self.seed, minimum=0)
        self.base = data.get(self.data_name)
        if self.base.dim != 2:
            raise ValueError(f"data_name must name a 2D data set, got {self.data_name!r} of dimension {self.base.dim}")
        generator = torch.Generator().manual_seed(self.seed)
        self.rotation = torch.linalg.qr(randn((self.dim, self.dim), generator))[0]
        self.frequencies = self.frequency * randn((self.dim - 2, 2), generator)
        self.phases = 2 * math.pi * rand(self.dim - 2, generator)

    def lift(self, y: Tensor) -> Tensor:
        """The noise-free map ``Q·[y, a·sin(Ω y + φ)]`` of 2D points ``(n, 2)`` to ``(n, D)``."""
        features = self.amplitude * torch.sin(y @ self.frequencies.to(y).T + self.phases.to(y))  # (n, D − 2)
        return torch.cat([y, features], 1) @ self.rotation.to(y).T

    def project(self, x: Tensor) -> Tensor:
        """The original 2D coordinates ``(Qᵀx)[:2]`` of points ``(n, D)`` (exact on the noise-free lift)."""
        check_points("x", x, self.dim)
        return x @ self.rotation.to(x)[:, :2]

    def _sample(self, n, generator, device):
        x = self.lift(self.base.sample(n, generator, device))
        return x + self.noise * randn(x.shape, generator, device=x.device, dtype=x.dtype)


class Autoencoder(nn.Module):
    """MLP encoder ``R^D → R^k`` and decoder ``R^k → R^D``, with standardised latents after :meth:`calibrate`.

    Args:
        dim: ``D``; latent: ``k``; hidden, depth: size of each MLP.
    """

    def __init__(self, dim: int, latent: int = 2, hidden: int = 128, depth: int = 2):
        super().__init__()
        check_int("dim", dim, minimum=2)
        if not isinstance(latent, int) or isinstance(latent, bool) or not 1 <= latent < dim:
            raise ValueError(f"latent must be an int in [1, dim = {dim}), got {latent!r}")
        self.dim, self.latent = dim, latent
        self.encoder, self.decoder = mlp(dim, latent, hidden, depth), mlp(latent, dim, hidden, depth)
        self.register_buffer("mean", torch.zeros(latent))
        self.register_buffer("std", torch.ones(latent))

    def encode(self, x: Tensor) -> Tensor:
        """Standardised latents ``(E(x) − mean)/std``, ``(n, D) → (n, k)``."""
        check_points("x", x, self.dim)
        return (self.encoder(x) - self.mean) / self.std

    def decode(self, z: Tensor) -> Tensor:
        """``D(mean + std·z)``, ``(n, k) → (n, D)``."""
        check_points("z", z, self.latent)
        return self.decoder(self.mean + self.std * z)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction ``D(E(x))`` ``(n, dim)``."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def calibrate(self, x: Tensor) -> None:
        """Set ``mean`` and ``std`` from the raw latents of the data ``x`` ``(n, D)``, ``n >= 2``: encoded data have
        mean 0, std 1."""
        check_points("x", x, self.dim)
        if len(x) < 2:
            raise ValueError(f"x must hold at least 2 points to estimate a standard deviation, got {len(x)}")
        raw = self.encoder(x)
        self.mean.copy_(raw.mean(0))
        self.std.copy_(raw.std(0).clamp_min(1e-6))


@dataclass
class Reconstruction:
    """The autoencoder's objective ``E‖D(E(x)) − x‖²/D`` on fresh batches of ``data``, for ``train.fit``
    (drawn by :func:`toyflow.batch.draw_batch`, reduced by :func:`toyflow.batch.mean_loss`)."""

    data: data.Distribution
    batch_size: int = 256

    def __post_init__(self):
        check_distribution(self.data)
        check_int("batch_size", self.batch_size)

    def __call__(self, model: Autoencoder, generator: torch.Generator | None = None) -> Tensor:
        if not isinstance(model, Autoencoder):
            raise TypeError(f"model must be a latent.Autoencoder, got {type(model).__name__}")
        x = draw_batch(self.data, self.batch_size, model, generator).x1  # (B, D)
        return mean_loss((model(x) - x) ** 2)


@dataclass
class Encoded(data.Distribution):
    """The data as seen by a frozen autoencoder: ``sample`` returns ``E(x)``, ``x ~ data``, shape ``(n, k)``.

    The data are drawn by the device rule and encoded where the autoencoder lives; the latents then go to
    the ``device`` asked for."""

    data: data.Distribution
    autoencoder: Autoencoder

    def __post_init__(self):
        check_distribution(self.data)
        if not isinstance(self.autoencoder, Autoencoder):
            raise TypeError(f"autoencoder must be a latent.Autoencoder, got {type(self.autoencoder).__name__}")
        self.dim = self.autoencoder.latent

    def _sample(self, n, generator, device):
        with torch.no_grad():
            return self.autoencoder.encode(self.data.sample(n, generator, model_device(self.autoencoder)))


def sample(velocity: Velocity, autoencoder: Autoencoder, z0: Tensor, steps: int = 100, method: str = "euler") -> Solution:
    """Integrate the latent flow from ``z0`` ``(n, k)`` and decode: a :class:`~toyflow.solvers.Solution` whose ``x`` is
    ``D(z1)`` ``(n, D)`` (``nfe`` counts the flow's evaluations; the decoder adds one pass)."""
    if not isinstance(autoencoder, Autoencoder):
        raise TypeError(f"autoencoder must be a latent.Autoencoder, got {type(autoencoder).__name__}")
    check_callable("velocity", velocity, "a velocity field v(z, t) -> (n, k)")
    check_points("z0", z0, autoencoder.latent)
    latent = integrate(velocity, z0, steps, method)
    with torch.no_grad():
        return Solution(autoencoder.decode(latent.x), latent.grid, latent.nfe)
