"""Control of a flow: class-conditional training, classifier-free guidance and its schedule, steering.

- :class:`ConditionalFlowMatching`: flow matching on labelled pairs with label dropout, so one network
  learns both ``v(x, t, c)`` and the unconditional ``v(x, t, ∅)``.
- :func:`guided`: classifier-free guidance ``v_w = v_∅ + w·(v_c − v_∅)`` (Ho & Salimans 2022).
- :func:`ratio_adaptive`: RAAG, a guidance weight that shrinks where ``‖v_c − v_∅‖²/‖v_∅‖²`` is large.
- :func:`steer`: FlowChef-style steering of the ODE by a reward on the one-step endpoint estimate.

Best-of-N lives in :func:`toyflow.search.best_of_n`, the per-class report in :func:`toyflow.metrics.class_report`.
Every guided field is a plain velocity ``v(x, t)`` for :func:`toyflow.solvers.integrate`.

>>> import toyflow
>>> toyflow.seed(0)
>>> model = toyflow.models.ConditionalVelocityMLP(classes=2)
>>> v = guided(model, label=1, w=2.0)
>>> toyflow.solvers.integrate(v, torch.zeros(8, 2), steps=4).nfe  # two network passes per step, counted as one call
4
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ._base import batch_time, check_callable, check_int, check_number, check_points, check_reward, rand
from .batch import check_pair_source, draw_batch, mean_loss
from .couplings import PairSource
from .paths import Interpolant, UniformTime, check_path, linear
from .solvers import Solution, Velocity, time_grid

Reward = Callable[[Tensor], Tensor]  # points (n, d) -> reward (n,), differentiable for steering


def _null_label(model: object) -> int:
    """The model's null label ``∅`` (= its number of classes), or a ``TypeError`` for a model without one."""
    null = getattr(model, "null", None)
    if not callable(model) or not isinstance(null, int) or null < 1:
        raise TypeError(f"model must be a class-conditional velocity v(x, t, label) with a null label model.null "
                        f"(such as models.ConditionalVelocityMLP), got {type(model).__name__}")
    return null


@dataclass
class ConditionalFlowMatching:
    """``E w·‖v_θ(x_t, t, c̃) − (α̇x0 + β̇x1 + γ̇z)‖²/d`` with ``c̃ = ∅`` with probability ``drop``, else the pair's label.

    The batch comes from :func:`toyflow.batch.draw_batch` (pair weights ``w`` and the stochastic path's ``z``
    are used), the loss is :func:`toyflow.batch.mean_loss` (per point, averaged over the ``d`` dimensions).

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
        check_pair_source(self.pairs)
        check_number("drop", self.drop, low=0, high=1, high_open=True, why="the probability of the null label")
        check_path(self.path)
        check_callable("time", self.time, "a time sampler (n, generator, device) -> (n,)")
        check_int("batch_size", self.batch_size)

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        null = _null_label(model)
        batch = draw_batch(self.pairs, self.batch_size, model, generator, self.time, self.path)
        if batch.label is None:
            raise ValueError("pairs must give labelled batches (PairBatch.label); use couplings.LabelledPairSampler")
        dropped = rand(self.batch_size, generator, device=batch.x1.device) < self.drop  # (B,)
        label = torch.where(dropped, torch.full_like(batch.label, null), batch.label)
        xt = self.path.interpolate(batch.x0, batch.x1, batch.t, batch.z)
        target = self.path.velocity(batch.x0, batch.x1, batch.t, batch.z)
        return mean_loss((model(xt, batch.t, label) - target) ** 2, batch.weight)


def _check_label(model: nn.Module, label: Tensor | int) -> Tensor | int:
    """``label`` if it is a class ``0 … C − 1`` of ``model``, an int or an integer tensor ``(n,)``; else a ``ValueError``."""
    classes = _null_label(model)
    if isinstance(label, Tensor) and label.ndim == 1 and len(label) and label.dtype in (torch.int64, torch.int32):
        low, high = label.min().item(), label.max().item()
    elif isinstance(label, int) and not isinstance(label, bool):
        low = high = label
    else:
        given = f"{label.dtype} {tuple(label.shape)}" if isinstance(label, Tensor) else repr(label)
        raise ValueError(f"label must be an int or a non-empty integer tensor of shape (n,), got {given}")
    if low < 0 or high >= classes:
        raise ValueError(f"label must be a class 0 … {classes - 1} of the model ({classes} is its null label), "
                         f"got {low if low < 0 else high}")
    return label


def _both(model: nn.Module, x: Tensor, t: Tensor | float, label: Tensor | int) -> tuple[Tensor, Tensor]:
    """``(v_c, v_∅)`` at ``(x, t)`` from one batched pass, each ``(n, d)``."""
    t = batch_time(t, x)
    label = torch.as_tensor(label, device=x.device)
    label = label.expand(len(x)) if label.ndim == 0 else label
    if label.shape != (len(x),):
        raise ValueError(f"label must be an int or have shape ({len(x)},) like x, got {tuple(label.shape)}")
    null = torch.full_like(label, model.null)
    v = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([label, null]))
    return v[: len(x)], v[len(x):]


def guided(model: nn.Module, label: Tensor | int, w: float) -> Velocity:
    """Classifier-free guidance: ``v_w(x, t) = v(x, t, ∅) + w·(v(x, t, c) − v(x, t, ∅))``.

    ``w = 0`` is the unconditional flow, ``w = 1`` the conditional one, ``w > 1`` pushes further along the
    direction that tells class ``c`` apart (sharper, less diverse). ``label`` is a class (int) or ``(n,)``.
    """
    label = _check_label(model, label)
    w = check_number("w", w, low=0, why="the guidance weight; 0 is unconditional, 1 conditional")

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        conditional, unconditional = _both(model, x, t, label)
        return unconditional + w * (conditional - unconditional)

    return velocity


def guidance_ratio(conditional: Tensor, unconditional: Tensor) -> Tensor:
    """RAAG's ratio ``ρ = ‖v_c − v_∅‖² / ‖v_∅‖²`` per point (squared norms, as in the paper), shape ``(n,)``."""
    return (conditional - unconditional).pow(2).sum(1) / unconditional.pow(2).sum(1).clamp_min(1e-12)


def ratio_adaptive(model: nn.Module, label: Tensor | int, w_max: float, alpha: float = 2.0) -> Velocity:
    """RAAG (ratio-aware adaptive guidance, Zhu et al. 2025, arXiv 2508.03442):
    ``v = v_∅ + w_t·(v_c − v_∅)``, ``w_t = 1 + (w_max − 1)·exp(−α ρ_t)``, ``ρ_t = ‖v_c − v_∅‖²/‖v_∅‖²``.

    ``ρ_t`` (:func:`guidance_ratio`) is largest in the first steps (``t ≈ 0``), where the conditional and
    unconditional fields disagree most and a strong constant ``w`` throws points off the data; there
    ``w_t → 1`` (plain conditional), and it rises to ``w_max`` as ``ρ_t`` falls. ``w_max = 1`` is no guidance.
    """
    label = _check_label(model, label)
    w_max = check_number("w_max", w_max, low=0, why="the largest guidance weight")
    alpha = check_number("alpha", alpha, low=0, why="how fast the weight falls with the ratio")

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
        v: the velocity field; reward: ``(n, d) -> (n,)``, differentiable and finite; x0: ``(n, d)`` source points.
        steps: Euler steps on ``[0, 1]``; lr: step size on the reward; inner: ascent steps per grid time;
        until: steer only while ``t < until``, in ``[0, 1]`` (late changes leave no time for the flow to repair them).
    """
    check_callable("v", v, "a velocity field v(x, t) -> (n, d)")
    check_callable("reward", reward, "a reward (n, d) -> (n,)")
    check_points("x0", x0)
    check_int("steps", steps)
    check_number("lr", lr, low=0, why="the step size on the reward")
    check_int("inner", inner, minimum=0)
    check_number("until", until, low=0, high=1, why="steering stops at this time")
    grid = time_grid(steps, device=x0.device, dtype=x0.dtype)
    x = x0
    for t, t_next in zip(grid[:-1], grid[1:]):
        with torch.no_grad():
            velocity = v(x, batch_time(t, x))
        if t < until:
            for _ in range(inner):
                x = x.detach().requires_grad_(True)
                (gradient,) = torch.autograd.grad(check_reward(reward, x + (1 - t) * velocity).sum(), x)
                x = (x + lr * gradient).detach()
        x = x + (t_next - t) * velocity
    return Solution(x.detach(), grid, steps)
