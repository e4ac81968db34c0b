import math

import pytest
import torch

from toyflow import couplings, data, exercises, paths, sde, solvers
from toyflow.closed_form import GaussianToGaussian

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.5)


def gaussian_w2(x: torch.Tensor, mean, std: float) -> float:
    """W2 between the Gaussian fitted to ``x`` and ``N(mean, std² I)`` (closed form for Gaussians)."""
    mu, eig = x.mean(0), torch.linalg.eigvalsh(torch.cov(x.T))
    squared = (mu - torch.tensor(mean, dtype=x.dtype)).pow(2).sum() + eig.sum() + 2 * len(mean) * std**2 / 2
    squared = squared - 2 * std * eig.sqrt().sum()
    return squared.clamp_min(0).sqrt().item()


def source(n=20000, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def exact_score(x, t):
    """``N(t·m, σ_t² I)``: ``∇log p = −(x − t·m)/σ_t²``."""
    m = torch.tensor(CASE.mean, dtype=x.dtype)
    return -(x - t[:, None] * m) / CASE.sigma(t[:, None]) ** 2


@pytest.mark.parametrize("t", [0.0, 0.3, 0.7, 0.95])
def test_score_from_velocity_is_the_exact_gaussian_score(t):
    x = source(50)
    time = torch.full((50,), t, dtype=torch.float64)
    torch.testing.assert_close(sde.score_from_velocity(CASE.velocity, x, time), exact_score(x, time))
    torch.testing.assert_close(sde.score_from_velocity(CASE.velocity(x, time), x, time), exact_score(x, time))


@pytest.mark.parametrize("name", ["constant", "decaying", "vp"])
def test_sde_keeps_the_marginals_of_the_ode(name):
    x0 = source()
    ode = solvers.integrate(CASE.velocity, x0, 100).x
    solution = sde.euler_maruyama(CASE.velocity, x0, 100, name, torch.Generator().manual_seed(1), return_path=True)
    assert solution.nfe == 100 and solution.path.shape == (101, 20000, 2)
    assert gaussian_w2(solution.x, CASE.mean, CASE.std) < 0.015
    assert abs(gaussian_w2(solution.x, CASE.mean, CASE.std) - gaussian_w2(ode, CASE.mean, CASE.std)) < 0.01
    half = torch.tensor(0.5, dtype=torch.float64)  # an intermediate marginal N(t·m, σ_t² I)
    middle = solution.path[50]
    assert gaussian_w2(middle, [0.5 * m for m in CASE.mean], CASE.sigma(half).item()) < 0.02


def test_the_wrong_sign_of_the_score_term_breaks_the_marginals():
    """The check can fail: ``v − ½g²s`` with noise ``g dW`` spreads the samples instead of keeping them."""
    x, generator, dt = source(), torch.Generator().manual_seed(1), 0.01
    for t in torch.arange(0, 0.99, dt, dtype=torch.float64):
        time = t.expand(len(x))
        v, s = CASE.velocity(x, time), sde.score_from_velocity(CASE.velocity, x, time)
        x = x + dt * (v - 0.5 * s) + dt**0.5 * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    x = x + dt * CASE.velocity(x, torch.full((len(x),), 0.99, dtype=x.dtype))
    assert gaussian_w2(x, CASE.mean, CASE.std) > 0.1


def test_zero_diffusion_is_the_euler_ode():
    x0 = source(100)
    torch.testing.assert_close(sde.euler_maruyama(CASE.velocity, x0, 20, 0.0).x, solvers.integrate(CASE.velocity, x0, 20).x)


def test_seeded_batched_and_the_last_step_is_the_noiseless_jump():
    x0 = source(64)

    def run(seed):
        return sde.euler_maruyama(CASE.velocity, x0, 10, "constant", torch.Generator().manual_seed(seed), True)

    a, b, c = run(3), run(3), run(4)
    torch.testing.assert_close(a.x, b.x)
    assert not torch.allclose(a.x, c.x)
    before = a.path[-2]
    t = torch.full((64,), 0.9, dtype=torch.float64)
    torch.testing.assert_close(a.x, before + 0.1 * CASE.velocity(before, t))


def test_a_grid_that_stops_before_one_stays_stochastic_to_the_end():
    grid = torch.linspace(0, 0.5, 6, dtype=torch.float64)
    a = sde.euler_maruyama(CASE.velocity, source(8), diffusion=1.0, grid=grid, generator=torch.Generator().manual_seed(0))
    b = sde.euler_maruyama(CASE.velocity, source(8), diffusion=1.0, grid=grid, generator=torch.Generator().manual_seed(1))
    assert a.nfe == 5 and not torch.allclose(a.x, b.x)


def test_the_step_is_differentiable_and_its_transition_is_the_exponential_step():
    """mean = x + dt·v − (1 − e^{−κ})·(x − t·v), std = √((1 − t)(1 − e^{−2κ})), κ = g²dt/(2(1 − t))."""
    x = source(16).requires_grad_(True)
    t, dt = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64)
    mean, std = sde.transition(CASE.velocity, x, t, dt, sde.constant(2.0))
    v, kappa = CASE.velocity(x, t.expand(16)), 4.0 * 0.1 / (2 * 0.7)
    torch.testing.assert_close(mean, x + 0.1 * v - (1 - math.exp(-kappa)) * (x - 0.3 * v))
    torch.testing.assert_close(std, torch.full((16, 1), (0.7 * (1 - math.exp(-2 * kappa))) ** 0.5, dtype=torch.float64))
    noise = torch.randn(16, 2, dtype=torch.float64)
    step = sde.exponential_step(CASE.velocity, x, t, dt, sde.constant(2.0), noise)
    torch.testing.assert_close(step, mean + std * noise)
    step.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_the_step_is_euler_maruyama_for_small_steps_and_euler_without_noise():
    """To first order in dt the step is the Euler–Maruyama law N(x + dt·(v + ½g²s), g²dt·I); g = 0 is Euler."""
    x, t = source(32), torch.full((32,), 0.4, dtype=torch.float64)
    v = CASE.velocity(x, t)
    for dt in (1e-3, 1e-4):
        mean, std = sde.transition(CASE.velocity, x, t, dt, sde.vp(1.0))
        em_mean = x + dt * sde.drift(v, x, t, sde.vp(1.0)(t))
        assert (mean - em_mean).abs().max() / dt < 50 * dt  # the gap is O(dt²)
        torch.testing.assert_close(std[:, 0], sde.vp(1.0)(t) * dt**0.5, rtol=10 * dt, atol=0)
    mean, std = sde.transition(CASE.velocity, x, t, 0.1, sde.constant(0.0))
    torch.testing.assert_close(mean, x + 0.1 * v)
    assert (std == 0).all()


def test_euler_maruyama_step_is_the_textbook_step():
    """The exercise's reference: x + dt·(v + ½g²s) + g·√dt·noise, whatever κ."""
    x, noise = source(16), source(16, seed=5)
    t, dt = torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64)
    g = sde.vp(1.0)(t.expand(16))[:, None]  # g² = 40: κ = 2, where this step overshoots
    v = CASE.velocity(x, t.expand(16))
    expected = x + 0.1 * (v + 0.5 * g**2 * sde.score_from_velocity(v, x, t.expand(16))) + g * 0.1**0.5 * noise
    torch.testing.assert_close(sde.euler_maruyama_step(CASE.velocity, x, t, dt, sde.vp(1.0), noise), expected)


# Every schedule the library and its notebooks sample with (vp(0.5) is Flow-GRPO's default in finetune,
# decaying(1.5) notebook 11's and the sampling benchmark's), at the step counts they use: 10 (Flow-GRPO,
# search tests), 20 (search's default, notebook 12), 100 (notebook 11, benchmarks/sampling.py).
SCHEDULES = {"constant(1)": sde.constant(1.0), "decaying(1.5)": sde.decaying(1.5), "vp(1)": sde.vp(1.0),
             "vp(0.5)": sde.vp(0.5)}


@pytest.mark.parametrize("steps", [10, 20, 100])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_every_intermediate_marginal_is_kept_on_the_gaussian_case(name, steps):
    """At every grid time x_t ~ N(t·m, σ_t² I). The mean must be exact (within sampling error) and the std within
    the Euler ODE's own worst relative error at this step count, plus 0.01 for sampling. Plain Euler–Maruyama fails
    this for vp: its first step spreads the samples to std 2.28 (vp(1), 10 steps) where σ = 0.90."""
    x0 = source(100_000, seed=11)
    sde_path = sde.euler_maruyama(CASE.velocity, x0, steps, SCHEDULES[name], torch.Generator().manual_seed(12),
                                  return_path=True).path[1:]  # (steps, n, 2)
    ode_path = solvers.integrate(CASE.velocity, x0, steps, return_path=True).path[1:]
    grid = solvers.time_grid(steps, dtype=torch.float64)[1:]
    sigma, m = CASE.sigma(grid), torch.tensor(CASE.mean, dtype=torch.float64)

    def relative_std_error(path):  # (steps,): |std / σ_t − 1| at every grid time, averaged over the two coordinates
        return (path.std(1).mean(1) / sigma - 1).abs()

    allowed = relative_std_error(ode_path).max().item() + 0.01
    error = relative_std_error(sde_path)
    mean_error = (sde_path.mean(1) - grid[:, None] * m).abs().max().item()
    assert mean_error < 0.01, f"{name}, {steps} steps: a mean is off by {mean_error:.3f}"
    worst = int(error.argmax())
    assert error[worst] <= allowed, (f"{name}, {steps} steps: std {sde_path[worst].std(0).mean():.3f} at t = "
                                     f"{grid[worst]:.2f} where σ = {sigma[worst]:.3f} (allowed relative error {allowed:.3f})")


def test_schedules():
    t = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(sde.constant(0.7)(t), torch.full((3,), 0.7))
    torch.testing.assert_close(sde.decaying(2.0)(t), torch.tensor([2.0, 1.0, 0.0]))
    torch.testing.assert_close(sde.quadratic()(t), torch.tensor([3.0, 0.75, 0.0]))
    assert sde.resolve("quadratic")(t)[0] == 3.0 and sde.resolve(0.5)(t)[2] == 0.5
    torch.testing.assert_close(sde.vp()(t)[1:], torch.tensor([2.0**0.5 * 1.0, 0.0]))
    assert torch.isfinite(sde.vp()(t)).all()


def test_bad_input():
    x = source(4)
    with pytest.raises(ValueError, match=r"diffusion must be one of \['constant', 'decaying', 'quadratic', 'vp'\]"):
        sde.euler_maruyama(CASE.velocity, x, diffusion="brownian")
    with pytest.raises(TypeError, match="diffusion must be a callable"):
        sde.euler_maruyama(CASE.velocity, x, diffusion=[1.0])
    for schedule in (sde.constant, sde.decaying, sde.quadratic, sde.vp):
        with pytest.raises(ValueError, match="scale must be a finite number >= 0"):
            schedule(-1.0)
    with pytest.raises(ValueError, match="scale"):
        sde.constant(float("nan"))
    with pytest.raises(ValueError, match="t_min must be a finite number > 0"):
        sde.vp(t_min=0.0)
    with pytest.raises(ValueError, match=r"x0 must have shape \(n, d\)"):
        sde.euler_maruyama(CASE.velocity, x[0])
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor"):
        sde.euler_maruyama(CASE.velocity, x.tolist())
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        sde.euler_maruyama(CASE.velocity, x, steps=0)
    with pytest.raises(ValueError, match="grid must be strictly increasing"):
        sde.euler_maruyama(CASE.velocity, x, grid=torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        sde.euler_maruyama(CASE.velocity, x, grid=torch.tensor([0.0, 1.5]))
    with pytest.raises(TypeError, match="v must be a velocity field"):
        sde.euler_maruyama("flow", x)
    with pytest.raises(ValueError, match="t must be < 1"):
        sde.score_from_velocity(CASE.velocity, x, torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(4,\)"):
        sde.score_from_velocity(CASE.velocity, x, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="beta_min must be a finite number > 0"):
        sde.vp_path(beta_min=0.0)
    with pytest.raises(ValueError, match="beta_max must be a finite number > 5"):
        sde.vp_path(beta_min=5.0, beta_max=5.0)
    with pytest.raises(TypeError, match="path must be a paths.Interpolant"):
        sde.convert(CASE.velocity, "vp")
    with pytest.raises(TypeError, match="path must be a paths.Interpolant"):
        sde.euler_maruyama(CASE.velocity, x, path="vp")
    with pytest.raises(TypeError, match="v must be a velocity field"):
        sde.convert(None, sde.vp_path())


# ---- interpolant conversion (Kim et al. 2025): the linear-path flow sampled along the VP path ----

VP = sde.vp_path()


def test_vp_path_is_variance_preserving_and_its_derivatives_are_right():
    tau = torch.linspace(0, 0.99, 50, dtype=torch.float64)
    torch.testing.assert_close(VP.alpha(tau) ** 2 + VP.beta(tau) ** 2, torch.ones(50, dtype=torch.float64))
    h = 1e-6
    for value, derivative in [(VP.alpha, VP.d_alpha), (VP.beta, VP.d_beta)]:
        torch.testing.assert_close(derivative(tau), (value(tau + h) - value(tau - h)) / (2 * h), rtol=1e-5, atol=1e-6)
    one = torch.ones(1, dtype=torch.float64)
    assert VP.beta(one).item() == 1.0 and VP.alpha(one).item() == 0.0
    assert 0.006 < VP.beta(0 * one).item() < 0.007  # e^{−T(0)/2}, T(0) = ½·19.9 + 0.1


def test_the_converted_ode_follows_the_original_flow_and_lands_on_its_endpoints():
    """x̄_τ = s(τ)·φ_{0→t(τ)}(x0) along the way, and the same endpoint at τ = 1 (s = 1)."""
    x0 = source(500)
    tau = solvers.time_grid(400, dtype=torch.float64)
    t_start, s_start, _, _ = sde.linear_time(VP, tau[:1])
    start = s_start * CASE.flow_map(x0, 0.0, t_start)  # the flow's state at t(0) ≈ 0.0065, on the VP path
    converted = solvers.integrate(sde.convert(CASE.velocity, VP), start, method="midpoint", grid=tau, return_path=True)
    t, s, _, _ = sde.linear_time(VP, tau[:-1])
    expected = s[:, None, None] * torch.stack([CASE.flow_map(x0, 0.0, time) for time in t])
    torch.testing.assert_close(converted.path[:-1], expected, rtol=0, atol=2e-3)
    torch.testing.assert_close(converted.x, CASE.flow_map(x0, 0.0, 1.0), rtol=0, atol=2e-3)


def test_the_converted_sde_keeps_the_vp_marginals():
    """On the VP path x̄_τ ~ N(b·m, (b²s² + a²) I). The converted SDE with the paper's g = 3(1 − τ)², from the exact
    marginal at τ = 0, keeps every one of them within the converted Euler ODE's own error (20 steps: means off by up to
    0.08 in both, the VP path bends), plus 0.01 for sampling."""
    steps, m = 20, torch.tensor(CASE.mean, dtype=torch.float64)
    x0, x1 = source(100_000, seed=11), source(100_000, seed=13) * CASE.std + m
    tau = solvers.time_grid(steps, dtype=torch.float64)
    start = VP.beta(tau[:1]) * x1 + VP.alpha(tau[:1]) * x0
    sampled = sde.euler_maruyama(CASE.velocity, start, steps, sde.quadratic(3.0), torch.Generator().manual_seed(12),
                                 return_path=True, path=VP).path[1:]
    ode = solvers.integrate(sde.convert(CASE.velocity, VP), start, steps, return_path=True).path[1:]
    b, a = VP.beta(tau[1:]), VP.alpha(tau[1:])
    std = (b**2 * CASE.std**2 + a**2).sqrt()

    def relative_std_error(path):
        return (path.std(1).mean(1) / std - 1).abs()

    def mean_error(path):  # the worst error of a mean over the grid times
        return (path.mean(1) - b[:, None] * m).abs().max().item()

    assert mean_error(sampled) <= mean_error(ode) + 0.01, (mean_error(sampled), mean_error(ode))
    allowed = relative_std_error(ode).max().item() + 0.01
    assert relative_std_error(sampled).max() <= allowed, (relative_std_error(sampled), allowed)


def test_the_general_step_on_the_linear_path_is_the_linear_step():
    x, t, dt = source(16), torch.tensor(0.3, dtype=torch.float64), 0.1
    for (mean, std), (mean_general, std_general) in [
        (sde.transition(CASE.velocity, x, t, dt, sde.vp(1.0)),
         sde.transition(CASE.velocity, x, t, dt, sde.vp(1.0), paths.linear()))
    ]:
        torch.testing.assert_close(mean_general, mean)
        torch.testing.assert_close(std_general, std)
    v = CASE.velocity(x, t.expand(16))
    torch.testing.assert_close(sde.posterior_mean(x, v, t, paths.linear()), sde.posterior_mean(x, v, t))


# ---- stochastic interpolants: closed form for N(0, I) → N(m, s² I) with γ = σ√(t(1 − t)) ----

PATH = paths.stochastic(0.8)


def interpolant_fields(case=CASE, path=PATH):
    """``x_t ~ N(t·m, Σ_t I)``, ``Σ_t = (1 − t)² + t²s² + γ²``; Gaussian conditioning gives
    ``v = m + (t s² − (1 − t))/Σ_t·(x − t·m)`` and ``η = E[z | x_t] = γ/Σ_t·(x − t·m)``."""
    m, s2 = torch.tensor(case.mean, dtype=torch.float64), case.std**2

    def total(t):
        return (1 - t) ** 2 + t**2 * s2 + path.gamma(t) ** 2

    def velocity(x, t):
        t = t[:, None]
        return m + (t * s2 - (1 - t)) / total(t) * (x - t * m)

    def denoiser(x, t):
        t = t[:, None]
        return path.gamma(t) / total(t) * (x - t * m)

    return velocity, denoiser


@pytest.mark.parametrize("epsilon", [0.0, 0.5, 2.0])
def test_interpolant_sde_reaches_the_target_for_every_epsilon(epsilon):
    velocity, denoiser = interpolant_fields()
    solution = sde.interpolant_sde(velocity, denoiser, source(), PATH, 200, epsilon, torch.Generator().manual_seed(2))
    assert solution.nfe == 400
    assert gaussian_w2(solution.x, CASE.mean, CASE.std) < 0.02


def test_interpolant_sde_from_data_to_data_keeps_the_marginal():
    """Source N(μ0, I): ``x_t = (1 − t)μ0 + y_t`` with ``y_t`` the interpolant from N(0, I), so
    ``v(x, t) = v_y(x − (1 − t)μ0, t) − μ0`` and ``η(x, t) = η_y(x − (1 − t)μ0, t)``."""
    mu0 = torch.tensor([-1.0, 2.0], dtype=torch.float64)
    velocity, denoiser = interpolant_fields()

    def moved_velocity(x, t):
        return velocity(x - (1 - t[:, None]) * mu0, t) - mu0

    def moved_denoiser(x, t):
        return denoiser(x - (1 - t[:, None]) * mu0, t)

    x0 = source() + mu0
    x = sde.interpolant_sde(moved_velocity, moved_denoiser, x0, PATH, 200, 1.0, torch.Generator().manual_seed(3)).x
    assert gaussian_w2(x, CASE.mean, CASE.std) < 0.02


def test_interpolant_regression_is_minimised_by_the_conditional_means():
    velocity, denoiser = interpolant_fields()
    pairs = couplings.PairSampler(data.Gaussian((0.0, 0.0), 1.0), data.Gaussian(CASE.mean, CASE.std))
    for target, field in [("velocity", velocity), ("denoiser", denoiser)]:
        objective = sde.InterpolantRegression(pairs, PATH, batch_size=100000, target=target)

        def loss(shift, objective=objective, field=field):
            return objective(lambda x, t: field(x.double(), t.double()) + shift, torch.Generator().manual_seed(0)).item()

        assert loss(0.0) < loss(0.05) and loss(0.0) < loss(-0.05)


class WeightedPairs:
    """Fixed pairs with weights 2 (first half) and 0 (second half): the loss must ignore the second half."""

    def __init__(self, n):
        self.x0, self.x1 = source(n, seed=1).float(), source(n, seed=2).float() + 3
        self.weight = torch.cat([torch.full((n // 2,), 2.0), torch.zeros(n - n // 2)])

    def sample(self, n, generator=None, device=None):
        return couplings.PairBatch(self.x0, self.x1, self.weight)


def test_interpolant_regression_honours_pair_weights_and_accepts_no_generator():
    pairs = WeightedPairs(64)
    objective = sde.InterpolantRegression(pairs, PATH, batch_size=64)
    half = torch.zeros(64, dtype=torch.bool)
    half[:32] = True

    def model(x, t):  # exact (zero loss) on nothing; the second half is far off, but weighted 0
        return torch.where(half[:, None], torch.zeros_like(x), torch.full_like(x, 100.0))

    loss = objective(model, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and loss < 100  # the second half alone would give ~10⁴
    assert objective(model).ndim == 0


def test_interpolant_bad_input():
    velocity, denoiser = interpolant_fields()
    pairs = couplings.PairSampler(data.Gaussian((0.0, 0.0), 1.0), data.Gaussian(CASE.mean, CASE.std))
    with pytest.raises(ValueError, match=r"target must be one of \['velocity', 'denoiser'\], got 'score'"):
        sde.InterpolantRegression(pairs, PATH, target="score")
    with pytest.raises(ValueError, match="stochastic"):
        sde.InterpolantRegression(pairs, paths.linear())
    with pytest.raises(ValueError, match="epsilon must be a finite number >= 0"):
        sde.interpolant_sde(velocity, denoiser, source(4), PATH, epsilon=-1.0)
    with pytest.raises(ValueError, match="delta must be a finite number > 0"):
        sde.interpolant_sde(velocity, denoiser, source(4), PATH, delta=0.7)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        sde.interpolant_sde(velocity, denoiser, source(4), PATH, steps=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        sde.InterpolantRegression(pairs, PATH, batch_size=0)
    with pytest.raises(TypeError, match="pairs must be a pair sampler"):
        sde.InterpolantRegression(data.Gaussian((0.0, 0.0), 1.0), PATH)
    with pytest.raises(TypeError, match="time must be a time sampler"):
        sde.InterpolantRegression(pairs, PATH, time=0.5)
    with pytest.raises(TypeError, match="path must be a paths.Interpolant"):
        sde.InterpolantRegression(pairs, "stochastic")


# ---- the notebook's checkers ----


def test_score_checker_passes_the_reference_and_names_each_mistake(capsys):
    assert exercises.check_score_from_velocity(sde.score_from_velocity)
    for mistake, wrong in [
        ("sign is flipped", lambda v, x, t: (x - t[:, None] * v) / (1 - t[:, None])),
        ("divide by 1 − t", lambda v, x, t: t[:, None] * v - x),
        ("factor t is missing", lambda v, x, t: (v - x) / (1 - t[:, None])),
        ("divided by t", lambda v, x, t: (t[:, None] * v - x) / t[:, None]),
    ]:
        assert not exercises.check_score_from_velocity(wrong)
        assert mistake in capsys.readouterr().out


def test_euler_maruyama_checker(capsys):
    def step(v, x, t, dt, g, noise, half=0.5, root=True):
        velocity = v(x, t.expand(len(x)))
        s = (t * velocity - x) / (1 - t)
        return x + dt * (velocity + half * g**2 * s) + g * (dt.sqrt() if root else dt) * noise

    assert exercises.check_euler_maruyama_step(step)
    assert not exercises.check_euler_maruyama_step(lambda *a: step(*a, half=1.0))
    assert "½ is missing" in capsys.readouterr().out
    assert not exercises.check_euler_maruyama_step(lambda *a: step(*a, root=False))
    assert "scaled by dt" in capsys.readouterr().out

    def unwritten(*args):
        raise NotImplementedError

    assert not exercises.check_euler_maruyama_step(unwritten)
    assert "not written yet" in capsys.readouterr().out
