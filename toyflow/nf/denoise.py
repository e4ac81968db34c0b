"""STARFlow's learned denoising step: a small network that takes the training noise out of a flow's samples.

A flow trained on data blurred by ``N(0, σ² I)`` (:class:`~toyflow.nf.base.MaximumLikelihood` with ``noise = σ``)
samples blurred data. Tweedie's formula ``E[x | x̃] = x̃ + σ²∇log p(x̃)`` removes the blur with the flow's own score
(:meth:`~toyflow.nf.base.Flow.denoise`: one backward pass through the flow). STARFlow (Gu et al. 2025) learns the
step instead: a :class:`Denoiser` ``D`` trained by :class:`Denoising` to minimise ``E‖D(x + σε) − x‖²``, whose
minimiser is the same posterior mean ``E[x | x + σε]``, at the price of one small forward pass.

>>> import toyflow
>>> toyflow.seed(0)
>>> denoiser = Denoiser(tokens=4, channels=2, hidden=16)
>>> x = torch.zeros(3, 4, 2)
>>> torch.equal(denoiser(x), x)  # it starts as the identity
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._base import check_int, check_number, randn
from ..batch import draw_batch, mean_loss
from .base import Samples, check_ints, check_samples, mlp


class Denoiser(nn.Module):
    """A learned denoising step for sequences ``(n, T, c)``: ``x̂ = x + r(x)``, ``r`` an MLP on the whole sequence
    (started at zero, so an untrained denoiser is the identity).

    Args:
        tokens, channels: the sequence shape; hidden, depth: the MLP's size.
    """

    def __init__(self, tokens: int, channels: int = 2, hidden: int = 256, depth: int = 2):
        super().__init__()
        check_ints(tokens=tokens, channels=channels, hidden=hidden, depth=depth)
        self.event_shape = (tokens, channels)
        self.net = mlp(tokens * channels, tokens * channels, hidden, depth)

    def forward(self, x: Tensor) -> Tensor:
        """The denoised sequences ``x + net(x)`` ``(n, tokens, channels)``."""
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"x must have shape (n, {self.event_shape[0]}, {self.event_shape[1]}), got {tuple(x.shape)}")
        return x + self.net(x.flatten(1)).view_as(x)


@dataclass
class Denoising:
    """The denoiser's objective ``E‖D(x + σε) − x‖²`` (per coordinate) on fresh batches of ``data``: its minimiser is
    ``E[x | x + σε]``, the posterior mean that Tweedie's formula computes from the score (:meth:`Flow.denoise`).

    The clean batch comes from :func:`toyflow.batch.draw_batch` (data only, on the denoiser's device in the data's
    dtype), the noise ``ε`` from the same generator; the squared error is reduced by :func:`toyflow.batch.mean_loss`.

    Args:
        data: a distribution, or anything with ``sample(n, generator, device)`` and ``draws_points = True``;
        noise: ``σ``, the flow's training noise; batch_size: sequences per step.
    """

    data: Samples
    noise: float
    batch_size: int = 256

    def __post_init__(self):
        check_samples(self.data)
        check_number("noise", self.noise, low=0, low_open=True, why="the flow's training noise")
        check_int("batch_size", self.batch_size)

    def __call__(self, model: Denoiser, generator: torch.Generator | None = None) -> Tensor:
        x = draw_batch(self.data, self.batch_size, model, generator).x1  # (B, T, c)
        noised = x + self.noise * randn(x.shape, generator, device=x.device, dtype=x.dtype)
        return mean_loss((model(noised) - x).pow(2).flatten(1))
