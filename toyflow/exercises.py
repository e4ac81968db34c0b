"""Checkers for the notebooks' exercises: the student writes a piece of a method, a checker runs it
next to the library's reference on random inputs and says in plain words what is wrong.

Each ``check_*`` prints one verdict and returns True when the student's function agrees with the
reference on every case. A function that still raises ``NotImplementedError`` is reported as not
written yet (not as a failure of the notebook), so an unsolved exercise cell runs through.

>>> def euler(v, x, t, dt):
...     return x + dt * v(x, t.expand(len(x)))
>>> check_euler_step(euler)
check_euler_step: correct on 4 random cases.
True
>>> check_euler_step(lambda v, x, t, dt: x - dt * v(x, t.expand(len(x))))
check_euler_step: wrong on case 1: it looks like the step goes backwards: use x + dt·v, not x − dt·v.
False
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from . import closed_form, couplings, finetune, meanflow, metrics, schedules, sde, search, solvers
from .blockwise import segment_of
from .flowmap import flowmap_target
from .nf.base import affine_forward, standard_normal_log_prob
from .nf.tarflow import AutoregressiveBlock

Case = tuple  # the positional arguments of one call
Diagnosis = tuple[str, Callable[..., Tensor]]  # (what the mistake is, the function that makes it)


def compare(
    student: Callable[..., Tensor],
    reference: Callable[..., Tensor],
    cases: Sequence[Case],
    name: str,
    diagnoses: Sequence[Diagnosis] = (),
    atol: float = 1e-5,
) -> bool:
    """Run ``student(*case)`` and ``reference(*case)`` on every case; print a verdict; True if all agree.

    The verdict names the first thing that is wrong: not written yet, an exception, not a tensor,
    the wrong shape (both shapes), NaN, or values off by how much — and, when the wrong values
    equal one of the ``diagnoses`` (common mistakes, each written as a function), which mistake.
    """

    def fail(index: int, message: str) -> bool:
        print(f"{name}: wrong on case {index}: {message}")
        return False

    for index, case in enumerate(cases, 1):
        try:
            got = student(*case)
        except NotImplementedError:
            print(f"{name}: not written yet — replace `raise NotImplementedError` with your code and run the cell again.")
            return False
        except Exception as error:  # the student's bug, reported rather than raised
            return fail(index, f"your function raised {type(error).__name__}: {error}")
        with torch.no_grad():
            expected = reference(*case)
        if not isinstance(got, Tensor):
            return fail(index, f"it must return a torch.Tensor, got {type(got).__name__}.")
        if got.shape != expected.shape:
            return fail(index, f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}.")
        if not torch.isfinite(got).all():
            return fail(index, "the result holds NaN or inf.")
        if torch.allclose(got, expected, atol=atol, rtol=1e-4):
            continue
        for mistake, wrong in diagnoses:
            with torch.no_grad():
                if torch.allclose(got, wrong(*case), atol=atol, rtol=1e-4):
                    return fail(index, f"it looks like {mistake}.")
        error = (got - expected).abs().max().item()
        return fail(index, f"off by up to {error:.3g} from the reference (tolerance {atol:g}).")
    print(f"{name}: correct on {len(cases)} random cases.")
    return True


def _gaussian_field(generator: torch.Generator) -> Callable[[Tensor, Tensor], Tensor]:
    """A closed-form, non-linear-in-time velocity field (Gaussian → Gaussian) for checking steps."""
    mean = tuple(torch.randn(2, generator=generator).tolist())
    std = 0.3 + torch.rand((), generator=generator).item()
    return closed_form.GaussianToGaussian(mean, std).velocity


def _step_cases(seed: int = 0, count: int = 4) -> list[Case]:
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(count):
        x = torch.randn(16, 2, generator=generator, dtype=torch.float64)
        t = torch.rand((), generator=generator, dtype=torch.float64) * 0.8
        dt = 0.05 + torch.rand((), generator=generator, dtype=torch.float64) * 0.15
        cases.append((_gaussian_field(generator), x, t, dt))
    return cases


def check_euler_step(step: Callable[..., Tensor]) -> bool:
    """Check ``step(v, x, t, dt)``, one Euler step ``x + dt·v(x, t)``; ``t`` and ``dt`` are 0-d tensors."""
    def at_end(v, x, t, dt):
        return x + dt * v(x, (t + dt).expand(len(x)))

    return compare(step, solvers.euler_step, _step_cases(), "check_euler_step", [
        ("the step goes backwards: use x + dt·v, not x − dt·v", lambda v, x, t, dt: x - dt * v(x, t.expand(len(x)))),
        ("the step forgets dt: multiply the velocity by dt", lambda v, x, t, dt: x + v(x, t.expand(len(x)))),
        ("the velocity is evaluated at t + dt: Euler uses the start of the step", at_end),
    ])


def check_heun_step(step: Callable[..., Tensor]) -> bool:
    """Check ``step(v, x, t, dt)``, Heun's step ``x + dt/2·(k1 + k2)``, ``k2 = v(x + dt·k1, t + dt)``."""

    def at(t: Tensor, x: Tensor) -> Tensor:
        return t.expand(len(x))

    def k2_only(v, x, t, dt):
        return x + dt * v(x + dt * v(x, at(t, x)), at(t + dt, x))

    def k2_at_start_time(v, x, t, dt):
        k1 = v(x, at(t, x))
        return x + dt / 2 * (k1 + v(x + dt * k1, at(t, x)))

    return compare(step, solvers.heun_step, _step_cases(1), "check_heun_step", [
        ("you took the Euler step (k1 only): average k1 and k2", solvers.euler_step),
        ("you used k2 alone: Heun averages the two slopes, dt/2·(k1 + k2)", k2_only),
        ("k2 is evaluated at time t: the predictor lands at t + dt", k2_at_start_time),
    ])


def _pair_cases(seed: int, count: int = 4, n: int = 32) -> list[Case]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 2, generator=generator, dtype=torch.float64),
             torch.randn(n, 2, generator=generator, dtype=torch.float64) * 0.5 + 3.0,
             torch.rand(n, generator=generator, dtype=torch.float64)) for _ in range(count)]


def check_flow_matching_loss(loss: Callable[..., Tensor]) -> bool:
    """Check ``loss(v, x0, x1, t)``: ``mean_i (1/d)‖v(x_t, t) − (x1 − x0)‖²`` at ``x_t = (1 − t)·x0 + t·x1``,
    a scalar; ``x0, x1`` are ``(n, d)``, ``t`` is ``(n,)``, ``v(x, t)`` a velocity field."""
    field = closed_form.GaussianToGaussian(mean=(3.0, 3.0), std=0.5).velocity

    def reference(x0, x1, t, x_t=None, target=None):
        x_t = (1 - t)[:, None] * x0 + t[:, None] * x1 if x_t is None else x_t
        target = x1 - x0 if target is None else target
        return ((field(x_t, t) - target) ** 2).mean()

    cases = [case for case in _pair_cases(2)]
    return compare(lambda x0, x1, t: loss(field, x0, x1, t), reference, cases, "check_flow_matching_loss", [
        ("the target velocity points backwards: it is x1 − x0", lambda x0, x1, t: reference(x0, x1, t, target=x0 - x1)),
        ("x_t runs from x1 to x0: at t = 0 the path must sit on the source, x_t = (1 − t)·x0 + t·x1",
         lambda x0, x1, t: reference(x0, x1, t, x_t=t[:, None] * x0 + (1 - t)[:, None] * x1)),
        ("the loss sums over the dimensions: average them, (1/d)‖·‖²",
         lambda x0, x1, t: 2 * reference(x0, x1, t)),
        ("the error is not squared", lambda x0, x1, t: (field((1 - t)[:, None] * x0 + t[:, None] * x1, t) - (x1 - x0)).mean()),
    ])


def check_ot_pairing(pair: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Check ``pair(x0, x1) -> x1 reordered`` so that ``Σ_i ‖x0_i − x1_σ(i)‖²`` is minimal over permutations ``σ``
    (minibatch optimal transport with uniform weights, where the optimal plan is a permutation)."""

    def reference(x0, x1):
        return couplings.ExactOT()(x0, x1).x1

    def by_first_coordinate(x0, x1):
        order0, order1 = x0[:, 0].argsort(), x1[:, 0].argsort()
        out = torch.empty_like(x1)
        out[order0] = x1[order1]
        return out

    cases = [(x0, x1) for x0, x1, _ in _pair_cases(3, n=24)]
    return compare(pair, reference, cases, "check_ot_pairing", [
        ("x1 came back in its original order: that is the independent coupling", lambda x0, x1: x1),
        ("the pairing sorts by the first coordinate: that is optimal in 1D only; solve the 2D problem with ot.emd",
         by_first_coordinate),
    ])


def _as_float64(function: Callable[..., object]) -> Callable[..., object]:
    """The student's number as a float64 tensor, so that a Python float and a 0-d tensor of any dtype both pass."""

    def call(*case):
        got = function(*case)
        if isinstance(got, (int, float)) and not isinstance(got, bool):
            return torch.tensor(float(got), dtype=torch.float64)
        return got.to(torch.float64) if isinstance(got, Tensor) else got

    return call


def check_w2_1d(w2_1d: Callable[[Tensor, Tensor], Tensor | float]) -> bool:
    """Check ``w2_1d(a, b)``, the W2 distance between two 1D samples of equal size ``(n,)``:
    ``(1/n Σ_k (a_(k) − b_(k))²)^{1/2}`` with both samples sorted (in 1D the optimal matching is the sorted one).
    Compared with :func:`toyflow.metrics.w2`, which solves the matching as a linear program."""

    def reference(a, b):
        return torch.tensor(metrics.w2(a[:, None], b[:, None]), dtype=torch.float64)

    def sorted_gaps(a, b, descending=False):
        return a.sort().values - b.sort(descending=descending).values

    generator = torch.Generator().manual_seed(9)
    cases = [(torch.randn(n, generator=generator, dtype=torch.float64) * scale,
              torch.randn(n, generator=generator, dtype=torch.float64) + shift)
             for n, scale, shift in ((12, 1.0, 0.5), (30, 2.0, -1.0), (50, 0.5, 2.0))]
    return compare(_as_float64(w2_1d), reference, cases, "check_w2_1d", [
        ("the points are matched in the order given: sort both samples first (in 1D the optimal matching pairs them "
         "in sorted order)", lambda a, b: (a - b).pow(2).mean().sqrt()),
        ("one sample is sorted in decreasing order: that is the worst matching; pair smallest with smallest",
         lambda a, b: sorted_gaps(a, b, descending=True).pow(2).mean().sqrt()),
        ("this is W2²: take the square root of the mean squared gap", lambda a, b: sorted_gaps(a, b).pow(2).mean()),
        ("the squared gaps are summed: each point has weight 1/n, so average them",
         lambda a, b: sorted_gaps(a, b).pow(2).sum().sqrt()),
        ("the gaps are not squared: the mean |gap| is W1; W2 is the root of the mean squared gap",
         lambda a, b: sorted_gaps(a, b).abs().mean()),
    ], atol=1e-6)


def gaussian_velocity(x: Tensor, t: Tensor, source_mean: Tensor, source_std: float, target_mean: Tensor,
                      target_std: float) -> Tensor:
    """The marginal velocity ``E[x1 − x0 | x_t = x]`` from ``N(a, r²I)`` to ``N(m, s²I)`` with independent pairs:
    ``(m − a) + (t·s² − (1 − t)·r²)/σ_t² · (x − μ_t)``, ``μ_t = (1 − t)·a + t·m``, ``σ_t² = (1 − t)²r² + t²s²``.
    ``x`` ``(n, d)``, ``t`` ``(n,)``, means ``(d,)``. With ``a = 0``, ``r = 1``: :class:`closed_form.GaussianToGaussian`."""
    a, r, m, s, t = source_mean, source_std, target_mean, target_std, t[:, None]
    variance = (1 - t) ** 2 * r**2 + t**2 * s**2  # Var(x_t), per coordinate
    covariance = t * s**2 - (1 - t) * r**2  # Cov(x1 − x0, x_t), per coordinate
    return (m - a) + covariance / variance * (x - ((1 - t) * a + t * m))


def check_gaussian_velocity(velocity: Callable[..., Tensor]) -> bool:
    """Check ``velocity(x, t, source_mean, source_std, target_mean, target_std)``, the marginal velocity of flow matching
    with independent pairs from ``N(a, r²I)`` to ``N(m, s²I)`` (see :func:`gaussian_velocity`)."""

    def wrong(center=None, squares=True, sign=1.0, from_standard=False):
        def field(x, t, a, r, m, s):
            if from_standard:
                a, r = torch.zeros_like(a), 1.0
            tt = t[:, None]
            p = 2 if squares else 1
            variance = (1 - tt) ** 2 * r**p + tt**2 * s**p
            covariance = sign * (tt * s**p - (1 - tt) * r**p)
            mean_t = (1 - tt) * a + tt * m if center is None else center(tt, a, m)
            return (m - a) + covariance / variance * (x - mean_t)
        return field

    generator = torch.Generator().manual_seed(10)
    cases = []
    for _ in range(4):
        a, m = torch.randn(2, 2, generator=generator, dtype=torch.float64) * 2
        r, s = (0.4 + 1.6 * torch.rand(2, generator=generator, dtype=torch.float64)).tolist()
        x = torch.randn(16, 2, generator=generator, dtype=torch.float64) * 2
        t = 0.05 + 0.9 * torch.rand(16, generator=generator, dtype=torch.float64)
        cases.append((x, t, a, r, m, s))
    return compare(velocity, gaussian_velocity, cases, "check_gaussian_velocity", [
        ("the source was taken as N(0, I): here it is N(a, r²I), so x_t has mean (1 − t)·a + t·m and variance "
         "(1 − t)²r² + t²s²", wrong(from_standard=True)),
        ("this is the straight line between the means, m − a: the pairs through x also spread or contract; add "
         "Cov(x1 − x0, x_t)/Var(x_t)·(x − E x_t)", lambda x, t, a, r, m, s: (m - a).expand_as(x).clone()),
        ("the correction is centred at t·m: E x_t = (1 − t)·a + t·m", wrong(center=lambda t, a, m: t * m)),
        ("the correction has the wrong sign: Cov(x1 − x0, x_t) = t·s² − (1 − t)·r²", wrong(sign=-1.0)),
        ("standard deviations stand where variances belong: Var(x_t) = (1 − t)²r² + t²s², "
         "Cov(x1 − x0, x_t) = t·s² − (1 − t)·r²", wrong(squares=False)),
    ], atol=1e-6)


def straightness_of_path(path: Tensor, grid: Tensor) -> Tensor:
    """Straightness ``S = ∫ E‖(Z1 − Z0) − Ż_t‖² dt`` of paths ``(T + 1, n, d)`` stored at the times ``grid`` ``(T + 1,)``:
    each step's velocity is ``(z_{i+1} − z_i)/Δt_i`` and the integral a sum weighted by ``Δt_i``. On an Euler path of
    ``v`` with a uniform grid it equals :func:`toyflow.metrics.straightness` (Liu et al. 2022)."""
    dt = grid[1:] - grid[:-1]  # (T,)
    velocity = (path[1:] - path[:-1]) / dt[:, None, None]  # (T, n, d)
    gap = ((path[-1] - path[0]) - velocity).pow(2).sum(-1).mean(-1)  # (T,): E‖(Z1 − Z0) − Ż_t‖² per step
    return (dt * gap).sum()


def check_straightness(straightness: Callable[[Tensor, Tensor], Tensor | float]) -> bool:
    """Check ``straightness(path, grid)`` on Euler paths ``(T + 1, n, d)`` of a closed-form field, on a uniform grid and
    on uneven ones (see :func:`straightness_of_path`)."""

    def per_step(path, grid):
        return path[1:] - path[:-1], grid[1:] - grid[:-1]

    def no_division(path, grid):
        step, dt = per_step(path, grid)
        return (dt * ((path[-1] - path[0]) - step).pow(2).sum(-1).mean(-1)).sum()

    def equal_weights(path, grid):
        step, dt = per_step(path, grid)
        return ((path[-1] - path[0]) - step / dt[:, None, None]).pow(2).sum(-1).mean()

    def end_only(path, grid):
        step, dt = per_step(path, grid)
        return (dt * (path[-1] - step / dt[:, None, None]).pow(2).sum(-1).mean(-1)).sum()

    def mean_over_coordinates(path, grid):
        return straightness_of_path(path, grid) / path.shape[-1]

    generator = torch.Generator().manual_seed(11)
    grids = [torch.linspace(0, 1, 21, dtype=torch.float64),
             torch.linspace(0, 1, 16, dtype=torch.float64) ** 2,
             torch.cat([torch.zeros(1, dtype=torch.float64),
                        torch.rand(10, generator=generator, dtype=torch.float64).sort().values,
                        torch.ones(1, dtype=torch.float64)])]
    cases = []
    for grid in grids:
        x0 = torch.randn(24, 2, generator=generator, dtype=torch.float64)
        cases.append((solvers.integrate(_gaussian_field(generator), x0, grid=grid, return_path=True).path, grid))
    return compare(_as_float64(straightness), straightness_of_path, cases, "check_straightness", [
        ("each step's displacement is used as its velocity: divide z_{i+1} − z_i by the step's length Δt_i", no_division),
        ("every step has the same weight: S is an integral over t, so weight each step by its length Δt_i",
         equal_weights),
        ("the straight line's velocity is taken as Z1: it is the whole displacement Z1 − Z0", end_only),
        ("the squared error is averaged over the coordinates: ‖·‖² sums them (average over the points only)",
         mean_over_coordinates),
    ], atol=1e-6)


def check_reflow_pairs(make_pairs: Callable[..., tuple[Tensor, Tensor]]) -> bool:
    """Check ``make_pairs(v, z0, steps) -> (z0, z1)``: ``z1`` is where ``steps`` Euler steps of ``v`` from ``t = 0``
    to ``t = 1`` take ``z0`` — the coupling the next reflow round trains on."""
    field = closed_form.GaussianToGaussian(mean=(2.0, -1.0), std=0.4).velocity

    def as_tensor(z0, steps):
        pairs = make_pairs(field, z0, steps)
        if not (isinstance(pairs, tuple) and len(pairs) == 2):
            raise TypeError(f"return the pair (z0, z1), got {type(pairs).__name__}")
        return torch.stack(pairs)

    def reference(z0, steps):
        return torch.stack([z0, solvers.integrate(field, z0, steps).x])

    def euler_from(z0, steps, grid):
        return torch.stack([z0, solvers.integrate(field, z0, grid=grid).x])

    generator = torch.Generator().manual_seed(4)
    cases = [(torch.randn(16, 2, generator=generator, dtype=torch.float64), steps) for steps in (1, 3, 8)]
    return compare(as_tensor, reference, cases, "check_reflow_pairs", [
        ("the pair is reversed: return (z0, z1), the source point first", lambda z0, steps: reference(z0, steps).flip(0)),
        ("only one step was taken: loop over all `steps` steps of size 1/steps",
         lambda z0, steps: torch.stack([z0, z0 + field(z0, torch.zeros(len(z0), dtype=z0.dtype))])),
        ("the time starts at dt instead of 0: evaluate v at t = 0, 1/steps, …, (steps − 1)/steps",
         lambda z0, steps: euler_from(z0, steps, torch.linspace(1 / steps, 1 + 1 / steps, steps + 1, dtype=z0.dtype))),
    ])


def check_distillation_loss(loss: Callable[..., Tensor]) -> bool:
    """Check ``loss(v, z0, z1) -> scalar``: one-step distillation on a teacher's pairs,
    ``mean_i (1/d)‖z1_i − (z0_i + v(z0_i, 0))‖²`` — the student's one Euler step from ``t = 0`` should land on the
    teacher's endpoint (Liu et al. 2022; InstaFlow). ``z0, z1`` are ``(n, d)``, ``v(x, t)`` a velocity field."""
    field = closed_form.GaussianToGaussian(mean=(1.5, -2.0), std=0.6).velocity

    def at(z0: Tensor, time: float) -> Tensor:
        return torch.full((len(z0),), time, dtype=z0.dtype)

    def reference(z0, z1):
        return (z1 - (z0 + field(z0, at(z0, 0.0)))).pow(2).mean()

    generator = torch.Generator().manual_seed(6)
    cases = [(torch.randn(32, 2, generator=generator, dtype=torch.float64),
              torch.randn(32, 2, generator=generator, dtype=torch.float64) * 0.6 + 2.0) for _ in range(3)]
    return compare(lambda z0, z1: loss(field, z0, z1), reference, cases, "check_distillation_loss", [
        ("the student's step forgets its start: the one-step sample is z0 + v(z0, 0), not v(z0, 0)",
         lambda z0, z1: (z1 - field(z0, at(z0, 0.0))).pow(2).mean()),
        ("the velocity is evaluated at t = 1: the one step starts at the source, t = 0",
         lambda z0, z1: (z1 - (z0 + field(z0, at(z0, 1.0)))).pow(2).mean()),
        ("the loss sums over the coordinates: average over them too, as every toyflow loss does",
         lambda z0, z1: (z1 - (z0 + field(z0, at(z0, 0.0)))).pow(2).sum(1).mean()),
        ("the error is not squared", lambda z0, z1: (z1 - (z0 + field(z0, at(z0, 0.0)))).mean()),
    ])


def check_monotone_pairing(pair: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Check ``pair(x0, x1) -> x1 reordered`` for 1D points ``(n,)``: the monotone coupling, the i-th smallest ``x0``
    paired with the i-th smallest ``x1``. In 1D it is the optimal pairing for every convex cost, and the only coupling
    a flow can produce (paths on a line cannot pass each other)."""

    def reference(x0, x1):
        out = torch.empty_like(x1)
        out[x0.argsort()] = x1.sort().values
        return out

    def anti(x0, x1):
        out = torch.empty_like(x1)
        out[x0.argsort()] = x1.sort(descending=True).values
        return out

    generator = torch.Generator().manual_seed(7)
    cases = [(torch.randn(20, generator=generator, dtype=torch.float64),
              torch.rand(20, generator=generator, dtype=torch.float64) * 4 + 1) for _ in range(3)]
    return compare(pair, reference, cases, "check_monotone_pairing", [
        ("x1 came back in its original order: that is the independent coupling", lambda x0, x1: x1),
        ("x1 came back sorted, but x0 is not sorted: put the k-th smallest x1 where the k-th smallest x0 is",
         lambda x0, x1: x1.sort().values),
        ("the order is reversed: the smallest x0 gets the largest x1, the most expensive pairing", anti),
    ])


def check_meanflow_target(target: Callable[..., Tensor]) -> bool:
    """Check ``target(u, x, s, t, v)``: MeanFlow's ``v + (t − s)·(d/ds) u(x, s, t)``, the total derivative along the
    flow being the JVP of ``u`` with tangent ``(v, 1, 0)`` (``torch.func.jvp``)."""
    torch.manual_seed(5)
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
        a, b = torch.rand(2, 12, generator=generator, dtype=torch.float64)
        x, v = torch.randn(2, 12, 2, generator=generator, dtype=torch.float64)
        cases.append((x, torch.minimum(a, b), torch.maximum(a, b), v))
    return compare(lambda x, s, t, v: target(u, x, s, t, v), lambda x, s, t, v: meanflow.meanflow_target(u, x, s, t, v),
                   cases, "check_meanflow_target", [
        ("the derivative is taken in t: MeanFlow differentiates along the flow in s, tangent (v, 1, 0)", wrong_tangent),
        ("the tangent forgets v: d/ds u(x_s, s, t) includes (∂u/∂x)·v, tangent (v, 1, 0) not (0, 1, 0)", no_transport),
        ("the sign of the correction is flipped: target = v + (t − s)·du/ds", flipped),
    ])


# --- notebook 04: from diffusion to flows ---


def _schedules() -> dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]]:
    """``(α_t, σ_t)`` of ``x_t = α_t·x1 + σ_t·x0`` in diffusion notation: the data's and the noise's coefficient."""
    half_pi = torch.pi / 2
    return {"VP": (lambda t: torch.sin(half_pi * t), lambda t: torch.cos(half_pi * t)),
            "linear": (lambda t: t, lambda t: 1 - t)}


def _ddim_cases(seed: int = 7) -> list[Case]:
    """``(x, x1_hat, t, t_next, alpha, sigma)``: points, a data prediction, two 0-d times ``t < t_next < 1``."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for name in ("VP", "VP", "linear", "VP"):
        alpha, sigma = _schedules()[name]
        t = 0.05 + 0.6 * torch.rand((), generator=generator, dtype=torch.float64)
        t_next = t + (1 - t) * (0.1 + 0.8 * torch.rand((), generator=generator, dtype=torch.float64))
        x, x1_hat = torch.randn(2, 16, 2, generator=generator, dtype=torch.float64)
        cases.append((x, x1_hat, t, t_next, alpha, sigma))
    return cases


def ddim_step(x: Tensor, x1_hat: Tensor, t: Tensor, t_next: Tensor, alpha, sigma) -> Tensor:
    """DDIM's deterministic step (Song, Meng & Ermon 2021, η = 0) in our time: read the noise off the data prediction,
    ``x̂0 = (x − α_t·x̂1)/σ_t``, and mix the two at the next time, ``α_{t'}·x̂1 + σ_{t'}·x̂0``, shape ``(n, d)``."""
    x0_hat = (x - alpha(t) * x1_hat) / sigma(t)
    return alpha(t_next) * x1_hat + sigma(t_next) * x0_hat


def check_ddim_step(step: Callable[..., Tensor]) -> bool:
    """Check ``step(x, x1_hat, t, t_next, alpha, sigma)``: one DDIM step from ``t`` to ``t_next`` on the path
    ``x_t = α_t·x1 + σ_t·x0``, given the data prediction ``x1_hat`` ``(n, d)`` and the schedules ``alpha``, ``sigma``."""

    def no_coefficients(x, x1_hat, t, t_next, alpha, sigma):
        return alpha(t_next) * x1_hat + sigma(t_next) * (x - x1_hat)

    def old_noise_level(x, x1_hat, t, t_next, alpha, sigma):
        return alpha(t_next) * x1_hat + (x - alpha(t) * x1_hat)

    def swapped(x, x1_hat, t, t_next, alpha, sigma):
        return ddim_step(x, x1_hat, t, t_next, sigma, alpha)

    return compare(step, ddim_step, _ddim_cases(), "check_ddim_step", [
        ("x̂0 forgot its coefficients: from x = α_t·x̂1 + σ_t·x̂0, x̂0 = (x − α_t·x̂1)/σ_t, not x − x̂1", no_coefficients),
        ("the noise keeps its old size σ_t·x̂0: the next point mixes x̂1 and x̂0 with the NEXT time's α_{t'} and σ_{t'}",
         old_noise_level),
        ("α and σ are swapped: α_t multiplies the data x̂1, σ_t the noise x̂0", swapped),
        ("you returned the data prediction x̂1: that is a jump to t = 1, not to t_next",
         lambda x, x1_hat, t, t_next, alpha, sigma: x1_hat),
    ])


# --- notebooks 11 and 12: sampling after training ---

def _score_cases(seed: int = 2, count: int = 4) -> list[Case]:
    """``(velocity (n, d), x (n, d), t (n,))`` from a closed-form field, times in ``[0, 0.9)``."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(count):
        x = 2 * torch.randn(16, 2, generator=generator, dtype=torch.float64)
        t = 0.9 * torch.rand(16, generator=generator, dtype=torch.float64)
        cases.append((_gaussian_field(generator)(x, t), x, t))
    return cases


def check_score_from_velocity(score: Callable[..., Tensor]) -> bool:
    """Check ``score(velocity, x, t)``, the score ``(t·v − x)/(1 − t)`` of the linear path from ``N(0, I)``."""

    def column(t: Tensor) -> Tensor:
        return t[:, None]

    return compare(score, sde.score_from_velocity, _score_cases(), "check_score_from_velocity", [
        ("the sign is flipped: s = −E[x0 | x_t]/(1 − t) = (t·v − x)/(1 − t)",
         lambda v, x, t: (x - column(t) * v) / (1 - column(t))),
        ("you forgot to divide by 1 − t: E[x0 | x_t] = x − t·v and the score is −E[x0 | x_t]/(1 − t)",
         lambda v, x, t: column(t) * v - x),
        ("the factor t is missing: E[x0 | x_t] = x − t·v, not x − v", lambda v, x, t: (v - x) / (1 - column(t))),
        ("you divided by t: the noise x0 has weight 1 − t in x_t", lambda v, x, t: (column(t) * v - x) / column(t)),
    ])


def _scaled_score_cases(seed: int = 21, count: int = 4) -> list[Case]:
    """``(velocity (n, 2), x (n, 2), t (n,), sigma)``: the exact velocity of ``N(0, σ²I) → N(m, s²I)`` at random points,
    with the exact score of ``p_t = N(t·m, ((1 − t)²σ² + t²s²)·I)`` kept for the reference."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(count):
        sigma, s = (0.3 + 2 * torch.rand(2, generator=generator, dtype=torch.float64)).tolist()
        m = 2 * torch.randn(2, generator=generator, dtype=torch.float64)
        x = 2 * torch.randn(16, 2, generator=generator, dtype=torch.float64)
        t = 0.9 * torch.rand(16, generator=generator, dtype=torch.float64)[:, None]
        variance = (1 - t) ** 2 * sigma**2 + t**2 * s**2
        velocity = m + (t * s**2 - (1 - t) * sigma**2) / variance * (x - t * m)  # E[x1 − x0 | x_t = x]
        cases.append((velocity, x, t[:, 0], sigma))
    return cases


def scaled_score(velocity: Tensor, x: Tensor, t: Tensor, sigma: float) -> Tensor:
    """The score ``(t·v − x)/((1 − t)·σ²)`` of the linear path from ``N(0, σ²I)``, shape ``(n, d)``:
    ``E[x0 | x_t] = x − t·v`` as before, and Tweedie's formula for the Gaussian part ``(1 − t)·x0`` of variance ``(1 − t)²σ²``."""
    t = t[:, None]
    return (t * velocity - x) / ((1 - t) * sigma**2)


def check_scaled_score(score: Callable[..., Tensor]) -> bool:
    """Check ``score(velocity, x, t, sigma)``, the score of the linear path from a source ``N(0, σ²I)``, on exact
    Gaussian velocities (the reference :func:`scaled_score` equals the closed-form score of ``p_t`` on these cases)."""

    def column(t: Tensor) -> Tensor:
        return t[:, None]

    return compare(score, scaled_score, _scaled_score_cases(), "check_scaled_score", [
        ("σ is ignored: with x0 ~ N(0, σ²I) the Gaussian part (1 − t)·x0 has variance (1 − t)²σ², so divide by (1 − t)·σ²",
         lambda v, x, t, sigma: sde.score_from_velocity(v, x, t)),
        ("you divided by σ, not σ²: Tweedie's formula divides by the variance (1 − t)²σ²",
         lambda v, x, t, sigma: (column(t) * v - x) / ((1 - column(t)) * sigma)),
        ("σ² multiplies instead of dividing: the score of N(μ, σ²) is −(x − μ)/σ²",
         lambda v, x, t, sigma: (column(t) * v - x) / (1 - column(t)) * sigma**2),
        ("the whole variance (1 − t)²σ² divides x − t·v: Tweedie gives ∇log p = −E[(1 − t)·x0 | x_t]/((1 − t)²σ²), "
         "and one factor 1 − t cancels", lambda v, x, t, sigma: (column(t) * v - x) / ((1 - column(t)) ** 2 * sigma**2)),
    ], atol=1e-6)


def _em_cases(seed: int = 3, count: int = 4) -> list[Case]:
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for v, x, t, dt in _step_cases(seed, count):
        g = 0.2 + 1.5 * torch.rand((), generator=generator, dtype=torch.float64)
        cases.append((v, x, t, dt, g, torch.randn(x.shape, generator=generator, dtype=x.dtype)))
    return cases


def check_euler_maruyama_step(step: Callable[..., Tensor]) -> bool:
    """Check ``step(v, x, t, dt, g, noise)``: ``x + dt·(v + ½g²·s) + g·√dt·noise``, ``s`` the score from ``v``."""

    def reference(v, x, t, dt, g, noise):
        return sde.euler_maruyama_step(v, x, t, dt, sde.constant(g.item()), noise)

    def wrong(half: float = 0.5, score: bool = True, scale=lambda dt: dt.sqrt()):
        def step(v, x, t, dt, g, noise):
            velocity = v(x, t.expand(len(x)))
            s = sde.score_from_velocity(velocity, x, t) if score else 0
            return x + dt * (velocity + half * g**2 * s) + g * scale(dt) * noise
        return step

    return compare(step, reference, _em_cases(), "check_euler_maruyama_step", [
        ("the ½ is missing: the drift is v + ½g²·s", wrong(half=1.0)),
        ("the score term is missing: noise alone spreads the samples; add ½g²·s to the drift", wrong(score=False)),
        ("the noise is scaled by dt: Brownian increments grow like √dt", wrong(scale=lambda dt: dt)),
        ("the noise is not scaled by √dt: multiply it by g·√dt", wrong(scale=lambda dt: torch.ones_like(dt))),
    ])


def check_bellman(bellman: Callable[[Tensor, int], list[int]]) -> bool:
    """Check ``bellman(cost, steps) -> [0, i_1, …, N]``, BOSS's dynamic program over a jump-cost matrix."""
    generator = torch.Generator().manual_seed(4)
    cases = []
    for n, steps in ((8, 3), (10, 4), (12, 2), (9, 5)):
        cost = torch.rand(n + 1, n + 1, generator=generator, dtype=torch.float64)
        cases.append((cost.masked_fill(~torch.ones_like(cost, dtype=torch.bool).triu(1), float("inf")), steps))

    def as_tensor(function):
        return lambda cost, steps: torch.tensor(function(cost, steps))

    def greedy(cost, steps):
        path, last = [0], cost.shape[0] - 1
        for left in range(steps - 1, 0, -1):  # the cheapest next jump that leaves room for the rest
            path.append(int(cost[path[-1], path[-1] + 1:last - left + 1].argmin()) + path[-1] + 1)
        return torch.tensor(path + [last])

    def uniform(cost, steps):
        return torch.linspace(0, cost.shape[0] - 1, steps + 1).round().long()

    return compare(as_tensor(bellman), as_tensor(schedules.bellman), cases, "check_bellman", [
        ("you chose each jump greedily: the cheapest next jump can force expensive ones later; use V_{k−1}", greedy),
        ("you returned the uniform schedule: minimise c(i, j) + V_{k−1}(j) over j", uniform),
    ])


def check_lookahead(lookahead: Callable[..., Tensor]) -> bool:
    """Check ``lookahead(x, velocity, t)``, the one-step estimate ``x̂1 = x + (1 − t)·v`` a reward judges."""
    cases = [(x, v, t[0]) for v, x, t in _score_cases(5)]
    return compare(lookahead, search.lookahead, cases, "check_lookahead", [
        ("you stepped by t: the time left to t = 1 is 1 − t", lambda x, v, t: x + t * v),
        ("you took a whole unit step: x + v lands at t + 1, not at 1", lambda x, v, t: x + v),
        ("you returned the velocity alone: add it to x", lambda x, v, t: (1 - t) * v),
    ])


# --- notebook 13: guidance ---


def _field_cases(seed: int, count: int = 4) -> list[Case]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(16, 2, generator=generator), torch.randn(16, 2, generator=generator), 0.5 + 3 * torch.rand(()).item())
        for _ in range(count)
    ]


def check_cfg(combine: Callable[..., Tensor]) -> bool:
    """Check ``combine(v_cond, v_uncond, w)``, classifier-free guidance ``v_∅ + w·(v_c − v_∅)``, all ``(n, 2)``."""

    def reference(v_c, v_null, w):
        return v_null + w * (v_c - v_null)

    return compare(combine, reference, _field_cases(0), "check_cfg", [
        ("the roles are swapped: start from the unconditional v_∅ and add w·(v_c − v_∅)", lambda c, u, w: c + w * (u - c)),
        ("the difference is missing: guidance scales (v_c − v_∅), not v_c", lambda c, u, w: u + w * c),
        ("only the conditional field is scaled: w·v_c forgets v_∅", lambda c, u, w: w * c),
    ])


def check_endpoint_estimate(estimate: Callable[..., Tensor]) -> bool:
    """Check ``estimate(x, v, t)``, the one-step endpoint ``x̂1 = x + (1 − t)·v``; ``x``, ``v`` ``(n, 2)``, ``t`` ``(n,)``."""
    generator = torch.Generator().manual_seed(2)
    cases = [(torch.randn(16, 2, generator=generator), torch.randn(16, 2, generator=generator),
              torch.rand(16, generator=generator)) for _ in range(4)]
    return compare(estimate, lambda x, v, t: x + (1 - t[:, None]) * v, cases, "check_endpoint_estimate", [
        ("the step uses t: the time left until the data is 1 − t", lambda x, v, t: x + t[:, None] * v),
        ("the step forgets the time left: multiply v by (1 − t)", lambda x, v, t: x + v),
    ])


def check_within_class_pairing(pair: Callable[[Tensor, Tensor, Tensor], Tensor]) -> bool:
    """Check ``pair(x0, x1, label) -> x1 reordered``: slot ``i`` carries ``label[i]``, the class of ``x1[i]``; every
    ``x0_i`` must get a datum of its own class, with ``Σ_i ‖x0_i − x1_σ(i)‖²`` minimal under that rule (C2OT with an
    infinite label weight: one OT problem per class). ``x0, x1`` are ``(n, 2)``, ``label`` is ``(n,)``."""

    def reference(x0, x1, label):
        return couplings.ConditionalOT()(x0, x1, label).x1

    def ignoring_labels(x0, x1, label):
        return couplings.ConditionalOT(weight=0.0)(x0, x1, label).x1

    generator = torch.Generator().manual_seed(6)
    cases = []
    for classes in (2, 3, 3, 4):
        label = torch.arange(24) % classes
        label = label[torch.randperm(24, generator=generator)]
        centres = 3.0 * torch.randn(classes, 2, generator=generator, dtype=torch.float64)
        cases.append((torch.randn(24, 2, generator=generator, dtype=torch.float64),
                      centres[label] + 0.5 * torch.randn(24, 2, generator=generator, dtype=torch.float64), label))
    return compare(pair, reference, cases, "check_within_class_pairing", [
        ("x1 came back in its original order: that is the independent coupling (within each class, pairs are free to move)",
         lambda x0, x1, label: x1),
        ("the pairs ignore the labels: that is plain OT over the whole batch; solve one OT problem per class", ignoring_labels),
    ])


# --- notebook 14: reward fine-tuning ---


def check_group_advantages(advantage: Callable[..., Tensor]) -> bool:
    """Check ``advantage(reward, groups)``: ``(R − mean R)/std R`` within each of ``groups`` equal groups, ``(n,)``."""

    generator = torch.Generator().manual_seed(3)
    cases = [(torch.randn(24, generator=generator) * 3 + 1, groups) for groups in (1, 2, 3, 4)]

    def whole_batch(reward, groups):
        return (reward - reward.mean()) / (reward.std() + 1e-8)

    return compare(advantage, finetune.advantages, cases, "check_group_advantages", [
        ("the scale is missing: divide by the group's standard deviation",
         lambda r, g: (r.view(g, -1) - r.view(g, -1).mean(1, keepdim=True)).view(-1)),
        ("the mean and std are over the whole batch: compute them within each group (reward.view(groups, -1))", whole_batch),
    ], atol=1e-4)


def check_clipped_surrogate(surrogate: Callable[..., Tensor]) -> bool:
    """Check ``surrogate(ratio, advantage, clip)``, PPO's ``min(ρA, clip(ρ, 1 − ε, 1 + ε)·A)`` elementwise."""

    generator = torch.Generator().manual_seed(4)
    cases = [(torch.rand(32, generator=generator) * 1.5 + 0.25, torch.randn(32, generator=generator), clip)
             for clip in (0.1, 0.2, 0.3)]
    return compare(surrogate, finetune.clipped_surrogate, cases, "check_clipped_surrogate", [
        ("there is no clipping: ρ·A alone lets one rollout move the policy arbitrarily far", lambda r, a, c: r * a),
        ("only the clipped term is used: take the min with the unclipped ρ·A (pessimistic bound)",
         lambda r, a, c: r.clamp(1 - c, 1 + c) * a),
        ("max instead of min: the surrogate must be the pessimistic (smaller) of the two",
         lambda r, a, c: torch.maximum(r * a, r.clamp(1 - c, 1 + c) * a)),
    ])


def check_clip_blocks(blocked: Callable[..., Tensor]) -> bool:
    """Check ``blocked(ratio, advantage, clip) -> (n,)`` of 0/1 (or bool): 1 where the clipped surrogate
    ``min(ρA, clip(ρ, 1 − ε, 1 + ε)·A)`` does not depend on ``ρ``, so the sample's gradient is zero (the clip
    bites): ``A > 0`` and ``ρ > 1 + ε``, or ``A < 0`` and ``ρ < 1 − ε``. The reference asks autograd."""

    def reference(ratio, advantage, clip):
        ratio = ratio.clone().requires_grad_(True)
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(finetune.clipped_surrogate(ratio, advantage, clip).sum(), ratio)
        return (gradient == 0).to(advantage.dtype)

    def as_float(result):
        return result.to(torch.float32) if isinstance(result, Tensor) else result

    generator = torch.Generator().manual_seed(5)
    cases = [(torch.rand(40, generator=generator) * 1.5 + 0.25, torch.randn(40, generator=generator), clip)
             for clip in (0.1, 0.2, 0.3)]

    def outside(r, a, c):
        return ((r < 1 - c) | (r > 1 + c)).float()

    return compare(lambda r, a, c: as_float(blocked(r, a, c)), reference, cases, "check_clip_blocks", [
        ("every ρ outside [1 − ε, 1 + ε] is marked: but where A > 0 and ρ < 1 − ε (or A < 0 and ρ > 1 + ε) the min "
         "picks the unclipped ρ·A, whose gradient is alive", outside),
        ("the sides are swapped: with A > 0 the clip stops ρ from growing past 1 + ε, with A < 0 from shrinking below 1 − ε",
         lambda r, a, c: (((a > 0) & (r < 1 - c)) | ((a < 0) & (r > 1 + c))).float()),
        ("the marks are the other way round: mark where the gradient is zero, not where it flows",
         lambda r, a, c: 1 - reference(r, a, c)),
    ])


# --- notebook 08: fast generators (13, 14, and the Jacobi pass of notebook 10) ---


def _flowmap_cases(seed: int = 13, count: int = 4) -> list[Case]:
    """``(u, teacher, x, s, t)`` in float64, where ``u`` is the exact average velocity of *another* Gaussian case,
    so the correct target differs from ``u`` and each common mistake gives its own wrong answer."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(count):
        student = closed_form.GaussianToGaussian(tuple(torch.randn(2, generator=generator).tolist()), 0.4)
        teacher = _gaussian_field(generator)
        x = torch.randn(16, 2, generator=generator, dtype=torch.float64)
        s = 0.5 * torch.rand(16, generator=generator, dtype=torch.float64)
        t = s + (1 - s) * torch.rand(16, generator=generator, dtype=torch.float64)
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
    generator = torch.Generator().manual_seed(14)
    cases = []
    for cuts in ([0.0, 0.5, 1.0], [0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.1, 0.3, 0.6, 1.0]):
        boundaries = torch.tensor(cuts)
        t = torch.cat([boundaries, torch.rand(12, generator=generator)])  # every cut, both ends, random times
        cases.append((t, boundaries))
    return cases


def check_segment(segment: Callable[..., Tensor]) -> bool:
    """Check ``segment(t, boundaries)``: the index ``k`` with ``b_k ≤ t < b_{k+1}`` of each time (``t = 1``: the last one)."""

    def left(t, b):
        return torch.bucketize(t, b[1:-1], right=False)

    def off_the_end(t, b):
        return torch.bucketize(t, b[1:], right=True)

    def uniform(t, b):
        return (t * (len(b) - 1)).floor().long().clamp(max=len(b) - 2)

    return compare(segment, segment_of, _segment_cases(), "check_segment", [
        ("a time on a cut b_k goes to the segment that ends there: segment k starts at b_k (b_k ≤ t < b_{k+1})", left),
        ("t = 1 falls off the end: the last segment also holds t = 1", off_the_end),
        ("the segments are taken to be equal: use the cut times, not floor(t·M)", uniform),
    ])


def _latent_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(15)
    cases = []
    for steps in (1, 3, 8):
        decoder = torch.nn.Linear(2, 6).double()
        with torch.no_grad():
            decoder.weight.copy_(torch.randn(6, 2, generator=generator, dtype=torch.float64))
        cases.append((_gaussian_field(generator), decoder, torch.randn(16, 2, generator=generator, dtype=torch.float64), steps))
    return cases


def check_latent_sample(latent_sample: Callable[..., Tensor]) -> bool:
    """Check ``latent_sample(velocity, decoder, z0, steps)``: Euler steps of the latent flow from ``z0``, then decode."""

    def reference(v, decoder, z0, steps):
        return decoder(solvers.integrate(v, z0, steps).x)

    return compare(latent_sample, reference, _latent_cases(), "check_latent_sample", [
        ("only one step was taken: integrate the whole grid of `steps` steps",
         lambda v, d, z0, steps: d(solvers.integrate(v, z0, 1).x)),
        ("the source point itself was decoded: integrate the latent flow first", lambda v, d, z0, steps: d(z0)),
    ])


# --- notebook 16: 8×8 digits ---


def nearest_training_distance(x: Tensor, train: Tensor) -> Tensor:
    """``min_j ‖x_i − train_j‖``, the Euclidean distance from each point of ``x`` ``(n, d)`` to its nearest point of
    ``train`` ``(m, d)``: shape ``(n,)``. Far below a held-out sample's distance means copies of the training data."""
    return torch.cdist(x, train).min(1).values


def check_nearest_training(nearest: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Check ``nearest(x, train) -> (n,)``: for each row of ``x`` ``(n, d)``, the Euclidean distance to the nearest row
    of ``train`` ``(m, d)`` (the memorisation test of notebook 16)."""
    generator = torch.Generator().manual_seed(16)
    cases = []
    for n, m in ((12, 40), (7, 25), (20, 30)):
        train = torch.randn(m, 64, generator=generator, dtype=torch.float64)
        x = torch.randn(n, 64, generator=generator, dtype=torch.float64)
        x[0] = train[3]  # an exact copy: distance 0
        cases.append((x, train))
    x, train = cases[0]
    try:
        first = nearest(x, train)
    except Exception:  # not written yet or a bug: compare reports it
        first = None
    if isinstance(first, Tensor) and first.shape == (len(train),):
        print(f"check_nearest_training: wrong on case 1: it looks like there is one distance per training point "
              f"(shape ({len(train)},)): take the minimum over the training points, one distance per row of x "
              f"(shape ({len(x)},)).")
        return False
    return compare(_as_float64(nearest), nearest_training_distance, cases, "check_nearest_training", [
        ("the distances are squared: take the square root of Σ (x − y)²",
         lambda x, train: torch.cdist(x, train).min(1).values ** 2),
        ("the distance is averaged over all training points: take the nearest one (the minimum)",
         lambda x, train: torch.cdist(x, train).mean(1)),
        ("the squared differences are averaged over the coordinates: sum them (‖·‖ is the Euclidean norm)",
         lambda x, train: torch.cdist(x, train).min(1).values / x.shape[1] ** 0.5),
        ("the distance is the sum of absolute differences (L1): use the Euclidean norm, √Σ (x − y)²",
         lambda x, train: torch.cdist(x, train, p=1).min(1).values),
        ("it returns which training point is nearest (its index): return the distance to it",
         lambda x, train: torch.cdist(x, train).min(1).indices.to(x.dtype)),
    ], atol=1e-2)  # loose enough for float32 (cdist rounds a zero distance to about 1e-3), far below every mistake


# --- notebook 09: normalizing flows ---


def _coupling_cases(seed: int = 9, count: int = 4) -> list[Case]:
    """``(x, mask, conditioner)`` in float64; ``conditioner(kept) -> (shift, log_scale)`` is a small random network whose
    outputs are non-zero on *every* coordinate and depend on every coordinate it reads, so each common mistake
    (masking, the log-determinant's sign or extent, the Gaussian's constant) gives its own wrong answer."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for k in range(count):
        w_in = torch.randn(2, 8, generator=generator, dtype=torch.float64)
        w_out = 0.5 * torch.randn(8, 4, generator=generator, dtype=torch.float64)
        bias = 0.3 * torch.randn(4, generator=generator, dtype=torch.float64)

        def conditioner(kept: Tensor, w_in=w_in, w_out=w_out, bias=bias) -> tuple[Tensor, Tensor]:
            shift, log_scale = (torch.tanh(kept @ w_in) @ w_out + bias).chunk(2, dim=1)  # (n, 2) each
            return shift, log_scale

        mask = torch.tensor([1.0, 0.0] if k % 2 == 0 else [0.0, 1.0], dtype=torch.float64)
        cases.append((1.5 * torch.randn(16, 2, generator=generator, dtype=torch.float64), mask, conditioner))
    return cases


def _coupling_log_prob(x: Tensor, mask: Tensor, conditioner: Callable[[Tensor], tuple[Tensor, Tensor]]) -> Tensor:
    """``log p(x) = log N(z; 0, I) − Σ (1 − m)·α``, ``z = m·x + (1 − m)·(x − μ)·e^{−α}``, ``μ, α = conditioner(m·x)``."""
    shift, log_scale = conditioner(x * mask)
    moved = 1 - mask
    z, log_det = affine_forward(x, shift * moved, log_scale * moved)  # the kept coordinates: shift 0, scale 1
    return standard_normal_log_prob(z) + log_det


def check_coupling_log_prob(log_prob: Callable[..., Tensor]) -> bool:
    """Check ``log_prob(x, mask, conditioner)``: the exact log-density ``(n,)`` of one affine coupling layer on a
    standard normal latent, ``mask`` ``(d,)`` holding 1 on the kept coordinates."""

    def parts(x, m, conditioner, reads=None):
        shift, log_scale = conditioner(x * m if reads is None else reads)
        moved = 1 - m
        return m * x + moved * (x - shift) * torch.exp(-log_scale), moved * log_scale, log_scale

    def no_log_det(x, m, c):
        z, _, _ = parts(x, m, c)
        return standard_normal_log_prob(z)

    def plus_log_det(x, m, c):
        z, moved_alpha, _ = parts(x, m, c)
        return standard_normal_log_prob(z) + moved_alpha.sum(1)

    def every_alpha(x, m, c):
        z, _, alpha = parts(x, m, c)
        return standard_normal_log_prob(z) - alpha.sum(1)

    def unmasked_input(x, m, c):
        z, moved_alpha, _ = parts(x, m, c, reads=x)
        return standard_normal_log_prob(z) - moved_alpha.sum(1)

    def no_constant(x, m, c):
        z, moved_alpha, _ = parts(x, m, c)
        return -0.5 * (z**2).sum(1) - moved_alpha.sum(1)

    def inverse_direction(x, m, c):
        shift, log_scale = c(x * m)
        z = m * x + (1 - m) * (x * torch.exp(log_scale) + shift)
        return standard_normal_log_prob(z) - ((1 - m) * log_scale).sum(1)

    return compare(log_prob, _coupling_log_prob, _coupling_cases(), "check_coupling_log_prob", [
        ("the log-determinant is missing: log p(x) = log N(z; 0, I) + log|det ∂z/∂x|, here −Σ(1 − m)·α",
         no_log_det),
        ("the log-determinant has the wrong sign: z = (x − μ)·e^{−α} shrinks space by e^{−α}, "
         "so log|det ∂z/∂x| = −Σ(1 − m)·α", plus_log_det),
        ("α was summed over every coordinate: the kept ones (mask 1) are not moved and add nothing, "
         "so sum (1 − m)·α", every_alpha),
        ("the conditioner read the coordinates it moves: give it x·mask (the kept coordinates only), "
         "or the Jacobian is not triangular", unmasked_input),
        ("the Gaussian's normalising constant is missing: log N(z; 0, I) = −‖z‖²/2 − (d/2)·log 2π", no_constant),
        ("this is the sampling direction x·e^{α} + μ: the density needs the data-to-latent map "
         "z = (x − μ)·e^{−α}", inverse_direction),
    ])


def _jacobi_cases() -> list[Case]:

    generator = torch.Generator().manual_seed(8)
    cases = []
    for reverse in (False, True, False):
        block = AutoregressiveBlock(tokens=5, channels=2, width=8, layers=1, heads=2, reverse=reverse).double()
        with torch.no_grad():
            for p in block.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=torch.float64))
        z = torch.randn(4, 5, 2, generator=generator, dtype=torch.float64)
        cases.append((block._params, z, z + 0.5 * torch.randn(4, 5, 2, generator=generator, dtype=torch.float64)))
    return cases


def check_jacobi_step(step: Callable[..., Tensor]) -> bool:
    """Check ``step(params, z, x)``, one Jacobi pass ``x_new = z·exp(α(x)) + μ(x)``, ``μ, α = params(x)``, all tokens at once."""

    def reference(params, z, x):
        shift, log_scale = params(x)
        return z * torch.exp(log_scale) + shift

    def forward_direction(params, z, x):
        shift, log_scale = params(x)
        return (z - shift) * torch.exp(-log_scale)

    def from_z(params, z, x):
        shift, log_scale = params(z)
        return z * torch.exp(log_scale) + shift

    def scale_not_exponentiated(params, z, x):
        shift, log_scale = params(x)
        return z * log_scale + shift

    return compare(step, reference, _jacobi_cases(), "check_jacobi_step", [
        ("this is the forward (density) direction (x − μ)·e^{−α}: sampling inverts it, x = z·e^{α} + μ", forward_direction),
        ("μ and α were computed from z: they come from the current iterate x", from_z),
        ("α is a log-scale: multiply by exp(α), not by α", scale_not_exponentiated),
    ])
