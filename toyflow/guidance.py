"""Control of a flow: class-conditional training, classifier-free guidance and its schedule, steering.

- :class:`ConditionalFlowMatching`: flow matching on labelled pairs with label dropout, so one network
  learns both ``v(x, t, c)`` and the unconditional ``v(x, t, ∅)``.
- :func:`guided`: classifier-free guidance ``v_w = v_∅ + w·(v_c − v_∅)`` (Ho & Salimans 2022).
- :func:`ratio_adaptive`: RAAG, a guidance weight that shrinks where ``‖v_c − v_∅‖/‖v_∅‖`` is large.
- :func:`steer`: FlowChef-style steering of the ODE by a reward on the one-step endpoint estimate.
- :func:`best_of_n`: draw ``N`` samples per output, keep the best by the reward.
- :func:`class_report`: per-class W2 and the fraction of samples landing in their class's region.

Every guided field is a plain velocity ``v(x, t)`` for :func:`toyflow.solvers.integrate`.

>>> import toyflow
>>> toyflow.seed(0)
>>> model = toyflow.models.ConditionalVelocityMLP(classes=2)
>>> v = guided(model, label=1, w=2.0)
>>> toyflow.solvers.integrate(v, torch.randn(8, 2), steps=4).nfe  # two network passes per step, counted as one call
4
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import metrics
from .couplings import PairSource
from .paths import Interpolant, UniformTime, linear
from .solvers import Solution, Velocity, integrate, time_grid
from ._base import model_device

Reward = Callable[[Tensor], Tensor]  # points (n, d) -> reward (n,), differentiable for steering


@dataclass
class ConditionalFlowMatching:
    """``E ‖v_θ(x_t, t, c̃) − (x1 − x0)‖²`` with ``c̃ = ∅`` with probability ``drop``, else the pair's label.

    Args:
        pairs: a labelled pair sampler (:class:`toyflow.couplings.LabelledPairSampler`): batches carry ``label``.
        drop: probability of replacing the label by the model's null label (0.1 in most CFG papers).
        path, time, batch_size: as for :class:`toyflow.flow_matching.FlowMatching`.
    """

    pairs: PairSource
    drop: float = 0.1
    path: Interpolant = field(default_factory=linear)
    time: object = field(default_factory=UniformTime)
    batch_size: int = 256

    def __post_init__(self):
        if not 0 <= self.drop < 1:
            raise ValueError(f"drop must be in [0, 1), got {self.drop}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else model_device(model)
        batch = self.pairs.sample(self.batch_size, generator, device)
        if batch.label is None:
            raise ValueError("pairs must give labelled batches (PairBatch.label); use couplings.LabelledPairSampler")
        dropped = torch.rand(self.batch_size, generator=generator, device=device) < self.drop
        label = torch.where(dropped, torch.full_like(batch.label, model.null), batch.label)
        t = self.time(self.batch_size, generator=generator, device=device)
        xt = self.path.interpolate(batch.x0, batch.x1, t)
        return ((model(xt, t, label) - self.path.velocity(batch.x0, batch.x1, t)) ** 2).mean()


def _both(model: nn.Module, x: Tensor, t: Tensor, label: Tensor | int) -> tuple[Tensor, Tensor]:
    """``(v_c, v_∅)`` at ``(x, t)`` from one batched pass, each ``(n, d)``."""
    label = torch.as_tensor(label, device=x.device).expand(len(x))
    null = torch.full_like(label, model.null)
    v = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([label, null]))
    return v[: len(x)], v[len(x):]


def guided(model: nn.Module, label: Tensor | int, w: float) -> Velocity:
    """Classifier-free guidance: ``v_w(x, t) = v(x, t, ∅) + w·(v(x, t, c) − v(x, t, ∅))``.

    ``w = 0`` is the unconditional flow, ``w = 1`` the conditional one, ``w > 1`` pushes further along the
    direction that tells class ``c`` apart (sharper, less diverse). ``label`` is an int or ``(n,)``.
    """
    if w < 0:
        raise ValueError(f"w must be >= 0, got {w}")

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        conditional, unconditional = _both(model, x, t, label)
        return unconditional + w * (conditional - unconditional)

    return velocity


def guidance_ratio(conditional: Tensor, unconditional: Tensor) -> Tensor:
    """RAAG's ratio ``ρ = ‖v_c − v_∅‖ / ‖v_∅‖`` per point, shape ``(n,)``."""
    return (conditional - unconditional).norm(dim=1) / unconditional.norm(dim=1).clamp_min(1e-8)


def ratio_adaptive(model: nn.Module, label: Tensor | int, w_max: float, alpha: float = 2.0) -> Velocity:
    """RAAG (ratio-aware adaptive guidance): ``v = v_∅ + w_t·(v_c − v_∅)``, ``w_t = 1 + (w_max − 1)·exp(−α ρ_t)``.

    ``ρ_t`` (:func:`guidance_ratio`) is largest in the first steps (``t ≈ 0``), where the conditional and
    unconditional fields disagree most and a strong constant ``w`` throws points off the data; there
    ``w_t → 1`` (plain conditional), and it rises to ``w_max`` as ``ρ_t`` falls. ``w_max = 1`` is no guidance.
    """
    if w_max < 0 or alpha < 0:
        raise ValueError(f"w_max and alpha must be >= 0, got w_max={w_max}, alpha={alpha}")

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        conditional, unconditional = _both(model, x, t, label)
        w = 1 + (w_max - 1) * torch.exp(-alpha * guidance_ratio(conditional, unconditional))  # (n,)
        return unconditional + w[:, None] * (conditional - unconditional)

    return velocity


def steer(
    v: Velocity, reward: Reward, x0: Tensor, steps: int = 20, lr: float = 0.5, inner: int = 3, until: float = 0.6
) -> Solution:
    """FlowChef-style steering (Patel et al. 2024), translated: along Euler's ODE solve, at each grid time
    ``t < until``, move the state up the reward of its one-step endpoint estimate ``x̂1 = x + (1 − t)·v``.

    With ``v = v(x, t)`` frozen ("gradient skipping", ``∂x̂1/∂x ≈ I``), repeat ``inner`` times
    ``x ← x + lr·∇R(x̂1)``, ``x̂1 = x + (1 − t)·v``, then take the Euler step with the same ``v``. No network
    gradient, no retraining: the cost is one network call per step (``nfe = steps``) plus reward gradients.

    Args:
        v: the velocity field; reward: ``(n, d) -> (n,)``, differentiable; x0: ``(n, d)`` source points.
        steps: Euler steps on ``[0, 1]``; lr: step size on the reward; inner: ascent steps per grid time;
        until: steer only while ``t < until`` (late changes leave no time for the flow to repair them).
    """
    if not lr >= 0 or not isinstance(inner, int) or inner < 0:
        raise ValueError(f"lr must be >= 0 and inner a non-negative int, got lr={lr}, inner={inner!r}")
    grid = time_grid(steps, device=x0.device, dtype=x0.dtype)
    x = x0
    for t, t_next in zip(grid[:-1], grid[1:]):
        with torch.no_grad():
            velocity = v(x, t.expand(len(x)))
        if t < until:
            for _ in range(inner):
                x = x.detach().requires_grad_(True)
                (gradient,) = torch.autograd.grad(reward(x + (1 - t) * velocity).sum(), x)
                x = (x + lr * gradient).detach()
        x = x + (t_next - t) * velocity
    return Solution(x.detach(), grid, steps)


def best_of_n(v: Velocity, reward: Reward, x0: Tensor, n: int, steps: int) -> Solution:
    """Best-of-N: for each of the ``m`` outputs, integrate ``n`` candidates from ``x0`` ``(m·n, d)`` with
    ``steps`` Euler steps and keep the one of highest reward; ``nfe = n·steps`` per output."""
    if not isinstance(n, int) or n < 1 or len(x0) % n:
        raise ValueError(f"n must be a positive int dividing len(x0) = {len(x0)}, got {n!r}")
    solution = integrate(v, x0, steps)
    candidates = solution.x.view(-1, n, x0.shape[1])  # (m, n, d)
    best = reward(solution.x).view(-1, n).argmax(1)  # (m,)
    return Solution(candidates[torch.arange(len(candidates)), best], solution.grid, n * steps)


def class_report(
    sample: Callable[[int], Tensor], target, n: int = 500, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Per-class quality of a conditional sampler: mean over classes of ``W2(samples of c, data of c)`` and
    the fraction of samples whose region (``target.classify``) is the asked class.

    Args:
        sample: ``label -> (n, d)`` samples for class ``label``.
        target: a labelled distribution (``sample_labelled``, ``classify``, ``classes``).
    """
    x, y = target.sample_labelled(n * target.classes, generator)
    distances, hits = [], []
    for c in range(target.classes):
        generated = sample(c)
        distances.append(metrics.w2(generated, x[y == c]))
        hits.append((target.classify(generated) == c).float().mean().item())
    return {"W2 per class": sum(distances) / len(distances), "in class region": sum(hits) / len(hits)}
