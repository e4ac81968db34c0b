"""Fine-tuning a pretrained flow on a reward ``R(x1)``: each method one objective for :func:`toyflow.train.fit`.

Translated to this repo's time (data at ``t = 1``). The fine-tuned model starts as a copy of the pretrained
``reference`` and samples its own training data; every objective appends the mean reward of what it
sampled to its ``history``.

- :class:`FlowGRPO` (Liu et al. 2025; DanceGRPO with ``kl = 0`` and a constant diffusion): sample with the
  marginal-preserving SDE of :mod:`toyflow.sde`, so each step is a Gaussian policy; group-relative
  advantages; clipped ratio objective; KL to the reference; optional GRPO-Guard ratio regulation.
- :class:`ReinFlow` (Zhang et al. 2025): a learned noise ``σ_φ(x, t)`` injected into Euler steps,
  a policy-gradient (REINFORCE with a group baseline) update of velocity and noise together.
- :class:`AdvantageWeightedMatching` and :class:`RewardWeightedRegression`: the flow-matching loss on the
  model's own samples weighted by the advantage, or by ``exp(R/β)``.
- :class:`FlowDPO`: preferred/rejected pairs from the reference, the Diffusion-DPO loss on velocities.

:func:`path_kl` measures how far the fine-tuned model has moved: the KL between the two SDE path laws.

>>> import copy, toyflow
>>> toyflow.seed(0)
>>> reference = toyflow.models.VelocityMLP(hidden=16)
>>> model = copy.deepcopy(reference)
>>> objective = FlowGRPO(reference, reward=lambda x: -x.norm(dim=1), batch_size=16, steps=4)
>>> loss = objective(model, torch.Generator().manual_seed(0))
>>> loss.ndim, len(objective.history)
(0, 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import sde
from .data import Distribution, Gaussian
from .paths import UniformTime
from .solvers import integrate, time_grid

Reward = Callable[[Tensor], Tensor]  # points (n, d) -> rewards (n,)


def advantages(reward: Tensor, groups: int = 1) -> Tensor:
    """Group-relative advantages ``A_i = (R_i − mean R)/std R`` within each of ``groups`` equal groups, ``(n,)``."""
    if len(reward) % groups:
        raise ValueError(f"groups must divide the batch: {len(reward)} rewards, groups={groups}")
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
    """Sample the marginal-preserving SDE with Euler–Maruyama, keeping every state: ``(steps + 1, n, d)`` and
    the grid ``(steps + 1,)``. The last step (to ``t = 1``) is the noiseless jump of :func:`toyflow.sde.euler_maruyama`,
    so the first ``steps − 1`` transitions are the Gaussian policy steps."""
    grid = time_grid(steps, device=x0.device, dtype=x0.dtype)
    return sde.euler_maruyama(v, x0, grid=grid, diffusion=diffusion, generator=generator, return_path=True).path, grid


def _policy(v: nn.Module, states: Tensor, grid: Tensor, diffusion: sde.Diffusion) -> tuple[Tensor, Tensor]:
    """Means ``(K, n, d)`` and standard deviations ``(K, 1, 1)`` of the ``K = T − 1`` stochastic transitions."""
    k, n, d = len(grid) - 2, states.shape[1], states.shape[2]
    x = states[:k].reshape(k * n, d)
    t = grid[:k].repeat_interleave(n)  # (k·n,)
    mean, std = sde.transition(v, x, t, grid[1] - grid[0], diffusion)
    return mean.view(k, n, d), std.view(k, n, 1)[:, :1]


def path_kl(
    model: nn.Module, reference: nn.Module, x0: Tensor, steps: int = 10, diffusion: sde.Diffusion | float = 0.5,
    generator: torch.Generator | None = None,
) -> float:
    """``KL(model's SDE path ‖ reference's)`` on the Euler–Maruyama chain: ``E Σ_k ‖μ_θ − μ_ref‖² / (2s_k²)``
    along the model's own trajectories from ``x0`` ``(n, d)`` — an upper bound on the KL of the endpoints."""
    g = sde.resolve(diffusion)
    with torch.no_grad():
        states, grid = sde_rollout(model, x0, steps, g, generator)
        mean, std = _policy(model, states, grid, g)
        mean_ref, _ = _policy(reference, states, grid, g)
        return float((((mean - mean_ref) / std) ** 2).sum(-1).div(2).sum(0).mean())


@dataclass
class FlowGRPO:
    """Flow-GRPO: a clipped policy-gradient objective over the SDE's Gaussian steps, with a KL to the reference.

    A rollout draws ``batch_size`` samples (one group: in 2D there is one "prompt") with the SDE
    ``dx = [v + ½g²s]dt + g dW`` (:mod:`toyflow.sde`), so step ``k`` is ``x_{k+1} ~ N(μ_θ(x_k, t_k), s_k²I)``.
    With ``A_i = (R_i − mean R)/std R`` and ``ρ = π_θ/π_old`` per step::

        L = −E_{i,k}[min(ρ A_i, clip(ρ, 1 ± clip) A_i)] + kl · E_i Σ_k ‖μ_θ − μ_ref‖² / (2s_k²)

    Each rollout serves ``updates`` optimiser steps (``π_old`` = the policy that sampled it), which is
    where the clip matters. ``guard=True`` regulates the ratio as GRPO-Guard does (our reading): the
    per-step log-ratio is centred (its mean is biased negative) and scaled so every step has the same
    spread, so clipping bites evenly over time instead of mostly at the noisiest steps.

    Args:
        reference: the frozen pretrained velocity; reward: ``(n, 2) -> (n,)``.
        diffusion: ``g(t)``; the default ``sde.vp(0.5)`` is Flow-GRPO's ``g = a√((1 − t)/t)`` with ``a ≈ 0.7``.
    """

    reference: nn.Module
    reward: Reward
    source: Distribution = field(default_factory=Gaussian)
    batch_size: int = 64
    steps: int = 10
    diffusion: sde.Diffusion = field(default_factory=lambda: sde.vp(0.5))
    clip: float = 0.2
    kl: float = 0.0
    updates: int = 2
    guard: bool = False
    history: list[float] = field(default_factory=list)

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 2:
            raise ValueError(f"steps must be an int >= 2 (the last step is noiseless), got {self.steps!r}")
        if not self.clip > 0 or not self.kl >= 0:
            raise ValueError(f"clip must be > 0 and kl >= 0, got clip={self.clip}, kl={self.kl}")
        self._rollout, self._used = None, 0

    def _sample(self, model: nn.Module, generator: torch.Generator) -> None:
        x0 = self.source.sample(self.batch_size, generator, generator.device)
        states, grid = sde_rollout(model, x0, self.steps, self.diffusion, generator)
        with torch.no_grad():
            reward = self.reward(states[-1])
            mean_old, std = _policy(model, states, grid, self.diffusion)
            log_old = gaussian_log_prob(states[1:-1], mean_old, std)  # (K, n)
            mean_ref, _ = _policy(self.reference, states, grid, self.diffusion)
        self.history.append(reward.mean().item())
        self._rollout, self._used = (states, grid, advantages(reward), log_old, mean_ref, std), 0

    def __call__(self, model: nn.Module, generator: torch.Generator) -> Tensor:
        if self._rollout is None or self._used == self.updates:
            self._sample(model, generator)
        self._used += 1
        states, grid, advantage, log_old, mean_ref, std = self._rollout
        mean, _ = _policy(model, states, grid, self.diffusion)
        log_ratio = gaussian_log_prob(states[1:-1], mean, std) - log_old  # (K, n)
        if self.guard:
            spread = log_ratio.std(1, keepdim=True).detach() + 1e-8
            log_ratio = (log_ratio - log_ratio.mean(1, keepdim=True).detach()) / spread * spread.mean()
        surrogate = clipped_surrogate(log_ratio.exp(), advantage, self.clip)
        kl = (((mean - mean_ref) / std) ** 2).sum(-1).div(2).sum(0).mean()
        return -surrogate.mean() + self.kl * kl


class NoisyPolicy(nn.Module):
    """ReinFlow's policy: a velocity ``v_θ(x, t)`` plus a learned noise scale ``σ_φ(x, t) ∈ [σ_min, σ_max]``.

    Calling it gives the velocity, so it samples like any flow; :meth:`noise` gives ``σ_φ`` ``(n, 1)``.
    """

    def __init__(self, velocity: nn.Module, sigma_min: float = 0.02, sigma_max: float = 0.3, hidden: int = 32):
        super().__init__()
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.velocity, self.sigma_min, self.sigma_max = velocity, sigma_min, sigma_max
        self.noise_net = nn.Sequential(nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.velocity(x, t)

    def noise(self, x: Tensor, t: Tensor) -> Tensor:
        gate = torch.sigmoid(self.noise_net(torch.cat([x, t[:, None]], 1)))  # (n, 1)
        return self.sigma_min + (self.sigma_max - self.sigma_min) * gate


@dataclass
class ReinFlow:
    """ReinFlow: Euler steps with learned noise, ``x_{k+1} ~ N(x_k + h·v_θ(x_k, t_k), σ_φ(x_k, t_k)²I)``, trained
    by policy gradient on the whole chain::

        L = −E_i[A_i · Σ_k log π(x_{k+1} | x_k)] − entropy · E[log σ_φ]

    with group-relative advantages ``A_i`` as the baseline (ReinFlow's PPO with a value head is left out:
    in 2D one group baseline is enough). The model must be a :class:`NoisyPolicy`.
    """

    reward: Reward
    source: Distribution = field(default_factory=Gaussian)
    batch_size: int = 64
    steps: int = 10
    entropy: float = 0.01
    history: list[float] = field(default_factory=list)

    def __call__(self, model: NoisyPolicy, generator: torch.Generator) -> Tensor:
        if not isinstance(model, NoisyPolicy):
            raise TypeError(f"ReinFlow trains a NoisyPolicy (velocity + learned noise), got {type(model).__name__}")
        x = self.source.sample(self.batch_size, generator, generator.device)
        grid = time_grid(self.steps, device=x.device, dtype=x.dtype)
        states = [x]
        with torch.no_grad():
            for t, t_next in zip(grid[:-1], grid[1:]):
                time = t.expand(len(x))
                x = x + (t_next - t) * model(x, time) + model.noise(x, time) * torch.randn(
                    x.shape, generator=generator, device=x.device)
                states.append(x)
            reward = self.reward(x)
        self.history.append(reward.mean().item())
        states = torch.stack(states)  # (T + 1, n, d)
        n, d = states.shape[1:]
        before, time = states[:-1].reshape(-1, d), grid[:-1].repeat_interleave(n)
        sigma = model.noise(before, time)  # (T·n, 1)
        log_prob = gaussian_log_prob(states[1:].reshape(-1, d), before + (grid[1] - grid[0]) * model(before, time), sigma)
        chain = log_prob.view(self.steps, n).sum(0)  # (n,)
        return -(advantages(reward) * chain).mean() - self.entropy * sigma.log().mean()


def _own_samples(model: nn.Module, n: int, steps: int, source: Distribution, generator: torch.Generator) -> Tensor:
    """``n`` samples of the model's ODE (Euler, ``steps`` steps), without gradients: ``(n, d)``."""
    return integrate(model, source.sample(n, generator, generator.device), steps).x


def weighted_matching(
    model: nn.Module, x1: Tensor, weight: Tensor, reference: nn.Module, kl: float, generator: torch.Generator
) -> Tensor:
    """``E[w_i ‖v_θ(x_t, t) − (x1_i − x0)‖²] + kl·E‖v_θ(x_t, t) − v_ref(x_t, t)‖²`` with fresh noise ``x0`` and
    ``t ~ U(0, 1)`` on the linear path: flow matching on the points ``x1`` ``(n, d)`` weighted by ``w`` ``(n,)``."""
    x0 = torch.randn(x1.shape, generator=generator, device=x1.device)
    t = UniformTime()(len(x1), generator=generator, device=x1.device)
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    v = model(xt, t)
    loss = (weight * ((v - (x1 - x0)) ** 2).mean(1)).mean()
    if kl > 0:
        with torch.no_grad():
            v_ref = reference(xt, t)
        loss = loss + kl * ((v - v_ref) ** 2).mean(1).mean()
    return loss


@dataclass
class AdvantageWeightedMatching:
    """Advantage Weighted Matching (AWM): flow matching on the model's own samples weighted by the
    group-relative advantage, ``E[A_i ‖v_θ(x_t) − (x1_i − x0)‖²] + kl·E‖v_θ − v_ref‖²`` (:func:`weighted_matching`).
    Good samples are pulled in, bad ones pushed away: a policy gradient written as weighted flow matching.
    The push has no floor (a negative weight on a squared error), so keep the learning rate small."""

    reference: nn.Module
    reward: Reward
    source: Distribution = field(default_factory=Gaussian)
    batch_size: int = 256
    steps: int = 10
    kl: float = 1.0
    history: list[float] = field(default_factory=list)

    def weights(self, reward: Tensor) -> Tensor:
        """Per-sample weights ``(n,)`` of the flow-matching loss: here the advantages."""
        return advantages(reward)

    def __call__(self, model: nn.Module, generator: torch.Generator) -> Tensor:
        x1 = _own_samples(model, self.batch_size, self.steps, self.source, generator)
        reward = self.reward(x1)
        self.history.append(reward.mean().item())
        return weighted_matching(model, x1, self.weights(reward), self.reference, self.kl, generator)


@dataclass
class RewardWeightedRegression(AdvantageWeightedMatching):
    """Reward-weighted regression: as :class:`AdvantageWeightedMatching` with weights
    ``w_i = n·softmax(R/β)_i ∝ exp(R_i/β)``. They are positive, so it only ever pulls towards good
    samples (stable, no floor needed); ``β → ∞`` is plain self-training. No KL by default."""

    kl: float = 0.0
    beta: float = 1.0

    def __post_init__(self):
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0 (the temperature of exp(R/β)), got {self.beta}")

    def weights(self, reward: Tensor) -> Tensor:
        return len(reward) * torch.softmax(reward / self.beta, 0)


@dataclass
class FlowDPO:
    """Flow-DPO (Diffusion-DPO on velocities): for a preferred ``x1^w`` and a rejected ``x1^l`` with the same
    ``x0, t``, ``e = ‖v(x_t, t) − (x1 − x0)‖²`` and ``Δ = (e_θ^w − e_ref^w) − (e_θ^l − e_ref^l)``::

        L = −log σ(−½ β Δ)

    Pairs are two reference samples, the one of higher reward preferred (the "human" here is the reward).
    """

    reference: nn.Module
    reward: Reward
    source: Distribution = field(default_factory=Gaussian)
    batch_size: int = 128
    steps: int = 10
    beta: float = 10.0
    pool: int = 4096
    history: list[float] = field(default_factory=list)

    def __post_init__(self):
        self._pool = None

    def __call__(self, model: nn.Module, generator: torch.Generator) -> Tensor:
        if self._pool is None:  # the reference never changes: sample it once
            self._pool = _own_samples(self.reference, self.pool, self.steps, self.source, generator)
        index = torch.randint(self.pool, (2, self.batch_size), generator=generator, device=generator.device)
        a, b = self._pool[index[0]], self._pool[index[1]]
        better = (self.reward(a) >= self.reward(b))[:, None]
        winner, loser = torch.where(better, a, b), torch.where(better, b, a)
        self.history.append(self.reward(_own_samples(model, 64, self.steps, self.source, generator)).mean().item())
        x0 = torch.randn(winner.shape, generator=generator, device=winner.device)
        t = UniformTime()(self.batch_size, generator=generator, device=winner.device)[:, None]
        gaps = []  # e_θ − e_ref for the winner, then the loser
        for x1 in (winner, loser):
            xt = (1 - t) * x0 + t * x1
            with torch.no_grad():
                e_ref = ((self.reference(xt, t[:, 0]) - (x1 - x0)) ** 2).mean(1)
            gaps.append(((model(xt, t[:, 0]) - (x1 - x0)) ** 2).mean(1) - e_ref)
        delta = gaps[0] - gaps[1]
        return -nn.functional.logsigmoid(-0.5 * self.beta * delta).mean()
