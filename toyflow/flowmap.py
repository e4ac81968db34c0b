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

**Our variant, not the paper's full method.** FreeFlow (Tong et al. 2025) trains the one-step map ``X_θ(z, 0, t)``
with a *predictor* loss ``‖∂_t X_θ − sg(v_T(X_θ, t))‖²`` whose gradient flows through ``∂_t X_θ = u_θ + t·∂_t u_θ``,
plus a *corrector* that matches the student's noised outputs to the teacher with a learned fake velocity (a
distribution-matching term, like VSD/DMD). Here (1) the default ``gradient="stop"`` moves the whole right-hand
side into a stop-gradient target (MeanFlow style): the same residual, so the same value and the same fixed point,
but the gradient reaches ``θ`` only through ``u_θ(x_s, s, t)``; ``gradient="through"`` keeps the paper's gradient
through ``∂_t X_θ`` (the teacher term stays stopped); (2) any start ``s`` is trained, from the student's own state
``x_s``, not only ``s = 0``; (3) **the corrector is left out**: nothing pulls the student's marginals back onto the
teacher's beyond the predictor's own fixed point.

The MeanFlow identity differentiates in the *start* time instead (``u = v + (t − s)·d/ds u``); with the teacher's
``v_T(x_s, s)`` in place of ``x1 − x0`` it is data-free too, but it asks the teacher only where the student starts.

>>> import toyflow
>>> from toyflow.closed_form import GaussianToGaussian
>>> case = GaussianToGaussian()
>>> x, s, t = torch.linspace(-1, 1, 8).view(4, 2), torch.tensor([0.0, 0.1, 0.2, 0.4]), torch.tensor([0.5, 0.6, 0.9, 1.0])
>>> exact = case.average_velocity(x, s, t)
>>> bool(torch.allclose(flowmap_target(case.average_velocity, case.velocity, x, s, t), exact, atol=1e-5))
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from ._base import check_callable, check_choice, check_int, check_number, rand
from .batch import check_distribution, draw_batch, mean_loss
from .data import Distribution
from .meanflow import AverageVelocity, TimePairs
from .models import VelocityMLP
from .solvers import Velocity
from .train import History, fit


def _jvp_in_end_time(u: AverageVelocity, x: Tensor, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(u(x, s, t), ∂_t u(x, s, t))``, each ``(n, d)``: one JVP with tangent ``(0, 0, 1)`` (differentiable)."""
    with warnings.catch_warnings():  # torch's first forward-mode call scripts its decompositions with a deprecated API
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
        return torch.func.jvp(u, (x, s, t), (torch.zeros_like(x), torch.zeros_like(s), torch.ones_like(t)))


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
    average, du_dt = _jvp_in_end_time(u, x, s, t)
    gap = (t - s)[:, None]  # (n, 1)
    return teacher(x + gap * average, t) - gap * du_dt


@dataclass
class Counted:
    """A distribution that counts the points drawn from it (``drawn``): proof that an objective never touched it."""

    distribution: Distribution
    drawn: int = 0
    draws_points: ClassVar[bool] = True  # batch.draw_batch: it draws points, not pairs

    def __post_init__(self):
        check_distribution(self.distribution, "distribution")

    @property
    def dim(self) -> int:
        """The dimension of the counted distribution's points."""
        return self.distribution.dim

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """``n`` points ``(n, dim)`` from the distribution, counted in ``drawn``."""
        self.drawn += n
        return self.distribution.sample(n, generator, device)


@dataclass
class FlowMapDistillation:
    """Data-free flow-map distillation (our variant of FreeFlow's predictor, see the module docstring):
    ``E ρ(‖Δ‖²/d)``, ``Δ = u_θ(x_s, s, t) + (t − s)·∂_t u_θ(x_s, s, t) − v_T(X_θ, t)``, ``X_θ = x_s + (t − s)·u_θ``.

    ``‖Δ‖²/d`` is the squared error per point **averaged over the** ``d`` **dimensions** (:func:`toyflow.batch.mean_loss`),
    and ``ρ(e) = e/sg(e + c)^p`` is MeanFlow's adaptive weight (``p = 0``: plain mean squared error).

    Args:
        teacher: the teacher velocity ``v_T(x, t)``, only evaluated (without gradients), never trained.
        source: the source distribution ``π0``; the only one sampled (through :func:`toyflow.batch.draw_batch`).
        time: the ``(s, t)`` sampler (default: uniform times, half the batch ``s = t``).
        batch_size: source points per step, ``>= 2``.
        from_zero: the share of the batch whose start is moved to ``s = 0`` (the one-step map ``u(z, 0, t)``).
        p, c: the adaptive weight ``1/(‖Δ‖²/d + c)^p``.
        gradient: ``"stop"`` (default): regress ``u_θ`` on the stop-gradient target :func:`flowmap_target`;
            ``"through"``: FreeFlow's predictor gradient, through ``∂_t X_θ = u_θ + (t − s)·∂_t u_θ`` as well.
    """

    teacher: Velocity
    source: Distribution
    time: TimePairs = field(default_factory=TimePairs)
    batch_size: int = 256
    from_zero: float = 0.25
    p: float = 0.5
    c: float = 1e-3
    gradient: str = "stop"

    def __post_init__(self):
        check_callable("teacher", self.teacher, "a velocity field v(x, t) -> (n, d)")
        check_distribution(self.source, "source")
        check_callable("time", self.time, "a TimePairs sampler (n, generator, device) -> (s, t)")
        check_int("batch_size", self.batch_size, minimum=2)
        check_number("from_zero", self.from_zero, low=0, high=1, why="the share of s = 0")
        check_number("p", self.p, low=0, why="the adaptive-weight power")
        check_number("c", self.c, low=0, low_open=True, why="it keeps the adaptive weight finite at Δ = 0")
        check_choice("gradient", self.gradient, ("stop", "through"))

    def __call__(self, model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
        batch = draw_batch(self.source, self.batch_size, model, generator, self.time)
        z, (s, t) = batch.x1, batch.t  # (B, d) source points only; (B,) each
        if self.from_zero > 0:
            s = torch.where(rand(len(s), generator, device=z.device, dtype=z.dtype) < self.from_zero, torch.zeros_like(s), s)
        with torch.no_grad():
            xs = z + s[:, None] * model(z, torch.zeros_like(s), s)  # the student's own state at time s
        if self.gradient == "stop":
            with torch.no_grad():
                target = flowmap_target(model, self.teacher, xs, s, t)
            error = model(xs, s, t) - target  # (B, d)
        else:
            average, du_dt = _jvp_in_end_time(model, xs, s, t)
            gap = (t - s)[:, None]  # (B, 1)
            with torch.no_grad():
                velocity = self.teacher(xs + gap * average, t)
            error = average + gap * du_dt - velocity  # ∂_t X_θ − sg(v_T(X_θ, t))
        squared = error.pow(2).mean(1)  # (B,)
        return mean_loss(squared / (squared.detach() + self.c) ** self.p)


def distill_flow_map(
    teacher: Velocity, source: Distribution, steps: int, student: nn.Module | None = None, **fit_kwargs
) -> tuple[nn.Module, History]:
    """Train a two-time student (default ``models.VelocityMLP(dim, times=2)``) on
    :class:`FlowMapDistillation`; ``fit_kwargs`` go to :func:`toyflow.train.fit`. Returns ``(student, history)``;
    sample it with :func:`toyflow.meanflow.sample`."""
    student = student if student is not None else VelocityMLP(dim=source.dim, times=2)
    keys = ("time", "batch_size", "from_zero", "p", "c", "gradient")
    objective_kwargs = {key: fit_kwargs.pop(key) for key in keys if key in fit_kwargs}
    return student, fit(student, FlowMapDistillation(teacher, source, **objective_kwargs), steps, **fit_kwargs)
