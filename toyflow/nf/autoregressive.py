"""MAF: a masked autoregressive flow built from MADE networks (Papamakarios, Pavlakou, Murray 2017).

Each layer moves coordinate ``i`` (in its order) by an affine map whose shift and log-scale
depend only on the coordinates before it::

    z_i = (x_i − μ_i(x_<i)) · exp(−α_i(x_<i)),     log|det ∂z/∂x| = −Σ_i α_i

One MADE network (Germain et al. 2015) computes all ``μ_i, α_i`` in a single pass: its weight
matrices are masked so that output ``i`` never sees input ``j ≥ i``. The density direction is
therefore parallel; the sampling direction is sequential: ``x_i`` needs ``x_<i`` first, so the
inverse takes one pass per coordinate (:mod:`toyflow.nf.tarflow` tries Jacobi iteration instead).
The order is reversed between layers. In 2D a MAF layer is a coupling layer whose first
coordinate also gets a learned constant affine map.

>>> import toyflow
>>> toyflow.seed(0)
>>> flow = MAF(dim=2, layers=4)
>>> x = flow.sample(5, generator=torch.Generator().manual_seed(0))
>>> torch.allclose(flow.inverse(flow(x)[0])[0], x, atol=1e-5)
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Flow, affine_forward, affine_inverse, check_bound, check_ints, soft_clamp


def check_order(order: object) -> Tensor:
    """``order`` if it is a permutation of ``0 … d − 1`` (an int64 tensor ``(d,)``), else a ``TypeError``/``ValueError``."""
    if not isinstance(order, Tensor) or order.ndim != 1 or order.is_floating_point():
        raise TypeError(f"order must be a 1-D integer tensor, a permutation of 0 … d − 1, got {order!r}")
    if sorted(order.tolist()) != list(range(len(order))):
        raise ValueError(f"order must be a permutation of 0 … {len(order) - 1}, got {order.tolist()}")
    return order


class MaskedLinear(nn.Linear):
    """``y = (W ⊙ M) x + b``: a linear layer whose connections outside the 0/1 mask ``M`` ``(out, in)`` are cut."""

    def __init__(self, mask: Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        """``(W ⊙ M)x + b`` for ``x`` ``(n, in)``."""
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder: ``(n, d) -> (shift, log_scale)``, each ``(n, d)``, output ``i`` depending on ``x_<i`` only.

    Args:
        order: ``order[k]`` is the coordinate that comes ``k``-th, a permutation of ``0 … d − 1``.
        hidden: width of the hidden layers.
        depth: number of hidden layers.

    Every unit gets a degree: input ``i`` its rank in the order (1 … d), hidden units 1 … d − 1 in turn.
    A hidden unit of degree ``k`` may see inputs of degree ``≤ k``; output ``i`` only units of degree
    ``< rank(i)``. The first coordinate's output sees nothing: a learned constant.
    """

    def __init__(self, order: Tensor, hidden: int = 64, depth: int = 2):
        super().__init__()
        check_order(order)
        check_ints(hidden=hidden, depth=depth)
        dim = len(order)
        rank = torch.empty(dim, dtype=torch.long)
        rank[order] = torch.arange(1, dim + 1)
        hidden_degree = torch.arange(hidden) % max(dim - 1, 1) + 1
        layers: list[nn.Module] = [MaskedLinear(hidden_degree[:, None] >= rank[None]), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [MaskedLinear(hidden_degree[:, None] >= hidden_degree[None]), nn.SiLU()]
        output = MaskedLinear(rank.repeat(2)[:, None] > hidden_degree[None])  # (2d, hidden): shifts, then log-scales
        nn.init.zeros_(output.weight)
        nn.init.zeros_(output.bias)
        self.net = nn.Sequential(*layers, output)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The shifts and the raw log-scales ``(n, d)`` each; output ``i`` reads only the inputs before ``i`` in the order."""
        shift, log_scale = self.net(x).chunk(2, dim=1)
        return shift, log_scale


class MaskedAutoregressive(nn.Module):
    """One MAF layer on ``(n, d)`` points: parallel ``forward``, sequential ``inverse`` (``d`` MADE passes).

    Args:
        order: the autoregressive order, a permutation of ``0 … d − 1``.
        hidden, depth: size of the MADE network.
        bound: the log-scale is soft-clamped to ``(−bound, bound)``.
    """

    def __init__(self, order: Tensor, hidden: int = 64, depth: int = 2, bound: float = 3.0):
        super().__init__()
        self.register_buffer("order", order)
        self.made = MADE(order, hidden, depth)
        self.bound = check_bound(bound)

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shift, log_scale = self.made(x)
        return shift, soft_clamp(log_scale, self.bound)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data side to latent side: ``z`` and ``log|det ∂z/∂x|`` ``(n,)``."""
        return affine_forward(x, *self._params(x))

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent side to data side: ``x`` and ``log|det ∂x/∂z|`` ``(n,)``. One coordinate at a time, in the order."""
        x = torch.zeros_like(z)
        for i in self.order.tolist():  # x_i = z_i·exp(α_i) + μ_i once x_<i is known
            column = torch.arange(z.shape[1], device=z.device) == i
            x_i, log_det = affine_inverse(z, *self._params(x))
            x = torch.where(column, x_i, x)
        return x, log_det  # the last pass saw every x_<i: its log-scales are the exact ones


class MAF(Flow):
    """A stack of ``layers`` MAF layers on ``(n, dim)`` points, the order reversed between layers."""

    def __init__(self, dim: int = 2, layers: int = 8, hidden: int = 64, depth: int = 2):
        check_ints(dim=dim, layers=layers, hidden=hidden, depth=depth)
        order = torch.arange(dim)
        super().__init__([MaskedAutoregressive(order if k % 2 == 0 else order.flip(0), hidden, depth) for k in range(layers)],
                         (dim,))
