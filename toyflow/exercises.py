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


# --- notebook 11: guidance ---


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


# --- notebook 12: reward fine-tuning ---


def check_group_advantages(advantage: Callable[..., Tensor]) -> bool:
    """Check ``advantage(reward, groups)``: ``(R − mean R)/std R`` within each of ``groups`` equal groups, ``(n,)``."""
    from . import finetune

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
    from . import finetune

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
