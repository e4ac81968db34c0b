"""Checkers for the generators that sample in a few steps: one-step distillation on a teacher's pairs
(notebook 05), MeanFlow's average-velocity target (07), the data-free flow-map target and the blockwise
segments (08)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import _base, closed_form, meanflow
from ..blockwise import segment_of
from ..flowmap import flowmap_target
from ._check import Case, compare, gaussian_field, normal, seeded, uniform


def check_distillation_loss(loss: Callable[..., Tensor]) -> bool:
    """Check ``loss(v, z0, z1) -> scalar``: one-step distillation on a teacher's pairs,
    ``mean_i (1/d)‖z1_i − (z0_i + v(z0_i, 0))‖²`` — the student's one Euler step from ``t = 0`` should land on the
    teacher's endpoint (Liu et al. 2022; InstaFlow). ``z0, z1`` are ``(n, d)``, ``v(x, t)`` a velocity field."""
    field = closed_form.GaussianToGaussian(mean=(1.5, -2.0), std=0.6).velocity

    def error(z0, z1, start=True, time=0.0):
        return z1 - (z0 * start + field(z0, _base.batch_time(time, z0)))  # (n, d)

    generator = torch.Generator().manual_seed(6)
    cases = [(normal((32, 2), generator), normal((32, 2), generator) * 0.6 + 2.0) for _ in range(3)]
    return compare(lambda z0, z1: loss(field, z0, z1), lambda z0, z1: error(z0, z1).pow(2).mean(), cases,
                   "check_distillation_loss", [
        ("the student's step forgets its start: the one-step sample is z0 + v(z0, 0), not v(z0, 0)",
         lambda z0, z1: error(z0, z1, start=False).pow(2).mean()),
        ("the velocity is evaluated at t = 1: the one step starts at the source, t = 0",
         lambda z0, z1: error(z0, z1, time=1.0).pow(2).mean()),
        ("the loss sums over the coordinates: average over them too, as every toyflow loss does",
         lambda z0, z1: error(z0, z1).pow(2).sum(1).mean()),
        ("the error is not squared", lambda z0, z1: error(z0, z1).mean()),
    ])


def check_meanflow_target(target: Callable[..., Tensor]) -> bool:
    """Check ``target(u, x, s, t, v)``: MeanFlow's ``v + (t − s)·(d/ds) u(x, s, t)``, the total derivative along the
    flow being the JVP of ``u`` with tangent ``(v, 1, 0)`` (``torch.func.jvp``)."""
    with seeded(5):
        net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()

    def u(x, s, t):
        return net(torch.cat([x, s[:, None], t[:, None]], 1))

    def jvp(x, s, t, tangent):
        return torch.func.jvp(u, (x, s, t), tangent)[1]

    def wrong_tangent(x, s, t, v):  # differentiates in t instead of s
        return v + (t - s)[:, None] * jvp(x, s, t, (v, torch.zeros_like(s), torch.ones_like(t)))

    def no_transport(x, s, t, v):  # forgets the (∂u/∂x)·v part
        return v + (t - s)[:, None] * jvp(x, s, t, (torch.zeros_like(x), torch.ones_like(s), torch.zeros_like(t)))

    def flipped(x, s, t, v):
        return v - (t - s)[:, None] * jvp(x, s, t, (v, torch.ones_like(s), torch.zeros_like(t)))

    generator = torch.Generator().manual_seed(6)
    cases = []
    for _ in range(3):
        a, b = uniform((2, 12), generator)
        x, v = normal((2, 12, 2), generator)
        cases.append((x, torch.minimum(a, b), torch.maximum(a, b), v))
    return compare(lambda x, s, t, v: target(u, x, s, t, v), lambda x, s, t, v: meanflow.meanflow_target(u, x, s, t, v),
                   cases, "check_meanflow_target", [
        ("the derivative is taken in t: MeanFlow differentiates along the flow in s, tangent (v, 1, 0)", wrong_tangent),
        ("the tangent forgets v: d/ds u(x_s, s, t) includes (∂u/∂x)·v, tangent (v, 1, 0) not (0, 1, 0)", no_transport),
        ("the sign of the correction is flipped: target = v + (t − s)·du/ds", flipped),
    ])


def _flowmap_cases(seed: int = 13, count: int = 4) -> list[Case]:
    """``(u, teacher, x, s, t)`` in float64, where ``u`` is the exact average velocity of *another* Gaussian case,
    so the correct target differs from ``u`` and each common mistake gives its own wrong answer."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(count):
        student = closed_form.GaussianToGaussian(tuple(_base.randn(2, generator=generator).tolist()), 0.4)
        teacher = gaussian_field(generator)
        x = normal((16, 2), generator)
        s = 0.5 * uniform(16, generator)
        t = s + (1 - s) * uniform(16, generator)
        cases.append((student.average_velocity, teacher, x, s, t))
    return cases


def check_flowmap_target(target: Callable[..., Tensor]) -> bool:
    """Check ``target(u, teacher, x, s, t)``, the data-free flow-map target ``v_T(x + (t − s)·u, t) − (t − s)·∂_t u``."""

    def parts(u, x, s, t):
        _, du_dt = torch.func.jvp(u, (x, s, t), (torch.zeros_like(x), torch.zeros_like(s), torch.ones_like(t)))
        return u(x, s, t), du_dt, (t - s)[:, None]

    def at_start(u, v, x, s, t):
        _, du, gap = parts(u, x, s, t)
        return v(x, t) - gap * du

    def at_time_s(u, v, x, s, t):
        w, du, gap = parts(u, x, s, t)
        return v(x + gap * w, s) - gap * du

    def plus(u, v, x, s, t):
        w, du, gap = parts(u, x, s, t)
        return v(x + gap * w, t) + gap * du

    def no_gap(u, v, x, s, t):
        w, du, gap = parts(u, x, s, t)
        return v(x + gap * w, t) - du

    return compare(target, flowmap_target, _flowmap_cases(), "check_flowmap_target", [
        ("the teacher is asked at the start point x: ask it where the student lands, x + (t − s)·u(x, s, t)", at_start),
        ("the teacher is asked at time s: the end point X belongs to time t", at_time_s),
        ("the correction has the wrong sign: u + (t − s)·∂_t u = v_T, so the target is v_T − (t − s)·∂_t u", plus),
        ("∂_t u is missing its factor (t − s)", no_gap),
    ], atol=1e-6)


def _segment_cases() -> list[Case]:
    """``(t, boundaries)``: every cut, both ends and random times, for three sets of cuts."""
    generator = torch.Generator().manual_seed(14)
    cases = []
    for cuts in ([0.0, 0.5, 1.0], [0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.1, 0.3, 0.6, 1.0]):
        boundaries = torch.tensor(cuts)
        cases.append((torch.cat([boundaries, _base.rand(12, generator=generator)]), boundaries))
    return cases


def check_segment(segment: Callable[..., Tensor]) -> bool:
    """Check ``segment(t, boundaries)``: the index ``k`` with ``b_k ≤ t < b_{k+1}`` of each time (``t = 1``: the last one)."""

    def left(t, b):
        return torch.bucketize(t, b[1:-1], right=False)

    def off_the_end(t, b):
        return torch.bucketize(t, b[1:], right=True)

    def uniform_segments(t, b):
        return (t * (len(b) - 1)).floor().long().clamp(max=len(b) - 2)

    return compare(segment, segment_of, _segment_cases(), "check_segment", [
        ("a time on a cut b_k goes to the segment that ends there: segment k starts at b_k (b_k ≤ t < b_{k+1})", left),
        ("t = 1 falls off the end: the last segment also holds t = 1", off_the_end),
        ("the segments are taken to be equal: use the cut times, not floor(t·M)", uniform_segments),
    ])
