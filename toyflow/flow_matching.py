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

from ._base import check_callable, check_choice, check_int, check_number
from .batch import check_pair_source, draw_batch, mean_loss
from .couplings import PairSource
from .paths import Interpolant, UniformTime, check_path, linear


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
        check_choice("loss", self.loss, ("l2", "pseudo_huber"))
        check_int("batch_size", self.batch_size)
        check_pair_source(self.pairs)
        check_path(self.path)
        check_callable("time", self.time, "a time sampler (n, generator, device) -> (n,)")
        if self.huber_c is not None:
            check_number("huber_c", self.huber_c, low=0, low_open=True, why="or None for 0.00054·d")

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        batch = draw_batch(self.pairs, self.batch_size, model, generator, self.time, self.path)
        xt = self.path.interpolate(batch.x0, batch.x1, batch.t, batch.z)
        target = self.path.velocity(batch.x0, batch.x1, batch.t, batch.z)
        error = model(xt, batch.t) - target  # (B, d)
        if self.loss == "l2":
            return mean_loss(error**2, batch.weight)
        c = self.huber_c if self.huber_c is not None else 0.00054 * error.shape[1]
        return mean_loss(pseudo_huber(error, c), batch.weight)

