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

from . import closed_form, couplings, finetune, meanflow, schedules, sde, search, solvers
from .blockwise import segment_of
from .flowmap import flowmap_target
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
