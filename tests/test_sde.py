import pytest
import torch

from toyflow import sde, solvers
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


def test_the_step_is_differentiable_and_its_transition_is_gaussian():
    x = source(16).requires_grad_(True)
    t, dt = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64)
    mean, std = sde.transition(CASE.velocity, x, t, dt, sde.constant(2.0))
    torch.testing.assert_close(std, torch.full((16, 1), 2.0 * 0.1**0.5, dtype=torch.float64))
    noise = torch.randn(16, 2, dtype=torch.float64)
    step = sde.euler_maruyama_step(CASE.velocity, x, t, dt, sde.constant(2.0), noise)
    torch.testing.assert_close(step, mean + std * noise)
    step.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_schedules():
    t = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(sde.constant(0.7)(t), torch.full((3,), 0.7))
    torch.testing.assert_close(sde.decaying(2.0)(t), torch.tensor([2.0, 1.0, 0.0]))
    torch.testing.assert_close(sde.vp()(t)[1:], torch.tensor([2.0**0.5 * 1.0, 0.0]))
    assert torch.isfinite(sde.vp()(t)).all()


def test_bad_input():
    x = source(4)
    with pytest.raises(ValueError, match="unknown diffusion"):
        sde.euler_maruyama(CASE.velocity, x, diffusion="brownian")
    with pytest.raises(TypeError, match="diffusion"):
        sde.euler_maruyama(CASE.velocity, x, diffusion=[1.0])
    with pytest.raises(ValueError, match="scale"):
        sde.constant(-1.0)
    with pytest.raises(ValueError, match="t_min"):
        sde.vp(t_min=0.0)
    with pytest.raises(ValueError, match="x0"):
        sde.euler_maruyama(CASE.velocity, x[0])
    with pytest.raises(ValueError, match="grid"):
        sde.euler_maruyama(CASE.velocity, x, grid=torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="t must be < 1"):
        sde.score_from_velocity(CASE.velocity, x, torch.ones(4, dtype=torch.float64))
