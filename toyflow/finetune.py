"""Fine-tuning a pretrained flow on a reward ``R(x1)``: each method one objective for :func:`toyflow.train.fit`.

Translated to this repo's time (data at ``t = 1``). The fine-tuned model starts as a copy of the pretrained
``reference`` and samples its own training data from ``source`` (the flow's noise); every objective appends
the mean reward of what it sampled to its ``history``. The policy pieces (the SDE chain, advantages, KLs,
checked rewards) live in :mod:`toyflow.policy`.

- :class:`FlowGRPO` (Liu et al. 2025): sample with the marginal-preserving SDE, so each step is a Gaussian
  policy; group-relative advantages; clipped ratio objective; KL to the reference averaged over the steps.
  ``shared_noise`` and ``step_fraction`` add DanceGRPO's (Xue et al. 2025) shared start within a group and
  training on a random subset of the steps; ``guard`` adds GRPO-Guard's (Wang et al. 2025) ratio normalisation.
- :class:`ReinFlow` (Zhang et al. 2025): a learned noise ``σ_φ(x, t)`` injected into Euler steps,
  a policy-gradient (REINFORCE with a group baseline) update of velocity and noise together.
- :class:`AdvantageWeightedMatching` and :class:`RewardWeightedRegression`: the flow-matching loss on the
  model's own samples weighted by the advantage, or by ``exp(R/β)``.
- :class:`FlowDPO`: preferred/rejected pairs from the reference, the Diffusion-DPO loss on velocities.

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

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import sde
from ._base import check_callable, check_int, check_number, check_reward, rand, randint, randn
from .batch import check_distribution, draw_batch, mean_loss
from .data import Distribution, Gaussian
from .paths import UniformTime
from .policy import (  # noqa: F401  (advantages, clipped_surrogate, … are used from here by exercises and notebooks)
    NoisyPolicy,
    Reward,
    advantages,
    check_groups,
    clipped_surrogate,
    gaussian_log_prob,
    path_kl,
    sde_rollout,
    step_kl,
    step_laws,
)
from .solvers import integrate, time_grid


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_sampling(objective, min_steps: int = 1) -> None:
    """The fields every objective here shares: a callable reward, a source distribution, counts."""
    check_callable("reward", objective.reward, "a callable reward(x) -> (n,) on points (n, d)")
    check_distribution(objective.source, "source")
    check_int("batch_size", objective.batch_size)
    check_int("steps", objective.steps, minimum=min_steps)
    if hasattr(objective, "reference"):
        check_callable("reference", objective.reference, "the frozen pretrained velocity v(x, t)")


def _start(source: Distribution, n: int, model: nn.Module, generator: torch.Generator | None) -> Tensor:
    """``n`` source points ``(n, d)`` on the model's device, drawn by :func:`toyflow.batch.draw_batch`."""
    return draw_batch(source, n, model, generator).x1


@dataclass
class FlowGRPO:
    """Flow-GRPO: a clipped policy-gradient objective over the SDE's Gaussian steps, with a KL to the reference.

    A rollout draws ``batch_size`` chains in ``groups`` equal groups (in 2D there is one "prompt", so the default is
    one group) with the SDE ``dx = [v + ½g²s]dt + g dW`` (:mod:`toyflow.sde`): step ``k < K − 1`` is
    ``x_{k+1} ~ N(μ_θ(x_k, t_k), s_k²I)``. With ``A_i = (R_i − mean R)/std R`` in chain ``i``'s group and
    ``ρ_{k,i} = π_θ/π_old`` per step, the loss averages over the ``K − 1`` steps, as in the paper::

        L = −E_i mean_k [min(ρ A_i, clip(ρ, 1 ± clip) A_i) − kl · ‖μ_θ − μ_ref‖² / (2s_k²)]

    (the KL term is ``path_kl / (K − 1)``). Each rollout serves ``updates`` optimiser steps (``π_old`` = the
    policy that sampled it), which is where the clip matters.

    DanceGRPO (Xue et al. 2025) is this objective with ``kl = 0``, ``shared_noise=True`` (the chains of a group
    start from one source point, so they differ only by the SDE's noise) and ``step_fraction < 1`` (each chain
    trains on a random ``⌊step_fraction·(K − 1)⌋`` of its steps; the paper uses 0.6); its ``g`` is constant.

    ``guard=True`` is GRPO-Guard's RatioNorm (Wang et al. 2025, Eq. 8): under ``π_old`` the log-ratio has mean
    ``−‖μ_θ − μ_old‖²/(2s_k²)`` (below 0, so the clip at ``1 + ε`` rarely bites) and a spread ``∝ 1/s_k``. The
    guard adds that mean back and multiplies by ``s_k``: ``log ρ̂ = s_k (log ρ + ‖μ_θ − μ_old‖²/(2s_k²)) =
    (μ_θ − μ_old)·ε`` with ``ε`` the step's noise. The paper's second part, weighting each step's loss by
    ``1/Δt_k``, is a constant on toyflow's uniform grid and is left out.

    Args:
        reference: the frozen pretrained velocity; reward: ``(n, d) -> (n,)``, finite.
        source: the distribution the flow starts from.
        diffusion: ``g(t)`` (a callable, a name or a number, :func:`toyflow.sde.resolve`); the default
            ``sde.vp(0.5)`` is Flow-GRPO's ``g = a√((1 − t)/t)`` with ``a ≈ 0.7``.
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
    groups: int = 1
    shared_noise: bool = False
    step_fraction: float = 1.0
    history: list[float] = field(default_factory=list)

    def __post_init__(self):
        _check_sampling(self, min_steps=2)  # K = steps ≥ 2: the last step is noiseless
        self.diffusion = sde.resolve(self.diffusion)
        check_number("clip", self.clip, low=0, low_open=True, why="the PPO clip range ε")
        check_number("kl", self.kl, low=0, why="the weight of the KL to the reference")
        check_int("updates", self.updates)
        check_groups(self.groups, self.batch_size)
        _check_bool("guard", self.guard)
        _check_bool("shared_noise", self.shared_noise)
        check_number("step_fraction", self.step_fraction, low=0, high=1, low_open=True, why="the share of steps trained on")
        self._rollout, self._used = None, 0

    def _sample(self, model: nn.Module, generator: torch.Generator | None) -> None:
        size = self.batch_size // self.groups
        if self.shared_noise:  # one start per group, repeated over its chains
            x0 = _start(self.source, self.groups, model, generator).repeat_interleave(size, 0)
        else:
            x0 = _start(self.source, self.batch_size, model, generator)
        states, grid = sde_rollout(model, x0, self.steps, self.diffusion, generator)
        with torch.no_grad():
            reward = check_reward(self.reward, states[-1])
            mean_old, std = step_laws(model, states, grid, self.diffusion)
            mean_ref, _ = step_laws(self.reference, states, grid, self.diffusion)
        k = self.steps - 1
        trained = torch.ones(k, self.batch_size, dtype=x0.dtype, device=x0.device)  # (K − 1, n): steps trained on
        if self.step_fraction < 1:
            ranks = rand((k, self.batch_size), generator, device=x0.device).argsort(0).argsort(0)
            trained = (ranks < max(1, int(self.step_fraction * k))).to(x0.dtype)
        self.history.append(reward.mean().item())
        self._rollout = (states, grid, advantages(reward, self.groups), mean_old, mean_ref, std, trained)
        self._used = 0

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        if self._rollout is None or self._used == self.updates:
            self._sample(model, generator)
        self._used += 1
        states, grid, advantage, mean_old, mean_ref, std, trained = self._rollout
        mean, _ = step_laws(model, states, grid, self.diffusion)
        taken = states[1:-1]  # (K − 1, n, d): where each Gaussian step landed
        log_ratio = gaussian_log_prob(taken, mean, std) - gaussian_log_prob(taken, mean_old, std)  # (K − 1, n)
        if self.guard:  # RatioNorm: remove the known mean −‖Δμ‖²/(2s²), then scale by s
            log_ratio = std[..., 0] * (log_ratio + step_kl(mean, mean_old, std))
        per_step = -clipped_surrogate(log_ratio.exp(), advantage, self.clip) + self.kl * step_kl(mean, mean_ref, std)
        return mean_loss((trained * per_step).sum(0) / trained.sum(0))  # mean over the trained steps, then chains


@dataclass
class ReinFlow:
    """ReinFlow: Euler steps with learned noise, ``x_{k+1} ~ N(x_k + h·v_θ(x_k, t_k), σ_φ(x_k, t_k)²I)``, trained
    by policy gradient on the whole chain::

        L = −E_i[A_i · Σ_k log π(x_{k+1} | x_k)] − entropy · E[log σ_φ]

    with group-relative advantages ``A_i`` as the baseline (ReinFlow's PPO with a value head is left out:
    in 2D one group baseline is enough). The model must be a :class:`~toyflow.policy.NoisyPolicy`.
    """

    reward: Reward
    source: Distribution = field(default_factory=Gaussian)
    batch_size: int = 64
    steps: int = 10
    entropy: float = 0.01
    groups: int = 1
    history: list[float] = field(default_factory=list)

    def __post_init__(self):
        _check_sampling(self)
        check_number("entropy", self.entropy, low=0, why="the weight of the noise's entropy bonus")
        check_groups(self.groups, self.batch_size)

    def __call__(self, model: NoisyPolicy, generator: torch.Generator | None = None) -> Tensor:
        if not isinstance(model, NoisyPolicy):
            raise TypeError(f"ReinFlow trains a NoisyPolicy (velocity + learned noise), got {type(model).__name__}")
        x = _start(self.source, self.batch_size, model, generator)
        grid = time_grid(self.steps, device=x.device, dtype=x.dtype)
        h = grid[1] - grid[0]
        states = [x]
        with torch.no_grad():
            for t in grid[:-1]:
                time = t.expand(len(x))
                noise = randn(x.shape, generator, device=x.device, dtype=x.dtype)
                x = x + h * model(x, time) + model.noise(x, time) * noise
                states.append(x)
            reward = check_reward(self.reward, x)
        self.history.append(reward.mean().item())
        states = torch.stack(states)  # (K + 1, n, d)
        n, d = states.shape[1:]
        before, time = states[:-1].reshape(-1, d), grid[:-1].repeat_interleave(n)
        sigma = model.noise(before, time)  # (K·n, 1)
        log_prob = gaussian_log_prob(states[1:].reshape(-1, d), before + h * model(before, time), sigma)
        chain = log_prob.view(self.steps, n).sum(0)  # (n,)
        entropy = sigma.log().view(self.steps, n).mean(0)  # (n,)
        return mean_loss(-advantages(reward, self.groups) * chain - self.entropy * entropy)


def own_samples(model: nn.Module, n: int, steps: int, source: Distribution, generator: torch.Generator | None) -> Tensor:
    """``n`` samples of the model's ODE (Euler, ``steps`` steps) from ``source``, without gradients: ``(n, d)``."""
    return integrate(model, _start(source, n, model, generator), steps).x


def weighted_matching(
    model: nn.Module, x1: Tensor, weight: Tensor, reference: nn.Module, kl: float, source: Distribution,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``E[w_i ‖v_θ(x_t, t) − (x1_i − x0)‖²] + kl·E‖v_θ(x_t, t) − v_ref(x_t, t)‖²`` (means over dimensions) with
    fresh ``x0 ~ source`` and ``t ~ U(0, 1)`` on the linear path: flow matching on the points ``x1`` ``(n, d)``
    weighted by ``w`` ``(n,)``."""
    noise = draw_batch(source, len(x1), model, generator, time=UniformTime())  # its x1 are the source points x0
    x0, t = noise.x1, noise.t
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    v = model(xt, t)
    loss = mean_loss((v - (x1 - x0)) ** 2, weight)
    if kl > 0:
        with torch.no_grad():
            v_ref = reference(xt, t)
        loss = loss + kl * mean_loss((v - v_ref) ** 2)
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
    groups: int = 1
    history: list[float] = field(default_factory=list)

    def __post_init__(self):
        _check_sampling(self)
        check_number("kl", self.kl, low=0, why="the weight of the velocity distance to the reference")
        check_groups(self.groups, self.batch_size)

    def weights(self, reward: Tensor) -> Tensor:
        """Per-sample weights ``(n,)`` of the flow-matching loss: here the advantages."""
        return advantages(reward, self.groups)

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        x1 = own_samples(model, self.batch_size, self.steps, self.source, generator)
        reward = check_reward(self.reward, x1)
        self.history.append(reward.mean().item())
        return weighted_matching(model, x1, self.weights(reward), self.reference, self.kl, self.source, generator)


@dataclass
class RewardWeightedRegression(AdvantageWeightedMatching):
    """Reward-weighted regression: as :class:`AdvantageWeightedMatching` with weights ``w_i = m·softmax(R/β)_i
    ∝ exp(R_i/β)`` within each group of ``m``. They are positive, so it only ever pulls towards good samples
    (stable, no floor needed); ``β → ∞`` is plain self-training. No KL by default."""

    kl: float = 0.0
    beta: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_number("beta", self.beta, low=0, low_open=True, why="the temperature of exp(R/β)")

    def weights(self, reward: Tensor) -> Tensor:
        """Per-sample weights ``(n,)``: ``m·softmax(R/β)`` within each group of ``m``, so each group's mean is 1."""
        check_groups(self.groups, len(reward))
        r = reward.view(self.groups, -1)
        return (r.shape[1] * torch.softmax(r / self.beta, 1)).view(-1)


@dataclass
class FlowDPO:
    """Flow-DPO (Diffusion-DPO on velocities): for a preferred ``x1^w`` and a rejected ``x1^l`` with the same
    ``x0 ~ source`` and ``t``, ``e = ‖v(x_t, t) − (x1 − x0)‖²`` and ``Δ = (e_θ^w − e_ref^w) − (e_θ^l − e_ref^l)``::

        L = −log σ(−½ β Δ)

    Pairs are two of ``pool`` reference samples drawn once, the one of higher reward preferred (the "human" here
    is the reward); ``history`` records the mean reward of 64 fresh samples of the model.
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
        _check_sampling(self)
        check_number("beta", self.beta, low=0, low_open=True, why="the strength of the preference, β in −log σ(−½βΔ)")
        check_int("pool", self.pool, minimum=2)
        self._pool = None

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        if self._pool is None:  # the reference never changes: sample it once
            self._pool = own_samples(self.reference, self.pool, self.steps, self.source, generator)
        index = randint(self.pool, (2, self.batch_size), generator, device=self._pool.device)
        a, b = self._pool[index[0]], self._pool[index[1]]
        better = (check_reward(self.reward, a) >= check_reward(self.reward, b))[:, None]
        winner, loser = torch.where(better, a, b), torch.where(better, b, a)
        self.history.append(check_reward(self.reward, own_samples(model, 64, self.steps, self.source, generator)).mean().item())
        noise = draw_batch(self.source, self.batch_size, model, generator, time=UniformTime())  # x1: source points
        x0, t = noise.x1, noise.t
        gaps = []  # e_θ − e_ref for the winner, then the loser: (B,) each
        for x1 in (winner, loser):
            xt = (1 - t[:, None]) * x0 + t[:, None] * x1
            with torch.no_grad():
                e_ref = ((self.reference(xt, t) - (x1 - x0)) ** 2).mean(1)
            gaps.append(((model(xt, t) - (x1 - x0)) ** 2).mean(1) - e_ref)
        return mean_loss(-nn.functional.logsigmoid(-0.5 * self.beta * (gaps[0] - gaps[1])))
