"""Flow-map distillation without data: a two-time student learns a frozen teacher's flow map from source samples only.

A teacher velocity ``v_T(x, t)`` defines a flow map ``φ_{s→t}``; MeanFlow's network ``u_θ(x, s, t)`` stands for it as
``X_θ(x, s, t) = x + (t − s)·u_θ(x, s, t)`` (METHODS.md §10). Differentiate the exact map in its *end* time
(FreeFlow, arXiv 2511.19428, METHODS.md §20, here for any start ``s``, not only ``s = 0``)::

    ∂_t φ_{s→t}(x) = v(φ_{s→t}(x), t)    ⇔    u(x, s, t) + (t − s)·∂_t u(x, s, t) = v(x + (t − s)·u(x, s, t), t)

so the student regresses ``u_θ(x_s, s, t)`` on ``sg(v_T(X_θ, t) − (t − s)·∂_t u_θ)`` (one JVP with tangent ``(0, 0, 1)``).
The teacher is asked where the *student* lands, so the student corrects its own drift. The training points come
from the source and the student itself: ``z ~ π0``, ``x_s = sg(z + s·u_θ(z, 0, s))``, the student's state at time ``s``.
**No target sample is ever drawn**: the objective is not even given the target distribution
(:class:`Counted` lets a notebook show the count, 0). At ``s = t`` the target is ``v_T(x_s, s)``.

The MeanFlow identity differentiates in the *start* time instead (``u = v + (t − s)·d/ds u``); with the teacher's
``v_T(x_s, s)`` in place of ``x1 − x0`` it is data-free too, but it asks the teacher only where the student starts.

>>> import toyflow
>>> from toyflow.closed_form import GaussianToGaussian
>>> case = GaussianToGaussian()
>>> x, s, t = torch.randn(4, 2), torch.rand(4) / 2, 0.5 + torch.rand(4) / 2
>>> exact = case.average_velocity(x, s, t)
>>> bool(torch.allclose(flowmap_target(case.average_velocity, case.velocity, x, s, t), exact, atol=1e-5))
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .data import Distribution
from .meanflow import AverageVelocity, TimePairs
from .models import VelocityMLP
from .solvers import Velocity
from ._base import model_device
from .train import History, fit


def flowmap_target(u: AverageVelocity, teacher: Velocity, x: Tensor, s: Tensor, t: Tensor) -> Tensor:
    """The data-free target ``v_T(x + (t − s)·u, t) − (t − s)·∂_t u(x, s, t)``, shape ``(n, d)``.

    ``∂_t u`` is the JVP of ``(x, s, t) ↦ u`` with tangent ``(0, 0, 1)``; the teacher is evaluated at the
    student's end point ``X = x + (t − s)·u(x, s, t)``. For the exact ``u`` of ``teacher`` it equals ``u``.

    Args:
        u: the student's average velocity ``u(x, s, t)``.
        teacher: the teacher's velocity ``v_T(x, t)``.
        x: points at time ``s``, ``(n, d)``.
        s, t: start and end times, ``(n,)`` each, ``s ≤ t``.
    """
    with warnings.catch_warnings():  # torch's first forward-mode call scripts its decompositions with a deprecated API
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
        average, du_dt = torch.func.jvp(u, (x, s, t), (torch.zeros_like(x), torch.zeros_like(s), torch.ones_like(t)))
    gap = (t - s)[:, None]  # (n, 1)
    return teacher(x + gap * average, t) - gap * du_dt


@dataclass
class Counted:
    """A distribution that counts the points drawn from it (``drawn``): proof that an objective never touched it."""

    distribution: Distribution
    drawn: int = 0

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        self.drawn += n
        return self.distribution.sample(n, generator, device)


@dataclass
class FlowMapDistillation:
    """Data-free flow-map distillation: ``E w·‖u_θ(x_s, s, t) − sg(v_T(X_θ, t) − (t − s)·∂_t u_θ)‖²``.

    Per point the loss is ``‖Δ‖²/(‖Δ‖² + c)^p`` as in :mod:`toyflow.meanflow` (``p = 0``: plain squared error).

    Args:
        teacher: the teacher velocity ``v_T(x, t)``, only evaluated (inside the stop-gradient), never trained.
        source: the source distribution ``π0``; the only one sampled.
        time: the ``(s, t)`` sampler (default: uniform times, half the batch ``s = t``).
        batch_size: source points per step.
        from_zero: the share of the batch whose start is moved to ``s = 0`` (the one-step map ``u(z, 0, t)``).
        p, c: the adaptive weight ``1/(‖Δ‖² + c)^p``.
    """

    teacher: Velocity
    source: Distribution
    time: TimePairs = field(default_factory=TimePairs)
    batch_size: int = 256
    from_zero: float = 0.25
    p: float = 0.5
    c: float = 1e-3

    def __post_init__(self):
        problems = {
            "batch_size": (isinstance(self.batch_size, int) and self.batch_size >= 2, "must be an int >= 2"),
            "p": (self.p >= 0, "(the adaptive-weight power) must be >= 0"),
            "c": (self.c > 0, "must be > 0 (it keeps the adaptive weight finite at Δ = 0)"),
            "from_zero": (0 <= self.from_zero <= 1, "(the share of s = 0) must be in [0, 1]"),
        }
        for name, (fine, rule) in problems.items():
            if not fine:
                raise ValueError(f"{name} {rule}, got {getattr(self, name)!r}")

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else model_device(model)
        z = self.source.sample(self.batch_size, generator, device)  # (B, d): source points only
        s, t = (time.to(z.dtype) for time in self.time(self.batch_size, generator=generator, device=device))
        if self.from_zero > 0:
            s = torch.where(torch.rand(len(s), generator=generator, device=device) < self.from_zero, torch.zeros_like(s), s)
        with torch.no_grad():
            xs = z + s[:, None] * model(z, torch.zeros_like(s), s)  # the student's own state at time s
            target = flowmap_target(model, self.teacher, xs, s, t)
        squared = (model(xs, s, t) - target).pow(2).sum(1)  # (B,)
        return (squared / (squared.detach() + self.c) ** self.p).mean()


def distill_flow_map(
    teacher: Velocity, source: Distribution, steps: int, student: nn.Module | None = None, **fit_kwargs
) -> tuple[nn.Module, History]:
    """Train a two-time student (default ``models.VelocityMLP(dim, times=2)``) on
    :class:`FlowMapDistillation`; ``fit_kwargs`` go to :func:`toyflow.train.fit`. Returns ``(student, history)``;
    sample it with :func:`toyflow.meanflow.sample`."""
    student = student if student is not None else VelocityMLP(dim=source.dim, times=2)
    objective_kwargs = {key: fit_kwargs.pop(key) for key in ("time", "batch_size", "from_zero", "p", "c") if key in fit_kwargs}
    return student, fit(student, FlowMapDistillation(teacher, source, **objective_kwargs), steps, **fit_kwargs)
