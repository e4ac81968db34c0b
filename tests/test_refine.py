import pytest
import torch

from toyflow import couplings, data, refine, solvers
from toyflow.closed_form import GaussianToGaussian

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.3)


def points(n=200, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_rf_solver_step_is_the_midpoint_rule():
    x, t, dt = points(), torch.tensor(0.3, dtype=torch.float64), torch.tensor(-0.2, dtype=torch.float64)
    torch.testing.assert_close(refine.rf_solver_step(CASE.velocity, x, t, dt), solvers.midpoint_step(CASE.velocity, x, t, dt))


def test_inversion_reaches_the_exact_source_and_second_order_beats_euler():
    z = points()
    x1 = CASE.flow_map(z, 0.0, 1.0)
    errors = {}
    for method in ("euler", "rf_solver"):
        for nfe in (4, 8, 16):
            inverted = refine.invert(CASE.velocity, x1, nfe, method)
            assert inverted.nfe == nfe
            back = refine.regenerate(CASE.velocity, inverted.x, nfe, method).x
            errors[method, nfe] = (back - x1).norm(dim=1).mean().item()
        assert (refine.invert(CASE.velocity, x1, 64, method).x - z).norm(dim=1).mean() < 0.1
    for nfe in (4, 8, 16):
        assert errors["rf_solver", nfe] < 0.5 * errors["euler", nfe]
    assert errors["rf_solver", 16] < errors["rf_solver", 8] / 3  # second order: halving h divides by ~4


def test_flowturbo_without_refiner_is_heun_then_pseudo_corrector():
    x0 = points()
    heun = refine.flowturbo(CASE.velocity, None, x0, heun=4, pseudo=0, refine=0)
    torch.testing.assert_close(heun.x, solvers.integrate(CASE.velocity, x0, 4, "heun").x)
    assert heun.nfe == 8
    turbo = refine.flowturbo(CASE.velocity, None, x0, heun=1, pseudo=3, refine=0)
    assert turbo.nfe == 5
    exact = CASE.flow_map(x0, 0.0, 1.0)
    euler = solvers.integrate(CASE.velocity, x0, 5).x
    assert (turbo.x - exact).norm(dim=1).mean() < (euler - exact).norm(dim=1).mean()


def test_an_exact_refiner_has_zero_loss_and_a_zero_refiner_repeats_the_last_velocity():
    def exact(x, t, v_prev):
        return CASE.velocity(x, t) - v_prev

    pairs = couplings.PairSampler(data.Gaussian((0.0, 0.0), 1.0), data.Gaussian(CASE.mean, CASE.std))
    objective = refine.RefinerObjective(CASE.velocity, pairs)
    generator = torch.Generator().manual_seed(0)
    assert objective(lambda x, t, v: exact(x.double(), t.double(), v.double()), generator).item() < 1e-10
    x0 = points()
    with_exact = refine.flowturbo(CASE.velocity, exact, x0, 1, 1, 2)
    assert with_exact.nfe == 3
    plain = refine.flowturbo(CASE.velocity, lambda x, t, v: torch.zeros_like(v), x0, 1, 1, 2)
    assert not torch.allclose(with_exact.x, plain.x)
    model = refine.Refiner()
    assert model(torch.zeros(5, 2), torch.rand(5), torch.zeros(5, 2)).shape == (5, 2)


def test_bad_input():
    with pytest.raises(ValueError, match="heun"):
        refine.flowturbo(CASE.velocity, None, points(4), heun=0)
    with pytest.raises(ValueError, match="refiner"):
        refine.flowturbo(CASE.velocity, None, points(4), refine=2)
    with pytest.raises(ValueError, match="pseudo"):
        refine.flowturbo(CASE.velocity, None, points(4), pseudo=-1)
    with pytest.raises(ValueError, match="method"):
        refine.invert(CASE.velocity, points(4), 4, "rk4")
    with pytest.raises(ValueError, match="nfe"):
        refine.invert(CASE.velocity, points(4), 3, "rf_solver")
