"""Interpolants between a source point ``x0`` (t = 0) and a target point ``x1`` (t = 1),
and the distributions the training times are drawn from.

An interpolant is ``x_t = α(t)·x0 + β(t)·x1 + γ(t)·z`` with ``z ~ N(0, I)``,
``α(0) = β(1) = 1``, ``α(1) = β(0) = γ(0) = γ(1) = 0``. Its conditional velocity
``d/dt x_t = α̇·x0 + β̇·x1 + γ̇·z`` is the regression target of flow matching:
the network learns its mean given ``x_t``, the marginal velocity.

>>> path = linear()
>>> x0, x1, t = torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([0.25])
>>> path.interpolate(x0, x1, t).tolist(), path.velocity(x0, x1, t).tolist()
([[0.25, 0.25]], [[1.0, 1.0]])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ._base import check_number, rand, randn

Schedule = Callable[[Tensor], Tensor]


def _zero(t: Tensor) -> Tensor:
    return torch.zeros_like(t)


@dataclass(frozen=True)
class Interpolant:
    """``x_t = α(t)x0 + β(t)x1 + γ(t)z`` with the time derivatives of the three schedules."""

    alpha: Schedule
    beta: Schedule
    d_alpha: Schedule
    d_beta: Schedule
    gamma: Schedule = _zero
    d_gamma: Schedule = _zero
    name: str = "interpolant"

    @property
    def is_stochastic(self) -> bool:
        """True when the path has a noise term ``γ(t)·z`` (``gamma`` is not identically 0)."""
        return self.gamma is not _zero

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor, z: Tensor | None = None) -> Tensor:
        """The point ``x_t`` on the path, shape ``(n, d)``; ``t`` of shape ``(n,)``."""
        _check(x0, x1, t)
        t = t[:, None]
        xt = self.alpha(t) * x0 + self.beta(t) * x1
        return xt if z is None else xt + self.gamma(t) * z

    def velocity(self, x0: Tensor, x1: Tensor, t: Tensor, z: Tensor | None = None) -> Tensor:
        """The conditional velocity ``α̇x0 + β̇x1 + γ̇z``, shape ``(n, d)``."""
        _check(x0, x1, t)
        t = t[:, None]
        v = self.d_alpha(t) * x0 + self.d_beta(t) * x1
        return v if z is None else v + self.d_gamma(t) * z

    def endpoints(self, xt: Tensor, v: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """The pair ``(x0, x1)`` whose path passes ``xt`` at time ``t`` with velocity ``v`` (``γ = 0``).

        Solves ``α·x0 + β·x1 = x_t``, ``α̇·x0 + β̇·x1 = v``: ``x0 = (β̇·x_t − β·v)/D``, ``x1 = (α·v − α̇·x_t)/D``
        with ``D = α·β̇ − β·α̇`` (``1`` on the linear path, ``π/2`` on the trigonometric one).
        """
        _check(xt, v, t)
        if self.is_stochastic:
            raise ValueError(f"endpoints needs a deterministic path (gamma = 0), got {self.name}")
        t = t[:, None]
        alpha, beta, d_alpha, d_beta = self.alpha(t), self.beta(t), self.d_alpha(t), self.d_beta(t)
        det = alpha * d_beta - beta * d_alpha
        return (d_beta * xt - beta * v) / det, (alpha * v - d_alpha * xt) / det

    def score(self, xt: Tensor, v: Tensor, t: Tensor) -> Tensor:
        """The score ``∇log p_t(x_t) = −E[x0 | x_t]/α(t)`` from the velocity ``v`` when the source is ``N(0, I)``, ``(n, d)``.

        Given ``x1``, ``x_t = α·x0 + β·x1`` is ``N(β·x1, α²I)``, so ``∇log p_t(x) = E[−(x − β·x1)/α² | x_t = x]
        = −E[x0 | x_t = x]/α``, with ``E[x0 | x_t]`` read off ``v`` by :meth:`endpoints`. Diffusion papers write
        ``x_t = α_t·x1 + σ_t·x0`` (their ``σ_t`` is this ``α``): the score is ``−x̂0/σ_t``. On the linear path it is
        :func:`toyflow.sde.score_from_velocity`, ``(t·v − x)/(1 − t)``. It does not exist where ``α = 0`` (the data end).
        """
        _check(xt, v, t)
        noise_scale = self.alpha(t)[:, None]  # (n, 1)
        positive = noise_scale[:, 0] > torch.finfo(xt.dtype).eps  # cos(π/2) is not exactly 0 in floating point
        if not positive.all():
            raise ValueError(f"the score needs alpha(t) > 0 (singular at the data end), got t = {t[~positive].max().item()}")
        x0_hat, _ = self.endpoints(xt, v, t)
        return -x0_hat / noise_scale

    def tweedie(self, xt: Tensor, score: Tensor, t: Tensor) -> Tensor:
        """Tweedie's formula: the denoised estimate ``E[x1 | x_t] = (x_t + α(t)²·∇log p_t(x_t))/β(t)``, ``(n, d)``.

        From :meth:`score`: ``x_t + α²·s = x_t − α·E[x0 | x_t] = β·E[x1 | x_t]`` (source ``N(0, I)``). In diffusion
        notation ``x̂1 = (x_t + σ_t²·s)/α_t`` (Robbins 1956, who credits Tweedie; Efron 2011). Undefined where ``β = 0``
        (``t = 0``, where ``x_t`` is pure noise and says nothing about ``x1``).
        """
        _check(xt, score, t)
        if self.is_stochastic:
            raise ValueError(f"tweedie needs a deterministic path (gamma = 0), got {self.name}")
        signal = self.beta(t)[:, None]  # (n, 1)
        positive = signal[:, 0] > torch.finfo(xt.dtype).eps
        if not positive.all():
            raise ValueError(f"Tweedie needs beta(t) > 0 (no data in x_t at t = 0), got t = {t[~positive].min().item()}")
        return (xt + self.alpha(t)[:, None] ** 2 * score) / signal


def _check(x0: Tensor, x1: Tensor, t: Tensor) -> None:
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    if t.shape != x0.shape[:1]:
        raise ValueError(f"t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")


def check_path(path: object, name: str = "path") -> Interpolant:
    """``path`` if it is an :class:`Interpolant`, else a ``TypeError`` that suggests one."""
    if not isinstance(path, Interpolant):
        raise TypeError(f"{name} must be a paths.Interpolant such as paths.linear(), got {type(path).__name__}")
    return path


def linear() -> Interpolant:
    """The straight line of rectified flow and flow matching: ``x_t = (1 − t)x0 + t·x1``, velocity ``x1 − x0``."""
    return Interpolant(
        alpha=lambda t: 1 - t,
        beta=lambda t: t,
        d_alpha=lambda t: -torch.ones_like(t),
        d_beta=torch.ones_like,
        name="linear",
    )


def trigonometric() -> Interpolant:
    """The variance-preserving (VP) path ``x_t = cos(πt/2)x0 + sin(πt/2)x1``: ``α² + β² = 1``."""
    h = math.pi / 2
    return Interpolant(
        alpha=lambda t: torch.cos(h * t),
        beta=lambda t: torch.sin(h * t),
        d_alpha=lambda t: -h * torch.sin(h * t),
        d_beta=lambda t: h * torch.cos(h * t),
        name="trigonometric",
    )


def stochastic(sigma: float = 0.5) -> Interpolant:
    """Linear path plus a Brownian-bridge bump: ``γ(t) = σ√(t(1 − t))``, ``γ̇ = σ(1 − 2t)/(2√(t(1 − t)))``.

    The Schrödinger-bridge path of SB-CFM (Tong et al. 2023) and the stochastic
    interpolant of Albergo et al. 2023. ``γ̇`` is infinite at ``t ∈ {0, 1}``; draw times
    inside ``(0, 1)``.
    """
    check_number("sigma", sigma, low=0, low_open=True, why="sigma = 0 is the linear path")
    base = linear()

    def gamma(t: Tensor) -> Tensor:
        return sigma * (t * (1 - t)).clamp_min(0).sqrt()

    def d_gamma(t: Tensor) -> Tensor:
        return sigma * (1 - 2 * t) / (2 * (t * (1 - t)).clamp_min(1e-12).sqrt())

    return Interpolant(base.alpha, base.beta, base.d_alpha, base.d_beta, gamma, d_gamma, name=f"stochastic({sigma})")


# ---- time samplers: callables ``(n, generator, device) -> (n,)`` with their densities ----


@dataclass(frozen=True)
class UniformTime:
    """``t ~ U(0, 1)``."""

    def __call__(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        return rand(n, generator, device)

    def density(self, t: Tensor) -> Tensor:
        """The density ``p(t) = 1`` on ``[0, 1]``."""
        return torch.ones_like(t)


@dataclass(frozen=True)
class LogitNormalTime:
    """``t = sigmoid(m + s·n)``, ``n ~ N(0, 1)`` (SD3, Esser et al. 2024; m = 0, s = 1 is their best)."""

    m: float = 0.0
    s: float = 1.0

    def __post_init__(self):
        check_number("s", self.s, low=0, low_open=True, why="the spread of the logit")

    def __call__(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        return torch.sigmoid(self.m + self.s * randn(n, generator, device))

    def density(self, t: Tensor) -> Tensor:
        """The logit-normal density ``N(logit t; m, s²) / (t(1 − t))``."""
        logit = torch.log(t / (1 - t))
        return torch.exp(-0.5 * ((logit - self.m) / self.s) ** 2) / (self.s * math.sqrt(2 * math.pi) * t * (1 - t))


@dataclass(frozen=True)
class UShapedTime:
    """``p(t) ∝ e^{a t} + e^{a(1 − t)}``: more training near both ends (Lee, Lin, Fanti 2024).

    Drawn by inversion: ``u = log(1 + U·(e^a − 1))/a`` has density ``∝ e^{a u}``; then ``t = u``
    or ``1 − u`` with probability ½ each.
    """

    a: float = 4.0

    def __post_init__(self):
        check_number("a", self.a, low=0, low_open=True, why="how strongly the ends are favoured")

    def __call__(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        uniform = rand(n, generator, device)
        u = torch.log1p(uniform * math.expm1(self.a)) / self.a
        flip = rand(n, generator, device) < 0.5
        return torch.where(flip, 1 - u, u)

    def density(self, t: Tensor) -> Tensor:
        """``p(t) = a·(e^{at} + e^{a(1−t)}) / (2(e^a − 1))``."""
        return self.a * (torch.exp(self.a * t) + torch.exp(self.a * (1 - t))) / (2 * math.expm1(self.a))
