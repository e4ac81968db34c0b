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

from .couplings import PairBatch, PairSource
from .data import Distribution
from .paths import Interpolant, UniformTime, linear
from .train import draw_device, model_device


def pseudo_huber(error: Tensor, c: float) -> Tensor:
    """Per-sample ``(√(‖Δ‖² + c²) − c) / d`` for ``Δ`` of shape ``(n, d)``: quadratic near 0, linear far
    out, so a few badly paired points pull less than under ``‖Δ‖²`` (Lee, Lin, Fanti 2024)."""
    return ((error**2).sum(1) + c**2).sqrt().sub(c) / error.shape[1]


def check_pair_source(pairs: object) -> None:
    """Raise a ``TypeError`` unless ``pairs`` draws pair batches (a distribution draws points, not pairs)."""
    if isinstance(pairs, Distribution) or not callable(getattr(pairs, "sample", None)):
        raise TypeError(
            f"pairs must be a pair sampler with sample(n, generator, device) -> PairBatch, such as "
            f"couplings.PairSampler(source, target), got {type(pairs).__name__}"
        )


def weighted_mean(per_pair: Tensor, weight: Tensor | None) -> Tensor:
    """The batch loss from per-pair losses ``(B,)``: their mean, or ``mean(w·ℓ)`` with a pair batch's weights."""
    return per_pair.mean() if weight is None else (weight * per_pair).mean()


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
        check_pair_source(self.pairs)
        if not isinstance(self.path, Interpolant):
            raise TypeError(f"path must be a paths.Interpolant such as paths.linear(), got {type(self.path).__name__}")
        if not callable(self.time):
            raise TypeError(f"time must be a time sampler (n, generator, device) -> (n,), got {type(self.time).__name__}")
        if self.huber_c is not None and not self.huber_c > 0:
            raise ValueError(f"huber_c must be > 0 or None (0.00054·d), got {self.huber_c}")

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        batch, t, z = draw_batch(self.pairs, self.time, self.path, self.batch_size, model, generator)
        xt = self.path.interpolate(batch.x0, batch.x1, t, z)
        target = self.path.velocity(batch.x0, batch.x1, t, z)
        error = model(xt, t) - target  # (B, d)
        if self.loss == "l2":
            per_pair = (error**2).mean(1)
        else:
            per_pair = pseudo_huber(error, self.huber_c if self.huber_c is not None else 0.00054 * error.shape[1])
        return weighted_mean(per_pair, batch.weight)


def draw_batch(
    pairs: PairSource, time, path: Interpolant, n: int, model: nn.Module, generator: torch.Generator | None
) -> tuple[PairBatch, Tensor, Tensor | None]:
    """A batch of ``n`` pairs, their times (``(n,)``, or a tuple of such for :class:`~toyflow.meanflow.TimePairs`)
    and, on a stochastic path, the noise ``z`` ``(n, d)``, in that order, on the model's device. Following
    toyflow's device rule the numbers are drawn on the generator's device, then moved."""
    device = model_device(model) if isinstance(model, nn.Module) else draw_device(generator)
    batch = pairs.sample(n, generator, device)
    t = time(n, generator=generator, device=draw_device(generator, device))
    t = tuple(x.to(batch.x0) for x in t) if isinstance(t, tuple) else t.to(batch.x0)
    z = None
    if path.is_stochastic:
        z = torch.randn(batch.x0.shape, generator=generator, device=draw_device(generator, device)).to(batch.x0)
    return batch, t, z
