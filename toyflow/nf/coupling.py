"""RealNVP: affine coupling layers with alternating masks (Dinh, Sohl-Dickstein, Bengio 2017).

A coupling layer leaves the coordinates on its mask ``m`` alone and moves the others by an affine
map whose shift ``μ`` and log-scale ``α`` an MLP computes from the untouched ones::

    z = m ⊙ x + (1 − m) ⊙ (x − μ(m ⊙ x)) · exp(−α(m ⊙ x)),     log|det ∂z/∂x| = −Σ (1 − m) ⊙ α

Both directions cost one network call, because ``m ⊙ z = m ⊙ x``: the inverse reads the same
``μ, α`` from ``z``. The masks alternate so that every coordinate is moved every second layer.

>>> import toyflow
>>> toyflow.seed(0)
>>> flow = RealNVP(dim=2, layers=4)
>>> tuple(flow.sample(5, generator=torch.Generator().manual_seed(0)).shape)
(5, 2)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Flow, affine_forward, affine_inverse, check_bound, check_ints, check_mask, mlp, soft_clamp


class AffineCoupling(nn.Module):
    """One affine coupling layer on ``(n, d)`` points; ``mask`` ``(d,)`` holds 1 on the coordinates it keeps.

    Args:
        mask: which coordinates condition (1) and which are transformed (0).
        hidden: width of the conditioner MLP.
        depth: hidden layers of the conditioner MLP.
        bound: the log-scale is soft-clamped to ``(−bound, bound)`` for stable training.
    """

    def __init__(self, mask: Tensor, hidden: int = 64, depth: int = 2, bound: float = 3.0):
        super().__init__()
        check_ints(hidden=hidden, depth=depth)
        self.register_buffer("mask", check_mask(mask).float())
        self.bound = check_bound(bound)
        self.net = mlp(len(mask), 2 * len(mask), hidden, depth)

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shift, log_scale = self.net(x * self.mask).chunk(2, dim=1)  # (n, d) each
        moved = 1 - self.mask
        return shift * moved, soft_clamp(log_scale, self.bound) * moved

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data side to latent side: ``z`` and ``log|det ∂z/∂x|`` ``(n,)``."""
        return affine_forward(x, *self._params(x))

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent side to data side: ``x`` and ``log|det ∂x/∂z|`` ``(n,)``."""
        return affine_inverse(z, *self._params(z))


class RealNVP(Flow):
    """A stack of ``layers`` affine couplings on ``(n, dim)`` points, masks alternating between the
    even and the odd coordinates (in 2D: ``y`` moves ``x``, then ``x`` moves ``y``)."""

    def __init__(self, dim: int = 2, layers: int = 8, hidden: int = 64, depth: int = 2):
        check_ints(dim=dim, layers=layers, hidden=hidden, depth=depth)
        if dim < 2:
            raise ValueError(f"dim must be >= 2 for a coupling layer to have something to condition on, got {dim}")
        parity = torch.arange(dim) % 2
        super().__init__([AffineCoupling((parity + k) % 2, hidden, depth) for k in range(layers)], (dim,))
