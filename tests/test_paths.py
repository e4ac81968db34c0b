import math

import pytest
import torch
from torch.func import jacfwd

from toyflow import paths

PATHS = [paths.linear(), paths.trigonometric(), paths.stochastic(0.5)]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_velocity_is_the_time_derivative_of_the_interpolant(path):
    g = torch.Generator().manual_seed(0)
    x0, x1, z = (torch.randn(4, 2, generator=g, dtype=torch.float64) for _ in range(3))
    for t in (0.1, 0.5, 0.83):
        t_batch = torch.full((4,), t, dtype=torch.float64)
        derivative = jacfwd(lambda s: path.interpolate(x0, x1, s.expand(4), z))(torch.tensor(t, dtype=torch.float64))
        torch.testing.assert_close(derivative, path.velocity(x0, x1, t_batch, z))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_interpolant_starts_at_x0_and_ends_at_x1(path):
    x0, x1, z = torch.randn(3, 2), torch.randn(3, 2), torch.randn(3, 2)
    torch.testing.assert_close(path.interpolate(x0, x1, torch.zeros(3), z), x0)
    torch.testing.assert_close(path.interpolate(x0, x1, torch.ones(3), z), x1, atol=1e-6, rtol=0)


def test_trigonometric_path_preserves_variance():
    x0, x1 = torch.randn(200_000, 2), torch.randn(200_000, 2)
    xt = paths.trigonometric().interpolate(x0, x1, torch.full((200_000,), 0.37))
    assert xt.var(0).sub(1).abs().max() < 0.02


def test_stochastic_path_has_the_brownian_bridge_variance():
    n, t, sigma = 200_000, 0.3, 0.5
    x = torch.zeros(n, 2)
    xt = paths.stochastic(sigma).interpolate(x, x, torch.full((n,), t), torch.randn(n, 2))
    assert xt.var(0).mean().item() == pytest.approx(sigma**2 * t * (1 - t), rel=0.02)


SAMPLERS = [paths.UniformTime(), paths.LogitNormalTime(0.0, 1.0), paths.LogitNormalTime(-0.4, 1.0), paths.UShapedTime(4)]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_time_samplers_match_their_densities(sampler):
    t = sampler(200_000, generator=torch.Generator().manual_seed(0))
    assert t.min() >= 0 and t.max() <= 1
    edges = torch.linspace(0, 1, 11)
    observed = torch.histc(t, bins=10, min=0, max=1) / len(t)
    grid = torch.linspace(0, 1, 10_001)[1:-1]
    density = sampler.density(grid)
    assert (density.mean()).item() == pytest.approx(1.0, abs=0.01)  # integrates to 1
    expected = torch.stack([density[(grid >= a) & (grid < b)].mean() * (b - a) for a, b in zip(edges[:-1], edges[1:])])
    torch.testing.assert_close(observed, expected, atol=0.004, rtol=0)


def test_u_shaped_mass_below_a_tenth_matches_lee_et_al():
    t = paths.UShapedTime(4.0)(400_000, generator=torch.Generator().manual_seed(1))
    assert (t < 0.1).float().mean().item() == pytest.approx(0.1725, abs=0.003)


def test_bad_input():
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        paths.stochastic(0.0)
    with pytest.raises(ValueError, match="s must be a finite number > 0"):
        paths.LogitNormalTime(0.0, -1.0)
    with pytest.raises(ValueError, match="a must be a finite number > 0"):
        paths.UShapedTime(-math.e)
    with pytest.raises(ValueError, match=r"t must have shape \(3,\), got \(2,\)"):
        paths.linear().interpolate(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="same shape"):
        paths.linear().velocity(torch.zeros(3, 2), torch.zeros(4, 2), torch.zeros(3))


def _gaussian_posterior(path, mean, std, x, t):
    """Source N(0, I), target N(mean, std²I): x_t ~ N(β·mean, c²I), c² = β²std² + α², and the exact
    E[x1 | x_t] = mean + (β·std²/c²)(x − β·mean), E[x0 | x_t] = (α/c²)(x − β·mean), log p_t up to a constant."""
    a, b = path.alpha(t)[:, None], path.beta(t)[:, None]
    var = b**2 * std**2 + a**2
    centred = x - b * mean
    return mean + b * std**2 / var * centred, a / var * centred, lambda y: -((y - b * mean) ** 2 / (2 * var)).sum()


@pytest.mark.parametrize("path", PATHS[:2], ids=lambda p: p.name)
def test_score_and_tweedie_are_exact_on_the_gaussian_case(path):
    g = torch.Generator().manual_seed(3)
    mean, std = torch.tensor([2.0, -1.0], dtype=torch.float64), 0.4
    x = 2 * torch.randn(64, 2, generator=g, dtype=torch.float64)
    t = 0.05 + 0.9 * torch.rand(64, generator=g, dtype=torch.float64)
    x1_hat, x0_hat, log_p = _gaussian_posterior(path, mean, std, x, t)
    v = path.velocity(x0_hat, x1_hat, t)  # the marginal velocity E[α̇x0 + β̇x1 | x_t]
    exact_score = torch.func.grad(log_p)(x)
    torch.testing.assert_close(path.score(x, v, t), exact_score)
    torch.testing.assert_close(path.tweedie(x, exact_score, t), x1_hat)


def test_score_on_the_linear_path_is_the_sde_modules():
    from toyflow import sde

    g = torch.Generator().manual_seed(4)
    x, v = torch.randn(2, 32, 2, generator=g, dtype=torch.float64)
    t = 0.95 * torch.rand(32, generator=g, dtype=torch.float64)
    torch.testing.assert_close(paths.linear().score(x, v, t), sde.score_from_velocity(v, x, t))


def test_score_and_tweedie_refuse_their_singular_ends():
    path, x = paths.trigonometric(), torch.randn(2, 2)
    for dtype in (torch.float32, torch.float64):  # cos(π/2) rounds to ±1e-8 or 6e-17, not 0
        with pytest.raises(ValueError, match="data end"):
            path.score(x.to(dtype), x.to(dtype), torch.tensor([0.5, 1.0], dtype=dtype))
    with pytest.raises(ValueError, match="t = 0"):
        path.tweedie(x, x, torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="deterministic"):
        paths.stochastic(0.5).tweedie(x, x, torch.tensor([0.5, 0.5]))
