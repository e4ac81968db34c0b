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

from . import closed_form, solvers

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
    return compare(step, solvers.euler_step, _step_cases(), "check_euler_step", [
        ("the step goes backwards: use x + dt·v, not x − dt·v", lambda v, x, t, dt: x - dt * v(x, t.expand(len(x)))),
        ("the step forgets dt: multiply the velocity by dt", lambda v, x, t, dt: x + v(x, t.expand(len(x)))),
        ("the velocity is evaluated at t + dt: Euler uses the start of the step", lambda v, x, t, dt: x + dt * v(x, (t + dt).expand(len(x)))),
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


# --- notebook 13: fast generators (13, 13b, and the Jacobi pass of notebook 08) ---


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
    from .flowmap import flowmap_target

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
    from .blockwise import segment_of

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


def _jacobi_cases() -> list[Case]:
    from .nf.tarflow import AutoregressiveBlock

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
