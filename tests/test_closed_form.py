import torch
from torch.func import jacfwd

from toyflow.closed_form import GaussianToGaussian
from toyflow.paths import linear

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.5)


def test_marginal_velocity_is_the_conditional_mean_of_x1_minus_x0():
    """E[x1 − x0 | x_t] is affine in x_t for Gaussians: recover it by least squares on samples."""
    g = torch.Generator().manual_seed(0)
    n, t = 400_000, 0.3
    x0 = CASE.source.sample(n, g).double()
    x1 = CASE.target.sample(n, g).double()
    xt = linear().interpolate(x0, x1, torch.full((n,), t, dtype=torch.float64))
    design = torch.cat([xt, torch.ones(n, 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(design, x1 - x0).solution  # (3, 2)
    probe = torch.tensor([[0.5, 0.5], [-1.0, 2.0]], dtype=torch.float64)
    fitted = torch.cat([probe, torch.ones(2, 1, dtype=torch.float64)], 1) @ coef
    torch.testing.assert_close(fitted, CASE.velocity(probe, t), atol=0.01, rtol=0)


def test_flow_map_solves_the_velocity_ode_and_composes():
    x = torch.randn(6, 2, dtype=torch.float64)
    r, t, u = 0.2, 0.7, 0.9
    dt = torch.tensor(t, dtype=torch.float64)
    derivative = jacfwd(lambda tt: CASE.flow_map(x, r, tt))(dt)  # (6, 2)
    torch.testing.assert_close(derivative, CASE.velocity(CASE.flow_map(x, r, t), t))
    torch.testing.assert_close(CASE.flow_map(CASE.flow_map(x, r, t), t, u), CASE.flow_map(x, r, u))
    torch.testing.assert_close(CASE.flow_map(x, t, t), x)


def test_flow_map_pushes_the_source_to_the_target():
    x0 = CASE.source.sample(200_000, torch.Generator().manual_seed(1)).double()
    x1 = CASE.flow_map(x0, 0.0, 1.0)
    torch.testing.assert_close(x1.mean(0), torch.tensor(CASE.mean, dtype=torch.float64), atol=0.01, rtol=0)
    torch.testing.assert_close(x1.std(0), torch.full((2,), CASE.std, dtype=torch.float64), atol=0.01, rtol=0)


def test_average_velocity_takes_one_exact_step_and_reduces_to_v():
    x = torch.randn(5, 2, dtype=torch.float64)
    r, t = torch.full((5,), 0.1, dtype=torch.float64), torch.full((5,), 0.8, dtype=torch.float64)
    torch.testing.assert_close(x + 0.7 * CASE.average_velocity(x, r, t), CASE.flow_map(x, r, t))
    torch.testing.assert_close(CASE.average_velocity(x, t, t), CASE.velocity(x, t))
