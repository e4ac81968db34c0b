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
from .nf.base import mlp
from .solvers import Solution, Velocity, integrate
from ._base import model_device


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
        if not isinstance(self.dim, int) or self.dim < 3:
            raise ValueError(f"dim (the ambient dimension) must be an int >= 3, got {self.dim!r}")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        self.base = data.get(self.data_name)
        generator = torch.Generator().manual_seed(self.seed)
        self.rotation = torch.linalg.qr(torch.randn(self.dim, self.dim, generator=generator))[0]
        self.frequencies = self.frequency * torch.randn(self.dim - 2, 2, generator=generator)
        self.phases = 2 * math.pi * torch.rand(self.dim - 2, generator=generator)

    def lift(self, y: Tensor) -> Tensor:
        """The noise-free map ``Q·[y, a·sin(Ω y + φ)]`` of 2D points ``(n, 2)`` to ``(n, D)``."""
        features = self.amplitude * torch.sin(y @ self.frequencies.to(y).T + self.phases.to(y))  # (n, D − 2)
        return torch.cat([y, features], 1) @ self.rotation.to(y).T

    def project(self, x: Tensor) -> Tensor:
        """The original 2D coordinates ``(Qᵀx)[:2]`` of points ``(n, D)`` (exact on the noise-free lift)."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        return x @ self.rotation.to(x)[:, :2]

    def _sample(self, n, generator, device):
        x = self.lift(self.base.sample(n, generator, device))
        return x + self.noise * torch.randn(x.shape, generator=generator, device=device)


class Autoencoder(nn.Module):
    """MLP encoder ``R^D → R^k`` and decoder ``R^k → R^D``, with standardised latents after :meth:`calibrate`.

    Args:
        dim: ``D``; latent: ``k``; hidden, depth: size of each MLP.
    """

    def __init__(self, dim: int, latent: int = 2, hidden: int = 128, depth: int = 2):
        super().__init__()
        if not isinstance(latent, int) or not 1 <= latent < dim:
            raise ValueError(f"latent must be an int in [1, dim = {dim}), got {latent!r}")
        self.dim, self.latent = dim, latent
        self.encoder, self.decoder = mlp(dim, latent, hidden, depth), mlp(latent, dim, hidden, depth)
        for net in (self.encoder, self.decoder):  # nf.base.mlp zeroes the last layer; an autoencoder needs it live
            nn.init.kaiming_uniform_(net[-1].weight, a=math.sqrt(5))
        self.register_buffer("mean", torch.zeros(latent))
        self.register_buffer("std", torch.ones(latent))

    def encode(self, x: Tensor) -> Tensor:
        """Standardised latents ``(E(x) − mean)/std``, ``(n, D) → (n, k)``."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        return (self.encoder(x) - self.mean) / self.std

    def decode(self, z: Tensor) -> Tensor:
        """``D(mean + std·z)``, ``(n, k) → (n, D)``."""
        if z.ndim != 2 or z.shape[1] != self.latent:
            raise ValueError(f"z must have shape (n, {self.latent}), got {tuple(z.shape)}")
        return self.decoder(self.mean + self.std * z)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def calibrate(self, x: Tensor) -> None:
        """Set ``mean`` and ``std`` from the raw latents of the data ``x`` ``(n, D)``: encoded data have mean 0, std 1."""
        raw = self.encoder(x)
        self.mean.copy_(raw.mean(0))
        self.std.copy_(raw.std(0).clamp_min(1e-6))


@dataclass
class Reconstruction:
    """The autoencoder's objective ``E‖D(E(x)) − x‖²/D`` on fresh batches of ``data``, for ``train.fit``."""

    data: data.Distribution
    batch_size: int = 256

    def __call__(self, model: Autoencoder, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else model_device(model)
        x = self.data.sample(self.batch_size, generator, device)
        return (model(x) - x).pow(2).mean()


@dataclass
class Encoded(data.Distribution):
    """The data as seen by a frozen autoencoder: ``sample`` returns ``E(x)``, ``x ~ data``, shape ``(n, k)``."""

    data: data.Distribution
    autoencoder: Autoencoder

    def __post_init__(self):
        self.dim = self.autoencoder.latent

    def _sample(self, n, generator, device):
        with torch.no_grad():
            return self.autoencoder.encode(self.data.sample(n, generator, device))


def sample(velocity: Velocity, autoencoder: Autoencoder, z0: Tensor, steps: int = 100, method: str = "euler") -> Solution:
    """Integrate the latent flow from ``z0`` ``(n, k)`` and decode: a :class:`~toyflow.solvers.Solution` whose ``x`` is
    ``D(z1)`` ``(n, D)`` (``nfe`` counts the flow's evaluations; the decoder adds one pass)."""
    latent = integrate(velocity, z0, steps, method)
    with torch.no_grad():
        return Solution(autoencoder.decode(latent.x), latent.grid, latent.nfe)
