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
    with pytest.raises(ValueError, match="sigma must be > 0"):
        paths.stochastic(0.0)
    with pytest.raises(ValueError, match="s must be > 0"):
        paths.LogitNormalTime(0.0, -1.0)
    with pytest.raises(ValueError, match="a must be > 0"):
        paths.UShapedTime(-math.e)
    with pytest.raises(ValueError, match=r"t must have shape \(3,\), got \(2,\)"):
        paths.linear().interpolate(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="same shape"):
        paths.linear().velocity(torch.zeros(3, 2), torch.zeros(4, 2), torch.zeros(3))
