"""What every normalizing flow shares: the change of variables, sampling, and maximum likelihood.

A flow is a bijection ``f`` from data ``x`` to a latent ``z = f(x)`` with a standard normal law.
In toyflow's time convention the latent is the source ``x0 ~ N(0, I)`` at ``t = 0`` and the data
the target ``x1`` at ``t = 1``: :meth:`Flow.inverse` carries source to target like every sampler
of the course, :meth:`Flow.forward` goes back, in the direction of the likelihood (docs/methods.md §15)::

    log p(x) = log N(f(x); 0, I) + log |det ∂f/∂x|

A flow is a stack of layers; each layer maps ``x ↦ (z, log|det|)`` with ``forward`` and back with
``inverse``, so the log-determinants of the stack add up. Every layer of toyflow is affine in the
coordinates it changes, ``z = (x − μ)·exp(−α)``, with a shift ``μ`` and log-scale ``α`` computed
from coordinates it does not change: its Jacobian is triangular and ``log|det| = −Σ α``.

>>> from toyflow.nf import RealNVP
>>> flow = RealNVP(layers=2)  # layers start as the identity, so p = N(0, I) and log p(0) = −log 2π
>>> round(flow.log_prob(torch.zeros(1, 2)).item(), 4)
-1.8379
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from .. import _base
from .._base import check_int, check_number, randn
from ..batch import draw_batch, mean_loss
from ..data import Distribution


def affine_forward(x: Tensor, shift: Tensor, log_scale: Tensor) -> tuple[Tensor, Tensor]:
    """``z = (x − μ)·exp(−α)`` and its log-determinant ``−Σ α`` per sample, shape ``(n,)``."""
    return (x - shift) * torch.exp(-log_scale), -log_scale.flatten(1).sum(1)


def affine_inverse(z: Tensor, shift: Tensor, log_scale: Tensor) -> tuple[Tensor, Tensor]:
    """``x = z·exp(α) + μ`` (the inverse of :func:`affine_forward`) and its log-determinant ``+Σ α``."""
    return z * torch.exp(log_scale) + shift, log_scale.flatten(1).sum(1)


def soft_clamp(log_scale: Tensor, bound: float) -> Tensor:
    """``bound·tanh(α / bound)``: a log-scale kept inside ``(−bound, bound)``, unchanged near 0."""
    return bound * torch.tanh(log_scale / bound)


def mlp(inputs: int, outputs: int, hidden: int, depth: int) -> nn.Sequential:
    """:func:`toyflow._base.mlp` (``depth`` hidden SiLU layers) whose last layer starts at zero, so a layer whose
    shift and log-scale it computes starts as the identity."""
    net = _base.mlp(inputs, outputs, hidden, depth)
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


def check_ints(**values: int) -> None:
    """:func:`toyflow._base.check_int` on each named value (a ``ValueError`` naming the first that is not an int >= 1)."""
    for name, value in values.items():
        check_int(name, value)


def check_bound(bound: float) -> float:
    """The soft clamp of the log-scales, a finite number > 0."""
    return check_number("bound", bound, low=0, low_open=True, why="log-scales are soft-clamped to (-bound, bound)")


def check_mask(mask: object) -> Tensor:
    """``mask`` if it is a 1-D tensor of 0s and 1s with both values present (a coupling keeps some coordinates and
    moves the others), else a ``ValueError``/``TypeError``."""
    if not isinstance(mask, Tensor) or mask.ndim != 1:
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a 1-D tensor of 0s and 1s, got {shape}")
    values = set(mask.tolist())
    if not values <= {0, 1} or len(values) < 2:
        raise ValueError(f"mask must hold both 0 (moved) and 1 (kept) and nothing else, got {mask.tolist()}")
    return mask


def check_samples(data: object, name: str = "data") -> None:
    """Raise a ``TypeError`` unless ``data`` draws points for :func:`toyflow.batch.draw_batch`: a
    :class:`toyflow.data.Distribution`, or an object with ``sample(n, generator, device)`` and ``draws_points = True``
    (as :class:`~toyflow.nf.curves.Curves`)."""
    draws_points = isinstance(data, Distribution) or getattr(data, "draws_points", False)
    if not callable(getattr(data, "sample", None)) or not draws_points:
        raise TypeError(f"{name} must draw points: a data.Distribution, or an object with sample(n, generator, device) "
                        f"and draws_points = True such as nf.Curves(), got {type(data).__name__}")


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` summed over every dimension but the first, shape ``(n,)``."""
    z = z.flatten(1)
    return -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


class Flow(nn.Module):
    """A stack of invertible layers with a standard normal latent: exact ``log_prob`` and ``sample``.

    Args:
        layers: modules with ``forward(x) -> (z, log_det)`` and ``inverse(z) -> (x, log_det)``.
        event_shape: the shape of one sample, ``(2,)`` for points, ``(T, c)`` for sequences.
    """

    def __init__(self, layers: Iterable[nn.Module], event_shape: tuple[int, ...]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.event_shape = tuple(event_shape)

    def _check(self, x: Tensor, name: str) -> None:
        if tuple(x.shape[1:]) != self.event_shape:
            expected = ", ".join(["n", *map(str, self.event_shape)])
            raise ValueError(f"{name} must have shape ({expected}), got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data to latent: ``z = f(x)`` and ``log|det ∂f/∂x|`` of shape ``(n,)``."""
        self._check(x, "x")
        log_det = x.new_zeros(len(x))
        for layer in self.layers:
            x, layer_log_det = layer(x)
            log_det = log_det + layer_log_det
        return x, log_det

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent to data: ``x = f⁻¹(z)`` and ``log|det ∂f⁻¹/∂z|`` of shape ``(n,)``."""
        return self.inverse_path(z)[-1]

    def inverse_path(self, z: Tensor) -> list[tuple[Tensor, Tensor]]:
        """The states after each layer on the way from ``z`` to ``x``, with the log-determinants so far:
        ``[(z, 0), …, (x, log|det ∂f⁻¹/∂z|)]`` (to draw a grid warped layer by layer)."""
        self._check(z, "z")
        states = [(z, z.new_zeros(len(z)))]
        for layer in reversed(self.layers):
            x, layer_log_det = layer.inverse(states[-1][0])
            states.append((x, states[-1][1] + layer_log_det))
        return states

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x) = log N(f(x); 0, I) + log|det ∂f/∂x|`` in nats per sample, shape ``(n,)``."""
        z, log_det = self(x)
        return standard_normal_log_prob(z) + log_det

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples ``f⁻¹(z)``, ``z ~ N(0, I)``, on the flow's device, without gradients.

        ``z`` is drawn on the generator's device (toyflow's device rule), then moved to the flow's: a CPU
        generator gives the same latents to a flow on any device."""
        check_int("n", n)
        device = _base.model_device(self)
        z = randn((n, *self.event_shape), generator, device=device)
        with torch.no_grad():
            return self.inverse(z)[0]

    def denoise(self, x: Tensor, noise: float) -> Tensor:
        """Tweedie's formula ``E[x_clean | x] = x + σ²∇log p(x)``, for a flow trained on data blurred by
        ``N(0, σ² I)`` with ``σ = noise``: one gradient step takes the training noise back out of its samples."""
        check_number("noise", noise, low=0, why="the training noise's standard deviation")
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            score = torch.autograd.grad(self.log_prob(x).sum(), x)[0]
        return (x + noise**2 * score).detach()


class Samples(Protocol):
    """Anything that draws samples: a :mod:`toyflow.data` distribution, :class:`~toyflow.nf.curves.Curves`
    (which marks itself ``draws_points = True`` for :func:`toyflow.batch.draw_batch`)."""

    draws_points: bool

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
        """``n`` samples, ``(n, *event_shape)``."""


@dataclass
class MaximumLikelihood:
    """The objective ``−mean log p_θ(x)`` over fresh batches of ``batch_size`` draws of ``data``, for ``train.fit``.

    The batch comes from :func:`toyflow.batch.draw_batch` (data only: on the flow's device, in the data's dtype);
    the loss per point is the negative log-likelihood in nats per sample, reduced by :func:`toyflow.batch.mean_loss`.
    With ``noise > 0`` each batch is blurred by ``N(0, noise² I)`` first, as TARFlow trains (Zhai et al. 2024):
    the flow then learns a slightly smoothed density, and its samples can be denoised with its own score.

    Args:
        data: a distribution, or anything with ``sample(n, generator, device)`` and ``draws_points = True``.
        batch_size: samples per step.
        noise: standard deviation of the training noise.
    """

    data: Samples
    batch_size: int = 256
    noise: float = 0.0

    def __post_init__(self):
        check_samples(self.data)
        check_int("batch_size", self.batch_size)
        check_number("noise", self.noise, low=0, why="the training noise's standard deviation")

    def __call__(self, model: Flow, generator: torch.Generator | None = None) -> Tensor:
        x = draw_batch(self.data, self.batch_size, model, generator).x1
        if self.noise > 0:
            x = x + self.noise * randn(x.shape, generator, device=x.device, dtype=x.dtype)
        return mean_loss(-model.log_prob(x))  # (B,): nats per sample
