import math

import pytest
import torch

from toyflow import solvers
from toyflow.closed_form import GaussianToGaussian

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.5)
METHODS = ["euler", "midpoint", "heun", "rk4"]


@pytest.mark.parametrize("method", METHODS)
def test_constant_velocity_is_integrated_exactly_in_one_step(method):
    x0 = torch.randn(10, 2)
    solution = solvers.integrate(lambda x, t: torch.ones_like(x) * torch.tensor([3.0, -2.0]), x0, 1, method)
    torch.testing.assert_close(solution.x, x0 + torch.tensor([3.0, -2.0]))
    assert solution.nfe == solvers.EVALUATIONS_PER_STEP[method]


@pytest.mark.parametrize("method,exact_degree", [("midpoint", 1), ("heun", 1), ("rk4", 3)])
def test_polynomial_in_time_velocities_are_exact_up_to_the_order(method, exact_degree):
    """A velocity p(t) independent of x integrates to ∫p: exact for degree < order (quadrature rules)."""
    coefficients = torch.arange(1.0, exact_degree + 2)

    def v(x, t):
        return sum(c * t[:, None] ** k for k, c in enumerate(coefficients)).expand_as(x)

    exact = sum(c / (k + 1) for k, c in enumerate(coefficients))
    x = solvers.integrate(v, torch.zeros(1, 2, dtype=torch.float64), 1, method).x
    torch.testing.assert_close(x, torch.full((1, 2), float(exact), dtype=torch.float64))


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)])
def test_order_of_convergence(method, order):
    """``dx/dt = (1 + t)x²`` has the solution ``x(1) = 1/(1/x0 − 3/2)``; halving the step divides the error
    by ``2^order``."""
    x0 = torch.linspace(-1, 0.3, 20, dtype=torch.float64)[:, None]
    exact = 1 / (1 / x0 - 1.5)
    errors = [
        (solvers.integrate(lambda x, t: (1 + t[:, None]) * x**2, x0, n, method).x - exact).abs().max().item()
        for n in (32, 64)
    ]
    assert math.log2(errors[0] / errors[1]) == pytest.approx(order, abs=0.1)


@pytest.mark.parametrize("method,tolerance", [("euler", 3e-3), ("midpoint", 1e-6), ("heun", 1e-6), ("rk4", 1e-9)])
def test_fixed_step_solvers_converge_to_the_gaussian_flow_map(method, tolerance):
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x1 = solvers.integrate(CASE.velocity, x0, 1000, method).x
    torch.testing.assert_close(x1, CASE.flow_map(x0, 0.0, 1.0), atol=tolerance, rtol=0)


def test_adaptive_reference_matches_the_closed_form_flow_map():
    x0 = torch.randn(100, 2, dtype=torch.float64)
    solution = solvers.integrate_adaptive(CASE.velocity, x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(solution.x, CASE.flow_map(x0, 0.0, 1.0), atol=1e-7, rtol=0)
    assert solution.nfe > 6


def test_backward_grid_inverts_the_flow():
    x0 = torch.randn(20, 2, dtype=torch.float64)
    x1 = solvers.integrate(CASE.velocity, x0, 200, "rk4").x
    back = solvers.integrate(CASE.velocity, x1, method="rk4", grid=torch.linspace(1, 0, 201)).x
    torch.testing.assert_close(back, x0)


def test_path_has_every_grid_state():
    solution = solvers.integrate(CASE.velocity, torch.zeros(7, 2), 10, "heun", return_path=True)
    assert solution.path.shape == (11, 7, 2)
    torch.testing.assert_close(solution.path[-1], solution.x)
    assert solution.nfe == 20


def test_bad_input():
    with pytest.raises(ValueError, match="unknown method 'rk45'"):
        solvers.integrate(CASE.velocity, torch.zeros(3, 2), method="rk45")
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        solvers.integrate(CASE.velocity, torch.zeros(3, 2), steps=0)
    with pytest.raises(ValueError, match=r"x0 must have shape \(n, d\) with n >= 1, got \(3,\)"):
        solvers.integrate(CASE.velocity, torch.zeros(3))


@pytest.mark.parametrize("grid", [[0.0, 0.5, 0.5, 1.0], [0.0, 0.6, 0.4, 1.0], [1.0, 0.2, 0.5]])
def test_grid_that_is_not_strictly_monotone_is_rejected(grid):
    with pytest.raises(ValueError, match=r"grid must be strictly increasing or strictly decreasing finite times, got \["):
        solvers.integrate(CASE.velocity, torch.zeros(3, 2), grid=torch.tensor(grid))


@pytest.mark.parametrize(("name", "value"), [("rtol", 0.0), ("rtol", -1e-5), ("atol", 0.0), ("atol", float("nan"))])
def test_adaptive_tolerances_must_be_positive(name, value):
    with pytest.raises(ValueError, match=f"{name} must be a finite number > 0 .*, got {value}"):
        solvers.integrate_adaptive(CASE.velocity, torch.zeros(3, 2), **{name: value})
