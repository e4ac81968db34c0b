"""Small networks for 2D flows: a velocity MLP ``v(x, t)`` and its time embedding.

>>> import toyflow
>>> toyflow.seed(0)
>>> v = VelocityMLP()
>>> tuple(v(torch.zeros(5, 2), torch.rand(5)).shape)
(5, 2)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TimeEmbedding(nn.Module):
    """Fourier features of a time ``t ∈ [0, 1]``: ``[t, sin(2πf_k t), cos(2πf_k t)]``, ``f_k = 2^k / 2``.

    Low frequencies let the network vary smoothly in ``t``; the higher ones let it change
    quickly where the flow does (near ``t = 1`` on multi-modal data).
    """

    def __init__(self, frequencies: int = 4):
        super().__init__()
        self.register_buffer("freq", 2 * math.pi * 2.0 ** torch.arange(frequencies) / 2)
        self.dim = 1 + 2 * frequencies

    def forward(self, t: Tensor) -> Tensor:
        angle = t[:, None] * self.freq  # (n, F)
        return torch.cat([t[:, None], angle.sin(), angle.cos()], dim=1)  # (n, 1 + 2F)


class VelocityMLP(nn.Module):
    """An MLP ``v(x, t_1, …, t_k) -> (n, dim)`` on ``[x, emb(t_1), …, emb(t_k)]`` with SiLU activations.

    ``times = 1`` is a velocity field ``v(x, t)``; ``times = 2`` is a two-time field such as
    MeanFlow's average velocity ``u(x, s, t)``. Each time may be a tensor ``(n,)`` or a
    scalar (a float or a 0-d tensor), broadcast to the batch.

    Args:
        dim: dimension of ``x``.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        times: how many time arguments the network takes.
        frequencies: Fourier frequencies of the time embedding.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, times: int = 1, frequencies: int = 4):
        super().__init__()
        for name, value in {"dim": dim, "hidden": hidden, "depth": depth, "times": times}.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(frequencies, int) or frequencies < 0:
            raise ValueError(f"frequencies must be an int >= 0 (Fourier frequencies of the time), got {frequencies!r}")
        self.dim, self.times = dim, times
        self.embed = TimeEmbedding(frequencies)
        layers: list[nn.Module] = [nn.Linear(dim + times * self.embed.dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)

    def features(self, x: Tensor, *times: Tensor | float) -> Tensor:
        """The last hidden features ``(n, hidden)``, the input of the output layer (read by the dispersive
        regulariser of :mod:`toyflow.meanflow`): ``forward(x, …) = net[-1](features(x, …))``."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        if len(times) != self.times:
            raise TypeError(f"{type(self).__name__} takes {self.times} time argument(s), got {len(times)}")
        inputs = [x] + [self.embed(_as_batch_time(t, x)) for t in times]
        return self.net[:-1](torch.cat(inputs, dim=1))

    def forward(self, x: Tensor, *times: Tensor | float) -> Tensor:
        return self.net[-1](self.features(x, *times))


def _as_batch_time(t: Tensor | float, x: Tensor) -> Tensor:
    """``t`` as a tensor of shape ``(n,)`` on ``x``'s device and dtype."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(len(x))
    if t.shape != (len(x),):
        raise ValueError(f"t must be a scalar or have shape ({len(x)},), got {tuple(t.shape)}")
    return t
