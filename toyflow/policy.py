"""A flow's sampler as a stochastic policy: the pieces every reward fine-tuning method shares.

Sampled with the marginal-preserving SDE of :mod:`toyflow.sde` on a uniform grid of ``K`` steps, a flow is a
chain of Gaussian steps ``x_{k+1} ~ π_θ(· | x_k) = N(μ_θ(x_k, t_k), s_k²I)`` (:func:`step_laws`) for the first
``K − 1`` steps; the last step, to ``t = 1``, is the noiseless jump ``x + h·v_θ`` (no density). On that chain:

- :func:`advantages` turns rewards into group-relative advantages, :func:`clipped_surrogate` is PPO's objective;
- :func:`gaussian_log_prob` and :func:`step_kl` give each step's log-density and the KL between two models'
  steps, :func:`path_kl` the KL between two models' whole chains;
- :class:`NoisyPolicy` is ReinFlow's policy: Euler steps with a learned noise scale.

>>> advantages(torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 30.0]), groups=2).round(decimals=3).tolist()
[-1.0, 0.0, 1.0, -1.0, 0.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from . import sde
from ._base import check_int, check_number, mlp, model_device, model_dtype
from .solvers import time_grid

Reward = Callable[[Tensor], Tensor]  # points (n, d) -> rewards (n,)


def check_groups(groups: int, n: int) -> int:
    """``groups`` if it splits ``n`` points into equal groups of at least 2 (a group statistic needs two), else a
    ``ValueError``."""
    check_int("groups", groups)
    if n % groups or n // groups < 2:
        raise ValueError(f"groups must split the batch into equal groups of at least 2 (a group of one has no spread): "
                         f"{n} rewards, groups={groups}; use a divisor of {n} that is at most {n // 2}")
    return groups


def advantages(reward: Tensor, groups: int = 1) -> Tensor:
    """Group-relative advantages ``A_i = (R_i − mean R)/(std R + 1e-8)`` within each of ``groups`` equal groups of
    consecutive rewards ``(n,)``; each group must hold at least 2 rewards. Equal rewards give ``A = 0``."""
    if not isinstance(reward, Tensor) or reward.ndim != 1:
        raise ValueError(f"reward must be a tensor of shape (n,), got {tuple(getattr(reward, 'shape', ()))}")
    check_groups(groups, len(reward))
    r = reward.view(groups, -1)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-8)).view(-1)


def clipped_surrogate(ratio: Tensor, advantage: Tensor, clip: float) -> Tensor:
    """PPO's pessimistic objective ``min(ρA, clip(ρ, 1 − ε, 1 + ε)·A)`` elementwise (to be maximised): once the
    ratio has moved ``ε`` in the direction the advantage favours, the gradient stops."""
    return torch.minimum(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage)


def gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``log N(x; mean, std²I)`` summed over the last dimension: ``x``, ``mean`` ``(..., d)``, ``std`` broadcastable."""
    d = x.shape[-1]
    return -(((x - mean) / std) ** 2).sum(-1) / 2 - d * (std.log().squeeze(-1) + 0.5 * math.log(2 * math.pi))


def sde_rollout(
    v: nn.Module, x0: Tensor, steps: int, diffusion: sde.Diffusion, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Sample the marginal-preserving SDE from ``x0`` ``(n, d)``, keeping every state: ``(K + 1, n, d)`` and the
    grid ``(K + 1,)`` for ``K = steps``. States ``1 … K − 1`` come from the Gaussian policy steps, state ``K``
    from the noiseless last jump."""
    grid = time_grid(steps, device=x0.device, dtype=x0.dtype)
    return sde.euler_maruyama(v, x0, grid=grid, diffusion=diffusion, generator=generator, return_path=True).path, grid


def step_laws(v: nn.Module, states: Tensor, grid: Tensor, diffusion: sde.Diffusion) -> tuple[Tensor, Tensor]:
    """Means ``(K − 1, n, d)`` and standard deviations ``(K − 1, 1, 1)`` of the ``K − 1`` Gaussian steps taken from
    ``states[:K − 1]`` (:func:`toyflow.sde.transition`); the spread ``s_k`` is the same for every model."""
    k, n, d = len(grid) - 2, states.shape[1], states.shape[2]
    x = states[:k].reshape(k * n, d)
    t = grid[:k].repeat_interleave(n)  # (k·n,)
    mean, std = sde.transition(v, x, t, grid[1] - grid[0], diffusion)
    return mean.view(k, n, d), std.view(k, n, 1)[:, :1]


def step_kl(mean: Tensor, mean_ref: Tensor, std: Tensor) -> Tensor:
    """``KL(N(μ, s²I) ‖ N(μ_ref, s²I)) = ‖μ − μ_ref‖² / (2s²)`` per step and point: ``(K − 1, n)``."""
    return (((mean - mean_ref) / std) ** 2).sum(-1) / 2


def path_kl(
    model: nn.Module, reference: nn.Module, x0: Tensor, steps: int = 10, diffusion: sde.Diffusion | float = 0.5,
    generator: torch.Generator | None = None,
) -> float:
    """``KL(model's chain ‖ reference's chain) = E Σ_k ‖μ_θ − μ_ref‖² / (2s_k²)`` over the ``K − 1`` Gaussian steps,
    estimated on the model's own chains from the starts ``x0`` ``(n, d)`` (both chains start from the same points).

    By the chain rule it is the KL between the two laws of the whole noisy path ``(x_1, …, x_{K−1})``, so it bounds
    the KL between the laws of the last *noisy* state ``x_{K−1}`` (at ``t = 1 − 1/K``). It bounds nothing about the
    samples ``x_K`` themselves: the last, noiseless step ``x_K = x_{K−1} + v(x_{K−1}, 1 − 1/K)/K`` is a different
    deterministic map for each model, and two maps applied to nearby laws can land far apart.
    """
    g = sde.resolve(diffusion)
    with torch.no_grad():
        states, grid = sde_rollout(model, x0, steps, g, generator)
        mean, std = step_laws(model, states, grid, g)
        mean_ref, _ = step_laws(reference, states, grid, g)
        return float(step_kl(mean, mean_ref, std).sum(0).mean())


class NoisyPolicy(nn.Module):
    """ReinFlow's policy: a velocity ``v_θ(x, t)`` plus a learned noise scale ``σ_φ(x, t) ∈ [σ_min, σ_max]``.

    Calling it gives the velocity, so it samples like any flow; :meth:`noise` gives ``σ_φ`` ``(n, 1)`` from a
    small MLP on ``(x, t)`` (:func:`toyflow._base.mlp`) squashed by a sigmoid.
    """

    def __init__(self, velocity: nn.Module, sigma_min: float = 0.02, sigma_max: float = 0.3, hidden: int = 32, dim: int = 2):
        super().__init__()
        check_number("sigma_min", sigma_min, low=0, low_open=True)
        check_number("sigma_max", sigma_max, low=sigma_min, low_open=True, why="the largest noise, above sigma_min")
        self.velocity, self.sigma_min, self.sigma_max = velocity, sigma_min, sigma_max
        self.noise_net = mlp(dim + 1, 1, hidden, depth=1).to(model_device(velocity), model_dtype(velocity))  # beside v

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """The velocity ``v_θ(x, t)`` ``(n, d)``."""
        return self.velocity(x, t)

    def noise(self, x: Tensor, t: Tensor) -> Tensor:
        """The noise scale ``σ_φ(x, t) = σ_min + (σ_max − σ_min)·sigmoid(mlp(x, t))``, shape ``(n, 1)``."""
        gate = torch.sigmoid(self.noise_net(torch.cat([x, t[:, None].to(x)], 1)))  # (n, 1)
        return self.sigma_min + (self.sigma_max - self.sigma_min) * gate
