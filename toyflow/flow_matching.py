"""The flow-matching objective (Lipman et al. 2023; Liu et al. 2022; Albergo & Vanden-Eijnden 2023).

For pairs ``(x0, x1)`` from a coupling, times ``t`` from a time sampler and an interpolant
``x_t = α(t)x0 + β(t)x1 + γ(t)z``, regress the network on the conditional velocity::

    L(θ) = E_{t, (x0, x1), z} w(x0, x1) · ‖v_θ(x_t, t) − (α̇x0 + β̇x1 + γ̇z)‖²

The minimiser is the marginal velocity ``v(x, t) = E[α̇x0 + β̇x1 + γ̇z | x_t = x]``, whose flow
carries the source marginal to the target marginal. With the linear path, independent
pairs and ``w = 1`` this is 1-rectified flow / I-CFM; exact-OT pairs give OT-CFM; Gibbs
weights give W-CFM; fixed pairs ``(z0, z1)`` from a trained flow give reflow.

>>> import toyflow
>>> toyflow.seed(0)
>>> pairs = toyflow.couplings.PairSampler(toyflow.data.get("gaussian"), toyflow.data.get("moons"))
>>> loss = FlowMatching(pairs)(toyflow.models.VelocityMLP(), torch.Generator().manual_seed(0))
>>> loss.ndim
0
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .couplings import PairSource
from .paths import Interpolant, UniformTime, linear
from .train import model_device


def pseudo_huber(error: Tensor, c: float) -> Tensor:
    """Per-sample ``(√(‖Δ‖² + c²) − c) / d`` for ``Δ`` of shape ``(n, d)``: quadratic near 0, linear far
    out, so a few badly paired points pull less than under ``‖Δ‖²`` (Lee, Lin, Fanti 2024)."""
    return ((error**2).sum(1) + c**2).sqrt().sub(c) / error.shape[1]


@dataclass
class FlowMatching:
    """Flow-matching loss on batches of ``batch_size`` pairs drawn from ``pairs``.

    Args:
        pairs: a pair sampler with ``sample(n, generator, device) -> PairBatch``.
        path: the interpolant (default: linear).
        time: a time sampler ``(n, generator, device) -> (n,)`` (default: uniform).
        batch_size: pairs per step.
        loss: ``"l2"`` (mean squared error) or ``"pseudo_huber"``.
        huber_c: the pseudo-Huber ``c``; default ``0.00054·d`` as in Lee et al.'s code.
    """

    pairs: PairSource
    path: Interpolant = field(default_factory=linear)
    time: object = field(default_factory=UniformTime)
    batch_size: int = 256
    loss: str = "l2"
    huber_c: float | None = None

    def __post_init__(self):
        if self.loss not in ("l2", "pseudo_huber"):
            raise ValueError(f"loss must be 'l2' or 'pseudo_huber', got {self.loss!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else model_device(model)
        batch = self.pairs.sample(self.batch_size, generator, device)
        t = self.time(self.batch_size, generator=generator, device=device)
        z = torch.randn(batch.x0.shape, generator=generator, device=device) if self.path.is_stochastic else None
        xt = self.path.interpolate(batch.x0, batch.x1, t, z)
        target = self.path.velocity(batch.x0, batch.x1, t, z)
        error = model(xt, t) - target  # (B, d)
        if self.loss == "l2":
            per_pair = (error**2).mean(1)
        else:
            per_pair = pseudo_huber(error, self.huber_c if self.huber_c is not None else 0.00054 * error.shape[1])
        return per_pair.mean() if batch.weight is None else (batch.weight * per_pair).mean()
