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

from ._base import batch_time, check_int, mlp


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
        """The embedding ``(n, 1 + 2F)`` of times ``t`` ``(n,)``."""
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
            check_int(name, value)
        check_int("frequencies", frequencies, minimum=0)
        self.dim, self.times = dim, times
        self.embed = TimeEmbedding(frequencies)
        self.net = mlp(dim + times * self.embed.dim, dim, hidden, depth)

    def features(self, x: Tensor, *times: Tensor | float) -> Tensor:
        """The last hidden features ``(n, hidden)``, the input of the output layer (read by the dispersive
        regulariser of :mod:`toyflow.meanflow`): ``forward(x, …) = net[-1](features(x, …))``."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        if len(times) != self.times:
            raise TypeError(f"{type(self).__name__} takes {self.times} time argument(s), got {len(times)}")
        inputs = [x] + [self.embed(batch_time(t, x)) for t in times]
        return self.net[:-1](torch.cat(inputs, dim=1))

    def forward(self, x: Tensor, *times: Tensor | float) -> Tensor:
        """The output ``(n, dim)`` for ``x`` ``(n, dim)`` and ``times`` floats or ``(n,)`` each."""
        return self.net[-1](self.features(x, *times))


class ConditionalVelocityMLP(VelocityMLP):
    """A class-conditional velocity ``v(x, t, c) -> (n, dim)``: :class:`VelocityMLP` with a learned label
    embedding concatenated to its input (classifier-free guidance, Ho & Salimans 2022).

    Labels are integers ``0 … classes − 1``; the extra label ``classes`` (:attr:`null`) means "no
    condition", the ``∅`` of ``v(x, t, ∅)``, which is also what ``label=None`` gives.

    Args:
        classes: number of labels (the null label is added on top).
        label_dim: size of the label embedding.
        dim, hidden, depth, frequencies: as for :class:`VelocityMLP` (one time argument).

    >>> import toyflow
    >>> toyflow.seed(0)
    >>> v = ConditionalVelocityMLP(classes=3)
    >>> tuple(v(torch.zeros(4, 2), 0.5, torch.tensor([0, 1, 2, 3])).shape), v.null
    ((4, 2), 3)
    """

    def __init__(
        self, classes: int, dim: int = 2, hidden: int = 128, depth: int = 3, frequencies: int = 4, label_dim: int = 16
    ):
        super().__init__(dim, hidden, depth, times=1, frequencies=frequencies)
        for name, value in {"classes": classes, "label_dim": label_dim}.items():
            check_int(name, value)
        self.classes, self.null = classes, classes
        self.label = nn.Embedding(classes + 1, label_dim)
        self.net[0] = nn.Linear(dim + self.embed.dim + label_dim, hidden)

    def features(self, x: Tensor, t: Tensor | float, label: Tensor | int | None = None) -> Tensor:
        """The last hidden features ``(n, hidden)``: ``forward(x, t, label) = net[-1](features(x, t, label))``."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        label = torch.as_tensor(self.null if label is None else label, device=x.device)
        if label.ndim == 0:
            label = label.expand(len(x))
        if label.shape != (len(x),) or label.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"label must be an int or an integer tensor of shape ({len(x)},), got {label.dtype} {tuple(label.shape)}"
            )
        if label.min() < 0 or label.max() > self.classes:
            raise ValueError(
                f"labels must lie in 0 … {self.classes} ({self.classes} is the null label), "
                f"got {label.min().item()} … {label.max().item()}"
            )
        inputs = [x, self.embed(batch_time(t, x)), self.label(label)]
        return self.net[:-1](torch.cat(inputs, dim=1))

    def forward(self, x: Tensor, t: Tensor | float, label: Tensor | int | None = None) -> Tensor:
        """The velocity ``(n, dim)`` for class ``label`` (None: unconditional, the null label)."""
        return self.net[-1](self.features(x, t, label))
